//! pcscd's own log (pcsc-lite 1.9, `pcscd --foreground --apdu --debug`, or `--info` for the
//! APDUs alone; syslog lines too), as recorded here:
//!
//! ```text
//! 00000019 winscard_svc.c:361:ContextThread() Received command: CONNECT from client 11
//! 00000001 winscard.c:258:SCardConnect() Attempting Connect to Virtual PCD 00 00 using protocol: 3
//! 00000003 winscard.c:430:SCardConnect() Active Protocol: T=1
//! 00000004 winscard.c:456:SCardConnect() hCard Identity: 38358971
//! 00000145 winscard_svc.c:361:ContextThread() Received command: BEGIN_TRANSACTION from client 11
//! 00000001 winscard_svc.c:575:ContextThread() BEGIN_TRANSACTION for client 11, rv=SCARD_S_SUCCESS
//! 00000052 winscard_svc.c:361:ContextThread() Received command: TRANSMIT from client 11
//! 00000003 APDU: 00 A4 04 00 07 62 76 01 FF 00 00 00
//! 00000125 SW: 6A 82
//! ```
//!
//! The `SW:` line carries the whole answer. Connections are pcscd's clients: pcscd does not log
//! which card handle a TRANSMIT uses, so a client holding two readers at once cannot be told
//! apart. Resets and power changes are logged by pcscd itself ("Reset complete.", power states).

use super::import::{Raw, RawKind, lines, spaced_hex};
use super::{CardEvent, Disposition, ImportError};

/// The text after `marker` when it starts the line or follows a space.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.find(marker)?;
    if at == 0 || line[..at].ends_with(' ') { Some(&line[at + marker.len()..]) } else { None }
}

/// `… from client 11` / `… for client 11, rv=…` → ("11", rest).
fn client_of(s: &str) -> Option<&str> {
    let rest = s.split_once("client ")?.1;
    Some(rest.split([',', ' ']).next().unwrap_or(rest))
}

struct Pending {
    line: usize,
    key: String,
    command: Vec<u8>,
}

pub(crate) fn parse(text: &str) -> Result<Vec<Raw>, ImportError> {
    let mut out = Vec::new();
    let mut transmit_client: Option<String> = None;
    let mut pending: Option<Pending> = None;
    let mut connect: (Option<String>, Option<String>) = (None, None);
    let mut disposition: Option<Disposition> = None;
    let mut reader: Option<String> = None;
    let key = |c: &Option<String>| c.as_ref().map_or_else(|| "pcscd".to_owned(), |c| format!("client {c}"));
    let no_answer = |p: Pending, why: &str, out: &mut Vec<Raw>| {
        out.push(Raw {
            line: p.line,
            key: p.key,
            kind: RawKind::Transmit { command: p.command, response: Err(why.into()) },
        })
    };
    for (n, line) in lines(text) {
        if let Some(hex) = after(&line, "APDU: ") {
            let command = spaced_hex(hex, n)?;
            if let Some(p) = pending.take() {
                no_answer(p, "no answer logged", &mut out);
            }
            pending = Some(Pending { line: n, key: key(&transmit_client), command });
        } else if let Some(hex) = after(&line, "SW: ") {
            let response = spaced_hex(hex, n)?;
            if response.len() < 2 {
                return Err(ImportError::at(n, "an answer shorter than a status word"));
            }
            match pending.take() {
                Some(p) => out.push(Raw {
                    line: p.line,
                    key: p.key,
                    kind: RawKind::Transmit { command: p.command, response: Ok(response) },
                }),
                // A log cut between a command and its answer: the answer alone is of no use.
                None if out.is_empty() => {}
                None => return Err(ImportError::at(n, "an answer without its command (APDU: line)")),
            }
        } else if let Some(rest) = after(&line, "Card ATR: ") {
            if !rest.trim_start().starts_with('(') {
                out.push(Raw {
                    line: n,
                    key: key(&None),
                    kind: RawKind::Atr { reader: reader.clone(), atr: spaced_hex(rest, n)? },
                });
            }
        } else if let Some(rest) = line.split_once("Received command: ").map(|(_, r)| r) {
            let client = client_of(rest).map(str::to_owned);
            let command = rest.split(' ').next().unwrap_or("");
            match command {
                "TRANSMIT" => transmit_client = client,
                "CONNECT" => connect = (None, None),
                "DISCONNECT" => disposition = None,
                _ => {}
            }
        } else if let Some(rest) = after(&line, "Attempting Connect to ") {
            let name = rest.rsplit_once(" using protocol").map_or(rest, |(r, _)| r);
            connect.0 = Some(name.to_owned());
            reader = Some(name.to_owned());
        } else if let Some(p) = after(&line, "Active Protocol: ") {
            connect.1 = Some(p.trim().to_owned());
        } else if let Some(d) = after(&line, "dwDisposition: ") {
            disposition = d.trim().parse::<u64>().ok().and_then(Disposition::from_code);
        } else if line.contains(", rv=") && line.contains(" for client ") {
            let (what, rest) = line.rsplit_once(" for client ").unwrap_or(("", ""));
            let what = what.rsplit(' ').next().unwrap_or("");
            let client = rest.split(',').next().map(str::to_owned);
            let ok = rest.contains("rv=SCARD_S_SUCCESS");
            let k = key(&client);
            match what {
                "CONNECT" if ok => out.push(Raw {
                    line: n,
                    key: k,
                    kind: RawKind::Connect { reader: connect.0.take(), protocol: connect.1.take() },
                }),
                "DISCONNECT" if ok => out.push(Raw {
                    line: n,
                    key: k,
                    kind: RawKind::Disconnect(disposition.take().unwrap_or(Disposition::Leave)),
                }),
                "BEGIN_TRANSACTION" if ok => out.push(Raw { line: n, key: k, kind: RawKind::Begin }),
                // The disposition is not logged; a reset shows as "Reset complete." below.
                "END_TRANSACTION" if ok => out.push(Raw { line: n, key: k, kind: RawKind::End(Disposition::Leave) }),
                "TRANSMIT" if !ok => {
                    if let Some(p) = pending.take() {
                        let why = rest.split_once("rv=").map_or("transmit failed", |(_, r)| r.trim());
                        no_answer(p, why, &mut out);
                    }
                }
                _ => {}
            }
        } else if line.ends_with("Reset complete.") {
            out.push(Raw {
                line: n,
                key: key(&None),
                kind: RawKind::Card { reader: reader.clone(), event: CardEvent::Reset },
            });
        } else if line.ends_with("powerState: POWER_STATE_UNPOWERED") {
            out.push(Raw {
                line: n,
                key: key(&None),
                kind: RawKind::Card { reader: None, event: CardEvent::PowerOff },
            });
        } else if line.ends_with("power up complete.") {
            out.push(Raw {
                line: n,
                key: key(&None),
                kind: RawKind::Card { reader: reader.clone(), event: CardEvent::PowerOn },
            });
        } else if let Some(r) = after(&line, "Card Removed From ") {
            out.push(Raw {
                line: n,
                key: key(&None),
                kind: RawKind::Card { reader: Some(r.trim().to_owned()), event: CardEvent::Removed },
            });
        } else if let Some(r) = after(&line, "Card inserted into ") {
            reader = Some(r.trim().to_owned());
            out.push(Raw {
                line: n,
                key: key(&None),
                kind: RawKind::Card { reader: reader.clone(), event: CardEvent::Inserted },
            });
        }
    }
    if let Some(p) = pending.take() {
        no_answer(p, "no answer: the log ends", &mut out);
    }
    out.sort_by_key(|r| r.line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apdu_and_sw_lines_make_an_exchange_of_the_transmitting_client() {
        let log = "00000019 winscard_svc.c:361:ContextThread() Received command: CONNECT from client 11
00000001 winscard.c:258:SCardConnect() Attempting Connect to Virtual PCD 00 00 using protocol: 3
00000003 winscard.c:430:SCardConnect() Active Protocol: T=1
00000002 winscard_svc.c:523:ContextThread() CONNECT for client 11, rv=SCARD_S_SUCCESS
00000052 winscard_svc.c:361:ContextThread() Received command: TRANSMIT from client 11
00000003 APDU: 00 B0 00 00 02 
00000125 SW: 41 42 90 00 
";
        let r = parse(log).unwrap_or_default();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].kind,
            RawKind::Connect { reader: Some("Virtual PCD 00 00".into()), protocol: Some("T=1".into()) }
        );
        assert_eq!(r[1].key, "client 11");
        assert_eq!(
            r[1].kind,
            RawKind::Transmit { command: vec![0, 0xB0, 0, 0, 2], response: Ok(vec![0x41, 0x42, 0x90, 0]) }
        );
    }

    #[test]
    fn bad_hex_and_orphan_answers_name_their_line() {
        let e = parse("00000003 APDU: 00 B0 0G 00\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("line 1:"), "{e}");
        let e = parse("00000003 APDU: 00 B0 00 00 02\n1 SW: 90 00\n2 SW: 90 00\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("line 3:") && e.contains("without its command"), "{e}");
    }

    #[test]
    fn syslog_lines_are_read_too() {
        let log = "Nov 29 14:20:52 host pcscd[123]: 00000003 APDU: 00 A4 00 0C 02 3F 00\nNov 29 14:20:52 host pcscd[123]: 00000003 SW: 90 00\n";
        let r = parse(log).unwrap_or_default();
        assert_eq!(r.len(), 1);
    }
}
