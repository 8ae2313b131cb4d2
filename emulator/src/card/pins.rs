//! The PIN room: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER (ISO 7816-4 §11.5),
//! CREATE PIN and LOGOUT, and the card's ERASE. Padding, lengths and counters are the PIN
//! objects' own rules (`security.rs`); the status word of a wrong secret, the CREATE PIN
//! template, the files that hold a secret and what ERASE does are the profile's.
//!
//! Anti-tearing: a card decrements a try counter in EEPROM *before* it compares a presented
//! secret and restores it after a match, so a torn comparison never gives a free try. Here
//! every VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER that reaches the comparison
//! counts as a persistent write ([`Card::take_changed`]): the host's save must succeed before
//! the answer goes out, and when it fails the right and the wrong secret both get `6581` with
//! nothing changed (no oracle on a full disk).

use super::{Card, Effect, Result};
use crate::command::{PinRef, PinScope, UnblockProof};
use crate::fs::{self, FileBody, FileNode, MF};
use crate::hex::{Hex8, Hex16};
use crate::profile::Ctx;
use crate::security::{MAX_PINS, PinObject, PinRole};
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

    /// Gives PIN object `idx` a new value and rewrites the files that hold it in another form
    /// (the profile's secret files: Oberthur's PUK file), keeping each file's size.
    fn set_pin_value(&mut self, idx: usize, value: String) -> Result {
        let reference = self.pin_mut(idx)?.reference;
        for f in self.profile.secret_files().iter().filter(|f| f.pin == reference.0) {
            let code = (f.encode)(&value);
            if let Some(FileNode { body: FileBody::Transparent { data }, .. }) =
                fs::lookup_mut(&mut self.image.mf, f.path)
            {
                for (i, b) in data.0.iter_mut().enumerate() {
                    *b = code.get(i).copied().unwrap_or(0);
                }
            }
        }
        self.pin_mut(idx)?.value = value;
        self.changed = true;
        Ok(())
    }

    /// The presented secret is about to be compared: the try counter is written first
    /// (anti-tearing, see the module documentation), so this command is a persistent write.
    fn start_comparison(&mut self) {
        self.changed = true;
    }

    /// Whether a security officer's PIN is verified in this session.
    fn officer_verified(&self) -> bool {
        self.image.pins.iter().enumerate().any(|(i, p)| p.role == PinRole::So && self.vol.verified.get(i))
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
        let query_counts = self.image.tries_query_counts;
        let p = self.pin_mut(idx)?;
        if p.blocked() {
            return Err(Sw::AuthBlocked);
        }
        let Some(data) = data else {
            if query_counts {
                // A mask that compares the empty value as a PIN (spec/domain.md §1.3): the
                // query is a failed verification, counted like any wrong PIN.
                self.start_comparison();
                self.vol.verified.clear(idx);
                return Err(self.wrong_secret(idx));
            }
            let tries_left = p.tries_left;
            return Ok(if verified { Sw::Ok } else { self.profile.wrong_secret(tries_left) });
        };
        if data.len() != usize::from(p.pad_len) {
            return Err(Sw::WrongLength);
        }
        let good = p.matches_padded(data);
        self.start_comparison();
        if good {
            self.pin_mut(idx)?.succeed();
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
        let good = p.matches_padded(old);
        self.start_comparison();
        if !good {
            self.vol.verified.clear(idx);
            return Err(self.wrong_secret(idx));
        }
        self.set_pin_value(idx, new)?;
        self.pin_mut(idx)?.succeed();
        self.vol.verified.set(idx);
        Ok(Sw::Ok)
    }

    /// RESET RETRY COUNTER: the PUK linked to the PIN (in the PIN's DF first), or the code of
    /// a PUK file (which always holds the current PUK's code: a PUK change rewrites it), then
    /// optionally the new PIN. A wrong code counts against the PUK.
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
        self.start_comparison();
        if !good {
            return Err(self.wrong_secret(puk_idx));
        }
        self.pin_mut(puk_idx)?.succeed();
        if let Some(v) = new_value {
            self.set_pin_value(idx, v)?;
        }
        self.pin_mut(idx)?.succeed();
        Ok(Sw::Ok)
    }

    /// CREATE PIN in the current DF: a new PIN object from the profile's template, or a new
    /// value and counter for an existing one. Defining or redefining a PIN object is the
    /// security officer's: `6982` unless the SO PIN is verified (the holder resets their PIN
    /// with CHANGE REFERENCE DATA or the PUK). A blocked PUK stays blocked for good
    /// (spec/domain.md §1.3, §6.2): redefining it answers `6983`.
    pub(super) fn create_pin(&mut self, pin: PinRef, tries: u8, value: &[u8]) -> Result<Sw> {
        if !self.officer_verified() {
            return Err(Sw::SecurityNotSatisfied);
        }
        let home: Vec<Hex16> = self.vol.df.iter().map(|f| Hex16(*f)).collect();
        let template = self.profile.new_pin(pin.reference, tries, home)?;
        let existing = self.resolve_pin(pin);
        if let Some(i) = existing
            && self.image.pins.get(i).is_some_and(|p| p.role == PinRole::Puk && p.blocked())
        {
            return Err(Sw::AuthBlocked);
        }
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
        self.set_pin_value(idx, value)?;
        let p = self.pin_mut(idx)?;
        p.max_tries = tries;
        p.tries_left = tries;
        self.vol.verified.clear(idx);
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
