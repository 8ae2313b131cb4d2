//! The secrets a flow was given, checked against the card's rules before anything is sent.
//!
//! A PIN that no card of the profile could hold (13 digits on a CNS, letters where the card
//! takes digits) is a typo, and sending it would spend a try of someone's qualified
//! signature: every flow checks every secret it was given in its first step,
//! `SecretsChecked`, before the first APDU. The rules depend only on the profile, which the
//! ATR names, so the command line checks them before it even opens the card's client
//! ([`check_for_atr`]; exit 2) and the flows check them again in their first step
//! ([`step`]; refused with `NotDigits`, `BadLength` or `Mismatch`).
//!
//! The values never appear in a message: only their length and what is wrong with them.

use super::{Reason, Runner, Stop, refuse};
use crate::wire::Profile;

/// Which secret of the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The current PIN (also the default PIN 12345 of a reset).
    Pin,
    /// The current PUK.
    Puk,
    NewPin,
    NewPuk,
}

impl Field {
    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Field::Pin => "PIN",
            Field::Puk => "PUK",
            Field::NewPin => "new PIN",
            Field::NewPuk => "new PUK",
        }
    }
}

/// What a card takes for one secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub min: usize,
    pub max: usize,
    /// Digits only; otherwise printable ASCII.
    pub digits_only: bool,
}

impl Rule {
    fn what(self) -> &'static str {
        if self.digits_only { "digits" } else { "printable characters" }
    }

    fn describe(self) -> String {
        if self.min == self.max {
            format!("{} {}", self.min, self.what())
        } else {
            format!("{} to {} {}", self.min, self.max, self.what())
        }
    }
}

/// The rule of a secret on a profile: what its PIN objects store (spec/cards.md §2.6, §3.4:
/// CNS 5–8 digits padded to 8; Oberthur AWP up to 64 characters; Incrypto34 4–8 digits), and for new values what
/// Aruba Sign accepts (digits only; a PUK of at least 8 digits, spec/domain.md §1.3, §4).
/// A profile the harness gains must say its rule here.
pub fn rule(profile: Profile, field: Field) -> Rule {
    match (profile, field) {
        (Profile::Cns, Field::Pin | Field::Puk | Field::NewPin) => Rule { min: 5, max: 8, digits_only: true },
        (Profile::Cns, Field::NewPuk) => Rule { min: 8, max: 8, digits_only: true },
        (Profile::Oberthur, Field::Pin | Field::Puk) => Rule { min: 4, max: 64, digits_only: false },
        (Profile::Oberthur, Field::NewPin) => Rule { min: 4, max: 64, digits_only: true },
        (Profile::Oberthur, Field::NewPuk) => Rule { min: 8, max: 64, digits_only: true },
        // incrypto34.profile: ascii-numeric PINs and PUKs of 4 to 8, padded with 00 to 8
        // (spec/cards.md §4.2, §4.3).
        (Profile::Incrypto34, _) => Rule { min: 4, max: 8, digits_only: true },
    }
}

/// One secret given to a flow; new ones with the repetition the user typed.
#[derive(Clone, Copy, Debug)]
pub struct Given<'a> {
    pub field: Field,
    pub value: &'a str,
    pub repeat: Option<&'a str>,
}

impl<'a> Given<'a> {
    /// A current PIN or PUK.
    pub fn current(field: Field, value: &'a str) -> Self {
        Given { field, value, repeat: None }
    }

    /// A new PIN or PUK and its repetition.
    pub fn new(field: Field, value: &'a str, repeat: &'a str) -> Self {
        Given { field, value, repeat: Some(repeat) }
    }
}

/// Checks every secret given against the profile's rules: `Mismatch` (a new secret and its
/// repetition differ), `NotDigits` (characters the card does not take), `BadLength`. On
/// success, one line saying what was checked (lengths only).
pub fn check(profile: Profile, given: &[Given<'_>]) -> Result<String, Stop> {
    let mut seen = vec![];
    for g in given {
        let name = g.field.name();
        let rule = rule(profile, g.field);
        let card = with_article(&profile.name().to_uppercase());
        if g.repeat.is_some_and(|r| r != g.value) {
            return Err(refuse(Reason::Mismatch, format!("the {name} and its repetition differ")));
        }
        let chars_ok = if rule.digits_only {
            g.value.bytes().all(|b| b.is_ascii_digit())
        } else {
            g.value.bytes().all(|b| (0x20..0x7F).contains(&b))
        };
        if g.value.is_empty() {
            return Err(refuse(
                Reason::BadLength,
                format!("the {name} is empty; {card} card takes {}", rule.describe()),
            ));
        }
        if !chars_ok {
            return Err(refuse(
                Reason::NotDigits,
                format!("the {name} has characters other than {}; {card} card takes {}", rule.what(), rule.describe()),
            ));
        }
        let n = g.value.len();
        if !(rule.min..=rule.max).contains(&n) {
            return Err(refuse(
                Reason::BadLength,
                format!("the {name} has {n} {}; {card} card takes {}", rule.what(), rule.describe()),
            ));
        }
        seen.push(format!("{name} {n} {}", rule.what()));
    }
    Ok(format!("{} (the rules of {} card)", seen.join(", "), with_article(profile.name())))
}

/// "a CNS", "an OBERTHUR": the article a profile's name takes.
fn with_article(name: &str) -> String {
    let an = name.chars().next().is_some_and(|c| "AEIOUaeiou".contains(c));
    format!("{} {name}", if an { "an" } else { "a" })
}

/// [`check`] for the card with this ATR, before any client or APDU (the command line's
/// check). A card the harness does not recognise is not checked here: its flow fails when
/// the client opens.
pub fn check_for_atr(atr: &[u8], given: &[Given<'_>]) -> Result<(), Stop> {
    match crate::wire::atr::recognise(atr).profile {
        Some(profile) => check(profile, given).map(|_| ()),
        None => Ok(()),
    }
}

/// The first step of a flow given secrets: `SecretsChecked` (no APDU), refused as
/// [`check`] says. Nothing happens when no secret was given.
pub fn step(r: &mut Runner<'_>, given: &[Given<'_>]) -> Result<(), Stop> {
    if given.is_empty() {
        return Ok(());
    }
    let profile = r.client.profile();
    r.step("SecretsChecked", |_, _| check(profile, given).map(|d| ((), d)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reason(r: Result<String, Stop>) -> Reason {
        match r {
            Err(Stop::Refused { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cns_takes_5_to_8_digits_and_oberthur_up_to_64_characters() {
        let pin = |p, v| check(p, &[Given::current(Field::Pin, v)]);
        assert!(pin(Profile::Cns, "12345").is_ok() && pin(Profile::Cns, "12345678").is_ok());
        assert_eq!(reason(pin(Profile::Cns, "1234567890123")), Reason::BadLength);
        assert_eq!(reason(pin(Profile::Cns, "1234")), Reason::BadLength);
        assert_eq!(reason(pin(Profile::Cns, "")), Reason::BadLength);
        assert_eq!(reason(pin(Profile::Cns, "1234567a")), Reason::NotDigits);
        assert!(pin(Profile::Oberthur, "1234").is_ok() && pin(Profile::Oberthur, "pass word").is_ok());
        let long = "1".repeat(65);
        assert_eq!(reason(pin(Profile::Oberthur, &long)), Reason::BadLength);
        assert_eq!(reason(pin(Profile::Oberthur, "caf\u{e9}1")), Reason::NotDigits);
        // New secrets: digits only (Aruba Sign), a PUK of at least 8.
        let new = |p, f, v| check(p, &[Given::new(f, v, v)]);
        assert_eq!(reason(new(Profile::Oberthur, Field::NewPin, "abcd")), Reason::NotDigits);
        assert_eq!(reason(new(Profile::Cns, Field::NewPuk, "1234567")), Reason::BadLength);
        assert!(new(Profile::Cns, Field::NewPuk, "12345678").is_ok());
        assert_eq!(reason(check(Profile::Cns, &[Given::new(Field::NewPin, "12345", "12346")])), Reason::Mismatch);
    }

    #[test]
    fn messages_give_lengths_never_values() {
        let Err(Stop::Refused { message, .. }) = check(Profile::Cns, &[Given::current(Field::Pin, "9876543210123")])
        else {
            panic!()
        };
        assert_eq!(message, "the PIN has 13 digits; a CNS card takes 5 to 8 digits");
        let ok = check(
            Profile::Cns,
            &[Given::current(Field::Puk, "87654321"), Given::new(Field::NewPin, "24682468", "24682468")],
        )
        .unwrap();
        assert_eq!(ok, "PUK 8 digits, new PIN 8 digits (the rules of a cns card)");
        assert_eq!(with_article("OBERTHUR"), "an OBERTHUR");
        assert_eq!(with_article("incrypto34"), "an incrypto34");
        assert!(!ok.contains("8765") && !ok.contains("2468"));
    }

    #[test]
    fn the_atr_names_the_rules_before_any_client_opens() {
        let cns = crate::wire::hex::decode("3BFF1800FF8131FE55006B02091303010101434E531131808C").unwrap();
        assert_eq!(
            reason(check_for_atr(&cns, &[Given::current(Field::Pin, "1234567890123")]).map(|()| String::new())),
            Reason::BadLength
        );
        let unknown = [0x3B, 0x00];
        assert!(check_for_atr(&unknown, &[Given::current(Field::Pin, "x")]).is_ok(), "the flow itself fails later");
    }
}
