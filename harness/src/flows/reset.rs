//! Bit4id PKI Manager's reset (spec/domain.md §4, §6.3 item 5): PIN login (12345 on a card
//! whose issuance failed), then keys, certificates and personal data erased, back to the
//! blank card with the default PIN 12345. The back office invalidates what the card held.
//!
//! The PIN sent is only the one the user gave (`--pin`, or `--default-pin` for 12345): a
//! wrong PIN costs exactly one try, and the flow says so. On a card in a reader the erase
//! needs the user's confirmation by the card's serial.

use super::secrets::{self, Field, Given};
use super::{Finished, FlowReport, Reason, Runner, refuse, tries_step};
use crate::backoffice::{EventKind, PracticeState, RevocationReason, Store};
use crate::client::{DEFAULT_PIN, PinOutcome, SecretKind};

/// PKI Manager's reset with the PIN `pin` (the holder's, or [`DEFAULT_PIN`] after a failed
/// issuance): steps `SecretsChecked`, `Scanned`, `SerialConfirmed` (cards in readers), `PinStatus`, `CardReset`,
/// `BackOfficeUpdated` (the card's practices invalidated in `bo`, its live certificates
/// revoked). Done: [`super::Finished::Reset`]; refusals: `WrongPin` (the message says when
/// the card looks blank with the default PIN), `PinBlocked`, `LastTry`, `NotConfirmed`.
pub fn reset(mut r: Runner<'_>, pin: &str, bo: &mut Store) -> FlowReport {
    r.secret("pin", pin);
    r.secret("default_pin", DEFAULT_PIN);
    let mut card = String::new();
    let result = (|| {
        secrets::step(&mut r, &[Given::current(Field::Pin, pin)])?;
        card = r.step("Scanned", |c, _| {
            let s = c.serial()?;
            Ok((s.clone(), format!("card {s} ({})", c.profile().name())))
        })?;
        r.confirm_destructive(&card, "erase every key, certificate and personal data on the card")?;
        tries_step(&mut r, SecretKind::Pin)?;
        r.step("CardReset", |c, _| match c.reset(pin)? {
            PinOutcome::Accepted => Ok(((), "keys, certificates and personal data erased; PIN 12345".to_owned())),
            PinOutcome::Wrong { tries_left } if tries_left > 0 => {
                let mut message = format!("wrong PIN, {tries_left} tries left; nothing was erased");
                if pin != DEFAULT_PIN && c.certificates()?.is_empty() {
                    // A failed issuance or a reset interrupted after the erase: the PIN is
                    // probably the default one. Never tried behind the user's back.
                    message.push_str(
                        "; the card holds no certificates: if its PIN was not changed after a failed issuance or an interrupted reset, it is the default 12345 (run again with --default-pin)",
                    );
                }
                Err(refuse(Reason::WrongPin, message))
            }
            _ => Err(refuse(Reason::PinBlocked, "the PIN is blocked: unblock it with the PUK first")),
        })?;
        let now = r.now;
        let card_serial = card.clone();
        r.step("BackOfficeUpdated", |_, _| {
            let data = &mut bo.data;
            let mut n = 0;
            for p in data
                .practices
                .iter_mut()
                .filter(|p| p.card_serial == card_serial && p.state != PracticeState::Invalidated)
            {
                p.state = PracticeState::Invalidated;
                p.log(EventKind::CardReset, now, "card reset with PKI Manager");
                n += 1;
            }
            for c in data.certificates.iter_mut().filter(|c| c.card_serial == card_serial && c.live()) {
                c.revoke(RevocationReason::CessationOfOperation, now, None);
            }
            bo.save()?;
            Ok(((), format!("{n} practice(s) invalidated")))
        })?;
        Ok((Finished::Reset, "the card is blank with PIN 12345".into()))
    })();
    r.finish("reset", card, result, serde_json::Value::Null)
}
