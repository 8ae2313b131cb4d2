//! Turning secrets into placeholders at import.
//!
//! 1. Values given at import (`--secret pin=12345678`) are looked for padded as cards pad them
//!    (`FF` to 8 or 64, `00` or `FF` to 16, or as given) and become `{pin:len:pad}`.
//! 2. What is left in clear in the data of a VERIFY, CHANGE REFERENCE DATA or RESET RETRY COUNTER
//!    is cut into fields (a prefix already known as a secret, a prefix that an earlier answer of
//!    the card carried — the Oberthur unblock code of `5011/2000` —, else two halves for the
//!    two-field forms) and each distinct field becomes `{secretN:len:pad}`.
//! 3. Every other occurrence of those bytes anywhere in the session (the unblock code in the
//!    READ BINARY answer, a PIN written into a file) becomes the same placeholder.
//!
//! Nothing of a secret-bearing command's data survives: step 2 covers it whole.

use super::classify::{data_field, data_range};
use super::{Piece, Placeholder, Secrets, Template};

/// A command and its answer before redaction.
#[derive(Clone, Debug)]
pub struct RawExchange {
    pub line: usize,
    pub command: Vec<u8>,
    pub response: Option<Vec<u8>>,
}

/// The redacted exchanges, and each placeholder with the line and command where it was found.
pub struct Redacted {
    pub commands: Vec<Template>,
    pub responses: Vec<Option<Template>>,
    pub found: Vec<(Placeholder, usize, String, bool)>,
}

/// Shortest byte string replaced wherever it occurs (shorter secrets only in their own field).
const MIN_ANYWHERE: usize = 4;

/// Whether the command carries a PIN, PUK or unblock code in its data (ISO class only).
pub fn carries_secret(command: &[u8]) -> bool {
    matches!(command, [cla, 0x20 | 0x24 | 0x2C, ..] if cla & 0x80 == 0) && !data_field(command).is_empty()
}

fn name_of(command: &[u8]) -> String {
    match command {
        [_, 0x20, _, p2, ..] => format!("VERIFY P2={p2:02X}"),
        [_, 0x24, p1, p2, ..] => format!("CHANGE REFERENCE DATA P1={p1:02X} P2={p2:02X}"),
        [_, 0x2C, p1, p2, ..] => format!("RESET RETRY COUNTER P1={p1:02X} P2={p2:02X}"),
        _ => "command".into(),
    }
}

fn pad_of(field: &[u8]) -> u8 {
    match field.last() {
        Some(0x00) => 0x00,
        _ => 0xFF,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A secret's byte string and its placeholder.
struct Known {
    bytes: Vec<u8>,
    placeholder: Placeholder,
    named: bool,
}

/// Forms of a given value as cards send them.
fn padded_forms(value: &[u8]) -> Vec<(Vec<u8>, usize, u8)> {
    let mut forms = Vec::new();
    for (len, pad) in [(64usize, 0xFFu8), (16, 0x00), (16, 0xFF), (8, 0xFF), (8, 0x00)] {
        if value.len() <= len {
            let mut p = value.to_vec();
            p.resize(len, pad);
            forms.push((p, len, pad));
        }
    }
    forms.push((value.to_vec(), value.len(), 0xFF));
    forms
}

/// Redacts a session. `given` are the values the user named at import.
pub fn redact(exchanges: &[RawExchange], given: &Secrets) -> Redacted {
    let mut known: Vec<Known> = Vec::new();
    for (name, value) in &given.0 {
        for (bytes, len, pad) in padded_forms(value) {
            if !known.iter().any(|k| k.bytes == bytes) {
                known.push(Known { bytes, placeholder: Placeholder { name: name.clone(), len, pad }, named: true });
            }
        }
    }
    // Longest first, so a padded form wins over the bare value inside it.
    known.sort_by_key(|k| std::cmp::Reverse(k.bytes.len()));

    // Step 2: fields of secret-bearing commands.
    let mut fields: Vec<Known> = Vec::new();
    let mut next = 1;
    for (i, e) in exchanges.iter().enumerate() {
        if !carries_secret(&e.command) {
            continue;
        }
        let data = data_field(&e.command);
        let two_fields = matches!(e.command.as_slice(), [_, 0x24 | 0x2C, 0x00, ..]);
        for run in clear_runs(data, &known) {
            let earlier: Vec<&[u8]> =
                exchanges[..i].iter().filter_map(|x| x.response.as_deref()).map(response_data).collect();
            for field in split(run, two_fields && run.len() == data.len(), &fields, &earlier) {
                if fields.iter().any(|k| k.bytes == field) || known.iter().any(|k| k.bytes == field) {
                    continue;
                }
                let placeholder = Placeholder { name: format!("secret{next}"), len: field.len(), pad: pad_of(field) };
                next += 1;
                fields.push(Known { bytes: field.to_vec(), placeholder, named: false });
            }
        }
    }
    let mut all: Vec<Known> = known.into_iter().chain(fields).collect();
    all.sort_by_key(|k| std::cmp::Reverse(k.bytes.len()));

    // Step 3: replace everywhere; secret-bearing fields also below MIN_ANYWHERE.
    let mut found: Vec<(Placeholder, usize, String, bool)> = Vec::new();
    let mut note = |p: &Placeholder, line: usize, what: String, named: bool| {
        if !found.iter().any(|(f, ..)| f == p) {
            found.push((p.clone(), line, what, named));
        }
    };
    let mut commands = Vec::with_capacity(exchanges.len());
    let mut responses = Vec::with_capacity(exchanges.len());
    for e in exchanges {
        let what = name_of(&e.command);
        let secret = carries_secret(&e.command);
        let mut t = replace(&e.command, &all, MIN_ANYWHERE);
        if secret {
            // The data field whole, whatever its length; the header and Le stay clear.
            let range = data_range(&e.command);
            let mut pieces = Template::clear(&e.command[..range.start]).0;
            pieces.extend(replace(&e.command[range.clone()], &all, 1).0);
            pieces.extend(Template::clear(&e.command[range.end..]).0);
            // Whatever is still clear in the field (cannot happen: step 2 covered it) is masked.
            t = mask_clear_body(Template(pieces), range.start, range.len());
        }
        for p in t.placeholders() {
            let named = all.iter().any(|k| &k.placeholder == p && k.named);
            note(p, e.line, what.clone(), named);
        }
        let r = e.response.as_deref().map(|r| replace(r, &all, MIN_ANYWHERE));
        if let Some(r) = &r {
            for p in r.placeholders() {
                let named = all.iter().any(|k| &k.placeholder == p && k.named);
                note(p, e.line, format!("answer to {}", super::classify::classify(&e.command).name), named);
            }
        }
        commands.push(t);
        responses.push(r);
    }
    Redacted { commands, responses, found }
}

/// Replaces any clear byte left in the data field of a secret-bearing command by a field
/// placeholder of its own (defence in depth).
fn mask_clear_body(t: Template, start: usize, len: usize) -> Template {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut leftover = 0;
    for p in t.0 {
        let width = match &p {
            Piece::Secret(s) => s.len,
            Piece::Byte(_) => 1,
        };
        let inside = offset >= start && offset < start + len;
        match p {
            Piece::Byte(_) if inside => leftover += 1,
            other => {
                if leftover > 0 {
                    out.push(Piece::Secret(Placeholder { name: "masked".into(), len: leftover, pad: 0xFF }));
                    leftover = 0;
                }
                out.push(other);
            }
        }
        offset += width;
    }
    if leftover > 0 {
        out.push(Piece::Secret(Placeholder { name: "masked".into(), len: leftover, pad: 0xFF }));
    }
    Template(out)
}

/// The data part of a response (without SW).
fn response_data(r: &[u8]) -> &[u8] {
    &r[..r.len().saturating_sub(2)]
}

/// Runs of `data` not covered by a known value.
fn clear_runs<'a>(data: &'a [u8], known: &[Known]) -> Vec<&'a [u8]> {
    let mut covered = vec![false; data.len()];
    for k in known {
        let mut from = 0;
        while let Some(at) = find(&data[from..], &k.bytes) {
            let s = from + at;
            if covered[s..s + k.bytes.len()].iter().all(|c| !c) {
                covered[s..s + k.bytes.len()].iter_mut().for_each(|c| *c = true);
            }
            from = s + 1;
        }
    }
    let mut runs = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if covered[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < data.len() && !covered[i] {
            i += 1;
        }
        runs.push(&data[start..i]);
    }
    runs
}

/// Cuts a clear run into secret fields.
fn split<'a>(run: &'a [u8], two_fields: bool, fields: &[Known], earlier: &[&[u8]]) -> Vec<&'a [u8]> {
    // A prefix already known as a field (the same PIN verified before it is changed).
    for f in fields {
        if f.bytes.len() < run.len() && run.starts_with(&f.bytes) {
            return vec![&run[..f.bytes.len()], &run[f.bytes.len()..]];
        }
    }
    // A prefix the card handed out earlier (AWP: the unblock code read from 5011/2000).
    for r in earlier.iter().rev() {
        if r.len() >= 8 && r.len() < run.len() && run.starts_with(r) {
            return vec![&run[..r.len()], &run[r.len()..]];
        }
    }
    if two_fields && run.len() >= 2 && run.len().is_multiple_of(2) {
        let (a, b) = run.split_at(run.len() / 2);
        return vec![a, b];
    }
    vec![run]
}

/// Replaces every occurrence (at least `min` long) of a known byte string.
fn replace(bytes: &[u8], all: &[Known], min: usize) -> Template {
    let mut pieces = Vec::with_capacity(bytes.len());
    let mut i = 0;
    'outer: while i < bytes.len() {
        for k in all {
            let n = k.bytes.len();
            if n >= min && n > 0 && bytes[i..].starts_with(&k.bytes) {
                pieces.push(Piece::Secret(k.placeholder.clone()));
                i += n;
                continue 'outer;
            }
        }
        pieces.push(Piece::Byte(bytes[i]));
        i += 1;
    }
    Template(pieces)
}

#[cfg(test)]
mod tests {
    use super::super::unhex;
    use super::*;

    fn ex(line: usize, c: &str, r: &str) -> RawExchange {
        RawExchange { line, command: unhex(c).unwrap_or_default(), response: Some(unhex(r).unwrap_or_default()) }
    }

    #[test]
    fn unknown_cns_verify_change_and_unblock_become_numbered_fields_shared_where_equal() {
        let pin = "3132333435363738";
        let new = "3234363832343638";
        let puk = "3837363534333231";
        let x = [
            ex(1, &format!("0020009008{pin}"), "9000"),
            ex(2, &format!("0024009A10{pin}{new}"), "9000"),
            ex(3, &format!("002C009A10{puk}{new}"), "9000"),
        ];
        let r = redact(&x, &Secrets::default());
        let text: Vec<String> = r.commands.iter().map(|t| t.to_string()).collect();
        assert_eq!(text[0], "0020009008{secret1:8:FF}");
        assert_eq!(text[1], "0024009A10{secret1:8:FF}{secret2:8:FF}");
        assert_eq!(text[2], "002C009A10{secret3:8:FF}{secret2:8:FF}");
        for t in &text {
            assert!(!t.contains(pin) && !t.contains(new) && !t.contains(puk));
        }
        let what: Vec<&str> = r.found.iter().map(|f| f.2.as_str()).collect();
        assert_eq!(what, ["VERIFY P2=90", "CHANGE REFERENCE DATA P1=00 P2=9A", "RESET RETRY COUNTER P1=00 P2=9A"]);
        assert_eq!(r.found.iter().map(|f| f.1).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn a_zero_padded_field_keeps_its_pad_and_a_known_value_inside_a_body_is_cut_out() {
        let body = super::super::hex(&[b'1', b'2', b'3', b'4', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let x = [ex(1, &format!("0020008310{body}"), "9000")];
        let r = redact(&x, &Secrets::default());
        assert_eq!(r.commands[0].to_string(), "0020008310{secret1:16:00}");
        // A given value in the middle of an unknown body: the clear runs around it are fields.
        let x = [ex(1, "002C0000180102030405060708313233343536373811121314151617FF", "9000")];
        let given = Secrets(vec![("pin".into(), b"12345678".to_vec())]);
        let r = redact(&x, &given);
        assert_eq!(r.commands[0].to_string(), "002C000018{secret1:8:FF}{pin:8:FF}{secret2:8:FF}");
    }

    #[test]
    fn given_values_are_named_and_found_padded() {
        let mut padded = b"12345678".to_vec();
        padded.resize(64, 0xFF);
        let x = [RawExchange {
            line: 7,
            command: [&[0x00, 0x20, 0x00, 0x81, 0x40][..], &padded].concat(),
            response: Some(vec![0x90, 0]),
        }];
        let given = Secrets(vec![("pin".into(), b"12345678".to_vec())]);
        let r = redact(&x, &given);
        assert_eq!(r.commands[0].to_string(), "0020008140{pin:64:FF}");
        assert!(r.found[0].3, "named");
    }

    #[test]
    fn a_change_is_cut_after_the_pin_verified_before_it_even_when_the_fields_differ_in_length() {
        // An unpadded 6-digit PIN, then a change to a 10-digit one (16 bytes: halves would be wrong).
        let x = [ex(1, "0020008106313233343536", "9000"), ex(2, "002400011031323334353637383930313233343536", "9000")];
        let r = redact(&x, &Secrets::default());
        assert_eq!(r.commands[1].to_string(), "0024000110{secret1:6:FF}{secret2:10:FF}");
    }

    #[test]
    fn the_oberthur_unblock_code_is_redacted_in_the_read_binary_answer_too() {
        let code = "00112233445566778899AABBCCDDEEFF";
        let mut new = b"24682468".to_vec();
        new.resize(64, 0xFF);
        let new = super::super::hex(&new);
        let x = [ex(1, "00B0000010", &format!("{code}9000")), ex(2, &format!("002C000150{code}{new}"), "9000")];
        let r = redact(&x, &Secrets::default());
        assert_eq!(r.responses[0].as_ref().map(|t| t.to_string()), Some("{secret1:16:FF}9000".into()));
        assert_eq!(r.commands[1].to_string(), "002C000150{secret1:16:FF}{secret2:64:FF}");
    }

    #[test]
    fn the_le_of_a_secret_bearing_command_stays_clear_and_extended_bodies_are_redacted() {
        let x = [ex(1, "002000900831323334353637380A", "9000"), ex(2, "002000900000083132333435363738000A", "9000")];
        let r = redact(&x, &Secrets::default());
        assert_eq!(r.commands[0].to_string(), "0020009008{secret1:8:FF}0A");
        assert_eq!(r.commands[1].to_string(), "00200090000008{secret1:8:FF}000A");
    }

    #[test]
    fn leftover_clear_bytes_of_a_secret_field_are_masked() {
        let t = Template(vec![
            Piece::Byte(0x00),
            Piece::Byte(0x20),
            Piece::Byte(0x00),
            Piece::Byte(0x81),
            Piece::Byte(0x04),
            Piece::Byte(0xAB),
            Piece::Secret(Placeholder { name: "pin".into(), len: 2, pad: 0xFF }),
            Piece::Byte(0xCD),
            Piece::Byte(0x0A),
        ]);
        assert_eq!(mask_clear_body(t, 5, 4).to_string(), "0020008104{masked:1:FF}{pin:2:FF}{masked:1:FF}0A");
    }

    #[test]
    fn placeholders_are_marked_named_only_for_values_given_at_import() {
        let code = "00112233445566778899AABBCCDDEEFF";
        let x = [
            ex(1, "0020008408FFFFFFFFFFFFFFFF", "9000"),
            ex(2, "00B0000010", &format!("{code}9000")),
            ex(3, &format!("002C000118{code}3132333435363738"), "9000"),
        ];
        let given = Secrets(vec![("code".into(), super::super::unhex(code).unwrap_or_default())]);
        let r = redact(&x, &given);
        let flags: Vec<(String, bool, String)> =
            r.found.iter().map(|(p, _, what, named)| (p.to_string(), *named, what.clone())).collect();
        assert_eq!(
            flags,
            [
                ("{secret1:8:FF}".to_string(), false, "VERIFY P2=84".to_string()),
                ("{code:16:00}".to_string(), true, "answer to READ BINARY".to_string()),
                ("{secret2:8:FF}".to_string(), false, "RESET RETRY COUNTER P1=00 P2=01".to_string()),
            ]
        );
    }

    #[test]
    fn a_secret_field_is_never_left_in_clear_even_when_short() {
        let x = [ex(1, "0020008102AB", "63C2"), ex(2, "00200081020000", "9000")];
        let r = redact(&x, &Secrets::default());
        for t in &r.commands {
            assert_eq!(t.masked()[5..].iter().filter(|b| b.is_some()).count(), 0, "{t}");
        }
    }
}
