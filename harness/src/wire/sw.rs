//! Status words (ISO 7816-4 §5.6) as the host reads them, with the meanings OpenSC gives them
//! (spec/cards.md §1.4).

use std::fmt;

/// A status word SW1 SW2.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sw {
    /// `9000`.
    Ok,
    /// `61xx`: `xx` more bytes wait for GET RESPONSE (`00`: 256 or more).
    MoreData(u8),
    /// `6282`: end of file reached before Le bytes (OpenSC accepts the data read).
    EndOfFile,
    /// `63Cx`: verification failed, `x` tries left.
    TriesLeft(u8),
    /// `6581`: memory failure.
    MemoryFailure,
    /// `6700`.
    WrongLength,
    /// `6982`: security status not satisfied.
    SecurityNotSatisfied,
    /// `6983`: authentication method blocked.
    AuthBlocked,
    /// `6985`.
    ConditionsNotSatisfied,
    /// `6A80`.
    WrongData,
    /// `6A81`.
    FunctionNotSupported,
    /// `6A82`.
    FileNotFound,
    /// `6A83`: ends record loops.
    RecordNotFound,
    /// `6A84`: EEPROM full.
    NotEnoughMemory,
    /// `6A86`.
    WrongP1P2,
    /// `6A88`: PIN, key or data object absent.
    ReferencedDataNotFound,
    /// `6A89`.
    FileExists,
    /// `6Cxx`: resend with Le = `xx`.
    WrongLe(u8),
    /// `6D00`.
    InsNotSupported,
    /// `6E00`.
    ClaNotSupported,
    /// Any other value.
    Other(u16),
}

impl Sw {
    pub const fn from_u16(v: u16) -> Sw {
        let sw2 = (v & 0xFF) as u8;
        match v >> 8 {
            0x61 => return Sw::MoreData(sw2),
            0x6C => return Sw::WrongLe(sw2),
            0x63 if sw2 & 0xF0 == 0xC0 => return Sw::TriesLeft(sw2 & 0x0F),
            _ => {}
        }
        match v {
            0x9000 => Sw::Ok,
            0x6282 => Sw::EndOfFile,
            0x6581 => Sw::MemoryFailure,
            0x6700 => Sw::WrongLength,
            0x6982 => Sw::SecurityNotSatisfied,
            0x6983 => Sw::AuthBlocked,
            0x6985 => Sw::ConditionsNotSatisfied,
            0x6A80 => Sw::WrongData,
            0x6A81 => Sw::FunctionNotSupported,
            0x6A82 => Sw::FileNotFound,
            0x6A83 => Sw::RecordNotFound,
            0x6A84 => Sw::NotEnoughMemory,
            0x6A86 => Sw::WrongP1P2,
            0x6A88 => Sw::ReferencedDataNotFound,
            0x6A89 => Sw::FileExists,
            0x6D00 => Sw::InsNotSupported,
            0x6E00 => Sw::ClaNotSupported,
            other => Sw::Other(other),
        }
    }

    pub const fn to_u16(self) -> u16 {
        match self {
            Sw::Ok => 0x9000,
            Sw::MoreData(n) => 0x6100 | n as u16,
            Sw::EndOfFile => 0x6282,
            Sw::TriesLeft(n) => 0x63C0 | (n & 0x0F) as u16,
            Sw::MemoryFailure => 0x6581,
            Sw::WrongLength => 0x6700,
            Sw::SecurityNotSatisfied => 0x6982,
            Sw::AuthBlocked => 0x6983,
            Sw::ConditionsNotSatisfied => 0x6985,
            Sw::WrongData => 0x6A80,
            Sw::FunctionNotSupported => 0x6A81,
            Sw::FileNotFound => 0x6A82,
            Sw::RecordNotFound => 0x6A83,
            Sw::NotEnoughMemory => 0x6A84,
            Sw::WrongP1P2 => 0x6A86,
            Sw::ReferencedDataNotFound => 0x6A88,
            Sw::FileExists => 0x6A89,
            Sw::WrongLe(n) => 0x6C00 | n as u16,
            Sw::InsNotSupported => 0x6D00,
            Sw::ClaNotSupported => 0x6E00,
            Sw::Other(v) => v,
        }
    }

    pub const fn to_bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }

    /// The status word ending a response (`None` when shorter than two bytes).
    pub fn of_response(response: &[u8]) -> Option<Sw> {
        match *response {
            [.., a, b] => Some(Sw::from_u16(u16::from_be_bytes([a, b]))),
            _ => None,
        }
    }

    /// What the status word means, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            Sw::Ok => "success",
            Sw::MoreData(_) => "more data available (GET RESPONSE)",
            Sw::EndOfFile => "end of file reached before Le bytes",
            Sw::TriesLeft(0) => "verification failed, now blocked",
            Sw::TriesLeft(_) => "verification failed, tries left",
            Sw::MemoryFailure => "memory failure",
            Sw::WrongLength => "wrong length",
            Sw::SecurityNotSatisfied => "security status not satisfied",
            Sw::AuthBlocked => "authentication method blocked",
            Sw::ConditionsNotSatisfied => "conditions of use not satisfied",
            Sw::WrongData => "incorrect data",
            Sw::FunctionNotSupported => "function not supported",
            Sw::FileNotFound => "file or application not found",
            Sw::RecordNotFound => "record not found",
            Sw::NotEnoughMemory => "not enough memory",
            Sw::WrongP1P2 => "incorrect P1-P2",
            Sw::ReferencedDataNotFound => "referenced data not found",
            Sw::FileExists => "file already exists",
            Sw::WrongLe(_) => "wrong Le (exact length in SW2)",
            Sw::InsNotSupported => "instruction not supported",
            Sw::ClaNotSupported => "class not supported",
            Sw::Other(0x6300) => "verification failed",
            Sw::Other(v) if v >> 8 == 0x69 => "command not allowed",
            Sw::Other(v) if v >> 8 == 0x6A => "wrong parameters",
            Sw::Other(_) => "unrecognised status word",
        }
    }
}

impl fmt::Display for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.to_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for v in 0..=u16::MAX {
            let sw = Sw::from_u16(v);
            // 63Cx keeps its low nibble only; everything else is exact.
            assert_eq!(sw.to_u16(), v, "{v:04X}");
        }
        assert_eq!(Sw::from_u16(0x63C2), Sw::TriesLeft(2));
        assert_eq!(Sw::of_response(&[0x12, 0x69, 0x83]), Some(Sw::AuthBlocked));
        assert_eq!(Sw::of_response(&[0x90]), None);
    }
}
