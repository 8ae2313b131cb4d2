//! Command APDUs as bytes: the seven ISO 7816-3 §12.1 length cases, short and extended,
//! parsed strictly on top of the `iso7816` crate's decoder.
//!
//! T=0 quirks (spec/cards.md §1.1) need no special casing here: a T=0 case-4 command arrives
//! without Le and parses as case 3; a T=0 case-1 command arrives with P3 = `00` and parses as
//! case 2 with Le = 256. Handlers therefore decide from INS/P1/P2 whether they return data,
//! never from the presence of Le.

use crate::sw::Sw;
use iso7816::command::{BufferFull, CommandView, DataStream, FromSliceError, Writer};
use iso7816::tlv::{Tag, Tlv};

/// Largest command data field the card accepts, after command chaining (`CLA|10`) is
/// reassembled. Sized for the largest object a flow writes in one go (a certificate chunk, a
/// 4096-bit cryptogram) and well under vpcd's 65 535-byte frame (pcsc.md §3).
pub const MAX_COMMAND_DATA: usize = 4096;

/// Largest response data field the card produces for one command. A longer response is
/// delivered in pieces with `61xx` + GET RESPONSE. Keeps every R-APDU far below vpcd's
/// 65 535-byte limit, whose overflow wedges pcscd (pcsc.md §3 bug 1).
pub const MAX_RESPONSE_DATA: usize = 4096;

/// The ISO 7816-3 length case of a command.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Case {
    /// No data, no Le.
    One,
    /// Le only (short).
    TwoShort,
    /// Lc and data (short).
    ThreeShort,
    /// Lc, data and Le (short).
    FourShort,
    /// Le only (extended).
    TwoExtended,
    /// Lc and data (extended).
    ThreeExtended,
    /// Lc, data and Le (extended).
    FourExtended,
}

/// A parsed command APDU borrowing its data.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Apdu<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Ne, the expected response length: `None` when the Le field is absent; 256 for a short
    /// `00`, 65 536 for an extended `0000`.
    pub le: Option<usize>,
    /// Whether the length fields were extended.
    pub extended: bool,
}

impl<'a> Apdu<'a> {
    /// Parses a command APDU. Errors are the status word a card answers:
    /// `6700` for any malformed length, `6E00` for the invalid class `FF`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Sw> {
        let view = CommandView::try_from(bytes).map_err(|e| match e {
            FromSliceError::InvalidClass => Sw::ClaNotSupported,
            FromSliceError::TooShort
            | FromSliceError::TooLong
            | FromSliceError::InvalidFirstBodyByteForExtended
            | FromSliceError::InvalidSliceLength => Sw::WrongLength,
        })?;
        let data = view.data();
        let body_len = bytes.len().saturating_sub(4);
        // ISO 7816-3 §12.1.3: an extended Lc field is absent when Nc = 0, so `00 0000 Le Le`
        // (case 4E with an empty body) is malformed. The crate accepts it; we do not.
        if view.extended && data.is_empty() && body_len != 3 {
            return Err(Sw::WrongLength);
        }
        let le = match view.expected() {
            0 => None,
            n => Some(n),
        };
        let [cla, ins, p1, p2, ..] = *bytes else {
            return Err(Sw::WrongLength);
        };
        Ok(Apdu { cla, ins, p1, p2, data, le, extended: view.extended })
    }

    /// The length case.
    pub fn case(&self) -> Case {
        match (self.data.is_empty(), self.le.is_some(), self.extended) {
            (true, false, _) => Case::One,
            (true, true, false) => Case::TwoShort,
            (false, false, false) => Case::ThreeShort,
            (false, true, false) => Case::FourShort,
            (true, true, true) => Case::TwoExtended,
            (false, false, true) => Case::ThreeExtended,
            (false, true, true) => Case::FourExtended,
        }
    }

    /// The class byte split by the ISO rule ([`Class::iso`]): base class and chaining.
    pub fn base_cla(&self) -> u8 {
        Class::split(self.cla).base
    }

    /// Whether this is a non-final block of a command chain by the ISO rule (`CLA|10`,
    /// ISO 7816-4 §5.1.1.1). The card asks its profile ([`crate::profile::Profile::class`]).
    pub fn chained(&self) -> bool {
        Class::split(self.cla).chained
    }

    /// Serialises the command back to bytes, into any byte sink. The encoding is the one
    /// [`Apdu::parse`] accepted: `parse(b).encode()` == `b` for every accepted `b`.
    pub fn encode(&self, out: &mut impl Extend<u8>) {
        out.extend([self.cla, self.ins, self.p1, self.p2]);
        let nc = self.data.len();
        if self.extended {
            if nc > 0 {
                out.extend([0, (nc >> 8) as u8, nc as u8]);
                out.extend(self.data.iter().copied());
            }
            if let Some(le) = self.le {
                let v = if le >= 65_536 { 0 } else { le };
                if nc == 0 {
                    out.extend([0]);
                }
                out.extend([(v >> 8) as u8, v as u8]);
            }
        } else {
            if nc > 0 {
                out.extend([nc as u8]);
                out.extend(self.data.iter().copied());
            }
            if let Some(le) = self.le {
                out.extend([if le >= 256 { 0 } else { le as u8 }]);
            }
        }
    }
}

/// A class byte as the card reads it: the base class and whether the command is a non-final
/// block of a chain.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// The class without the chaining bit.
    pub base: u8,
    /// A non-final block of a command chain (`CLA|10`, ISO 7816-4 §5.1.1.1).
    pub chained: bool,
}

impl Class {
    /// ISO 7816-4 §5.4.1 without judging the class: b5 is the chaining bit in the first
    /// interindustry range (`0X`/`1X`) and in its GlobalPlatform-style proprietary mirror
    /// (`8X`/`9X`); other proprietary classes (the CNS's `B0`) are whole class bytes.
    pub const fn split(cla: u8) -> Class {
        if cla & 0x60 == 0 {
            Class { base: cla & !0x10, chained: cla & 0x10 != 0 }
        } else {
            Class { base: cla, chained: false }
        }
    }

    /// The ISO reading of a class byte: in the first interindustry range, secure messaging
    /// (b4-b3) answers `6882` and a logical channel other than 0 (b2-b1) `6881`, as none of
    /// these cards has either; then [`Class::split`]. Whether the base class is one the card
    /// knows is the profile's call.
    pub const fn iso(cla: u8) -> Result<Class, Sw> {
        if cla & 0x80 == 0 && cla & 0x60 == 0 {
            if cla & 0x0C != 0 {
                return Err(Sw::SecureMessagingNotSupported);
            }
            if cla & 0x03 != 0 {
                return Err(Sw::ChannelNotSupported);
            }
        }
        Ok(Class::split(cla))
    }
}

/// The response data of the command being executed, bounded by [`MAX_RESPONSE_DATA`]. A reply
/// that does not fit becomes a status word (`6F00`: the card cannot hold its own answer), never
/// a panic. It is an `iso7816` [`Writer`], so TLVs are written into it with `iso7816::tlv`.
#[derive(Clone, Debug, Default)]
pub struct Reply(heapless::Vec<u8, MAX_RESPONSE_DATA>);

impl Reply {
    pub const fn new() -> Self {
        Reply(heapless::Vec::new())
    }

    /// Appends bytes; a full buffer is `6F00`.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Sw> {
        Ok(self.0.extend_from_slice(data)?)
    }

    /// Appends a BER-TLV (`iso7816::tlv`) whose value is any data source.
    pub fn tlv<S: DataStream<Self>>(&mut self, tag: Tag, value: S) -> Result<(), Sw> {
        Ok(Tlv::new(tag, value).to_writer(self)?)
    }

    /// `len` bytes, filled by `fill` (GET CHALLENGE); `6700` when more than the buffer holds.
    pub fn fill(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), Sw> {
        let start = self.0.len();
        self.0.resize(start + len, 0).map_err(|_| Sw::WrongLength)?;
        fill(self.0.get_mut(start..).unwrap_or_default());
        Ok(())
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl Writer for Reply {
    type Error = BufferFull;
    fn write(&mut self, data: &[u8]) -> Result<usize, BufferFull> {
        self.0.write(data)
    }
}

/// Whether a command carries a PIN, PUK, unblock code or key material in its data: VERIFY,
/// CHANGE REFERENCE DATA, RESET RETRY COUNTER (and Oberthur CREATE PIN, Incrypto34 CHANGE KEY
/// DATA, INS 24 too), PUT DATA (Incrypto34 OCI: PIN values, key components). Logs and
/// transcripts show such data as `**`.
pub fn carries_secret(command: &[u8]) -> bool {
    matches!(command, [_, 0x20 | 0x24 | 0x2C | 0xDA, ..])
}

/// A command as hex for logs, with any secret data replaced: the header and length fields
/// stay, the data bytes become `**` each.
pub fn redacted_hex(command: &[u8]) -> String {
    if !carries_secret(command) {
        return crate::hex::encode(command);
    }
    match Apdu::parse(command) {
        Ok(a) if !a.data.is_empty() => {
            let mut masked = a;
            let zeros = vec![0u8; a.data.len()];
            masked.data = &zeros;
            let mut bytes = Vec::new();
            masked.encode(&mut bytes);
            let hex = crate::hex::encode(&bytes);
            // Header + Lc digits, then the data as **, then Le.
            let lc_len = if a.extended { 3 } else { 1 };
            let head = 2 * (4 + lc_len);
            let data_end = head + 2 * a.data.len();
            format!("{}{}{}", &hex[..head], "**".repeat(a.data.len()), &hex[data_end..])
        }
        Ok(_) => crate::hex::encode(command),
        // Unparsable: keep only the header.
        Err(_) => format!(
            "{}{}",
            crate::hex::encode(command.get(..4).unwrap_or(command)),
            "**".repeat(command.len().saturating_sub(4))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
    }

    #[test]
    fn parses_all_seven_cases() {
        let cases = [
            ("00A40000", Case::One, 0, None),
            ("00B0000010", Case::TwoShort, 0, Some(16)),
            ("00B0000000", Case::TwoShort, 0, Some(256)),
            ("00A40000023F00", Case::ThreeShort, 2, None),
            ("00A40000023F0000", Case::FourShort, 2, Some(256)),
            ("00B00000000100", Case::TwoExtended, 0, Some(256)),
            ("00B00000000000", Case::TwoExtended, 0, Some(65536)),
            ("00D6000000000201020000", Case::FourExtended, 2, Some(65536)),
            ("00D600000000020102", Case::ThreeExtended, 2, None),
        ];
        for (h, case, nc, le) in cases {
            let bytes = hex(h);
            let apdu = Apdu::parse(&bytes).unwrap_or_else(|sw| panic!("{h}: {sw}"));
            assert_eq!(apdu.case(), case, "{h}");
            assert_eq!(apdu.data.len(), nc, "{h}");
            assert_eq!(apdu.le, le, "{h}");
            let mut back = Vec::new();
            apdu.encode(&mut back);
            assert_eq!(back, bytes, "{h}");
        }
    }

    #[test]
    fn secrets_are_redacted_from_logged_commands() {
        assert_eq!(redacted_hex(&hex("00200090083132333435363738")), "0020009008****************");
        assert_eq!(redacted_hex(&hex("0020009000")), "0020009000");
        assert_eq!(redacted_hex(&hex("00A4000C023F00")), "00A4000C023F00");
        assert_eq!(redacted_hex(&hex("002C009A1031323334353637383132333435363738")).matches("**").count(), 16);
        assert_eq!(redacted_hex(&hex("002400010131")), "0024000101**");
    }

    #[test]
    fn t0_case1_with_p3_zero_is_case2_le256() {
        let bytes = hex("0020008100");
        let apdu = Apdu::parse(&bytes).unwrap_or_else(|sw| panic!("{sw}"));
        assert!(apdu.data.is_empty());
        assert_eq!(apdu.le, Some(256));
    }

    #[test]
    fn malformed_lengths_answer_6700_and_class_ff_6e00() {
        for h in ["00A400", "00A40000030102", "00A40000023F", "00A400000201", "00D600000000000000"] {
            assert_eq!(Apdu::parse(&hex(h)), Err(Sw::WrongLength), "{h}");
        }
        assert_eq!(Apdu::parse(&hex("FFA40000")), Err(Sw::ClaNotSupported));
    }
}
