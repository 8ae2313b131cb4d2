//! Bit4id PKI Manager's reset (spec/domain.md §4, §6.3 item 5): PIN login (12345 on a card
//! whose issuance failed), then keys, certificates and personal data erased, back to the
//! blank card with the default PIN 12345. The back office invalidates what the card held.

use super::{FlowReport, Runner, refuse};
use crate::backoffice::{CertStatus, PracticeEvent, PracticeState, Store};
use crate::client::PinOutcome;

pub fn reset(mut r: Runner<'_>, pin: &str, bo: &mut Store) -> FlowReport {
    r.secret("pin", pin);
    let mut card = String::new();
    let result = (|| {
        card = r.step("Scanned", |c, _| {
            let s = c.serial()?;
            Ok((s.clone(), format!("card {s} ({})", c.profile().name())))
        })?;
        r.begin("CardReset");
        let outcome = r.client.reset(pin);
        match outcome {
            Ok(PinOutcome::Accepted) => {
                r.end(super::StepStatus::Ok, "keys, certificates and personal data erased; PIN 12345")
            }
            Ok(o) => {
                let stop = match o {
                    PinOutcome::Wrong { tries_left } if tries_left > 0 => {
                        refuse("WrongPin", format!("wrong PIN, {tries_left} tries left"))
                    }
                    _ => refuse("PinBlocked", "the PIN is blocked: unblock it with the PUK first"),
                };
                if let super::Stop::Refused { code, message } = &stop {
                    r.end(super::StepStatus::Refused, format!("{code}: {message}"));
                }
                return Err(stop);
            }
            Err(e) => {
                r.end(super::StepStatus::Failed, e.to_string());
                return Err(e.into());
            }
        }
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
                p.events.push(PracticeEvent { date: now.to_string(), event: "card reset with PKI Manager".into() });
                n += 1;
            }
            for c in data.certificates.iter_mut().filter(|c| c.card_serial == card_serial) {
                c.status = CertStatus::Revoked;
            }
            bo.save().map_err(super::Stop::Failed)?;
            Ok(((), format!("{n} practice(s) invalidated")))
        })?;
        Ok(("Reset".into(), "the card is blank with PIN 12345".into()))
    })();
    r.finish("reset", card, result, serde_json::Value::Null)
}
