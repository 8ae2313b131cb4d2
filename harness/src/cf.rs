//! The Italian codice fiscale (DM 23/12/1976): its first 15 characters from a holder's names,
//! birth date, sex and place, and its check character, so issued holders carry well-formed
//! codes that agree with their names.

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

/// The letters of a name, upper case, accents dropped (À → A …); other characters ignored.
fn letters(name: &str) -> Vec<u8> {
    name.chars()
        .filter_map(|c| match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => Some(c as u8),
            'à' | 'á' | 'À' | 'Á' => Some(b'A'),
            'è' | 'é' | 'È' | 'É' => Some(b'E'),
            'ì' | 'í' | 'Ì' | 'Í' => Some(b'I'),
            'ò' | 'ó' | 'Ò' | 'Ó' => Some(b'O'),
            'ù' | 'ú' | 'Ù' | 'Ú' => Some(b'U'),
            _ => None,
        })
        .collect()
}

/// Three letters of a surname or a first name: its consonants, then its vowels, then `X`. A
/// first name with four or more consonants gives its first, third and fourth.
fn three(name: &str, first_name: bool) -> String {
    let l = letters(name);
    let vowel = |c: &u8| b"AEIOU".contains(c);
    let consonants: Vec<u8> = l.iter().copied().filter(|c| !vowel(c)).collect();
    if first_name && consonants.len() >= 4 {
        return [consonants[0], consonants[2], consonants[3]].iter().map(|&c| char::from(c)).collect();
    }
    consonants
        .iter()
        .chain(l.iter().filter(|c| vowel(c)))
        .chain(b"XXX".iter())
        .take(3)
        .map(|&c| char::from(c))
        .collect()
}

/// The first 15 characters of a codice fiscale: surname, first name, birth year, month letter,
/// day (plus 40 for a woman), and the place's cadastral code (`H501`: Rome).
pub fn first15(last_name: &str, first_name: &str, birth: crate::dates::Date, sex: char, place: &str) -> String {
    const MONTHS: &[u8; 12] = b"ABCDEHLMPRST";
    let month = MONTHS.get(usize::from(birth.month).wrapping_sub(1)).map_or('X', |&m| char::from(m));
    let day = birth.day + if sex.eq_ignore_ascii_case(&'F') { 40 } else { 0 };
    format!("{}{}{:02}{month}{day:02}{place}", three(last_name, false), three(first_name, true), birth.year % 100)
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

    #[test]
    fn the_first_15_characters_follow_from_names_birth_sex_and_place() {
        use crate::dates::Date;
        assert_eq!(first15("Rossi", "Mario", Date::new(1980, 1, 1), 'M', "H501"), "RSSMRA80A01H501");
        assert_eq!(first15("Moretti", "Matteo", Date::new(1925, 4, 9), 'M', "F205"), "MRTMTT25D09F205");
        // Four consonants in a first name: the first, third and fourth.
        assert_eq!(first15("Bianchi", "Gianfranco", Date::new(1975, 12, 31), 'M', "H501"), "BNCGFR75T31H501");
        // Short names are padded with their vowels, then X; a woman's day is plus 40.
        assert_eq!(first15("Fo", "Ida", Date::new(1990, 6, 5), 'F', "H501"), "FOXDIA90H45H501");
        assert_eq!(first15("D'Amico", "Nicolò", Date::new(2000, 2, 29), 'M', "H501"), "DMCNCL00B29H501");
    }
}
