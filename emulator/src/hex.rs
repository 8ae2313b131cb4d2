//! Hex helpers: byte strings and small integers are written as hex in card images, the way
//! card people read them (`"3F00"`, `"1A"`), never as JSON arrays of numbers.

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Lowercase-insensitive hex decoding with a clear error; whitespace and `:` between digits
/// are ignored.
pub fn decode(s: &str) -> Result<Vec<u8>, String> {
    let separated = s.bytes().any(|b| b.is_ascii_whitespace() || b == b':' || !b.is_ascii());
    let s: std::borrow::Cow<'_, str> = if separated {
        s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect::<String>().into()
    } else {
        s.into()
    };
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(s.len() / 2);
    for pair in bytes.chunks_exact(2) {
        let hi = nibble(pair[0]);
        let lo = nibble(pair[1]);
        match (hi, lo) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => {
                return Err(format!("not a hex digit in {:?}", String::from_utf8_lossy(pair)));
            }
        }
    }
    Ok(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Uppercase hex without separators.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// A byte string stored as hex.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", encode(&self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).map(Bytes).map_err(de::Error::custom)
    }
}

macro_rules! hex_int {
    ($name:ident, $t:ty, $digits:expr) => {
        /// An integer stored as a fixed-width hex string.
        #[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $t);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:0w$X}", self.0, w = $digits)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:0w$X}", self.0, w = $digits)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&format!("{:0w$X}", self.0, w = $digits))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s.len() != $digits {
                    return Err(de::Error::custom(format!("expected {} hex digits, got {s:?}", $digits)));
                }
                <$t>::from_str_radix(&s, 16).map($name).map_err(|_| de::Error::custom(format!("not hex: {s:?}")))
            }
        }
    };
}

hex_int!(Hex8, u8, 2);
hex_int!(Hex16, u16, 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_odd_and_non_hex() {
        assert!(decode("3F0").is_err());
        assert!(decode("3G00").is_err());
        assert_eq!(decode("3f:00"), Ok(vec![0x3F, 0x00]));
        assert_eq!(encode(&[0x3F, 0x00]), "3F00");
    }
}
