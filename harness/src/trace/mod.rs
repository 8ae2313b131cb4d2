//! Real PC/SC sessions brought into firmalab: import of `pcsc-spy`, pcscd `--apdu` and OpenSC
//! debug logs into a trace (every command with the answer the real card gave, grouped by
//! connection and transaction, secrets as placeholders), and replay of a trace against any card
//! with a per-command verdict (equal / differs / not comparable).
//!
//! A trace is a JSON file, schema `firmalab-trace` version 1: strict (unknown fields rejected),
//! hex for bytes. Secrets never survive an import: the data of every VERIFY, CHANGE REFERENCE
//! DATA and RESET RETRY COUNTER, and every other occurrence of those bytes in the session, becomes
//! a placeholder `{name:len:pad}` (the same grammar as transcripts, see `transcript.rs`, which
//! has its own redaction for the secrets a flow knows: the two could be unified).
//!
//! This module is harness logic: it classifies commands with its own INS table
//! ([`classify`]) and imports nothing from the emulator.

pub mod classify;
pub mod corpus;
mod import;
mod opensc;
mod pcscd;
pub mod redact;
pub mod replay;
mod spy;

pub use import::{detect, import, import_bytes};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

pub const SCHEMA_NAME: &str = "firmalab-trace";
pub const SCHEMA_VERSION: u32 = 1;
/// Largest log or trace file read (a pkcs11-tool `--test` session logs ~0.5 MiB).
pub const MAX_INPUT: usize = crate::files::MAX_INPUT_BYTES as usize;

/// The log formats an import understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The text `pcsc-spy` prints (pcsc-lite's `libpcscspy` shim), with or without `-n`, `-d`, `-t`.
    PcscSpy,
    /// pcscd's own log with `--apdu` (and `--debug` or `--info`), foreground or syslog.
    Pcscd,
    /// OpenSC's debug log (`debug = 3;` … in opensc.conf, `debug_file`).
    Opensc,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::PcscSpy => "pcsc-spy",
            Format::Pcscd => "pcscd",
            Format::Opensc => "opensc",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pcsc-spy" | "spy" => Ok(Format::PcscSpy),
            "pcscd" => Ok(Format::Pcscd),
            "opensc" => Ok(Format::Opensc),
            other => Err(format!("unknown trace format {other:?}: pcsc-spy, pcscd or opensc")),
        }
    }
}

/// What a disconnect, reconnect or end of transaction did to the card (PC/SC dispositions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Leave,
    Reset,
    Unpower,
    Eject,
}

impl Disposition {
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Disposition::Leave),
            1 => Some(Disposition::Reset),
            2 => Some(Disposition::Unpower),
            3 => Some(Disposition::Eject),
            _ => None,
        }
    }

    /// Whether the card loses its volatile state (verified PINs, current file, security
    /// environment).
    pub fn resets(self) -> bool {
        self != Disposition::Leave
    }
}

/// Something the reader did to the card on its own (pcscd logs only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardEvent {
    Reset,
    PowerOff,
    PowerOn,
    Inserted,
    Removed,
}

/// Where the trace came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub format: Format,
    /// The file's name (no folders).
    pub file: String,
    pub lines: usize,
}

/// A placeholder that stands for secret bytes, and where it first appears.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretInfo {
    /// `{name:len:pad}`.
    pub placeholder: String,
    /// The command it was found in (`VERIFY P2=90`).
    pub command: String,
    /// The log line of that command.
    pub line: usize,
    /// Whether the value was given at import (`--secret NAME=…`), so the name says what it is.
    pub named: bool,
}

/// One command and the answer the card gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// Line of the log where the command starts.
    pub line: usize,
    /// Command hex; secret bytes as `{name:len:pad}`.
    pub command: String,
    /// Answer hex (data then SW), absent when the transmission failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Why there is no answer (`SCARD_W_REMOVED_CARD`, "the log ends").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A command the log shows happened but does not show (OpenSC below debug level 8 leaves every
/// PIN command out of its log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hidden {
    pub line: usize,
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    Apdu(Exchange),
    Hidden(Hidden),
}

impl Item {
    pub fn line(&self) -> usize {
        match self {
            Item::Apdu(e) => e.line,
            Item::Hidden(h) => h.line,
        }
    }
}

/// The session, in the order things happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// A connection opened (`SCardConnect`); connections are numbered from 1 in this order.
    Connect {
        connection: u32,
        line: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reader: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
    },
    /// Commands inside one PC/SC transaction (`SCardBeginTransaction` … `SCardEndTransaction`).
    Transaction {
        connection: u32,
        line: usize,
        items: Vec<Item>,
        /// How the transaction ended; absent when the log does not show its end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<Disposition>,
    },
    /// Commands sent outside any transaction.
    Exchanges {
        connection: u32,
        line: usize,
        items: Vec<Item>,
    },
    Reconnect {
        connection: u32,
        line: usize,
        init: Disposition,
    },
    Disconnect {
        connection: u32,
        line: usize,
        disposition: Disposition,
    },
    /// The reader reset, powered or removed the card by itself.
    Card {
        line: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reader: Option<String>,
        event: CardEvent,
    },
}

/// An imported session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    pub schema: String,
    pub version: u32,
    pub source: Source,
    /// ATR of the card the commands went to, when the log shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atr: Option<String>,
    /// Every placeholder used, in order of first appearance.
    pub secrets: Vec<SecretInfo>,
    pub events: Vec<Event>,
}

impl Trace {
    /// Reads a trace file (bounded to [`MAX_INPUT`]).
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = read_bounded(path)?;
        Self::from_json(&String::from_utf8_lossy(&bytes)).map_err(|e| format!("trace {}: {e}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let t: Trace = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if t.schema != SCHEMA_NAME || t.version != SCHEMA_VERSION {
            return Err(format!("not a {SCHEMA_NAME} v{SCHEMA_VERSION} file"));
        }
        for s in &t.secrets {
            match Template::parse(&s.placeholder)?.0.as_slice() {
                [Piece::Secret(_)] => {}
                _ => return Err(format!("secrets: {:?} is not one placeholder", s.placeholder)),
            }
        }
        for e in t.exchanges() {
            Template::parse(&e.command).map_err(|m| format!("line {}: command: {m}", e.line))?;
            if let Some(r) = &e.response {
                Template::parse(r).map_err(|m| format!("line {}: response: {m}", e.line))?;
            }
        }
        Ok(t)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the trace atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        firmalab_emulator::image::write_atomically(path, self.to_json().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every exchange, in order.
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.events
            .iter()
            .flat_map(|e| match e {
                Event::Transaction { items, .. } | Event::Exchanges { items, .. } => items.as_slice(),
                _ => &[],
            })
            .filter_map(|i| match i {
                Item::Apdu(e) => Some(e),
                Item::Hidden(_) => None,
            })
    }

    /// Connection number → reader name.
    pub fn readers_of_connections(&self) -> Vec<(u32, Option<String>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Connect { connection, reader, .. } => Some((*connection, reader.clone())),
                _ => None,
            })
            .collect()
    }

    /// Readers that received at least one command (`None` when the log does not name them).
    pub fn readers(&self) -> Vec<Option<String>> {
        let conns = self.readers_of_connections();
        let mut out: Vec<Option<String>> = Vec::new();
        for e in &self.events {
            if let Event::Transaction { connection, items, .. } | Event::Exchanges { connection, items, .. } = e
                && !items.is_empty()
            {
                let r = conns.iter().find(|(c, _)| c == connection).and_then(|(_, r)| r.clone());
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// Counts: connections, transactions, exchanges, hidden commands.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for e in &self.events {
            match e {
                Event::Connect { .. } => c.connections += 1,
                Event::Transaction { items, .. } => {
                    c.transactions += 1;
                    c.count(items);
                }
                Event::Exchanges { items, .. } => c.count(items),
                _ => {}
            }
        }
        c
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub connections: usize,
    pub transactions: usize,
    pub exchanges: usize,
    pub hidden: usize,
}

impl Counts {
    fn count(&mut self, items: &[Item]) {
        for i in items {
            match i {
                Item::Apdu(_) => self.exchanges += 1,
                Item::Hidden(_) => self.hidden += 1,
            }
        }
    }
}

/// Reads a file of at most [`MAX_INPUT`] bytes.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    // The one bounded reader (regular files only, never a FIFO or a device, at most 16 MiB).
    crate::files::read_bounded(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Upper-case hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Parses hex without separators (either case).
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    let digit = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("not a hex digit: {:?}", char::from(c))),
        }
    };
    s.as_bytes().chunks(2).map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// One piece of a command or response template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Byte(u8),
    Secret(Placeholder),
}

/// `{name:len:pad}`: `len` bytes, the secret's value followed by `pad` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Placeholder {
    pub name: String,
    pub len: usize,
    pub pad: u8,
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}:{}:{:02X}}}", self.name, self.len, self.pad)
    }
}

/// Longest secret field a placeholder may stand for.
const MAX_PLACEHOLDER: usize = 4096;

/// A command or response as stored: hex with placeholders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    pub fn clear(bytes: &[u8]) -> Self {
        Template(bytes.iter().map(|b| Piece::Byte(*b)).collect())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(body) = rest.strip_prefix('{') {
                let end = body.find('}').ok_or("unclosed placeholder")?;
                let spec: Vec<&str> = body[..end].split(':').collect();
                let [name, len, pad] = spec.as_slice() else {
                    return Err(format!("bad placeholder {{{}}}", &body[..end]));
                };
                if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
                    return Err(format!("bad placeholder name {name:?}"));
                }
                let len: usize = len.parse().map_err(|_| format!("bad placeholder length {len:?}"))?;
                if len == 0 || len > MAX_PLACEHOLDER {
                    return Err(format!("placeholder length {len} out of range"));
                }
                let pad = u8::from_str_radix(pad, 16).map_err(|_| format!("bad placeholder pad {pad:?}"))?;
                pieces.push(Piece::Secret(Placeholder { name: (*name).to_owned(), len, pad }));
                rest = &body[end + 1..];
            } else {
                let run = rest.find('{').unwrap_or(rest.len());
                for b in unhex(&rest[..run])? {
                    pieces.push(Piece::Byte(b));
                }
                rest = &rest[run..];
            }
        }
        Ok(Template(pieces))
    }

    /// Its length in bytes once filled.
    pub fn len(&self) -> usize {
        self.0.iter().map(|p| if let Piece::Secret(s) = p { s.len } else { 1 }).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.0.iter().filter_map(|p| if let Piece::Secret(s) = p { Some(s) } else { None })
    }

    /// The bytes, with each secret byte `None`.
    pub fn masked(&self) -> Vec<Option<u8>> {
        let mut out = Vec::with_capacity(self.len());
        for p in &self.0 {
            match p {
                Piece::Byte(b) => out.push(Some(*b)),
                Piece::Secret(s) => out.extend(std::iter::repeat_n(None, s.len)),
            }
        }
        out
    }

    /// The bytes with placeholders filled from `secrets`; the names of missing ones otherwise.
    pub fn fill(&self, secrets: &Secrets) -> Result<Vec<u8>, Vec<String>> {
        let mut out = Vec::with_capacity(self.len());
        let mut missing = Vec::new();
        for p in &self.0 {
            match p {
                Piece::Byte(b) => out.push(*b),
                Piece::Secret(s) => match secrets.get(&s.name) {
                    Some(v) if v.len() <= s.len => {
                        out.extend_from_slice(v);
                        out.resize(out.len() + (s.len - v.len()), s.pad);
                    }
                    Some(v) => missing.push(format!("{} ({} bytes given, the field holds {})", s.name, v.len(), s.len)),
                    None => missing.push(s.name.clone()),
                },
            }
        }
        if missing.is_empty() { Ok(out) } else { Err(missing) }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                Piece::Byte(b) => write!(f, "{b:02X}")?,
                Piece::Secret(s) => write!(f, "{s}")?,
            }
        }
        Ok(())
    }
}

/// Secret values by name, from `NAME=VALUE` (text, as typed) or `NAME=hex:…` (raw bytes).
#[derive(Clone, Debug, Default)]
pub struct Secrets(pub Vec<(String, Vec<u8>)>);

impl Secrets {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for a in args {
            let (name, value) = a.split_once('=').ok_or_else(|| format!("--secret {a:?}: expected NAME=VALUE"))?;
            if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
                return Err(format!("--secret: bad name {name:?} (letters, digits, _ and -)"));
            }
            let bytes = match value.strip_prefix("hex:") {
                Some(h) => unhex(h).map_err(|e| format!("--secret {name}: {e}"))?,
                None => value.as_bytes().to_vec(),
            };
            if bytes.is_empty() {
                return Err(format!("--secret {name}: empty value"));
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(format!("--secret {name} given twice"));
            }
            out.push((name.to_owned(), bytes));
        }
        Ok(Secrets(out))
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// An import or parse failure, with the log line it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub line: Option<usize>,
    pub message: String,
}

impl ImportError {
    pub(crate) fn at(line: usize, message: impl Into<String>) -> Self {
        ImportError { line: Some(line), message: message.into() }
    }
    pub(crate) fn whole(message: impl Into<String>) -> Self {
        ImportError { line: None, message: message.into() }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ImportError {}
