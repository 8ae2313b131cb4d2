//! The Italian codice fiscale's check character (DM 23/12/1976), so fixture holders carry
//! well-formed codes.

const ODD: [u8; 36] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23, // A-Z
];

fn index(c: u8) -> Option<usize> {
    match c {
        b'0'..=b'9' => Some(usize::from(c - b'0')),
        b'A'..=b'Z' => Some(10 + usize::from(c - b'A')),
        _ => None,
    }
}

/// The check character of the first 15 characters.
pub fn check_char(first15: &str) -> Option<char> {
    let b = first15.as_bytes();
    if b.len() != 15 {
        return None;
    }
    let mut sum = 0u32;
    for (i, c) in b.iter().enumerate() {
        let idx = index(*c)?;
        sum += if i % 2 == 0 { u32::from(*ODD.get(idx)?) } else { (if idx < 10 { idx } else { idx - 10 }) as u32 };
    }
    Some(char::from(b'A' + (sum % 26) as u8))
}

/// A full code from its first 15 characters.
pub fn complete(first15: &str) -> Option<String> {
    Some(format!("{first15}{}", check_char(first15)?))
}

/// Whether a 16-character code is well formed.
pub fn is_valid(code: &str) -> bool {
    code.len() == 16 && code.get(..15).and_then(check_char).map(|c| code.ends_with(c)) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_check() {
        // Published example codes.
        assert!(is_valid("RSSMRA80A01H501U"));
        assert!(is_valid("MRTMTT25D09F205Z"));
        assert!(!is_valid("RSSMRA80A01H501A"));
    }
}
