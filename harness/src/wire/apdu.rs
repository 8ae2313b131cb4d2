//! Command APDUs as the host sees them: the ISO 7816-3 length cases, the chaining bit, which
//! commands carry a secret, and what each command does to a card ([`Effect`]), from the
//! harness's own table of instructions per profile (spec/cards.md §2.5, §3.5, §4.4).
//!
//! The classification is what the dry run, the consent gate on `reader:` cards and the
//! secret guards of `bench`/`apdu --repeat` rely on: it never asks the card (or the emulator)
//! what a command would do.

use super::Profile;

/// A parsed command APDU (borrowing its bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Expected response length (`Some(256)` for a short `00`, `Some(65536)` for an
    /// extended `0000`).
    pub le: Option<usize>,
    pub extended: bool,
}

impl<'a> Command<'a> {
    /// Parses the seven ISO 7816-3 length cases; `None` when the bytes fit none of them.
    pub fn parse(b: &'a [u8]) -> Option<Self> {
        let [cla, ins, p1, p2, body @ ..] = b else { return None };
        let head = |data: &'a [u8], le: Option<usize>, extended: bool| {
            Some(Command { cla: *cla, ins: *ins, p1: *p1, p2: *p2, data, le, extended })
        };
        let short_le = |x: u8| if x == 0 { 256 } else { usize::from(x) };
        let ext_le = |h: u8, l: u8| match u16::from_be_bytes([h, l]) {
            0 => 65_536,
            n => usize::from(n),
        };
        match body {
            [] => head(&[], None, false),
            [le] => head(&[], Some(short_le(*le)), false),
            [0, h, l] => head(&[], Some(ext_le(*h, *l)), true),
            [0, h, l, rest @ ..] if u16::from_be_bytes([*h, *l]) != 0 => {
                let nc = usize::from(u16::from_be_bytes([*h, *l]));
                match rest.len().checked_sub(nc) {
                    Some(0) => head(rest, None, true),
                    Some(2) => head(&rest[..nc], Some(ext_le(rest[nc], rest[nc + 1])), true),
                    _ => None,
                }
            }
            [lc, rest @ ..] if *lc != 0 => {
                let nc = usize::from(*lc);
                match rest.len().checked_sub(nc) {
                    Some(0) => head(rest, None, false),
                    Some(1) => head(&rest[..nc], Some(short_le(rest[nc])), false),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Whether b5 of the class byte is the chaining bit (`0X`/`1X` and `8X`/`9X` classes;
    /// the CNS's proprietary `B0` is a whole class byte).
    fn chaining_class(&self) -> bool {
        self.cla & 0x60 == 0
    }

    /// The class without the chaining bit.
    pub fn base_cla(&self) -> u8 {
        if self.chaining_class() { self.cla & !0x10 } else { self.cla }
    }

    /// A block of a command chain that is not the last one.
    pub fn chained(&self) -> bool {
        self.chaining_class() && self.cla & 0x10 != 0
    }

    /// Bytes of the Lc field (0, 1 or 3).
    fn lc_len(&self) -> usize {
        match (self.data.is_empty(), self.extended) {
            (true, _) => 0,
            (false, false) => 1,
            (false, true) => 3,
        }
    }
}

/// The same command with another Le (short APDUs; `6Cxx` asks for it).
pub fn with_le(command: &[u8], le: usize) -> Option<Vec<u8>> {
    let c = Command::parse(command)?;
    if c.extended {
        return None;
    }
    let mut v = vec![c.cla, c.ins, c.p1, c.p2];
    if !c.data.is_empty() {
        v.push(u8::try_from(c.data.len()).ok()?);
        v.extend_from_slice(c.data);
    }
    v.push(if le >= 256 { 0 } else { u8::try_from(le).ok()? });
    Some(v)
}

/// VERIFY, CHANGE REFERENCE DATA (and the Oberthur CREATE PIN, the Incrypto34 CHANGE KEY
/// DATA), RESET RETRY COUNTER and PUT DATA (the Incrypto34 OCI carries PIN values and key
/// components): the instructions whose data is a PIN, a PUK, an unblock code or key material.
pub const SECRET_INS: [u8; 4] = [0x20, 0x24, 0x2C, 0xDA];

/// Whether the command carries secret data (INS 20/24/2C with a data field).
pub fn carries_secret(command: &[u8]) -> bool {
    match Command::parse(command) {
        Some(c) => SECRET_INS.contains(&c.ins) && !c.data.is_empty(),
        // Unparsable but shaped like one of them with a body: treat as secret.
        None => matches!(command, [_, ins, _, _, _, ..] if SECRET_INS.contains(ins)),
    }
}

/// The command as hex with its data bytes written `**` (header, Lc and Le kept): how a
/// secret-bearing command appears when its data cannot be shown as placeholders.
pub fn masked_hex(command: &[u8]) -> String {
    use super::hex::encode;
    match Command::parse(command) {
        Some(c) if !c.data.is_empty() => {
            let head = 4 + c.lc_len();
            let tail = head + c.data.len();
            format!("{}{}{}", encode(&command[..head]), "**".repeat(c.data.len()), encode(&command[tail..]))
        }
        Some(_) => encode(command),
        None => {
            format!("{}{}", encode(command.get(..4).unwrap_or(command)), "**".repeat(command.len().saturating_sub(4)))
        }
    }
}

/// What a command does to a card.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads: SELECT, READ BINARY/RECORD, GET DATA, GET RESPONSE, LIST FILES, a PIN status
    /// query on a card that does not count it as a try.
    Read,
    /// Changes only volatile state, lost at power-off: MSE, PSO, GET CHALLENGE, LOGOUT.
    Volatile,
    /// Presents or changes a secret: a wrong value costs a try (VERIFY/CHANGE/RESET RETRY
    /// COUNTER with data, and a status query on a card that may count it).
    Secret,
    /// Writes the card's persistent content: UPDATE, CREATE/DELETE FILE, ERASE, GENERATE KEY
    /// PAIR, CREATE PIN, key import, record changes … and anything not in the table.
    Write,
}

impl Effect {
    /// Whether a dry run may send it (nothing persistent changes, no try is spent).
    pub fn harmless(self) -> bool {
        matches!(self, Effect::Read | Effect::Volatile)
    }
}

/// What `command` does on a card of `profile` (`None`: not recognised, treated like the
/// strictest profile). `tries_query_free`: whether the card's mask answers a VERIFY without
/// data without counting it as a failed attempt.
pub fn effect(profile: Option<Profile>, tries_query_free: bool, command: &[u8]) -> Effect {
    let Some(c) = Command::parse(command) else { return Effect::Write };
    let oberthur = profile == Some(Profile::Oberthur);
    match (c.base_cla(), c.ins) {
        (0x00, 0xA4) => Effect::Read,               // SELECT
        (0x00, 0xB0..=0xB3) => Effect::Read,        // READ BINARY / READ RECORD
        (0x00, 0xC0) => Effect::Read,               // GET RESPONSE
        (0x00 | 0x80, 0xCA | 0xCB) => Effect::Read, // GET DATA (CNS life-cycle, Oberthur CPLC)
        (0x00, 0x84) => Effect::Volatile,           // GET CHALLENGE
        (0x00, 0x22) => Effect::Volatile,           // MANAGE SECURITY ENVIRONMENT
        (0x00, 0x2A) => Effect::Volatile,           // PERFORM SECURITY OPERATION
        (0x00, 0x88) => Effect::Volatile,           // INTERNAL AUTHENTICATE
        (0x00, 0x20) if c.data.is_empty() => {
            if tries_query_free {
                Effect::Read
            } else {
                Effect::Secret
            }
        }
        // Oberthur CREATE PIN (`00 24 01 ref`) defines a PIN object: a write, not a try.
        (0x00, 0x24) if oberthur && c.p1 == 0x01 => Effect::Write,
        (0x00, 0x20 | 0x24 | 0x2C) => Effect::Secret,
        (0x80, 0x34) if oberthur => Effect::Read,     // LIST FILES
        (0x80, 0xB4) if oberthur => Effect::Read,     // READ PUBLIC COMPONENT
        (0x80, 0x2E) if oberthur => Effect::Volatile, // LOGOUT
        // UPDATE BINARY/RECORD, APPEND RECORD, CREATE/DELETE FILE, GENERATE KEY PAIR, the
        // CNS ERASE (B0 F5), Oberthur DELETE RECORD and key component updates, and anything
        // this table does not know.
        _ => Effect::Write,
    }
}

/// A command named for people, without its data: `VERIFY 0020009A (with data)`.
pub fn describe(command: &[u8]) -> String {
    let head = super::hex::encode(command.get(..4).unwrap_or(command));
    let Some(c) = Command::parse(command) else { return format!("{head} (malformed)") };
    let name = match (c.base_cla(), c.ins) {
        (0xB0, 0xF5) => "ERASE",
        (_, 0xA4) => "SELECT",
        (_, 0xB0) => "READ BINARY",
        (_, 0xB2) => "READ RECORD",
        (_, 0xC0) => "GET RESPONSE",
        (_, 0xCA) => "GET DATA",
        (_, 0x20) if c.data.is_empty() => "VERIFY (status query)",
        (_, 0x20) => "VERIFY",
        (_, 0x24) if c.p1 == 0x01 => "CREATE PIN",
        (_, 0x24) => "CHANGE REFERENCE DATA",
        (_, 0x2C) => "RESET RETRY COUNTER",
        (_, 0x22) => "MANAGE SECURITY ENVIRONMENT",
        (_, 0x2A) => "PERFORM SECURITY OPERATION",
        (_, 0x84) => "GET CHALLENGE",
        (_, 0x46) => "GENERATE KEY PAIR",
        (_, 0xD6) => "UPDATE BINARY",
        (_, 0xDC) => "UPDATE RECORD",
        (_, 0xE2) => "APPEND RECORD",
        (_, 0xE0) => "CREATE FILE",
        (_, 0xE4) => "DELETE FILE",
        (_, 0x32) => "DELETE RECORD",
        (_, 0x34) => "LIST FILES",
        (_, 0xD8) => "UPDATE KEY COMPONENT",
        (_, 0xB4) => "READ PUBLIC COMPONENT",
        (_, 0x2E) => "LOGOUT",
        _ => "command",
    };
    if c.data.is_empty() { format!("{name} {head}") } else { format!("{name} {head} ({} data bytes)", c.data.len()) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::hex::decode;

    fn e(p: Profile, hex: &str) -> Effect {
        effect(Some(p), true, &decode(hex).unwrap())
    }

    #[test]
    fn parses_the_seven_length_cases_and_rejects_the_rest() {
        let p = |h: &str| Command::parse(&decode(h).unwrap_or_default()).map(|c| (c.data.len(), c.le, c.extended));
        assert_eq!(p("00A40000"), Some((0, None, false)));
        assert_eq!(p("00B0000000"), Some((0, Some(256), false)));
        assert_eq!(p("00A4080C023F00"), Some((2, None, false)));
        assert_eq!(p("00A4080002100100"), Some((2, Some(256), false)));
        assert_eq!(p("00B00000000100"), Some((0, Some(256), true)));
        assert_eq!(p("002A9E9A000002AABB"), Some((2, None, true)));
        assert_eq!(p("002A9E9A000002AABB0000"), Some((2, Some(65_536), true)));
        assert_eq!(p("00A4"), None);
        assert_eq!(p("00A4080C033F00"), None);
        assert_eq!(p("00A4080C00"), Some((0, Some(256), false)));
    }

    #[test]
    fn classifies_commands_per_profile() {
        assert_eq!(e(Profile::Cns, "00A4080C0410001003"), Effect::Read);
        assert_eq!(e(Profile::Cns, "00B0000010"), Effect::Read);
        assert_eq!(e(Profile::Cns, "0020009A"), Effect::Read);
        assert_eq!(effect(Some(Profile::Cns), false, &decode("0020009A").unwrap()), Effect::Secret);
        assert_eq!(e(Profile::Cns, "0020009A083132333435363738"), Effect::Secret);
        assert_eq!(e(Profile::Cns, "0022F1B603830110"), Effect::Volatile);
        assert_eq!(e(Profile::Cns, "102A9E9A020001"), Effect::Volatile);
        assert_eq!(e(Profile::Cns, "B0F50000"), Effect::Write);
        assert_eq!(e(Profile::Cns, "00468010020800"), Effect::Write);
        assert_eq!(e(Profile::Oberthur, "80340000"), Effect::Read);
        assert_eq!(e(Profile::Cns, "80340000"), Effect::Write, "LIST FILES is Oberthur's");
        assert_eq!(e(Profile::Oberthur, "00240101420340FFFF"), Effect::Write);
        assert_eq!(e(Profile::Oberthur, "0024000102FFFF"), Effect::Secret);
        assert_eq!(e(Profile::Oberthur, "00D6000002AABB"), Effect::Write);
        assert_eq!(e(Profile::Oberthur, "00E4020002300100"), Effect::Write);
        assert_eq!(e(Profile::Oberthur, "00FF0000"), Effect::Write, "unknown instructions are writes");
        assert_eq!(effect(None, true, &[0x00]), Effect::Write);
    }

    #[test]
    fn secret_commands_are_masked_keeping_header_and_lengths() {
        let c = decode("0020009A083132333435363738").unwrap();
        assert!(carries_secret(&c));
        assert_eq!(masked_hex(&c), "0020009A08****************");
        assert!(!carries_secret(&decode("0020009A").unwrap()));
        assert_eq!(
            masked_hex(&decode("002C009A10AABB").unwrap_or_default()),
            "002C009A******",
            "malformed: header kept"
        );
        assert_eq!(masked_hex(&decode("0020009A").unwrap()), "0020009A");
        assert_eq!(with_le(&decode("00B0000010").unwrap(), 5), Some(decode("00B0000005").unwrap()));
    }
}
