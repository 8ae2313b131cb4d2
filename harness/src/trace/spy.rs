//! The text `pcsc-spy` prints (pcsc-lite 1.9, `pcsc-spy [-n] [-d] [-t]`), as recorded here:
//!
//! ```text
//! SCardTransmit
//!  i hCard: 0x38358971
//!  i pioSendPci.dwProtocol: 0x00000002
//!  i pioSendPci.cbPciLength: 0x00000010
//!  i bSendLength 0x0000000C (12)
//!  i bSendBuffer
//!  i  0000 00 A4 04 00 07 62 76 01 FF 00 00 00             .....bv.....
//!  o pioRecvPci.dwProtocol: 0x00000001
//!  o pioRecvPci.cbPciLength: 0x00000010
//!  o bRecvLength 0x00000002 (2)
//!  o bRecvBuffer
//!  o  0000 6A 82                                           j.
//!  => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000234]
//! ```
//!
//! Each thread of the spied program is indented by four more spaces (`-t` adds `(tN) `); the
//! threads' blocks may interleave line by line. Colours (without `-n`) are stripped.

use super::import::{Raw, RawKind, dump_tokens, lines};
use super::{Disposition, ImportError};
use std::collections::HashMap;

struct Block {
    name: String,
    line: usize,
    params: Vec<(char, String, usize)>,
}

/// Splits a line into its thread number and its content.
fn thread_of(line: &str) -> (usize, &str) {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[spaces..];
    if let Some(tail) = rest.strip_prefix("(t")
        && let Some((n, content)) = tail.split_once(") ")
        && let Ok(n) = n.parse::<usize>()
    {
        return (n, content);
    }
    let thread = spaces / 4;
    (thread, &line[thread * 4..])
}

/// The value after `name` in a parameter line (`hCard: 0x…`, `bSendLength 0x… (12)`).
fn value<'a>(params: &'a [(char, String, usize)], dir: char, name: &str) -> Option<(&'a str, usize)> {
    params.iter().find_map(|(d, text, line)| {
        if *d != dir {
            return None;
        }
        let rest = text.strip_prefix(name)?;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None;
        }
        Some((rest.trim(), *line))
    })
}

/// `0x0000000C (12)` → 12.
fn number(v: &str, line: usize) -> Result<u64, ImportError> {
    let hexpart = v.split_whitespace().next().unwrap_or("");
    let digits = hexpart.strip_prefix("0x").ok_or_else(|| ImportError::at(line, format!("expected 0x… in {v:?}")))?;
    u64::from_str_radix(digits, 16).map_err(|_| ImportError::at(line, format!("bad number {hexpart:?}")))
}

/// The hexdump lines after a buffer header, checked against the announced length.
fn buffer(params: &[(char, String, usize)], dir: char, header: &str, len: usize) -> Result<Vec<u8>, ImportError> {
    let Some(at) = params.iter().position(|(d, t, _)| *d == dir && t == header) else {
        let line = params.last().map_or(0, |p| p.2);
        return Err(ImportError::at(line, format!("{header} missing")));
    };
    let mut out = Vec::with_capacity(len);
    let mut line_no = params[at].2;
    for (d, text, line) in &params[at + 1..] {
        if *d != dir || !text.starts_with(' ') {
            break;
        }
        line_no = *line;
        let t = text.trim_start();
        if t == "NULL" {
            break;
        }
        let Some((offset, dump)) = t.split_once(' ') else {
            return Err(ImportError::at(*line, format!("bad dump line {t:?}")));
        };
        let expected = out.len();
        match usize::from_str_radix(offset, 16) {
            Ok(o) if o == expected => {}
            _ => return Err(ImportError::at(*line, format!("dump offset {offset:?}, {expected:04X} expected"))),
        }
        let n = (len - out.len().min(len)).min(16);
        if n == 0 {
            return Err(ImportError::at(*line, format!("more dump lines than the {len} bytes announced")));
        }
        out.extend(dump_tokens(dump, n, *line)?);
    }
    if out.len() != len {
        return Err(ImportError::at(line_no, format!("{header} holds {} bytes, {len} announced", out.len())));
    }
    Ok(out)
}

fn disposition(v: &str, line: usize) -> Result<Disposition, ImportError> {
    // "SCARD_LEAVE_CARD (0x00000000)"
    let code = v
        .rsplit_once('(')
        .and_then(|(_, c)| c.strip_suffix(')'))
        .ok_or_else(|| ImportError::at(line, format!("bad disposition {v:?}")))?;
    let n = number(code, line)?;
    Disposition::from_code(n).ok_or_else(|| ImportError::at(line, format!("unknown disposition {n}")))
}

/// The result line: success, or the error name (`SCARD_W_REMOVED_CARD`).
fn result(text: &str) -> Result<(), String> {
    match text.rsplit_once('(').map(|(_, r)| r) {
        Some(r) if r.starts_with("SCARD_S_SUCCESS") => Ok(()),
        Some(r) => Err(r.split([' ', '[']).next().unwrap_or("error").to_owned()),
        None if text.contains("0x00000000") => Ok(()),
        None => Err(text.trim().to_owned()),
    }
}

/// Turns one finished call into events. `diffable`: `pcsc-spy -d` hides card handles, so a
/// thread's connections are told apart by order only.
fn finish(
    thread: usize,
    b: Block,
    rv: Result<(), String>,
    diffable: bool,
    out: &mut Vec<Raw>,
) -> Result<(), ImportError> {
    let handle = |name: &str| value(&b.params, 'i', name).map(|(v, _)| v.to_owned());
    let key = |h: Option<String>| {
        if diffable { format!("t{thread}") } else { format!("t{thread}:{}", h.unwrap_or_default()) }
    };
    let p = &b.params;
    let push = |out: &mut Vec<Raw>, key: String, kind: RawKind| out.push(Raw { line: b.line, key, kind });
    match b.name.as_str() {
        "SCardConnect" if rv.is_ok() => {
            let h = value(p, 'o', "phCard").map(|(v, _)| v.split_whitespace().next().unwrap_or("").to_owned());
            let reader = value(p, 'i', "szReader").map(|(v, _)| v.to_owned());
            let protocol = value(p, 'o', "dwActiveProtocol").map(|(v, _)| v.split(' ').next().unwrap_or("").to_owned());
            push(out, key(h), RawKind::Connect { reader, protocol });
        }
        "SCardReconnect" if rv.is_ok() => {
            let (v, line) =
                value(p, 'i', "dwInitialization").ok_or_else(|| ImportError::at(b.line, "dwInitialization missing"))?;
            let d = Disposition::from_code(number(v, line)?)
                .ok_or_else(|| ImportError::at(line, format!("unknown dwInitialization {v}")))?;
            push(out, key(handle("hCard")), RawKind::Reconnect(d));
        }
        "SCardDisconnect" if rv.is_ok() => {
            let (v, line) =
                value(p, 'i', "dwDisposition").ok_or_else(|| ImportError::at(b.line, "dwDisposition missing"))?;
            push(out, key(handle("hCard")), RawKind::Disconnect(disposition(v, line)?));
        }
        "SCardBeginTransaction" if rv.is_ok() => push(out, key(handle("hCard")), RawKind::Begin),
        "SCardEndTransaction" if rv.is_ok() => {
            let (v, line) =
                value(p, 'i', "dwDisposition").ok_or_else(|| ImportError::at(b.line, "dwDisposition missing"))?;
            push(out, key(handle("hCard")), RawKind::End(disposition(v, line)?));
        }
        "SCardTransmit" => {
            let (v, line) =
                value(p, 'i', "bSendLength").ok_or_else(|| ImportError::at(b.line, "bSendLength missing"))?;
            let len = usize::try_from(number(v, line)?).unwrap_or(usize::MAX);
            if len > super::MAX_INPUT {
                return Err(ImportError::at(line, format!("bSendLength {len} out of range")));
            }
            let command = buffer(p, 'i', "bSendBuffer", len)?;
            let response = match rv {
                Ok(()) => {
                    let (v, line) =
                        value(p, 'o', "bRecvLength").ok_or_else(|| ImportError::at(b.line, "bRecvLength missing"))?;
                    let len = usize::try_from(number(v, line)?).unwrap_or(usize::MAX);
                    if len > super::MAX_INPUT {
                        return Err(ImportError::at(line, format!("bRecvLength {len} out of range")));
                    }
                    Ok(buffer(p, 'o', "bRecvBuffer", len)?)
                }
                Err(e) => Err(e),
            };
            push(out, key(handle("hCard")), RawKind::Transmit { command, response });
        }
        "SCardStatus" if rv.is_ok() => {
            if let Some((atr, line)) = value(p, 'o', "bAtr")
                && atr != "NULL"
            {
                let reader = value(p, 'o', "mszReaderName").map(|(v, _)| v.to_owned()).filter(|r| r != "NULL");
                let atr = super::import::spaced_hex(atr, line)?;
                push(out, key(handle("hCard")), RawKind::Atr { reader, atr });
            }
        }
        "SCardGetStatusChange" => {
            let mut reader = None;
            for (d, text, line) in p {
                if *d != 'o' {
                    continue;
                }
                if let Some(r) = text.strip_prefix("szReader: ") {
                    reader = Some(r.to_owned());
                } else if let Some(a) = text.strip_prefix(" Atr: ") {
                    let atr = super::import::spaced_hex(a, *line)?;
                    push(out, key(None), RawKind::Atr { reader: reader.clone(), atr });
                }
            }
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn parse(text: &str) -> Result<Vec<Raw>, ImportError> {
    let mut out = Vec::new();
    let mut open: HashMap<usize, Block> = HashMap::new();
    // Threads whose first call the log shows: before it, a log cut mid-call is skipped.
    let mut seen: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let diffable = text.contains("hCard: 0x????");
    for (n, line) in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let (thread, content) = thread_of(&line);
        if content.starts_with("SCard") || content.starts_with("SCarControl") {
            let name = content.trim_end();
            if !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            if let Some(b) = open.get(&thread) {
                return Err(ImportError::at(
                    n,
                    format!("{name} starts before {} (line {}) has its result line", b.name, b.line),
                ));
            }
            seen.insert(thread);
            open.insert(thread, Block { name: name.to_owned(), line: n, params: vec![] });
        } else if let Some(rest) = content.strip_prefix(" i ").or_else(|| content.strip_prefix(" o ")) {
            let dir = if content.starts_with(" i ") { 'i' } else { 'o' };
            match open.get_mut(&thread) {
                Some(b) => b.params.push((dir, rest.to_owned(), n)),
                None if !seen.contains(&thread) => {}
                None => return Err(ImportError::at(n, "parameter line outside any call")),
            }
        } else if let Some(rest) = content.strip_prefix(" => ") {
            match open.remove(&thread) {
                Some(b) => finish(thread, b, result(rest), diffable, &mut out)?,
                None if !seen.contains(&thread) => {}
                None => return Err(ImportError::at(n, "result line outside any call")),
            }
        }
        // Anything else (statistics, "Garbage:", parsing notes) is pcsc-spy's own commentary.
    }
    // A call whose result the log does not show (the program died): keep a transmitted command.
    let mut left: Vec<(usize, Block)> = open.into_iter().collect();
    left.sort_by_key(|(_, b)| b.line);
    for (thread, b) in left {
        if b.name == "SCardTransmit" && b.params.iter().any(|(d, ..)| *d == 'i') {
            let mut b = b;
            b.params.retain(|(d, ..)| *d == 'i');
            finish(thread, b, Err("no answer: the log ends".into()), diffable, &mut out)?;
        }
    }
    out.sort_by_key(|r| r.line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "SCardConnect
 i hContext: 0x51F3952D
 i szReader Virtual PCD 00 00
 i dwShareMode: SCARD_SHARE_SHARED (0x00000002)
 i dwPreferredProtocols: 0x00000003 (T=0, T=1)
 i phCard 0x2020202020202020 (2314885530818453536)
 i pdwActiveProtocol 0x2020202020202020 (2314885530818453536)
 o phCard 0x4789E4AF (1200219311)
 o dwActiveProtocol: T=1 (0x00000002)
 => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000267]
SCardTransmit
 i hCard: 0x4789E4AF
 i pioSendPci.dwProtocol: 0x00000002
 i pioSendPci.cbPciLength: 0x00000010
 i bSendLength 0x00000005 (5)
 i bSendBuffer
 i  0000 00 B0 00 00 02                                  .....
 o pioRecvPci.dwProtocol: 0x00000001
 o pioRecvPci.cbPciLength: 0x00000010
 o bRecvLength 0x00000004 (4)
 o bRecvBuffer
 o  0000 41 42 90 00                                     AB..
 => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000234]
";

    #[test]
    fn a_connect_and_a_transmit_give_the_bytes() {
        let r = parse(ONE).unwrap_or_default();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[1].kind,
            RawKind::Transmit { command: vec![0, 0xB0, 0, 0, 2], response: Ok(vec![0x41, 0x42, 0x90, 0]) }
        );
        assert_eq!(r[0].key, r[1].key);
        assert_eq!(r[1].line, 11);
    }

    #[test]
    fn a_length_that_does_not_match_the_dump_is_an_error_at_its_line() {
        let bad = ONE.replace("bRecvLength 0x00000004 (4)", "bRecvLength 0x00000005 (5)");
        let e = parse(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("line 22:") && e.contains("fewer bytes than announced"), "{e}");
        let bad = ONE.replace(" i  0000 00 B0 00 00 02", " i  0000 00 B0 0Z 00 02");
        let e = parse(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("line 17:"), "{e}");
    }

    #[test]
    fn a_log_cut_inside_a_call_starts_at_the_next_call_but_a_stray_line_later_is_an_error() {
        let cut: String = ONE.lines().skip(3).map(|l| format!("{l}\n")).collect();
        let r = parse(&cut).unwrap_or_default();
        assert_eq!(r.len(), 1, "the transmit");
        let stray = format!("{ONE} i hCard: 0x1\n");
        let e = parse(&stray).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("line 24:") && e.contains("outside any call"), "{e}");
    }

    #[test]
    fn threads_are_told_apart_by_indentation() {
        let two = ONE.lines().map(|l| format!("    {l}\n")).collect::<String>();
        let r = parse(&two).unwrap_or_default();
        assert_eq!(r.len(), 2);
        assert!(r[0].key.starts_with("t1:"), "{}", r[0].key);
    }
}
