//! OpenSC's debug log (0.23: `debug = 3; debug_file = …;` in opensc.conf), as recorded here:
//!
//! ```text
//! P:18493; T:0x139794969581632 14:20:52.567 [pkcs15-tool] reader-pcsc.c:325:pcsc_transmit: reader 'Virtual PCD 00 00'
//! P:18493; T:0x139794969581632 14:20:52.567 [pkcs15-tool] reader-pcsc.c:326:pcsc_transmit:
//! Outgoing APDU (12 bytes):
//! 00 A4 04 00 07 62 76 01 FF 00 00 00 .....bv.....
//!
//! P:18493; T:0x139794969581632 14:20:52.567 [pkcs15-tool] reader-pcsc.c:335:pcsc_transmit:
//! Incoming APDU (2 bytes):
//! 6A 82 j.
//! ```
//!
//! Below debug level 8 (`SC_LOG_DEBUG_PIN`) OpenSC leaves every PIN command out of its log
//! (between `sc_pin_cmd: called` and `sc_pin_cmd: returning`): such a command is imported as
//! [`super::Hidden`], and a replay cannot send it. Several processes may append to one file:
//! each `P:` is its own program.

use super::import::{Raw, RawKind, dump_tokens, lines};
use super::{Disposition, ImportError};
use std::collections::HashMap;

/// `P:…; T:… time [app] file.c:123:func: message` → (process, func, message).
fn header(line: &str) -> Option<(&str, &str, &str)> {
    let pid = line.strip_prefix("P:").and_then(|r| r.split(';').next()).unwrap_or("?");
    let open = line.find(" [")?;
    let close = open + line[open..].find("] ")?;
    let rest = &line[close + 2..];
    let mut parts = rest.splitn(4, ':');
    let file = parts.next()?;
    let number = parts.next()?;
    let func = parts.next()?;
    let message = parts.next().unwrap_or("");
    if !(file.ends_with(".c") || file.ends_with(".h") || file.ends_with(".cpp"))
        || number.is_empty()
        || !number.bytes().all(|b| b.is_ascii_digit())
        || func.is_empty()
    {
        return None;
    }
    Some((pid, func, message.strip_prefix(' ').unwrap_or(message)))
}

#[derive(Default)]
struct Process {
    reader: Option<String>,
    checked: Option<String>,
    connected: Option<String>,
    disconnect: Option<Disposition>,
    end: Option<Disposition>,
    pending: Option<(usize, Vec<u8>)>,
    pin_depth: u32,
    pin_line: usize,
    pin_apdus: usize,
    seen_outgoing: bool,
}

fn option_code(msg: &str, name: &str) -> Option<Disposition> {
    let v = msg.split_once(&format!("{name}="))?.1;
    let v = v.split(' ').next()?;
    Disposition::from_code(v.parse().ok()?)
}

/// `Outgoing APDU (12 bytes):` and the dump lines after it.
fn dump(body: &[(usize, String)], at: usize, n: usize) -> Result<Vec<u8>, ImportError> {
    let mut out = Vec::with_capacity(n);
    let mut i = at + 1;
    while out.len() < n {
        let Some((line, text)) = body.get(i) else {
            let line = body.get(at).map_or(0, |b| b.0);
            return Err(ImportError::at(line, format!("the dump ends after {} of {n} bytes", out.len())));
        };
        let k = (n - out.len()).min(16);
        out.extend(dump_tokens(text, k, *line)?);
        i += 1;
    }
    Ok(out)
}

fn byte_count(text: &str, line: usize) -> Result<usize, ImportError> {
    let inner = text.split_once('(').and_then(|(_, r)| r.split_once(" bytes)")).map(|(n, _)| n);
    match inner.and_then(|n| n.trim().parse::<usize>().ok()) {
        Some(n) if n <= super::MAX_INPUT => Ok(n),
        _ => Err(ImportError::at(line, format!("bad APDU header {text:?}"))),
    }
}

/// A log message: its header line and the lines that continue it.
struct Message {
    line: usize,
    pid: String,
    func: String,
    msg: String,
    body: Vec<(usize, String)>,
}

pub(crate) fn parse(text: &str) -> Result<Vec<Raw>, ImportError> {
    let mut out = Vec::new();
    let mut procs: HashMap<String, Process> = HashMap::new();
    // Group each header line with the lines that continue its message.
    let mut messages: Vec<Message> = Vec::new();
    for (n, line) in lines(text) {
        match header(&line) {
            Some((pid, func, msg)) => messages.push(Message {
                line: n,
                pid: pid.to_owned(),
                func: func.to_owned(),
                msg: msg.to_owned(),
                body: vec![],
            }),
            None => {
                if let Some(m) = messages.last_mut() {
                    m.body.push((n, line));
                }
            }
        }
    }
    for Message { line: n, pid, func, msg, body } in messages {
        let p = procs.entry(pid.clone()).or_default();
        let key = |reader: &Option<String>| format!("P{pid}:{}", reader.as_deref().unwrap_or("?"));
        if func == "pcsc_init" && msg.starts_with("PC/SC options:") {
            p.disconnect = option_code(&msg, "disconnect_action");
            p.end = option_code(&msg, "transaction_end_action");
        } else if func == "refresh_attributes" && msg.ends_with(" check") {
            p.checked = msg.strip_suffix(" check").map(str::to_owned);
        } else if func == "pcsc_connect" && msg.starts_with("Initial protocol: ") {
            p.connected = p.checked.clone();
            p.reader = p.checked.clone();
            let protocol = msg.strip_prefix("Initial protocol: ").map(str::to_owned);
            out.push(Raw {
                line: n,
                key: key(&p.reader),
                kind: RawKind::Connect { reader: p.reader.clone(), protocol },
            });
        } else if func == "pcsc_disconnect" && msg.contains("SCardDisconnect returned") {
            let reader = msg.split_once(":SCardDisconnect").map(|(r, _)| r.to_owned()).or(p.connected.clone());
            let d = p.disconnect.unwrap_or(Disposition::Leave);
            out.push(Raw { line: n, key: key(&reader), kind: RawKind::Disconnect(d) });
        } else if func == "pcsc_lock" && msg == "called" {
            out.push(Raw { line: n, key: key(&p.connected), kind: RawKind::Begin });
        } else if func == "pcsc_unlock" && msg == "called" {
            let d = p.end.unwrap_or(Disposition::Leave);
            out.push(Raw { line: n, key: key(&p.connected), kind: RawKind::End(d) });
        } else if func == "pcsc_reconnect" && msg.starts_with("Reconnecting to the card") {
            // sc_reset (warm or cold), or after another program reset the card: either way the
            // card has lost its volatile state.
            out.push(Raw { line: n, key: key(&p.connected), kind: RawKind::Reconnect(Disposition::Reset) });
        } else if func == "pcsc_transmit" && msg.starts_with("reader '") {
            p.reader = msg.strip_prefix("reader '").and_then(|r| r.strip_suffix('\'')).map(str::to_owned);
        } else if func == "pcsc_transmit" && msg.starts_with("unable to transmit") {
            if let Some((line, command)) = p.pending.take() {
                out.push(Raw {
                    line,
                    key: key(&p.reader),
                    kind: RawKind::Transmit { command, response: Err("unable to transmit".into()) },
                });
            }
        } else if func == "sc_pin_cmd" && msg == "called" {
            if p.pin_depth == 0 {
                p.pin_line = n;
                p.pin_apdus = 0;
            }
            p.pin_depth += 1;
        } else if func == "sc_pin_cmd" && msg.starts_with("returning with:") {
            p.pin_depth = p.pin_depth.saturating_sub(1);
            if p.pin_depth == 0 && p.pin_apdus == 0 {
                let result = msg.trim_start_matches("returning with:").trim();
                let what = format!(
                    "a PIN command (VERIFY, CHANGE REFERENCE DATA or RESET RETRY COUNTER) OpenSC left out of its log (debug level below 8); OpenSC's result: {result}"
                );
                out.push(Raw { line: p.pin_line, key: key(&p.reader), kind: RawKind::Hidden(what) });
            }
        }
        // The APDU dumps follow their header line, whatever function logged them.
        for (i, (line, t)) in body.iter().enumerate() {
            // Drivers that match on the ATR log it ("try to match card with ATR (25 bytes):").
            if t.contains("ATR (") && t.ends_with(" bytes):") {
                let atr = dump(&body, i, byte_count(t, *line)?)?;
                out.push(Raw {
                    line: *line,
                    key: key(&p.checked),
                    kind: RawKind::Atr { reader: p.checked.clone(), atr },
                });
            } else if t.starts_with("Outgoing APDU (") {
                let bytes = dump(&body, i, byte_count(t, *line)?)?;
                if let Some((l, command)) = p.pending.take() {
                    out.push(Raw {
                        line: l,
                        key: key(&p.reader),
                        kind: RawKind::Transmit { command, response: Err("no answer logged".into()) },
                    });
                }
                p.pending = Some((*line, bytes));
                p.pin_apdus += 1;
                p.seen_outgoing = true;
            } else if t.starts_with("Incoming APDU (") {
                let bytes = dump(&body, i, byte_count(t, *line)?)?;
                if bytes.len() < 2 {
                    return Err(ImportError::at(*line, "an answer shorter than a status word"));
                }
                match p.pending.take() {
                    Some((l, command)) => out.push(Raw {
                        line: l,
                        key: key(&p.reader),
                        kind: RawKind::Transmit { command, response: Ok(bytes) },
                    }),
                    // A log cut between the two: the answer alone is of no use.
                    None if !p.seen_outgoing => {}
                    None => return Err(ImportError::at(*line, "an incoming APDU without its outgoing one")),
                }
            }
        }
    }
    for (pid, p) in procs.iter_mut() {
        if let Some((line, command)) = p.pending.take() {
            let key = format!("P{pid}:{}", p.reader.as_deref().unwrap_or("?"));
            out.push(Raw {
                line,
                key,
                kind: RawKind::Transmit { command, response: Err("no answer: the log ends".into()) },
            });
        }
    }
    out.sort_by_key(|r| r.line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "P:1; T:0x1 14:20:52.559 [pkcs15-tool] reader-pcsc.c:889:pcsc_init: PC/SC options: connect_exclusive=0 disconnect_action=0 transaction_end_action=0 reconnect_action=0 enable_pinpad=1 enable_pace=1
P:1; T:0x1 14:20:52.566 [pkcs15-tool] reader-pcsc.c:362:refresh_attributes: Virtual PCD 00 00 check
P:1; T:0x1 14:20:52.567 [pkcs15-tool] reader-pcsc.c:641:pcsc_connect: Initial protocol: T=1
P:1; T:0x1 14:20:52.567 [pkcs15-tool] reader-pcsc.c:325:pcsc_transmit: reader 'Virtual PCD 00 00'
P:1; T:0x1 14:20:52.567 [pkcs15-tool] reader-pcsc.c:326:pcsc_transmit: 
Outgoing APDU (5 bytes):
00 B0 00 00 02 .....

P:1; T:0x1 14:20:52.567 [pkcs15-tool] reader-pcsc.c:335:pcsc_transmit: 
Incoming APDU (4 bytes):
41 42 90 00 AB..

P:1; T:0x1 14:20:52.586 [pkcs15-tool] sec.c:203:sc_pin_cmd: called
P:1; T:0x1 14:20:52.586 [pkcs15-tool] sec.c:259:sc_pin_cmd: returning with: 0 (Success)
";

    #[test]
    fn dumps_become_exchanges_and_unlogged_pin_commands_hidden_ones() {
        let r = parse(LOG).unwrap_or_default();
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(
            r[1].kind,
            RawKind::Transmit { command: vec![0, 0xB0, 0, 0, 2], response: Ok(vec![0x41, 0x42, 0x90, 0]) }
        );
        assert_eq!(r[1].line, 6);
        assert!(matches!(r[2].kind, RawKind::Hidden(_)));
        let atr = LOG.replace(
            "P:1; T:0x1 14:20:52.567 [pkcs15-tool] reader-pcsc.c:641:pcsc_connect: Initial protocol: T=1\n",
            "P:1; T:0x1 14:20:52.567 [pkcs15-tool] reader-pcsc.c:641:pcsc_connect: Initial protocol: T=1\nP:1; T:0x1 1 [t] card-authentic.c:429:authentic_match_card: \ntry to match card with ATR (3 bytes):\n3B 02 14 ;..\n\n",
        );
        let r = parse(&atr).unwrap_or_default();
        assert!(
            r.iter()
                .any(|x| x.kind == RawKind::Atr { reader: Some("Virtual PCD 00 00".into()), atr: vec![0x3B, 2, 0x14] }),
            "{r:?}"
        );
    }

    #[test]
    fn a_pin_command_logged_at_debug_8_is_an_exchange_not_a_hidden_one() {
        let verify = "P:1; T:0x1 14:20:52.586 [pkcs15-tool] sec.c:203:sc_pin_cmd: called
P:1; T:0x1 14:20:52.587 [pkcs15-tool] reader-pcsc.c:326:pcsc_transmit: 
Outgoing APDU (13 bytes):
00 20 00 90 08 31 32 33 34 35 36 37 38 . ...12345678

P:1; T:0x1 14:20:52.587 [pkcs15-tool] reader-pcsc.c:335:pcsc_transmit: 
Incoming APDU (2 bytes):
90 00 ..

P:1; T:0x1 14:20:52.588 [pkcs15-tool] sec.c:259:sc_pin_cmd: returning with: 0 (Success)
";
        let log = LOG.replace(
            "P:1; T:0x1 14:20:52.586 [pkcs15-tool] sec.c:203:sc_pin_cmd: called\nP:1; T:0x1 14:20:52.586 [pkcs15-tool] sec.c:259:sc_pin_cmd: returning with: 0 (Success)\n",
            verify,
        );
        let r = parse(&log).unwrap_or_default();
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(matches!(&r[2].kind, RawKind::Transmit { command, .. } if command.len() == 13));
    }

    #[test]
    fn a_short_dump_is_an_error_at_its_line() {
        let bad = LOG.replace("Incoming APDU (4 bytes)", "Incoming APDU (5 bytes)");
        let e = parse(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("line 11:"), "{e}");
    }
}
