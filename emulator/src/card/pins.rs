//! The PIN room: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER (ISO 7816-4 §11.5),
//! CREATE PIN and LOGOUT, and the card's ERASE. Padding, lengths and counters are the PIN
//! objects' own rules (`security.rs`); the status word of a wrong secret, the CREATE PIN
//! template and what ERASE does are the profile's.

use super::{Card, Effect, Result};
use crate::command::{PinRef, PinScope, UnblockProof};
use crate::fs::{self, FileBody, MF};
use crate::hex::{Hex8, Hex16};
use crate::profile::Ctx;
use crate::security::{MAX_PINS, PinObject};
use crate::sw::Sw;

impl Card {
    /// The PIN object a command names, searched as its scope says.
    pub(super) fn resolve_pin(&self, r: PinRef) -> Option<usize> {
        let pins = &self.image.pins;
        let in_df = |p: &PinObject, df: &[u16]| p.reference.0 == r.reference && p.home().eq(df.iter().copied());
        match r.scope {
            PinScope::Global => pins.iter().position(|p| in_df(p, &[MF])),
            PinScope::Local => (1..=self.vol.df.len()).rev().find_map(|depth| {
                let prefix = self.vol.df.get(..depth)?;
                pins.iter().position(|p| in_df(p, prefix))
            }),
            PinScope::Anywhere => pins.iter().position(|p| p.reference.0 == r.reference),
            PinScope::CurrentDf => pins.iter().position(|p| in_df(p, &self.vol.df)),
        }
    }

    /// The first PIN object with this reference (the PIN a key or an access condition names).
    pub(super) fn pin_index(&self, reference: Hex8) -> Option<usize> {
        self.image.pins.iter().position(|p| p.reference == reference)
    }

    fn pin_mut(&mut self, idx: usize) -> Result<&mut PinObject> {
        self.image.pins.get_mut(idx).ok_or(Sw::Unknown)
    }

    /// Counts a wrong secret against PIN object `idx`: the profile's status word.
    fn wrong_secret(&mut self, idx: usize) -> Sw {
        let profile = self.profile;
        self.changed = true;
        match self.pin_mut(idx) {
            Ok(p) => {
                p.fail();
                profile.wrong_secret(p.tries_left)
            }
            Err(sw) => sw,
        }
    }

    /// VERIFY; without data a status query (`9000` / `63Cx` / `6983`).
    pub(super) fn verify(&mut self, pin: PinRef, data: Option<&[u8]>) -> Result<Sw> {
        let idx = self.resolve_pin(pin).ok_or(Sw::ReferencedDataNotFound)?;
        let verified = self.vol.verified.get(idx);
        let p = self.pin_mut(idx)?;
        if p.blocked() {
            return Err(Sw::AuthBlocked);
        }
        let Some(data) = data else {
            let tries_left = p.tries_left;
            return Ok(if verified { Sw::Ok } else { self.profile.wrong_secret(tries_left) });
        };
        if data.len() != usize::from(p.pad_len) {
            return Err(Sw::WrongLength);
        }
        if p.matches_padded(data) {
            if p.tries_left != p.max_tries {
                p.succeed();
                self.changed = true;
            }
            self.vol.verified.set(idx);
            Ok(Sw::Ok)
        } else {
            self.vol.verified.clear(idx);
            Err(self.wrong_secret(idx))
        }
    }

    /// CHANGE REFERENCE DATA: old ‖ new, each padded.
    pub(super) fn change_reference_data(&mut self, pin: PinRef, data: &[u8]) -> Result<Sw> {
        let idx = self.resolve_pin(pin).ok_or(Sw::ReferencedDataNotFound)?;
        let p = self.pin_mut(idx)?;
        if p.blocked() {
            return Err(Sw::AuthBlocked);
        }
        if data.len() != 2 * usize::from(p.pad_len) {
            return Err(Sw::WrongLength);
        }
        let (old, new) = data.split_at(usize::from(p.pad_len));
        let new = p.check_new_value(new)?.to_owned();
        if !p.matches_padded(old) {
            self.vol.verified.clear(idx);
            return Err(self.wrong_secret(idx));
        }
        p.value = new;
        p.succeed();
        self.changed = true;
        self.vol.verified.set(idx);
        Ok(Sw::Ok)
    }

    /// RESET RETRY COUNTER: the PUK linked to the PIN (in the PIN's DF first), or the code of
    /// a PUK file, then optionally the new PIN.
    pub(super) fn reset_retry_counter(
        &mut self,
        pin: PinRef,
        proof: UnblockProof<'_>,
        new_pin: Option<&[u8]>,
    ) -> Result<Sw> {
        let idx = self.resolve_pin(pin).ok_or(Sw::ReferencedDataNotFound)?;
        let target = self.image.pins.get(idx).ok_or(Sw::Unknown)?;
        let puk_ref = target.unblocked_by.ok_or(Sw::ConditionsNotSatisfied)?;
        let puk_idx = self
            .image
            .pins
            .iter()
            .position(|q| q.reference == puk_ref && q.df == target.df)
            .or_else(|| self.image.pins.iter().position(|q| q.reference == puk_ref))
            .ok_or(Sw::ReferencedDataNotFound)?;
        let new_value = match new_pin {
            Some(n) => Some(target.check_new_value(n)?.to_owned()),
            None => None,
        };
        let puk = self.image.pins.get(puk_idx).ok_or(Sw::Unknown)?;
        if puk.blocked() {
            return Err(Sw::AuthBlocked);
        }
        let good = match proof {
            UnblockProof::Puk(code) => {
                if code.len() != usize::from(puk.pad_len) {
                    return Err(Sw::WrongLength);
                }
                puk.matches_padded(code)
            }
            UnblockProof::PukFile { code, path } => match fs::lookup(&self.image.mf, path).map(|n| &n.body) {
                Some(FileBody::Transparent { data }) => data.0 == code,
                _ => return Err(Sw::ReferencedDataNotFound),
            },
        };
        self.changed = true;
        if !good {
            return Err(self.wrong_secret(puk_idx));
        }
        self.pin_mut(puk_idx)?.succeed();
        let p = self.pin_mut(idx)?;
        p.succeed();
        if let Some(v) = new_value {
            p.value = v;
        }
        if matches!(proof, UnblockProof::PukFile { .. }) {
            self.effect = Effect::CredentialsReset;
        }
        Ok(Sw::Ok)
    }

    /// CREATE PIN in the current DF (its create condition): a new PIN object from the
    /// profile's template, or new value and counter for an existing one.
    pub(super) fn create_pin(&mut self, pin: PinRef, tries: u8, value: &[u8]) -> Result<Sw> {
        let df = self.current_df()?;
        self.require(df.acl.create)?;
        let home: Vec<Hex16> = self.vol.df.iter().map(|f| Hex16(*f)).collect();
        let template = self.profile.new_pin(pin.reference, tries, home)?;
        let existing = self.resolve_pin(pin);
        if existing.is_none() && self.image.pins.len() >= MAX_PINS {
            return Err(Sw::NotEnoughMemory);
        }
        // The value is checked before a new object joins the image: a refused CREATE PIN
        // leaves no PIN behind.
        let rules = match existing {
            Some(i) => self.image.pins.get(i).ok_or(Sw::Unknown)?,
            None => &template,
        };
        let value = rules.check_new_value(value)?.to_owned();
        let idx = match existing {
            Some(i) => i,
            None => {
                self.image.pins.push(template);
                self.image.pins.len() - 1
            }
        };
        let p = self.pin_mut(idx)?;
        p.value = value;
        p.max_tries = tries;
        p.tries_left = tries;
        self.vol.verified.clear(idx);
        self.changed = true;
        self.effect = Effect::CredentialsReset;
        Ok(Sw::Ok)
    }

    /// LOGOUT: `9000` whether or not the PIN exists (OpenSC logs out 81 and 82, §2.5).
    pub(super) fn logout(&mut self, pin: PinRef) -> Result<Sw> {
        if let Some(idx) = self.resolve_pin(pin) {
            self.vol.verified.clear(idx);
        }
        Ok(Sw::Ok)
    }

    /// The card's ERASE (who may, what goes: the profile's), then a fresh session.
    pub(super) fn erase_card(&mut self) -> Result<Sw> {
        let profile = self.profile;
        profile.erase(self as &mut dyn Ctx)?;
        self.clear_volatile();
        self.effect = Effect::CredentialsReset;
        Ok(Sw::Ok)
    }
}
