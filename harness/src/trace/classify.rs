//! What a command does, judged from its header by this module's own table (ISO 7816-4 plus the
//! proprietary commands of the CNS and Oberthur cards in spec/cards.md): whether it leaves the
//! card unchanged (a dry run may send it), and whether its answer can be compared with a
//! recording (a signature, a challenge or a generated key differs by nature).
//!
//! Unknown commands count as changing the card: a dry run never sends what it cannot judge.

use serde::Serialize;

/// What sending the command does to the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Reads, selects or sets session state only (nothing persistent, no secret, no key use).
    ReadOnly,
    /// Writes, creates, deletes, generates or an unknown command.
    Changes,
    /// Carries a PIN or PUK (a wrong one costs a try).
    Secret,
    /// Uses a private key (a signature with the qualified key, a decryption).
    PrivateKey,
}

impl Effect {
    pub fn describe(self) -> &'static str {
        match self {
            Effect::ReadOnly => "read-only",
            Effect::Changes => "changes the card",
            Effect::Secret => "sends a secret",
            Effect::PrivateKey => "uses a private key",
        }
    }
}

/// Whether the answer data may be compared byte for byte with the recorded one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compare {
    Data,
    /// Status word and length only: the data differs by nature.
    StatusAndLength(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Kind {
    pub name: &'static str,
    pub effect: Effect,
    pub compare: Compare,
}

const fn kind(name: &'static str, effect: Effect) -> Kind {
    Kind { name, effect, compare: Compare::Data }
}

const fn varying(name: &'static str, effect: Effect, why: &'static str) -> Kind {
    Kind { name, effect, compare: Compare::StatusAndLength(why) }
}

/// The command data field (after Lc), if the bytes parse as a short or extended APDU.
pub fn data_field(command: &[u8]) -> &[u8] {
    &command[data_range(command)]
}

/// Where [`data_field`] lies in the command.
///
/// Extended (`00 Lc1 Lc2 data [Le]`) when byte 5 is `00` and two more follow; otherwise short,
/// where a body shorter than Lc (a log cut short) is still the body, and a lone P3 is an Le.
pub fn data_range(command: &[u8]) -> std::ops::Range<usize> {
    match command {
        [_, _, _, _, 0, hi, lo, rest @ ..] => {
            let n = usize::from(u16::from_be_bytes([*hi, *lo]));
            // Lc1 Lc2 with no data behind them is an extended Le (case 2).
            if rest.len() >= n { 7..7 + n } else { 7..7 }
        }
        [_, _, _, _, lc, rest @ ..] => 5..5 + usize::from(*lc).min(rest.len()),
        _ => 0..0,
    }
}

/// Classifies a command by CLA class and INS (and P1/P2 or data presence where they matter).
pub fn classify(command: &[u8]) -> Kind {
    use Effect::*;
    let [cla, ins, p1, p2, ..] = *command else {
        return kind("malformed (shorter than a header)", Changes);
    };
    let has_data = !data_field(command).is_empty();
    if cla == 0xFF {
        return match ins {
            0xCA => kind("GET DATA (reader: UID)", ReadOnly),
            _ => kind("reader pseudo-APDU", Changes),
        };
    }
    // Bit 8 of CLA: proprietary class; bits 5 (chaining) and the channel bits do not matter.
    if cla & 0x80 == 0 {
        match ins {
            0xA4 => kind("SELECT", ReadOnly),
            0xB0 | 0xB1 => kind("READ BINARY", ReadOnly),
            0xB2 | 0xB3 => kind("READ RECORD", ReadOnly),
            0xCA | 0xCB => kind("GET DATA", ReadOnly),
            0xC0 => kind("GET RESPONSE", ReadOnly),
            0x84 => varying("GET CHALLENGE", ReadOnly, "a challenge"),
            0x20 if !has_data => kind("VERIFY (tries query)", ReadOnly),
            0x20 => kind("VERIFY", Secret),
            0x24 if p1 == 0x01 => kind("CREATE PIN (Oberthur)", Secret),
            0x24 => kind("CHANGE REFERENCE DATA", Secret),
            0x2C if has_data => kind("RESET RETRY COUNTER", Secret),
            0x2C => kind("RESET RETRY COUNTER", Changes),
            0x22 => kind("MANAGE SECURITY ENVIRONMENT", ReadOnly),
            0x2A if (p1, p2) == (0x9E, 0x9A) => varying("PSO COMPUTE DIGITAL SIGNATURE", PrivateKey, "a signature"),
            0x2A if (p1, p2) == (0x80, 0x86) => {
                varying("PSO DECIPHER", PrivateKey, "a private-key operation (a decryption or a signature)")
            }
            0x2A => varying("PERFORM SECURITY OPERATION", PrivateKey, "a private-key operation"),
            0x88 => varying("INTERNAL AUTHENTICATE", PrivateKey, "a private-key operation"),
            0x82 => kind("EXTERNAL AUTHENTICATE", Changes),
            0x46 | 0x47 => varying("GENERATE KEY PAIR", Changes, "a generated key"),
            0xD6 | 0xD7 => kind("UPDATE BINARY", Changes),
            0xD0 | 0xD1 => kind("WRITE BINARY", Changes),
            0xDC | 0xDD => kind("UPDATE RECORD", Changes),
            0xD2 | 0xD3 => kind("WRITE RECORD", Changes),
            0xE2 => kind("APPEND RECORD", Changes),
            0x0E | 0x0F => kind("ERASE BINARY", Changes),
            0x0C => kind("ERASE RECORD", Changes),
            0xE0 => kind("CREATE FILE", Changes),
            0xE4 => kind("DELETE FILE", Changes),
            0x44 => kind("ACTIVATE FILE", Changes),
            0x04 => kind("DEACTIVATE FILE", Changes),
            0xE6 | 0xE8 => kind("TERMINATE", Changes),
            0xFE => kind("TERMINATE CARD USAGE", Changes),
            0xDA | 0xDB => kind("PUT DATA", Changes),
            0x70 => kind("MANAGE CHANNEL", ReadOnly),
            _ => kind("unknown ISO command", Changes),
        }
    } else {
        // Proprietary class: only what spec/cards.md documents as reading. `90` is `80` with
        // the chaining bit; `B0` is the CNS's own class, not a chained `A0`.
        match (cla, ins) {
            (0x80 | 0x90, 0xCA) => kind("GET DATA (proprietary, e.g. CPLC)", ReadOnly),
            (0x80 | 0x90, 0x34) => kind("LIST FILES (Oberthur)", ReadOnly),
            (0x80 | 0x90, 0xB4) => {
                varying("READ PUBLIC COMPONENT (Oberthur)", ReadOnly, "a public key (generated keys differ)")
            }
            (0x80 | 0x90, 0x2E) => kind("LOGOUT (Oberthur)", ReadOnly),
            (0x80 | 0x90, 0x32) => kind("DELETE RECORD (Oberthur)", Changes),
            (0x80 | 0x90, 0xD8) => kind("UPDATE KEY COMPONENT (Oberthur)", Changes),
            (0xB0, 0xF5) => kind("ERASE (CNS)", Changes),
            (0xB0, 0xFC) => kind("SCAN DF (Incard)", ReadOnly),
            _ => kind("unknown proprietary command", Changes),
        }
    }
}

/// Whether a status word says a secret was refused (wrong, or the counter blocked).
pub fn secret_refused(sw: u16) -> bool {
    matches!(sw, 0x6300..=0x63FF | 0x6983 | 0x6984)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_session_commands_are_read_only_everything_else_is_not() {
        for read in
            ["00A4080C0410001003", "00B0000010", "00B201048D", "80CA9F7F2D", "0084000008", "00200090", "0022F30300"]
        {
            let c = super::super::unhex(read).unwrap_or_default();
            assert_eq!(classify(&c).effect, Effect::ReadOnly, "{read}");
        }
        for (cmd, effect) in [
            ("00200090083132333435363738", Effect::Secret),
            ("0024009A1031323334353637383132333435363738", Effect::Secret),
            ("002C009A1031323334353637383132333435363738", Effect::Secret),
            ("00D600000401020304", Effect::Changes),
            ("0046000102080000", Effect::Changes),
            ("B0F5000000", Effect::Changes),
            ("002A9E9A0401020304", Effect::PrivateKey),
            ("102A8086FF00", Effect::PrivateKey),
            ("00F1000000", Effect::Changes),
            ("90D8010403A1200000", Effect::Changes),
            ("00", Effect::Changes),
        ] {
            let c = super::super::unhex(cmd).unwrap_or_default();
            assert_eq!(classify(&c).effect, effect, "{cmd}");
        }
    }

    #[test]
    fn every_command_of_the_table_has_its_name_and_effect() {
        use Effect::*;
        for (cmd, name, effect) in [
            ("00A4000C023F00", "SELECT", ReadOnly),
            ("00B1000000", "READ BINARY", ReadOnly),
            ("00B3000000", "READ RECORD", ReadOnly),
            ("00CB3FFF035C017E08", "GET DATA", ReadOnly),
            ("00C0000010", "GET RESPONSE", ReadOnly),
            ("00200081", "VERIFY (tries query)", ReadOnly),
            ("002400010431323334", "CHANGE REFERENCE DATA", Secret),
            ("002401810431323334", "CREATE PIN (Oberthur)", Secret),
            ("002C0001", "RESET RETRY COUNTER", Changes),
            ("002C00010431323334", "RESET RETRY COUNTER", Secret),
            ("0022F1B603830110", "MANAGE SECURITY ENVIRONMENT", ReadOnly),
            ("002A9E9A0401020304", "PSO COMPUTE DIGITAL SIGNATURE", PrivateKey),
            ("002A80860401020304", "PSO DECIPHER", PrivateKey),
            ("002A90A00401020304", "PERFORM SECURITY OPERATION", PrivateKey),
            ("0088000004010203", "INTERNAL AUTHENTICATE", PrivateKey),
            ("0082000004010203", "EXTERNAL AUTHENTICATE", Changes),
            ("0047800000", "GENERATE KEY PAIR", Changes),
            ("00D7000001AA", "UPDATE BINARY", Changes),
            ("00D0000001AA", "WRITE BINARY", Changes),
            ("00DD010401AA", "UPDATE RECORD", Changes),
            ("00D2010401AA", "WRITE RECORD", Changes),
            ("00E2000001AA", "APPEND RECORD", Changes),
            ("000F000000", "ERASE BINARY", Changes),
            ("000C010400", "ERASE RECORD", Changes),
            ("00E0000001AA", "CREATE FILE", Changes),
            ("00E40000023F01", "DELETE FILE", Changes),
            ("0044000000", "ACTIVATE FILE", Changes),
            ("0004000000", "DEACTIVATE FILE", Changes),
            ("00E8000000", "TERMINATE", Changes),
            ("00FE000000", "TERMINATE CARD USAGE", Changes),
            ("00DB3FFF01AA", "PUT DATA", Changes),
            ("0070000001", "MANAGE CHANNEL", ReadOnly),
            ("0099000000", "unknown ISO command", Changes),
            ("80CA9F7F2D", "GET DATA (proprietary, e.g. CPLC)", ReadOnly),
            ("9034000040", "LIST FILES (Oberthur)", ReadOnly),
            ("80B4010000", "READ PUBLIC COMPONENT (Oberthur)", ReadOnly),
            ("802E002100", "LOGOUT (Oberthur)", ReadOnly),
            ("8032010400", "DELETE RECORD (Oberthur)", Changes),
            ("80D8010403A1010000", "UPDATE KEY COMPONENT (Oberthur)", Changes),
            ("B0F5000000", "ERASE (CNS)", Changes),
            ("B0FC000003", "SCAN DF (Incard)", ReadOnly),
            ("80F0000000", "unknown proprietary command", Changes),
            ("FFCA000000", "GET DATA (reader: UID)", ReadOnly),
            ("FF82000006010203040506", "reader pseudo-APDU", Changes),
        ] {
            let k = classify(&super::super::unhex(cmd).unwrap_or_default());
            assert_eq!((k.name, k.effect), (name, effect), "{cmd}");
        }
        assert_eq!(Effect::Secret.describe(), "sends a secret");
        assert_eq!(Effect::ReadOnly.describe(), "read-only");
    }

    #[test]
    fn signatures_challenges_and_generated_keys_are_compared_by_status_and_length() {
        for cmd in ["0084000008", "002A9E9A0401020304", "0046000102080000", "80B4010000"] {
            let c = super::super::unhex(cmd).unwrap_or_default();
            assert!(matches!(classify(&c).compare, Compare::StatusAndLength(_)), "{cmd}");
        }
        let c = super::super::unhex("00B0000010").unwrap_or_default();
        assert_eq!(classify(&c).compare, Compare::Data);
    }

    #[test]
    fn data_field_handles_short_extended_and_truncated_commands() {
        let d = |h: &str| data_field(&super::super::unhex(h).unwrap_or_default()).to_vec();
        assert_eq!(d("00200090083132333435363738"), b"12345678");
        assert_eq!(d("0020009008313233343536373800"), b"12345678");
        assert_eq!(d("002000900000023132"), b"12");
        assert_eq!(d("00B0000010"), b"");
        assert_eq!(d("0020009008313233"), b"123", "a truncated body is still the body");
        assert_eq!(d("00200090"), b"");
        assert_eq!(d("00B00000000100"), b"", "an extended Le is no data");
        assert_eq!(d("00B0000000"), b"", "a short Le of 256 is no data");
        assert_eq!(d("0020009000000831323334353637380000"), b"12345678", "extended case 4");
        assert_eq!(d("002000900000083132"), b"", "a truncated extended body is not guessed");
    }
}
