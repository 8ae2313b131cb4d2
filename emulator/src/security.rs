//! PIN and PUK objects: reference, padding, length rules, retry counters, and the volatile
//! "verified" state (spec/cards.md §2.6, §3.6; spec/domain.md §1.3, §6.2).

use crate::hex::{Hex8, Hex16};
use crate::sw::Sw;
use serde::{Deserialize, Serialize};

/// Most PIN objects a card holds (the verified set is a bitmask of this width).
pub const MAX_PINS: usize = 16;

/// Most tries a PIN may have: `63Cx` reports at most 15 (ISO 7816-4 §5.6).
pub const MAX_TRIES: u8 = 15;

/// What a secret is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinRole {
    /// The holder's PIN.
    User,
    /// An unblocking code (PUK).
    Puk,
    /// The security officer's PIN.
    So,
}

/// Characters a new value may use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    /// `0`..`9` only (Aruba: "Usa solo cifre da 0 a 9").
    Digits,
    /// Printable ASCII.
    Ascii,
}

/// One PIN or PUK object as the card stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinObject {
    /// Canonical reference (CNS `10`/`11`/`1A`/`1B`, Oberthur `81`/`84`/`04`).
    pub reference: Hex8,
    pub label: String,
    pub role: PinRole,
    /// The DF the object lives in (path from the MF). On the CNS, a reference with bit 7 set
    /// is searched from the current DF up to the MF; without it only the MF is searched.
    pub df: Vec<Hex16>,
    /// The secret, unpadded.
    pub value: String,
    pub charset: Charset,
    pub min_len: u8,
    pub max_len: u8,
    /// Length the host pads the value to, with `pad_byte`.
    pub pad_len: u8,
    pub pad_byte: Hex8,
    pub max_tries: u8,
    pub tries_left: u8,
    /// The PUK that unblocks this PIN, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unblocked_by: Option<Hex8>,
}

impl PinObject {
    pub fn blocked(&self) -> bool {
        self.tries_left == 0
    }

    /// Whether `padded` is this object's value padded to `pad_len` with `pad_byte`.
    /// Compares every byte whatever the outcome.
    pub fn matches_padded(&self, padded: &[u8]) -> bool {
        if padded.len() != usize::from(self.pad_len) {
            return false;
        }
        let value = self.value.as_bytes();
        let mut diff = 0u8;
        for (i, b) in padded.iter().enumerate() {
            let want = value.get(i).copied().unwrap_or(self.pad_byte.0);
            diff |= b ^ want;
        }
        diff == 0 && value.len() <= padded.len()
    }

    /// Strips the padding of a proposed new value and checks it against the object's rules;
    /// `6A80` when it breaks them.
    pub fn check_new_value<'a>(&self, padded: &'a [u8]) -> Result<&'a str, Sw> {
        if padded.len() != usize::from(self.pad_len) {
            return Err(Sw::WrongLength);
        }
        let end = padded.iter().rposition(|b| *b != self.pad_byte.0).map_or(0, |i| i + 1);
        let value = padded.get(..end).ok_or(Sw::WrongData)?;
        let ok_chars = match self.charset {
            Charset::Digits => value.iter().all(u8::is_ascii_digit),
            Charset::Ascii => value.iter().all(|b| (0x20..0x7F).contains(b)),
        };
        let len_ok = (usize::from(self.min_len)..=usize::from(self.max_len)).contains(&value.len());
        if !ok_chars || !len_ok {
            return Err(Sw::WrongData);
        }
        core::str::from_utf8(value).map_err(|_| Sw::WrongData)
    }

    /// Records a failed attempt: `63Cx` with the tries left (`63C0` on the attempt that
    /// blocks it).
    pub fn fail(&mut self) -> Sw {
        self.tries_left = self.tries_left.saturating_sub(1);
        Sw::TriesLeft(self.tries_left)
    }

    /// Records a successful presentation.
    pub fn succeed(&mut self) {
        self.tries_left = self.max_tries;
    }

    pub fn home(&self) -> impl Iterator<Item = u16> + '_ {
        self.df.iter().map(|h| h.0)
    }
}

/// Which PIN objects are verified in the current session: one bit per index in the card's
/// PIN list. Volatile; cleared by power events.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified(u16);

impl Verified {
    pub fn set(&mut self, index: usize) {
        if index < MAX_PINS {
            self.0 |= 1 << index;
        }
    }
    pub fn clear(&mut self, index: usize) {
        if index < MAX_PINS {
            self.0 &= !(1 << index);
        }
    }
    pub fn get(&self, index: usize) -> bool {
        index < MAX_PINS && self.0 & (1 << index) != 0
    }
    pub fn clear_all(&mut self) {
        self.0 = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> PinObject {
        PinObject {
            reference: Hex8(0x10),
            label: "PIN CNS0".into(),
            role: PinRole::User,
            df: vec![Hex16(0x3F00)],
            value: "12345678".into(),
            charset: Charset::Digits,
            min_len: 5,
            max_len: 8,
            pad_len: 8,
            pad_byte: Hex8(0xFF),
            max_tries: 3,
            tries_left: 3,
            unblocked_by: Some(Hex8(0x11)),
        }
    }

    #[test]
    fn padded_comparison_and_new_value_rules() {
        let mut p = pin();
        assert!(p.matches_padded(b"12345678"));
        assert!(!p.matches_padded(b"1234567"));
        p.value = "12345".into();
        assert!(p.matches_padded(&[b'1', b'2', b'3', b'4', b'5', 0xFF, 0xFF, 0xFF]));
        assert!(!p.matches_padded(&[b'1', b'2', b'3', b'4', b'5', 0xFF, 0xFF, 0x00]));
        assert_eq!(p.check_new_value(&[b'9'; 8]), Ok("99999999"));
        assert_eq!(p.check_new_value(&[b'1', b'2', b'3', b'4', 0xFF, 0xFF, 0xFF, 0xFF]), Err(Sw::WrongData));
        assert_eq!(p.check_new_value(b"1234567a"), Err(Sw::WrongData));
        assert_eq!(p.fail(), Sw::TriesLeft(2));
    }
}
