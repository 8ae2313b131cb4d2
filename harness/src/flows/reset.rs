//! Bit4id PKI Manager's reset (spec/domain.md §4, §6.3 item 5): PIN login (12345 on a card
//! whose issuance failed), then keys, certificates and personal data erased, back to the
//! blank card with the default PIN 12345. The back office invalidates what the card held.

use super::{FlowReport, Runner, refuse};
use crate::backoffice::{EventKind, PracticeState, RevocationReason, Store};
use crate::client::PinOutcome;
use firmalab_emulator::profile::cns::DEFAULT_PIN;

pub fn reset(mut r: Runner<'_>, pin: &str, bo: &mut Store) -> FlowReport {
    r.secret("pin", pin);
    r.secret("default_pin", DEFAULT_PIN);
    let mut card = String::new();
    let result = (|| {
        card = r.step("Scanned", |c, _| {
            let s = c.serial()?;
            Ok((s.clone(), format!("card {s} ({})", c.profile().name())))
        })?;
        r.step("CardReset", |c, _| {
            let stop = |o: PinOutcome| match o {
                PinOutcome::Wrong { tries_left } if tries_left > 0 => {
                    refuse("WrongPin", format!("wrong PIN, {tries_left} tries left"))
                }
                _ => refuse("PinBlocked", "the PIN is blocked: unblock it with the PUK first"),
            };
            match c.reset(pin)? {
                PinOutcome::Accepted => Ok(((), "keys, certificates and personal data erased; PIN 12345".to_owned())),
                PinOutcome::Wrong { .. } if pin != DEFAULT_PIN && c.certificates()?.is_empty() => {
                    // A reset interrupted after the erase: the PIN is already the default one.
                    // Logging in with it restores the counter the refused PIN cost; the reset
                    // then finishes (it is idempotent).
                    match c.reset(DEFAULT_PIN)? {
                        PinOutcome::Accepted => Ok((
                            (),
                            "the card had been erased by an interrupted reset; finished with PIN 12345".to_owned(),
                        )),
                        o => Err(stop(o)),
                    }
                }
                o => Err(stop(o)),
            }
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
            bo.save().map_err(super::Stop::Failed)?;
            Ok(((), format!("{n} practice(s) invalidated")))
        })?;
        Ok(("Reset".into(), "the card is blank with PIN 12345".into()))
    })();
    r.finish("reset", card, result, serde_json::Value::Null)
}
