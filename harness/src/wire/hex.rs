//! Hex as card people write it: uppercase, no separators; spaces and colons accepted on input.

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

/// Why a string is not hex.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("odd number of hex digits ({0})")]
    OddDigits(usize),
    #[error("not a hex digit in {0:?}")]
    NotHex(String),
}

/// Decodes hex (either case; whitespace and `:` ignored) with a clear error.
pub fn decode(s: &str) -> Result<Vec<u8>, HexError> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b':').collect();
    if !digits.len().is_multiple_of(2) {
        return Err(HexError::OddDigits(digits.len()));
    }
    digits
        .chunks_exact(2)
        .map(|pair| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(HexError::NotHex(String::from_utf8_lossy(pair).into_owned())),
        })
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        assert_eq!(encode(&[0x00, 0xA4, 0x3F, 0xff]), "00A43FFF");
        assert_eq!(decode("00a4 3f:FF").unwrap(), vec![0x00, 0xA4, 0x3F, 0xFF]);
        assert!(decode("0").unwrap_err().to_string().contains("odd"));
        assert!(decode("zz").unwrap_err().to_string().contains("not a hex digit"));
    }
}
