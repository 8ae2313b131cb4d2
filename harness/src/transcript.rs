//! APDU transcripts: what a flow sent and got, step by step, with secrets redacted; replay
//! against another card with masks for what may legitimately differ.
//!
//! Secrets the flow knows (PIN, PUK, new PIN …) are registered with the [`Recorder`]; wherever
//! one appears in a command or response, padded as cards pad them (`FF` to 8 or 64, `00` to 16),
//! it is replaced by a placeholder `{name:len:pad}`. A transcript therefore never holds a PIN,
//! and replay fills the placeholders from values given again. Other data of VERIFY / CHANGE /
//! RESET RETRY COUNTER is masked as `**` (not replayable).

use crate::transport::{Response, Transport, TransportError};
use firmalab_emulator::apdu::{Apdu, carries_secret};
use firmalab_emulator::hex;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

pub const SCHEMA_NAME: &str = "firmalab-transcript";
pub const SCHEMA_VERSION: u32 = 1;

/// How replay compares a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// Data and SW must match.
    Exact,
    /// SW and data length must match (signatures, challenges, generated keys).
    Length,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// Command hex, secrets as `{name:len:pad}` placeholders or `**`.
    pub command: String,
    /// Response hex (data then SW), secrets likewise.
    pub response: String,
    pub mask: Mask,
    /// Microseconds the round trip took (not compared, not in snapshots).
    #[serde(default)]
    pub micros: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub exchanges: Vec<Exchange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    pub schema: String,
    pub version: u32,
    pub flow: String,
    pub profile: String,
    pub atr: String,
    pub steps: Vec<Step>,
}

impl Transcript {
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text =
            firmalab_emulator::storage::read_text(path).map_err(|e| format!("transcript {}: {e}", path.display()))?;
        let t: Transcript = serde_json::from_str(&text).map_err(|e| format!("transcript {}: {e}", path.display()))?;
        if t.schema != SCHEMA_NAME || t.version != SCHEMA_VERSION {
            return Err(format!("transcript {}: not a {SCHEMA_NAME} v{SCHEMA_VERSION} file", path.display()));
        }
        Ok(t)
    }

    pub fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        text.push('\n');
        firmalab_emulator::storage::write_private(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A compact, stable text form for snapshots: no timings, long data abbreviated with its
    /// length and SHA-256 prefix.
    pub fn render(&self) -> String {
        use sha2::{Digest, Sha256};
        let short = |h: &str| {
            if h.len() <= 80 {
                h.to_owned()
            } else {
                let digest = Sha256::digest(h.as_bytes());
                // By characters: a transcript file may hold anything, not only hex.
                let head: String = h.chars().take(48).collect();
                let tail: String = h.chars().skip(h.chars().count().saturating_sub(4)).collect();
                format!("{head}…[{} hex digits, sha256 {}]{tail}", h.len(), hex::encode(&digest[..4]))
            }
        };
        let mut out = format!("flow {} on {} ({})\n", self.flow, self.profile, self.atr);
        for s in &self.steps {
            out.push_str(&format!("## {}\n", s.name));
            for e in &s.exchanges {
                let m = if e.mask == Mask::Length { "  (length)" } else { "" };
                out.push_str(&format!("> {}\n< {}{m}\n", short(&e.command), short(&e.response)));
            }
        }
        out
    }
}

/// What is being recorded, shared between the [`Recorder`] and the flow.
pub struct Recording {
    pub transcript: Transcript,
    secrets: Vec<(String, String)>,
    last_ins: u8,
}

impl Recording {
    /// Starts a new step; later exchanges belong to it.
    pub fn step(&mut self, name: &str) {
        self.transcript.steps.push(Step { name: name.into(), exchanges: vec![] });
    }

    /// Registers a secret value under a name (`pin`, `puk`, `new_pin` …).
    pub fn secret(&mut self, name: &str, value: &str) {
        if !value.is_empty() && !self.secrets.iter().any(|(n, _)| n == name) {
            self.secrets.push((name.into(), value.into()));
        }
    }

    fn redact(&self, bytes: &[u8]) -> String {
        let mut hexed = hex::encode(bytes);
        for (name, value) in &self.secrets {
            for (len, pad) in [(64usize, 0xFFu8), (16, 0x00), (8, 0xFF)] {
                if value.len() > len {
                    continue;
                }
                let mut p = value.as_bytes().to_vec();
                p.resize(len, pad);
                let needle = hex::encode(&p);
                hexed = replace_aligned(&hexed, &needle, &format!("{{{name}:{len}:{pad:02X}}}"));
            }
        }
        hexed
    }
}

/// Replaces `needle` in a hex string only at byte boundaries, leaving earlier placeholders
/// (`{…}`, which each stand for whole bytes) alone.
fn replace_aligned(hay: &str, needle: &str, with: &str) -> String {
    let mut out = String::with_capacity(hay.len());
    let mut rest = hay;
    loop {
        let (run, tail) = match rest.find('{') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        // Within a run of hex digits, offsets are byte-aligned from its start.
        let mut i = 0;
        while i < run.len() {
            if i % 2 == 0 && run[i..].starts_with(needle) {
                out.push_str(with);
                i += needle.len();
            } else {
                out.push_str(&run[i..i + 1]);
                i += 1;
            }
        }
        if tail.is_empty() {
            return out;
        }
        let end = tail.find('}').map_or(tail.len(), |j| j + 1);
        out.push_str(&tail[..end]);
        rest = &tail[end..];
    }
}

/// Masks any data of a secret-carrying command still in clear after redaction.
fn mask_remaining(command: &[u8], redacted: String) -> String {
    if !carries_secret(command) || redacted.contains('{') {
        return redacted;
    }
    firmalab_emulator::apdu::redacted_hex(command)
}

/// A transport that records every APDU into a shared [`Recording`].
pub struct Recorder {
    inner: Box<dyn Transport>,
    pub recording: Rc<RefCell<Recording>>,
}

impl Recorder {
    pub fn new(inner: Box<dyn Transport>, flow: &str, profile: &str) -> Self {
        let atr = hex::encode(&inner.atr());
        let recording = Recording {
            transcript: Transcript {
                schema: SCHEMA_NAME.into(),
                version: SCHEMA_VERSION,
                flow: flow.into(),
                profile: profile.into(),
                atr,
                steps: vec![Step { name: "start".into(), exchanges: vec![] }],
            },
            secrets: vec![],
            last_ins: 0,
        };
        Recorder { inner, recording: Rc::new(RefCell::new(recording)) }
    }
}

impl Transport for Recorder {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let started = Instant::now();
        let response = self.inner.transmit_raw(command)?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut rec = self.recording.borrow_mut();
        let ins = command.get(1).copied().unwrap_or(0);
        let effective = if ins == 0xC0 { rec.last_ins } else { ins };
        rec.last_ins = effective;
        let mask = match effective {
            // GET CHALLENGE, GENERATE KEY PAIR, READ PUBLIC COMPONENT, PSO: vary with keys and RNG.
            0x84 | 0x46 | 0xB4 | 0x2A => Mask::Length,
            _ => Mask::Exact,
        };
        let command_hex = mask_remaining(command, rec.redact(command));
        let response_hex = rec.redact(&response);
        if let Some(step) = rec.transcript.steps.last_mut() {
            step.exchanges.push(Exchange { command: command_hex, response: response_hex, mask, micros });
        }
        Ok(response)
    }

    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        self.inner.reset()
    }
}

/// Fills `{name:len:pad}` placeholders from the given secrets.
pub fn fill(template: &str, secrets: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut hexed = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        hexed.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| format!("unclosed placeholder in {template}"))? + start;
        let spec: Vec<&str> = rest[start + 1..end].split(':').collect();
        let [name, len, pad] = spec.as_slice() else {
            return Err(format!("bad placeholder {}", &rest[start..=end]));
        };
        let value = secrets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("the transcript needs the secret {name:?}: pass it to replay"))?;
        let len: usize = len.parse().map_err(|_| format!("bad placeholder length in {template}"))?;
        let pad = u8::from_str_radix(pad, 16).map_err(|_| format!("bad placeholder pad in {template}"))?;
        let mut p = value.as_bytes().to_vec();
        p.resize(len, pad);
        hexed.push_str(&hex::encode(&p));
        rest = &rest[end + 1..];
    }
    hexed.push_str(rest);
    if hexed.contains('*') {
        return Err("the transcript has masked secret data that cannot be replayed".into());
    }
    hex::decode(&hexed)
}

/// The first place a replay differed.
#[derive(Debug, PartialEq, Eq)]
pub struct Divergence {
    pub step: String,
    pub index: usize,
    pub command: String,
    pub expected: String,
    pub got: String,
}

/// Replays every command of a transcript against a card, comparing responses with the masks.
/// Returns the number of exchanges replayed, or the first divergence.
pub fn replay(
    t: &Transcript,
    card: &mut dyn Transport,
    secrets: &[(String, String)],
) -> Result<Result<usize, Divergence>, String> {
    let mut count = 0;
    for step in &t.steps {
        for (i, e) in step.exchanges.iter().enumerate() {
            let command = fill(&e.command, secrets)?;
            let response = card.transmit_raw(&command).map_err(|e| e.to_string())?;
            let expected = fill(&e.response, secrets)?;
            let same = match e.mask {
                Mask::Exact => response == expected,
                Mask::Length => {
                    response.len() == expected.len()
                        && response.get(response.len().saturating_sub(2)..)
                            == expected.get(expected.len().saturating_sub(2)..)
                }
            };
            if !same {
                return Ok(Err(Divergence {
                    step: step.name.clone(),
                    index: i,
                    command: e.command.clone(),
                    expected: e.response.clone(),
                    got: hex::encode(&response),
                }));
            }
            count += 1;
        }
    }
    Ok(Ok(count))
}

/// Whether parsing a command says it is well-formed (used to sanity-check scenario input).
pub fn well_formed(command: &[u8]) -> bool {
    Apdu::parse(command).is_ok()
}

/// A response split, for callers that only have the transcript's hex.
pub fn response_of(hexed: &str) -> Result<Response, String> {
    Response::from_bytes(&hex::decode(hexed)?).map_err(|e| e.to_string())
}
