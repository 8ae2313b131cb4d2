//! APDU transcripts: what a flow sent and got, step by step, with secrets redacted; replay
//! against another card with masks for what may legitimately differ.
//!
//! Secrets the flow knows (PIN, PUK, new PIN …) are registered with the [`Recorder`]; wherever
//! one appears in a command or response, padded as cards pad them (`FF` to 8 or 64, `00` to 16),
//! it is replaced by a placeholder `{name:len:pad}`. Replay fills the placeholders from values
//! given again. Beyond that, whatever the flow knew:
//! * the data of every VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER (INS `20`/`24`/`2C`)
//!   is written `**` per byte unless it is entirely placeholders (a secret the flow did not
//!   register, an unblock code read from the card, never appears);
//! * the answer to a read of a secret-bearing file (the Oberthur AWP PUK file `5011/2000`) is
//!   written `**` per byte unless it is entirely placeholders.
//!
//! Masked commands cannot be replayed; masked answers are compared by length and status word.

use crate::transport::gate::Consent;
use crate::transport::{Response, Transport, TransportError};
use crate::wire::apdu::{Command, Effect, carries_secret, effect, masked_hex};
use crate::wire::hex::{self, HexError};
use iso7816::tlv::{Tag, get_data_object};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

pub const SCHEMA_NAME: &str = "firmalab-transcript";
pub const SCHEMA_VERSION: u32 = 1;

/// Why a transcript could not be read, written, filled or replayed.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    #[error("transcript {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("transcript {}: {source}", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("transcript {}: not a {SCHEMA_NAME} v{SCHEMA_VERSION} file", path.display())]
    Schema { path: PathBuf },
    /// The same key twice in one JSON object (which one would count?).
    #[error("transcript {}: {why}", path.display())]
    DuplicateKey { path: PathBuf, why: String },
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    #[error("unclosed placeholder in {0}")]
    UnclosedPlaceholder(String),
    #[error("bad placeholder {0}")]
    BadPlaceholder(String),
    /// A placeholder names a secret the caller did not give.
    #[error("the transcript needs the secret {0:?}: pass it to replay")]
    MissingSecret(String),
    #[error("bad placeholder length in {0}")]
    BadPlaceholderLength(String),
    #[error("bad placeholder pad in {0}")]
    BadPlaceholderPad(String),
    /// Secret data written `**`: it cannot be sent again.
    #[error("the transcript has masked secret data that cannot be replayed")]
    Masked,
    #[error(transparent)]
    Hex(#[from] HexError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// [`replay`] met a dry-run gate.
    #[error("dry run: stopped before {0}")]
    DryRun(String),
    /// The card's client (to read its serial before a replay that writes).
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// The user did not confirm a replay that writes to a card in a reader.
    #[error("not confirmed: {0}")]
    NotConfirmed(String),
}

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
    /// A dry run stopped here: the command was not sent (and `response` is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_sent: bool,
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
    /// Reads a transcript file (`firmalab-transcript` v1).
    pub fn load(path: &Path) -> Result<Self, TranscriptError> {
        let text =
            crate::files::read_text(path).map_err(|source| TranscriptError::Read { path: path.to_owned(), source })?;
        crate::files::check_unique_keys(&text)
            .map_err(|why| TranscriptError::DuplicateKey { path: path.to_owned(), why })?;
        let t: Transcript =
            serde_json::from_str(&text).map_err(|source| TranscriptError::Parse { path: path.to_owned(), source })?;
        if t.schema != SCHEMA_NAME || t.version != SCHEMA_VERSION {
            return Err(TranscriptError::Schema { path: path.to_owned() });
        }
        Ok(t)
    }

    /// Writes the transcript, mode 0600, atomically.
    pub fn save(&self, path: &Path) -> Result<(), TranscriptError> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        crate::files::write_private(path, text.as_bytes())
            .map_err(|source| TranscriptError::Write { path: path.to_owned(), source })
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
                if e.not_sent {
                    out.push_str(&format!("> {}\n< (not sent: dry run)\n", short(&e.command)));
                    continue;
                }
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
    files: Selected,
}

/// The file the card has selected, as far as the commands and answers seen say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Selected {
    /// Current DF from the MF (empty: unknown).
    df: Vec<u16>,
    ef: Option<u16>,
}

/// The AuthentIC application AID: selecting it makes the MF current.
const AID_AUTHENTIC: [u8; 16] =
    [0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x03, 0x03, 0x00, 0x00, 0x00, 0xF1, 0x00, 0x00, 0x00, 0x02];

/// Files whose content is a secret: the Oberthur AWP PUK file `3F00/5011/2000` (its 16
/// bytes are the unblock code).
const SECRET_FILES: [(&[u16], u16); 1] = [(&[0x3F00, 0x5011], 0x2000)];

impl Selected {
    /// Follows a SELECT that the card answered `9000` with `fcp`.
    fn follow(&mut self, c: &Command<'_>, fcp: &[u8]) {
        let fids: Vec<u16> = c.data.chunks_exact(2).map(|f| u16::from_be_bytes([f[0], f[1]])).collect();
        let is_df = descriptor(fcp) == Some(0x38);
        match (c.p1, fids.as_slice()) {
            (0x04, _) if c.data == AID_AUTHENTIC => *self = Selected { df: vec![0x3F00], ef: None },
            (0x04, _) => {}
            (0x00, [0x3F00]) => *self = Selected { df: vec![0x3F00], ef: None },
            (0x00..=0x02, [fid]) if is_df => {
                if !self.df.is_empty() {
                    self.df.push(*fid);
                }
                self.ef = None;
            }
            (0x00 | 0x02, [fid]) => self.ef = Some(*fid),
            (0x03, _) => {
                self.df.pop();
                self.ef = None;
            }
            (0x08 | 0x09, [.., last]) => {
                let mut path = vec![0x3F00];
                path.extend_from_slice(&fids);
                if is_df {
                    *self = Selected { df: path, ef: None };
                } else {
                    path.pop();
                    *self = Selected { df: path, ef: Some(*last) };
                }
            }
            _ => *self = Selected::default(),
        }
    }

    /// Whether the current EF holds a secret (an unknown DF counts as a match).
    fn secret(&self) -> bool {
        SECRET_FILES.iter().any(|(df, ef)| self.ef == Some(*ef) && (self.df.is_empty() || self.df == *df))
    }
}

/// The first byte of an FCP's file descriptor (tag `82`): `38` for a DF on both profiles.
fn descriptor(fcp: &[u8]) -> Option<u8> {
    let template @ (0x62 | 0x6F) = *fcp.first()? else { return None };
    get_data_object(&[Tag::from_u8(template), Tag::from_u8(0x82)], fcp)?.first().copied()
}

/// Whether redacted hex is nothing but placeholders.
fn only_placeholders(redacted: &str) -> bool {
    let mut rest = redacted;
    while let Some(start) = rest.find('{') {
        if start != 0 {
            return false;
        }
        match rest.find('}') {
            Some(end) => rest = &rest[end + 1..],
            None => return false,
        }
    }
    rest.is_empty()
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

    /// A command as the transcript shows it.
    fn command_text(&self, command: &[u8]) -> String {
        if !carries_secret(command) {
            return self.redact(command);
        }
        match Command::parse(command) {
            Some(c) => {
                let head = command.len() - c.data.len() - usize::from(c.le.is_some()) * if c.extended { 2 } else { 1 };
                let data = self.redact(c.data);
                if only_placeholders(&data) {
                    format!("{}{data}{}", hex::encode(&command[..head]), hex::encode(&command[head + c.data.len()..]))
                } else {
                    masked_hex(command)
                }
            }
            None => masked_hex(command),
        }
    }

    /// A response as the transcript shows it.
    fn response_text(&self, command: &[u8], response: &[u8], reads_secret: bool) -> String {
        let (data, sw) = response.split_at(response.len().saturating_sub(2));
        if reads_secret && !data.is_empty() {
            let red = self.redact(data);
            if !only_placeholders(&red) {
                return format!("{}{}", "**".repeat(data.len()), hex::encode(sw));
            }
        }
        let _ = command;
        self.redact(response)
    }

    fn redact(&self, bytes: &[u8]) -> String {
        let mut hexed = hex::encode(bytes);
        for (name, value) in &self.secrets {
            // Oberthur 64/FF, CNS 8/FF, Incrypto34 8/00 (and a 16/00 unblock code).
            for (len, pad) in [(64usize, 0xFFu8), (16, 0x00), (8, 0xFF), (8, 0x00)] {
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
    // Most commands and answers carry no secret: nothing to walk through.
    if !hay.contains(needle) {
        return hay.to_owned();
    }
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
            files: Selected::default(),
        };
        Recorder { inner, recording: Rc::new(RefCell::new(recording)) }
    }
}

/// Sends one command through `inner` and records it.
fn record(
    inner: &mut dyn Transport,
    recording: &RefCell<Recording>,
    command: &[u8],
) -> Result<Vec<u8>, TransportError> {
    let started = Instant::now();
    let result = inner.transmit_raw(command);
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut rec = recording.borrow_mut();
    let ins = command.get(1).copied().unwrap_or(0);
    let effective = if ins == 0xC0 { rec.last_ins } else { ins };
    rec.last_ins = effective;
    let mask = match effective {
        // GET CHALLENGE, GENERATE KEY PAIR, READ PUBLIC COMPONENT, PSO: vary with keys and RNG.
        0x84 | 0x46 | 0xB4 | 0x2A => Mask::Length,
        _ => Mask::Exact,
    };
    let command_hex = rec.command_text(command);
    let response = match result {
        Ok(r) => r,
        Err(e @ TransportError::DryRun(_)) => {
            if let Some(step) = rec.transcript.steps.last_mut() {
                step.exchanges.push(Exchange {
                    command: command_hex,
                    response: String::new(),
                    mask,
                    micros: 0,
                    not_sent: true,
                });
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let ok = crate::wire::Sw::of_response(&response) == Some(crate::wire::Sw::Ok);
    if let Some(c) = Command::parse(command)
        && c.ins == 0xA4
        && ok
    {
        rec.files.follow(&c, &response[..response.len() - 2]);
    }
    let reads_secret = matches!(effective, 0xB0 | 0xB1) && rec.files.secret();
    let response_hex = rec.response_text(command, &response, reads_secret);
    if let Some(step) = rec.transcript.steps.last_mut() {
        step.exchanges.push(Exchange { command: command_hex, response: response_hex, mask, micros, not_sent: false });
    }
    Ok(response)
}

/// The recorder inside an exclusive section of the transport it wraps.
struct View<'a> {
    inner: &'a mut dyn Transport,
    recording: &'a RefCell<Recording>,
}

impl Transport for View<'_> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        record(self.inner, self.recording, command)
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
    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        let recording = self.recording;
        self.inner.exclusive(&mut |t| f(&mut View { inner: t, recording }))
    }
}

impl Transport for Recorder {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        record(self.inner.as_mut(), &self.recording, command)
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

    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        let Recorder { inner, recording } = self;
        let recording = &**recording;
        inner.exclusive(&mut |t| f(&mut View { inner: t, recording }))
    }
}

/// Fills `{name:len:pad}` placeholders from the given secrets.
pub fn fill(template: &str, secrets: &[(String, String)]) -> Result<Vec<u8>, TranscriptError> {
    let mut hexed = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        hexed.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| TranscriptError::UnclosedPlaceholder(template.into()))? + start;
        let spec: Vec<&str> = rest[start + 1..end].split(':').collect();
        let [name, len, pad] = spec.as_slice() else {
            return Err(TranscriptError::BadPlaceholder(rest[start..=end].into()));
        };
        let value = secrets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| TranscriptError::MissingSecret((*name).into()))?;
        let len: usize = len.parse().map_err(|_| TranscriptError::BadPlaceholderLength(template.into()))?;
        let pad = u8::from_str_radix(pad, 16).map_err(|_| TranscriptError::BadPlaceholderPad(template.into()))?;
        let mut p = value.as_bytes().to_vec();
        p.resize(len, pad);
        hexed.push_str(&hex::encode(&p));
        rest = &rest[end + 1..];
    }
    hexed.push_str(rest);
    if hexed.contains('*') {
        return Err(TranscriptError::Masked);
    }
    Ok(hex::decode(&hexed)?)
}

/// A recorded answer: its bytes (masked bytes as `00`) and whether some were masked.
fn fill_answer(template: &str, secrets: &[(String, String)]) -> Result<(Vec<u8>, bool), TranscriptError> {
    let masked = template.contains("**");
    Ok((fill(&template.replace("**", "00"), secrets)?, masked))
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

/// How a replay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    /// Every exchange answered as recorded.
    Matched(usize),
    /// The first exchange that differed.
    Diverged(Divergence),
    /// A dry-run gate stopped it before the exchange `index` of `step` (`replayed` went out).
    Stopped { replayed: usize, step: String, index: usize, why: String },
}

/// Replays every command of a transcript against a card, comparing responses with the masks.
/// Returns the number of exchanges replayed, or the first divergence.
pub fn replay(
    t: &Transcript,
    card: &mut dyn Transport,
    secrets: &[(String, String)],
) -> Result<Result<usize, Divergence>, TranscriptError> {
    match replay_until(t, card, secrets)? {
        Replayed::Matched(n) => Ok(Ok(n)),
        Replayed::Diverged(d) => Ok(Err(d)),
        Replayed::Stopped { why, .. } => Err(TranscriptError::DryRun(why)),
    }
}

/// [`replay`], telling a stop by a dry-run gate apart.
pub fn replay_until(
    t: &Transcript,
    card: &mut dyn Transport,
    secrets: &[(String, String)],
) -> Result<Replayed, TranscriptError> {
    let mut count = 0;
    for step in &t.steps {
        for (i, e) in step.exchanges.iter().enumerate() {
            if e.not_sent {
                continue;
            }
            let command = fill(&e.command, secrets)?;
            let response = match card.transmit_raw(&command) {
                Ok(r) => r,
                Err(TransportError::DryRun(why)) => {
                    return Ok(Replayed::Stopped { replayed: count, step: step.name.clone(), index: i, why });
                }
                Err(e) => return Err(e.into()),
            };
            let (expected, masked) = fill_answer(&e.response, secrets)?;
            let mask = if masked { Mask::Length } else { e.mask };
            let same = match mask {
                Mask::Exact => response == expected,
                Mask::Length => {
                    response.len() == expected.len()
                        && response.get(response.len().saturating_sub(2)..)
                            == expected.get(expected.len().saturating_sub(2)..)
                }
            };
            if !same {
                return Ok(Replayed::Diverged(Divergence {
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
    Ok(Replayed::Matched(count))
}

/// The names of the placeholders a transcript's commands need (`pin`, `puk` …).
pub fn placeholder_names(t: &Transcript) -> Vec<String> {
    let mut names: Vec<String> = vec![];
    for e in t.steps.iter().flat_map(|s| &s.exchanges) {
        let mut rest = e.command.as_str();
        while let Some(start) = rest.find('{') {
            let Some(end) = rest[start..].find('}') else { break };
            if let Some(name) = rest[start + 1..start + end].split(':').next()
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
            rest = &rest[start + end + 1..];
        }
    }
    names
}

/// Whether a command fits one of the ISO 7816-3 length cases (scenario input checks).
pub fn well_formed(command: &[u8]) -> bool {
    Command::parse(command).is_some()
}

/// A response split, for callers that only have the transcript's hex.
pub fn response_of(hexed: &str) -> Result<Response, TranscriptError> {
    Ok(Response::from_bytes(&hex::decode(hexed)?)?)
}

/// For a dry run: every placeholder the transcript's commands need and `secrets` lacks gets a
/// dummy value (commands carrying a secret are never sent in a dry run).
pub fn add_dry_run_secrets(t: &Transcript, secrets: &mut Vec<(String, String)>) {
    for name in placeholder_names(t) {
        if !secrets.iter().any(|(n, _)| *n == name) {
            secrets.push((name, "0".into()));
        }
    }
}

/// `firmalab replay`: replays `t` on a card behind its gate. With `consent` (a card in a
/// reader) and a transcript with commands that write, the user first confirms by the card's
/// serial (`confirm`, told `what` the replay is); the replay then runs.
pub fn replay_guarded(
    t: &Transcript,
    mut transport: Box<dyn Transport>,
    consent: Option<&Consent>,
    secrets: &[(String, String)],
    what: &str,
    confirm: &mut dyn FnMut(&str, &str) -> Result<(), String>,
) -> Result<Replayed, TranscriptError> {
    if let Some(consent) = consent {
        let model = crate::wire::atr::recognise(&transport.atr());
        let writes = t.steps.iter().flat_map(|s| &s.exchanges).any(|e| {
            fill(&e.command, secrets).is_ok_and(|c| effect(model.profile, model.tries_query_free, &c) == Effect::Write)
        });
        if writes {
            let mut c = crate::client::open(transport)?;
            let serial = c.serial()?;
            confirm(&serial, &format!("replay {what} (it writes to the card)"))
                .map_err(TranscriptError::NotConfirmed)?;
            consent.confirm();
            return replay_until(t, c.transport(), secrets);
        }
    }
    replay_until(t, transport.as_mut(), secrets)
}

/// How `firmalab replay` reports a replay of `t` (read from `file`): the text to show and the
/// exit code (0 every response as recorded, or a dry run that stopped before a change; 1 a
/// divergence).
pub fn replay_report(t: &Transcript, file: &Path, r: &Replayed) -> (String, u8) {
    let file = file.display();
    match r {
        Replayed::Matched(n) => (
            format!(
                "replay of {file} ({} on {}): {n} exchanges, every response as recorded (masks: signatures, challenges, generated keys by length)\n",
                t.flow, t.profile
            ),
            0,
        ),
        Replayed::Diverged(d) => (
            format!(
                "replay of {file}: first divergence in step {} at exchange {}\n  > {}\n  expected < {}\n  got      < {}\n",
                d.step,
                d.index + 1,
                d.command,
                d.expected,
                d.got
            ),
            1,
        ),
        Replayed::Stopped { replayed, step, index, why } => {
            let mut out = format!("dry run of the replay of {file} (secrets as placeholders):\n");
            'all: for s in &t.steps {
                for (i, e) in s.exchanges.iter().enumerate() {
                    if e.not_sent {
                        continue;
                    }
                    if s.name == *step && i == *index {
                        out.push_str(&format!("> {}\n< (not sent: {why})\n", e.command));
                        break 'all;
                    }
                    out.push_str(&format!("> {}\n< {}\n", e.command, e.response));
                }
            }
            out.push_str(&format!(
                "dry run: {replayed} read-only exchanges replayed; stopped before {why}; nothing that changes the card was sent\n"
            ));
            (out, 0)
        }
    }
}
