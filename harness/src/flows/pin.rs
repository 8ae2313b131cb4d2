//! Aruba Sign → Gestione carte: Cambio PIN, Sblocco PIN, Cambio PUK (spec/domain.md §4, §6.3
//! items 2-4). New values are checked before the card is touched; the tries left are shown
//! (and the last one protected) before a PIN or PUK is sent.

use super::secrets::{self, Field, Given};
use super::{Finished, FlowReport, Reason, Runner, Stop, refuse, tries_step};
use crate::client::{PinOutcome, SecretKind};

fn wrong(kind: SecretKind, o: PinOutcome) -> Result<(), Stop> {
    let what = kind.name();
    let (wrong, blocked) = match kind {
        SecretKind::Pin => (Reason::WrongPin, Reason::PinBlocked),
        SecretKind::Puk => (Reason::WrongPuk, Reason::PukBlocked),
    };
    match o {
        PinOutcome::Accepted => Ok(()),
        PinOutcome::Wrong { tries_left: 0 } => Err(refuse(blocked, format!("wrong {what}: now blocked"))),
        PinOutcome::Wrong { tries_left } => Err(refuse(wrong, format!("wrong {what}, {tries_left} tries left"))),
        PinOutcome::Blocked => Err(refuse(blocked, format!("the {what} is blocked"))),
    }
}

fn serial_step(r: &mut Runner<'_>) -> Result<String, Stop> {
    r.step("Scanned", |c, _| {
        let s = c.serial()?;
        Ok((s.clone(), format!("card {s} ({})", c.profile().name())))
    })
}

/// PIN change (Aruba Sign → Cambio PIN): `current`, `new` and its `repeat`, checked against
/// the card's PIN rule before the card is touched (`SecretsChecked`: `Mismatch`, `NotDigits`,
/// `BadLength`, for the current PIN too);
/// the tries shown (`PinStatus`), then every user PIN object changed. Done:
/// [`Finished::PinChanged`]; refusals also `WrongPin`, `PinBlocked`, `LastTry`.
pub fn change(mut r: Runner<'_>, current: &str, new: &str, repeat: &str) -> FlowReport {
    r.secret("pin", current);
    r.secret("new_pin", new);
    let mut card = String::new();
    let result = (|| {
        secrets::step(&mut r, &[Given::current(Field::Pin, current), Given::new(Field::NewPin, new, repeat)])?;
        card = serial_step(&mut r)?;
        tries_step(&mut r, SecretKind::Pin)?;
        r.step("PinChanged", |c, _| {
            wrong(SecretKind::Pin, c.change_pin(current, new)?)?;
            Ok(((), "PIN changed".into()))
        })?;
        Ok((Finished::PinChanged, "the PIN was changed".into()))
    })();
    r.finish("pin-change", card, result, serde_json::Value::Null)
}

/// PIN unblock with the PUK (Sblocco PIN): the new PIN checked, the PUK's tries shown, then the
/// PIN reset to `new` (Oberthur through the AWP PUK file). Done: [`Finished::PinUnblocked`];
/// refusals `WrongPuk`, `PukBlocked` (revoke the certificates, buy a new card), `LastTry` and
/// the new-PIN checks.
pub fn unblock(mut r: Runner<'_>, puk: &str, new: &str, repeat: &str) -> FlowReport {
    r.secret("puk", puk);
    r.secret("new_pin", new);
    let mut card = String::new();
    let result = (|| {
        secrets::step(&mut r, &[Given::current(Field::Puk, puk), Given::new(Field::NewPin, new, repeat)])?;
        card = serial_step(&mut r)?;
        tries_step(&mut r, SecretKind::Puk)?;
        r.step("PinUnblocked", |c, _| match c.unblock_pin(puk, new)? {
            PinOutcome::Accepted => Ok(((), "PIN unblocked and set".into())),
            PinOutcome::Wrong { tries_left: 0 } | PinOutcome::Blocked => Err(refuse(
                Reason::PukBlocked,
                "wrong PUK: the PUK is now blocked; revoke the certificates and buy a new card",
            )),
            PinOutcome::Wrong { tries_left } => {
                Err(refuse(Reason::WrongPuk, format!("wrong PUK, {tries_left} tries left")))
            }
        })?;
        Ok((Finished::PinUnblocked, "the PIN was unblocked".into()))
    })();
    r.finish("pin-unblock", card, result, serde_json::Value::Null)
}

/// PUK change (Cambio PUK): `current`, `new` (digits, at least 8, Aruba) and its `repeat`.
/// Done: [`Finished::PukChanged`]; refusals `WrongPuk`, `PukBlocked`, `LastTry` and the
/// new-PUK checks.
pub fn change_puk(mut r: Runner<'_>, current: &str, new: &str, repeat: &str) -> FlowReport {
    r.secret("puk", current);
    r.secret("new_puk", new);
    let mut card = String::new();
    let result = (|| {
        secrets::step(&mut r, &[Given::current(Field::Puk, current), Given::new(Field::NewPuk, new, repeat)])?;
        card = serial_step(&mut r)?;
        tries_step(&mut r, SecretKind::Puk)?;
        r.step("PukChanged", |c, _| {
            wrong(SecretKind::Puk, c.change_puk(current, new)?)?;
            Ok(((), "PUK changed".into()))
        })?;
        Ok((Finished::PukChanged, "the PUK was changed".into()))
    })();
    r.finish("puk-change", card, result, serde_json::Value::Null)
}
