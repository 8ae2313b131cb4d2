//! From a log's events to a [`Trace`]: format detection, grouping by connection and
//! transaction, redaction.

use super::redact::{self, RawExchange};
use super::{
    CardEvent, Disposition, Event, Exchange, Format, Hidden, ImportError, Item, SCHEMA_NAME, SCHEMA_VERSION,
    SecretInfo, Secrets, Source, Trace, read_bounded,
};
use std::collections::HashMap;
use std::path::Path;

/// What a parser reports, in log order. `key` names the connection as the log does (a
/// thread and card handle, a pcscd client, an OpenSC process and reader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RawKind {
    Connect { reader: Option<String>, protocol: Option<String> },
    Begin,
    End(Disposition),
    Transmit { command: Vec<u8>, response: Result<Vec<u8>, String> },
    Hidden(String),
    Reconnect(Disposition),
    Disconnect(Disposition),
    Card { reader: Option<String>, event: CardEvent },
    Atr { reader: Option<String>, atr: Vec<u8> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Raw {
    pub line: usize,
    pub key: String,
    pub kind: RawKind,
}

/// Splits text into lines, numbered from 1, without ANSI colour codes or `\r`.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    text.lines().enumerate().map(|(i, l)| (i + 1, strip_ansi(l)))
}

fn strip_ansi(line: &str) -> String {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if !line.contains('\x1b') {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses hex bytes separated by spaces (`00 A4 04 00`), all of them.
pub(crate) fn spaced_hex(s: &str, line: usize) -> Result<Vec<u8>, ImportError> {
    s.split_whitespace()
        .map(|t| {
            if t.len() == 2 {
                u8::from_str_radix(t, 16).map_err(|_| ImportError::at(line, format!("{t:?} is not a hex byte")))
            } else {
                Err(ImportError::at(line, format!("{t:?} is not a hex byte")))
            }
        })
        .collect()
}

/// Takes the first `n` hex-byte tokens of a dump line (the rest is its ASCII column).
pub(crate) fn dump_tokens(s: &str, n: usize, line: usize) -> Result<Vec<u8>, ImportError> {
    let mut out = Vec::with_capacity(n);
    for t in s.split_whitespace().take(n) {
        match (t.len(), u8::from_str_radix(t, 16)) {
            (2, Ok(b)) => out.push(b),
            _ => {
                return Err(ImportError::at(
                    line,
                    format!("{t:?} is not a hex byte: the dump holds fewer bytes than announced, or is damaged"),
                ));
            }
        }
    }
    if out.len() < n {
        return Err(ImportError::at(line, format!("dump line holds {} bytes, {n} expected", out.len())));
    }
    Ok(out)
}

/// Guesses the format from the first lines.
pub fn detect(text: &str) -> Option<Format> {
    let (mut spy, mut pcscd, mut opensc) = (0, 0, 0);
    for (_, l) in lines(text).take(4000) {
        let t = l.trim_start();
        let t = t.strip_prefix("(t").and_then(|r| r.split_once(") ")).map_or(t, |(_, r)| r.trim_start());
        if t.starts_with("SCard") && t.chars().all(|c| c.is_ascii_alphanumeric()) {
            spy += 2;
        }
        if t.starts_with("i hCard: ") || t.starts_with("=> ") && t.contains("[0x") {
            spy += 1;
        }
        if l.contains("winscard") || l.contains("pcscdaemon.c") || l.contains("eventhandler.c") {
            pcscd += 2;
        }
        if l.contains(" APDU: ") || l.contains(" SW: ") {
            pcscd += 1;
        }
        if l.starts_with("P:") && l.contains("; T:") || l.contains("Outgoing APDU (") || l.contains("reader-pcsc.c:") {
            opensc += 2;
        }
    }
    let best = spy.max(pcscd).max(opensc);
    if best < 2 {
        None
    } else if best == spy {
        Some(Format::PcscSpy)
    } else if best == opensc {
        Some(Format::Opensc)
    } else {
        Some(Format::Pcscd)
    }
}

/// Imports a log file.
pub fn import(path: &Path, format: Option<Format>, given: &Secrets) -> Result<Trace, String> {
    let bytes = read_bounded(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    import_bytes(&bytes, &name, format, given).map_err(|e| format!("{}: {e}", path.display()))
}

/// Imports a log held in memory (bounded to [`super::MAX_INPUT`]); `name` goes into the trace.
pub fn import_bytes(bytes: &[u8], name: &str, format: Option<Format>, given: &Secrets) -> Result<Trace, ImportError> {
    if bytes.len() > super::MAX_INPUT {
        return Err(ImportError::whole(format!("larger than {} MiB: not imported", super::MAX_INPUT >> 20)));
    }
    let text = String::from_utf8_lossy(bytes);
    let format = match format {
        Some(f) => f,
        None => detect(&text)
            .ok_or_else(|| ImportError::whole("cannot tell the format: give --format pcsc-spy, pcscd or opensc"))?,
    };
    let raw = match format {
        Format::PcscSpy => super::spy::parse(&text)?,
        Format::Pcscd => super::pcscd::parse(&text)?,
        Format::Opensc => super::opensc::parse(&text)?,
    };
    if !raw.iter().any(|r| matches!(r.kind, RawKind::Transmit { .. } | RawKind::Hidden(_))) {
        return Err(ImportError::whole(format!("no APDU found in this {format} log")));
    }
    let source = Source { format, file: name.to_owned(), lines: text.lines().count() };
    Ok(build(raw, source, given))
}

/// Where a connection's commands currently go.
struct Open {
    event: usize,
    in_transaction: bool,
}

#[derive(Default)]
struct Builder {
    events: Vec<Event>,
    conn_of: HashMap<String, u32>,
    reader_of: HashMap<u32, Option<String>>,
    open: HashMap<u32, Open>,
    in_tx: HashMap<u32, bool>,
    next_conn: u32,
}

impl Builder {
    fn new_connection(&mut self, key: &str, line: usize, reader: Option<String>, protocol: Option<String>) -> u32 {
        self.next_conn += 1;
        let c = self.next_conn;
        self.conn_of.insert(key.to_owned(), c);
        self.reader_of.insert(c, reader.clone());
        self.in_tx.insert(c, false);
        self.events.push(Event::Connect { connection: c, line, reader, protocol });
        c
    }

    /// The connection a key names; one the log does not show opening (it starts mid-session)
    /// is opened here.
    fn connection(&mut self, key: &str, line: usize) -> u32 {
        match self.conn_of.get(key) {
            Some(c) => *c,
            None => self.new_connection(key, line, None, None),
        }
    }

    fn reader(&self, c: u32) -> Option<String> {
        self.reader_of.get(&c).cloned().flatten()
    }

    /// The event index of the group a new command of connection `c` goes to.
    fn group(&mut self, c: u32, line: usize) -> usize {
        let transaction = self.in_tx.get(&c).copied().unwrap_or(false);
        if let Some(o) = self.open.get(&c)
            && o.in_transaction == transaction
            && !self.events[o.event + 1..].iter().any(|e| touches_other(e, c))
        {
            return o.event;
        }
        // A transaction interleaved with another connection's events continues in a new group.
        self.events.push(if transaction {
            Event::Transaction { connection: c, line, items: vec![], end: None }
        } else {
            Event::Exchanges { connection: c, line, items: vec![] }
        });
        let idx = self.events.len() - 1;
        self.open.insert(c, Open { event: idx, in_transaction: transaction });
        idx
    }

    fn push_item(&mut self, key: &str, line: usize, item: Item) -> (usize, usize) {
        let c = self.connection(key, line);
        let idx = self.group(c, line);
        match &mut self.events[idx] {
            Event::Transaction { items, .. } | Event::Exchanges { items, .. } => {
                items.push(item);
                (idx, items.len() - 1)
            }
            _ => (idx, 0),
        }
    }
}

fn build(raw: Vec<Raw>, source: Source, given: &Secrets) -> Trace {
    let mut b = Builder::default();
    let mut atrs: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    // Exchanges in order, for redaction, and where each one's item sits.
    let mut exchanges: Vec<RawExchange> = Vec::new();
    let mut slots: Vec<(usize, usize)> = Vec::new();

    for r in raw {
        match r.kind {
            RawKind::Connect { reader, protocol } => {
                b.new_connection(&r.key, r.line, reader, protocol);
            }
            RawKind::Begin => {
                let c = b.connection(&r.key, r.line);
                b.events.push(Event::Transaction { connection: c, line: r.line, items: vec![], end: None });
                b.open.insert(c, Open { event: b.events.len() - 1, in_transaction: true });
                b.in_tx.insert(c, true);
            }
            RawKind::End(d) => {
                let c = b.connection(&r.key, r.line);
                let mut ended = false;
                if let Some(o) = b.open.remove(&c)
                    && o.in_transaction
                    && let Some(Event::Transaction { end, .. }) = b.events.get_mut(o.event)
                {
                    *end = Some(d);
                    ended = true;
                }
                if !ended && d.resets() {
                    // The end of a transaction the log does not show starting.
                    let reader = b.reader(c);
                    b.events.push(Event::Card { line: r.line, reader, event: CardEvent::Reset });
                }
                b.in_tx.insert(c, false);
            }
            RawKind::Transmit { command, response } => {
                let (response, error) = match response {
                    Ok(bytes) => (Some(bytes), None),
                    Err(e) => (None, Some(e)),
                };
                exchanges.push(RawExchange { line: r.line, command, response });
                let item = Item::Apdu(Exchange { line: r.line, command: String::new(), response: None, error });
                slots.push(b.push_item(&r.key, r.line, item));
            }
            RawKind::Hidden(what) => {
                b.push_item(&r.key, r.line, Item::Hidden(Hidden { line: r.line, what }));
            }
            RawKind::Reconnect(init) => {
                let c = b.connection(&r.key, r.line);
                b.open.remove(&c);
                b.events.push(Event::Reconnect { connection: c, line: r.line, init });
            }
            RawKind::Disconnect(disposition) => {
                let c = b.connection(&r.key, r.line);
                b.open.remove(&c);
                b.in_tx.insert(c, false);
                b.conn_of.remove(&r.key);
                b.events.push(Event::Disconnect { connection: c, line: r.line, disposition });
            }
            RawKind::Card { reader, event } => {
                b.open.clear();
                b.events.push(Event::Card { line: r.line, reader, event });
            }
            RawKind::Atr { reader, atr } => {
                if !atr.is_empty() {
                    atrs.push((reader, atr));
                }
            }
        }
    }
    let redacted = redact::redact(&exchanges, given);
    for (i, (idx, pos)) in slots.iter().enumerate() {
        if let Some(Event::Transaction { items, .. } | Event::Exchanges { items, .. }) = b.events.get_mut(*idx)
            && let Some(Item::Apdu(e)) = items.get_mut(*pos)
        {
            e.command = redacted.commands[i].to_string();
            e.response = redacted.responses[i].as_ref().map(|t| t.to_string());
        }
    }
    let mut events = b.events;
    events.retain(
        |e| !matches!(e, Event::Transaction { items, .. } | Event::Exchanges { items, .. } if items.is_empty()),
    );
    let secrets = redacted
        .found
        .iter()
        .map(|(p, line, command, named)| SecretInfo {
            placeholder: p.to_string(),
            command: command.clone(),
            line: *line,
            named: *named,
        })
        .collect();
    // The ATR of the reader that got the first command.
    let first_reader = events.iter().find_map(|e| match e {
        Event::Transaction { connection, .. } | Event::Exchanges { connection, .. } => {
            Some(b.reader_of.get(connection).cloned().flatten())
        }
        _ => None,
    });
    let atr = first_reader
        .and_then(|r| atrs.iter().find(|(ar, _)| ar.is_none() || r.is_none() || *ar == r).map(|(_, a)| super::hex(a)));
    Trace { schema: SCHEMA_NAME.into(), version: SCHEMA_VERSION, source, atr, secrets, events }
}

fn touches_other(e: &Event, c: u32) -> bool {
    match e {
        Event::Transaction { connection, .. }
        | Event::Exchanges { connection, .. }
        | Event::Reconnect { connection, .. }
        | Event::Disconnect { connection, .. }
        | Event::Connect { connection, .. } => *connection != c,
        Event::Card { .. } => true,
    }
}
