//! Status words (ISO 7816-4 §5.6) as the cards answer them.
//!
//! A documented enum for every status word a profile uses, with [`Sw::Raw`] as the escape
//! hatch for anything else a profile may need. The meanings OpenSC gives them are in
//! spec/cards.md §1.4.

use core::fmt;

/// A status word (SW1 SW2).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sw {
    /// `9000` normal processing.
    Ok,
    /// `61xx` more response bytes available: fetch them with GET RESPONSE (`xx` = 0 means 256+).
    MoreData(u8),
    /// `6282` end of file reached before Le bytes were read.
    EndOfFile,
    /// `63Cx` verification failed, `x` tries left (`63C0`: the attempt that blocked it).
    TriesLeft(u8),
    /// `6581` memory failure (an EEPROM write failed).
    MemoryFailure,
    /// `6700` wrong length (Lc or Le).
    WrongLength,
    /// `6881` logical channel not supported.
    ChannelNotSupported,
    /// `6882` secure messaging not supported.
    SecureMessagingNotSupported,
    /// `6883` last command of the chain expected.
    LastCommandExpected,
    /// `6981` command incompatible with the file structure.
    IncompatibleFile,
    /// `6982` security status not satisfied (PIN not verified).
    SecurityNotSatisfied,
    /// `6983` authentication method blocked (PIN or PUK blocked).
    AuthBlocked,
    /// `6985` conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// `6986` command not allowed (no current EF).
    NoCurrentEf,
    /// `6A80` incorrect parameters in the data field.
    WrongData,
    /// `6A81` function not supported.
    FunctionNotSupported,
    /// `6A82` file or application not found.
    FileNotFound,
    /// `6A83` record not found.
    RecordNotFound,
    /// `6A84` not enough memory space in the file / EEPROM.
    NotEnoughMemory,
    /// `6A86` incorrect parameters P1-P2.
    WrongP1P2,
    /// `6A88` referenced data (PIN, key, GET DATA tag) not found.
    ReferencedDataNotFound,
    /// `6A89` file already exists.
    FileExists,
    /// `6B00` wrong parameters: offset outside the EF.
    OffsetOutsideFile,
    /// `6Cxx` wrong Le: the exact length is `xx`.
    WrongLe(u8),
    /// `6D00` instruction not supported.
    InsNotSupported,
    /// `6E00` class not supported.
    ClaNotSupported,
    /// `6F00` no precise diagnosis.
    Unknown,
    /// Any other status word a profile needs.
    Raw(u16),
}

impl Sw {
    /// The two-byte value.
    pub const fn to_u16(self) -> u16 {
        match self {
            Sw::Ok => 0x9000,
            Sw::MoreData(n) => 0x6100 | n as u16,
            Sw::EndOfFile => 0x6282,
            Sw::TriesLeft(n) => 0x63C0 | (n & 0x0F) as u16,
            Sw::MemoryFailure => 0x6581,
            Sw::WrongLength => 0x6700,
            Sw::ChannelNotSupported => 0x6881,
            Sw::SecureMessagingNotSupported => 0x6882,
            Sw::LastCommandExpected => 0x6883,
            Sw::IncompatibleFile => 0x6981,
            Sw::SecurityNotSatisfied => 0x6982,
            Sw::AuthBlocked => 0x6983,
            Sw::ConditionsNotSatisfied => 0x6985,
            Sw::NoCurrentEf => 0x6986,
            Sw::WrongData => 0x6A80,
            Sw::FunctionNotSupported => 0x6A81,
            Sw::FileNotFound => 0x6A82,
            Sw::RecordNotFound => 0x6A83,
            Sw::NotEnoughMemory => 0x6A84,
            Sw::WrongP1P2 => 0x6A86,
            Sw::ReferencedDataNotFound => 0x6A88,
            Sw::FileExists => 0x6A89,
            Sw::OffsetOutsideFile => 0x6B00,
            Sw::WrongLe(n) => 0x6C00 | n as u16,
            Sw::InsNotSupported => 0x6D00,
            Sw::ClaNotSupported => 0x6E00,
            Sw::Unknown => 0x6F00,
            Sw::Raw(v) => v,
        }
    }

    /// The two bytes SW1 SW2.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }

    /// Decodes a status word into its documented variant, or [`Sw::Raw`].
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
            0x6881 => Sw::ChannelNotSupported,
            0x6882 => Sw::SecureMessagingNotSupported,
            0x6883 => Sw::LastCommandExpected,
            0x6981 => Sw::IncompatibleFile,
            0x6982 => Sw::SecurityNotSatisfied,
            0x6983 => Sw::AuthBlocked,
            0x6985 => Sw::ConditionsNotSatisfied,
            0x6986 => Sw::NoCurrentEf,
            0x6A80 => Sw::WrongData,
            0x6A81 => Sw::FunctionNotSupported,
            0x6A82 => Sw::FileNotFound,
            0x6A83 => Sw::RecordNotFound,
            0x6A84 => Sw::NotEnoughMemory,
            0x6A86 => Sw::WrongP1P2,
            0x6A88 => Sw::ReferencedDataNotFound,
            0x6A89 => Sw::FileExists,
            0x6B00 => Sw::OffsetOutsideFile,
            0x6D00 => Sw::InsNotSupported,
            0x6E00 => Sw::ClaNotSupported,
            0x6F00 => Sw::Unknown,
            other => Sw::Raw(other),
        }
    }

    /// A short English meaning, for the command line and transcripts.
    pub fn meaning(self) -> &'static str {
        match self {
            Sw::Ok => "success",
            Sw::MoreData(_) => "more data available (GET RESPONSE)",
            Sw::EndOfFile => "end of file reached before Le bytes",
            Sw::TriesLeft(0) => "verification failed, now blocked",
            Sw::TriesLeft(_) => "verification failed, tries left",
            Sw::MemoryFailure => "memory failure",
            Sw::WrongLength => "wrong length",
            Sw::ChannelNotSupported => "logical channel not supported",
            Sw::SecureMessagingNotSupported => "secure messaging not supported",
            Sw::LastCommandExpected => "last command of the chain expected",
            Sw::IncompatibleFile => "command incompatible with file structure",
            Sw::SecurityNotSatisfied => "security status not satisfied",
            Sw::AuthBlocked => "authentication method blocked",
            Sw::ConditionsNotSatisfied => "conditions of use not satisfied",
            Sw::NoCurrentEf => "command not allowed (no current EF)",
            Sw::WrongData => "incorrect data",
            Sw::FunctionNotSupported => "function not supported",
            Sw::FileNotFound => "file or application not found",
            Sw::RecordNotFound => "record not found",
            Sw::NotEnoughMemory => "not enough memory",
            Sw::WrongP1P2 => "incorrect P1-P2",
            Sw::ReferencedDataNotFound => "referenced data not found",
            Sw::FileExists => "file already exists",
            Sw::OffsetOutsideFile => "offset outside the file",
            Sw::WrongLe(_) => "wrong Le (exact length in SW2)",
            Sw::InsNotSupported => "instruction not supported",
            Sw::ClaNotSupported => "class not supported",
            Sw::Unknown => "no precise diagnosis",
            Sw::Raw(_) => "unrecognised status word",
        }
    }
}

/// The one conversion of "it does not fit" into a status word: a full bounded buffer
/// (`heapless`), a TLV that overflows its writer (`iso7816`) or a length that does not fit its
/// field are the card's own limits, answered `6F00` (no precise diagnosis), never a panic.
impl From<heapless::CapacityError> for Sw {
    fn from(_: heapless::CapacityError) -> Sw {
        Sw::Unknown
    }
}

impl From<iso7816::command::BufferFull> for Sw {
    fn from(_: iso7816::command::BufferFull) -> Sw {
        Sw::Unknown
    }
}

impl From<core::num::TryFromIntError> for Sw {
    fn from(_: core::num::TryFromIntError) -> Sw {
        Sw::Unknown
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
    fn every_status_word_round_trips_through_u16() {
        for v in 0u16..=0xFFFF {
            assert_eq!(Sw::from_u16(v).to_u16(), v, "{v:04X}");
        }
    }
}
