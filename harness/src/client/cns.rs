//! The CNS client (spec/cards.md §3, §7.2): paths selected with `00 A4 08 0C`, PINs `90`/`9A`
//! padded with `FF` to 8, raw-RSA signatures on a block the host pads, the renewal key as a
//! pending key of the slot (GENERATE `P1 = 80`) committed with its certificate (`P1 = 81`).

use super::{
    CardCert, CardClient, ClientError, Counter, KeyRole, PinOutcome, Result, StagedKey, counter, digest_info,
    expect_ok, fcp_size, padded, parse_public_template, pin_outcome, pkcs1_type1, read_all, send,
};
use crate::transport::Transport;
use firmalab_emulator::Sw;
use firmalab_emulator::image::ProfileKind;
use firmalab_emulator::perso::Holder;
use firmalab_emulator::profile::cns::{KEY_CNS0, KEY_CNS1, decode_dati_personali};

const PIN0: u8 = 0x90; // PIN CNS0 (10), STIncard addressing
const PIN1: u8 = 0x9A; // PIN CNS1 (1A)
const PUK0: u8 = 0x91;
const PUK1: u8 = 0x9B;
const KEY_DF: [u8; 4] = [0x14, 0x00, 0x81, 0x10];

pub struct Cns {
    t: Box<dyn Transport>,
}

impl Cns {
    pub fn new(t: Box<dyn Transport>) -> Self {
        Cns { t }
    }

    fn select(&mut self, path: &[u8]) -> Result<Sw> {
        Ok(send(self.t.as_mut(), 0x00, 0xA4, 0x08, 0x0C, path, None)?.sw)
    }

    /// Selects a file with its FCP and reads it whole; `None` when it does not exist.
    fn read_file(&mut self, path: &[u8], what: &str) -> Result<Option<Vec<u8>>> {
        let r = send(self.t.as_mut(), 0x00, 0xA4, 0x08, 0x00, path, Some(256))?;
        if r.sw == Sw::FileNotFound {
            return Ok(None);
        }
        let fcp = expect_ok(r, what)?;
        let size = fcp_size(&fcp).ok_or_else(|| ClientError::Content(format!("{what}: FCP without a size")))?;
        Ok(Some(read_all(self.t.as_mut(), size, 255, what)?))
    }

    /// The PIN objects: (reference as sent, its DF path, label).
    fn pins() -> [(u8, &'static [u8], &'static str); 2] {
        [(PIN1, &KEY_DF, "PIN CNS1"), (PIN0, &[], "PIN CNS0")]
    }

    fn puks() -> [(u8, &'static [u8], &'static str); 2] {
        [(PUK1, &KEY_DF, "PUK CNS1"), (PUK0, &[], "PUK CNS0")]
    }

    /// Goes where the object is found: the key DF for CNS1, the MF for CNS0.
    fn goto(&mut self, df: &[u8]) -> Result<()> {
        let sw = if df.is_empty() {
            send(self.t.as_mut(), 0x00, 0xA4, 0x00, 0x0C, &[0x3F, 0x00], None)?.sw
        } else {
            self.select(df)?
        };
        if sw == Sw::Ok { Ok(()) } else { Err(ClientError::Card { what: "select the PIN's DF".into(), sw }) }
    }

    fn status(&mut self, reference: u8, df: &[u8], label: &str) -> Result<Counter> {
        self.goto(df)?;
        Ok(counter(label, send(self.t.as_mut(), 0x00, 0x20, 0x00, reference, &[], None)?.sw))
    }

    fn verify_one(&mut self, reference: u8, df: &[u8], pin: &str) -> Result<PinOutcome> {
        self.goto(df)?;
        let r = send(self.t.as_mut(), 0x00, 0x20, 0x00, reference, &padded(pin, 8, 0xFF), None)?;
        pin_outcome(&r, "VERIFY")
    }

    fn slot(role: KeyRole) -> (u8, u8, &'static [u8]) {
        match role {
            KeyRole::Signature => (KEY_CNS1, PIN1, &KEY_DF),
            KeyRole::Authentication => (KEY_CNS0, PIN0, &[]),
        }
    }

    fn require(&mut self, outcome: PinOutcome) -> Result<()> {
        match outcome {
            PinOutcome::Accepted => Ok(()),
            PinOutcome::Wrong { tries_left } => {
                Err(ClientError::Card { what: "VERIFY".into(), sw: Sw::TriesLeft(tries_left) })
            }
            PinOutcome::Blocked => Err(ClientError::Card { what: "VERIFY".into(), sw: Sw::AuthBlocked }),
        }
    }
}

impl CardClient for Cns {
    fn profile(&self) -> ProfileKind {
        ProfileKind::Cns
    }

    fn atr(&self) -> Vec<u8> {
        self.t.atr()
    }

    fn transport_name(&self) -> String {
        self.t.name()
    }

    fn transport(&mut self) -> &mut dyn Transport {
        self.t.as_mut()
    }

    fn serial(&mut self) -> Result<String> {
        let sw = self.select(&[0x10, 0x00, 0x10, 0x03])?;
        if sw != Sw::Ok {
            return Err(ClientError::Card { what: "select EF_IDCarta".into(), sw });
        }
        let data = expect_ok(send(self.t.as_mut(), 0x00, 0xB0, 0, 0, &[], Some(16))?, "read EF_IDCarta")?;
        if data.len() != 16 {
            return Err(ClientError::Content(format!("EF_IDCarta has {} bytes, not 16", data.len())));
        }
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    fn certificates(&mut self) -> Result<Vec<CardCert>> {
        let mut out = Vec::new();
        for (path, role, display) in [
            ([0x11, 0x00, 0x11, 0x01], KeyRole::Authentication, "3F00/1100/1101"),
            ([0x14, 0x00, 0x90, 0x10], KeyRole::Signature, "3F00/1400/9010"),
        ] {
            if let Some(der) = self.read_file(&path, display)? {
                out.push(CardCert { role, der, path: display.into() });
            }
        }
        Ok(out)
    }

    fn holder(&mut self) -> Result<Option<Holder>> {
        Ok(self.read_file(&[0x11, 0x00, 0x11, 0x02], "EF_DatiPersonali")?.and_then(|d| decode_dati_personali(&d)))
    }

    fn life_cycle(&mut self) -> Result<Option<u8>> {
        let r = send(self.t.as_mut(), 0x00, 0xCA, 0x01, 0x83, &[], Some(256))?;
        Ok(if r.ok() { r.data.first().copied() } else { None })
    }

    fn free_memory(&mut self) -> Result<Option<u32>> {
        Ok(self
            .read_file(&[0x12, 0x00, 0x12, 0x02], "EF_MemoriaResidua")?
            .and_then(|d| <[u8; 4]>::try_from(d.as_slice()).ok())
            .map(u32::from_be_bytes))
    }

    fn pin_counters(&mut self) -> Result<Vec<Counter>> {
        Self::pins().iter().map(|(r, df, l)| self.status(*r, df, l)).collect()
    }

    fn puk_counters(&mut self) -> Result<Vec<Counter>> {
        Self::puks().iter().map(|(r, df, l)| self.status(*r, df, l)).collect()
    }

    fn verify_pin(&mut self, pin: &str) -> Result<PinOutcome> {
        // CNS1 first: a wrong PIN costs one try on one object, not two.
        for (r, df, _) in Self::pins() {
            let o = self.verify_one(r, df, pin)?;
            if o != PinOutcome::Accepted {
                return Ok(o);
            }
        }
        Ok(PinOutcome::Accepted)
    }

    fn change_pin(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let mut data = padded(old, 8, 0xFF);
        data.extend(padded(new, 8, 0xFF));
        for (r, df, _) in Self::pins() {
            self.goto(df)?;
            let o = pin_outcome(&send(self.t.as_mut(), 0x00, 0x24, 0x00, r, &data, None)?, "CHANGE REFERENCE DATA")?;
            if o != PinOutcome::Accepted {
                return Ok(o);
            }
        }
        Ok(PinOutcome::Accepted)
    }

    fn change_puk(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let mut data = padded(old, 8, 0xFF);
        data.extend(padded(new, 8, 0xFF));
        for (r, df, _) in Self::puks() {
            self.goto(df)?;
            let o =
                pin_outcome(&send(self.t.as_mut(), 0x00, 0x24, 0x00, r, &data, None)?, "CHANGE REFERENCE DATA (PUK)")?;
            if o != PinOutcome::Accepted {
                return Ok(o);
            }
        }
        Ok(PinOutcome::Accepted)
    }

    fn unblock_pin(&mut self, puk: &str, new_pin: &str) -> Result<PinOutcome> {
        let mut data = padded(puk, 8, 0xFF);
        data.extend(padded(new_pin, 8, 0xFF));
        // RESET RETRY COUNTER addresses the PIN; the card checks the PUK linked to it.
        for (r, df, _) in Self::pins() {
            self.goto(df)?;
            let o = pin_outcome(&send(self.t.as_mut(), 0x00, 0x2C, 0x00, r, &data, None)?, "RESET RETRY COUNTER")?;
            if o != PinOutcome::Accepted {
                return Ok(o);
            }
        }
        Ok(PinOutcome::Accepted)
    }

    fn pin_length(&self) -> (usize, usize) {
        (5, 8)
    }

    fn sign_sha256(
        &mut self,
        role: KeyRole,
        staged: Option<&StagedKey>,
        digest: &[u8; 32],
        pin: &str,
    ) -> Result<Vec<u8>> {
        let (key, pin_ref, df) = Self::slot(role);
        let o = self.verify_one(pin_ref, df, pin)?;
        self.require(o)?;
        let t = self.t.as_mut();
        expect_ok(send(t, 0x00, 0x22, 0xF3, 0x03, &[], Some(256))?, "MSE RESTORE")?;
        let tag = if staged.is_some() { 0x84 } else { 0x83 };
        expect_ok(send(t, 0x00, 0x22, 0xF1, 0xB6, &[tag, 0x01, key], None)?, "MSE SET")?;
        let block = pkcs1_type1(&digest_info(digest), 256);
        expect_ok(send(t, 0x00, 0x2A, 0x9E, 0x9A, &block, Some(256))?, "PSO COMPUTE DIGITAL SIGNATURE")
    }

    fn stage_key(&mut self, role: KeyRole, pin: &str) -> Result<StagedKey> {
        let (key, pin_ref, df) = Self::slot(role);
        let o = self.verify_one(pin_ref, df, pin)?;
        self.require(o)?;
        let r = send(self.t.as_mut(), 0x00, 0x46, 0x80, key, &[0x08, 0x00], Some(256))?;
        let template = expect_ok(r, "GENERATE KEY PAIR")?;
        Ok(StagedKey { role, public: parse_public_template(&template)?, handle: key })
    }

    fn install(&mut self, staged: &StagedKey, certificate: &[u8], pin: &str) -> Result<()> {
        let (key, pin_ref, df) = Self::slot(staged.role);
        let o = self.verify_one(pin_ref, df, pin)?;
        self.require(o)?;
        expect_ok(send(self.t.as_mut(), 0x00, 0x46, 0x81, key, certificate, None)?, "commit the renewal key")?;
        Ok(())
    }

    fn tidy(&mut self, _pin: &str) -> Result<()> {
        // The commit swaps key and certificate in one command: nothing can be half-done. A
        // pending key left by an interrupted renewal is replaced by the next one.
        Ok(())
    }

    fn reset(&mut self, pin: &str) -> Result<PinOutcome> {
        let o = self.verify_one(PIN0, &[], pin)?;
        if o != PinOutcome::Accepted {
            return Ok(o);
        }
        expect_ok(send(self.t.as_mut(), 0xB0, 0xF5, 0x00, 0x00, &[], None)?, "ERASE")?;
        Ok(PinOutcome::Accepted)
    }
}
