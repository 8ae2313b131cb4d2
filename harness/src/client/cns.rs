//! The CNS client (spec/cards.md §3, §7.2; spec/domain.md §1.2): paths selected with
//! `00 A4 08 0C`, PINs padded with `FF` to 8, raw-RSA signatures on a block the host pads,
//! the renewal key as a pending key of the slot (GENERATE `P1 = 80`) committed with its
//! certificate (`P1 = 81`).
//!
//! PIN references, key slots and certificate paths come from the card's mask (`Layout`):
//! ST Incard masks address PINs with bit 7 set (`9A`, `90`: "search the parent DFs"), the
//! IDEMIA 2021 CNS has one global PIN `10` guarding both keys and keeps its signature
//! certificate in `1400/9001/2002` with the key in `1400/9002` (OpenSC `pkcs15-itacns.c`).

use super::guard::{Guard, SecretKind, SecretObject, SecretPolicy, send_secret};
use super::{
    CardCert, CardClient, ClientError, Counter, Holder, KeyRole, PinOutcome, Result, StagedKey, atomic, digest_info,
    expect_ok, fcp_size, padded, parse_public_template, pin_outcome, pkcs1_type1, read_all, send,
};
use crate::transport::Transport;
use crate::wire::atr::{CnsBytes, MASK_STINCARD};
use crate::wire::{CardModel, Profile, Sw};

/// EF_IDCarta: the 16-character card serial.
const EF_ID_CARTA: [u8; 4] = [0x10, 0x00, 0x10, 0x03];
/// EF_DatiPersonali.
const EF_DATI_PERSONALI: [u8; 4] = [0x11, 0x00, 0x11, 0x02];
/// EF_MemoriaResidua: free EEPROM, 4 bytes big endian.
const EF_MEMORIA_RESIDUA: [u8; 4] = [0x12, 0x00, 0x12, 0x02];
/// The CNS0 (authentication) certificate.
const CERT_CNS0: [u8; 4] = [0x11, 0x00, 0x11, 0x01];

/// The capability probe: GET DATA `00 CA 01 88`. GET DATA only reads (ISO 7816-4 §11.4.3),
/// so a card that does not know the object answers an error (`6A88`, `6A86`, `6D00` …) and
/// nothing changes. firmalab's convenience card answers `"FLAB"`, format `01`, then a byte of
/// extension bits; a genuine CNS (and firmalab's strict twin of one) does not.
const PROBE_P1P2: (u8, u8) = (0x01, 0x88);
const PROBE_MAGIC: &[u8; 4] = b"FLAB";
/// The probe's bit for the pending-key commands: GENERATE KEY PAIR `P1 = 80` (a renewal key
/// next to the slot's key), `P1 = 81` (commit it with its certificate), MSE SET tag `84`.
const PROBE_PENDING_KEY: u8 = 0x01;

/// What the capability probe's answer says about the pending-key commands.
fn pending_key_commands(r: &crate::transport::Response) -> bool {
    r.ok()
        && r.data.len() >= 6
        && r.data[..4] == *PROBE_MAGIC
        && r.data[4] == 0x01
        && r.data[5] & PROBE_PENDING_KEY != 0
}

/// A PIN or PUK object: where it is found and how it is addressed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Obj {
    secret: SecretObject,
    /// Path (without `3F00`) of the DF to select first; empty: the MF.
    df: &'static [u8],
}

/// A key slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Slot {
    /// Security environment / key reference of MSE SET (`83 01 kk`).
    key: u8,
    /// Index of the PIN object guarding it.
    pin: usize,
    /// DF to select before MSE (empty: the MF).
    key_df: &'static [u8],
    cert: &'static [u8],
    cert_display: &'static str,
}

/// Everything mask-specific about a CNS.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Layout {
    pins: Vec<Obj>,
    puks: Vec<Obj>,
    sign: Slot,
    auth: Slot,
}

const KEY_DF_CNS1: &[u8] = &[0x14, 0x00, 0x81, 0x10];

fn obj(label: &'static str, kind: SecretKind, reference: u8, df: &'static [u8]) -> Obj {
    Obj { secret: SecretObject { label, kind, reference }, df }
}

impl Layout {
    fn for_card(cns: Option<CnsBytes>) -> Layout {
        let auth = |pin| Slot { key: 0x01, pin, key_df: &[], cert: &CERT_CNS0, cert_display: "3F00/1100/1101" };
        if cns.is_some_and(|b| b.idemia_2021()) {
            return Layout {
                pins: vec![obj("PIN", SecretKind::Pin, 0x10, &[])],
                puks: vec![obj("PUK", SecretKind::Puk, 0x11, &[])],
                sign: Slot {
                    key: 0x02,
                    pin: 0,
                    key_df: &[0x14, 0x00, 0x90, 0x02],
                    cert: &[0x14, 0x00, 0x90, 0x01, 0x20, 0x02],
                    cert_display: "3F00/1400/9001/2002",
                },
                auth: auth(0),
            };
        }
        // STIncard: bit 7 asks the card to search the parent DFs too (OpenSC itacns_pin_cmd).
        let bit7 = if cns.is_some_and(|b| b.mask == MASK_STINCARD) { 0x80 } else { 0x00 };
        Layout {
            pins: vec![
                obj("PIN CNS1", SecretKind::Pin, 0x1A | bit7, KEY_DF_CNS1),
                obj("PIN CNS0", SecretKind::Pin, 0x10 | bit7, &[]),
            ],
            puks: vec![
                obj("PUK CNS1", SecretKind::Puk, 0x1B | bit7, KEY_DF_CNS1),
                obj("PUK CNS0", SecretKind::Puk, 0x11 | bit7, &[]),
            ],
            sign: Slot {
                key: 0x10,
                pin: 0,
                key_df: KEY_DF_CNS1,
                cert: &[0x14, 0x00, 0x90, 0x10],
                cert_display: "3F00/1400/9010",
            },
            auth: auth(1),
        }
    }

    fn slot(&self, role: KeyRole) -> Slot {
        match role {
            KeyRole::Signature => self.sign,
            KeyRole::Authentication => self.auth,
        }
    }
}

/// The client's state besides the transport.
struct State {
    layout: Layout,
    guard: Guard,
}

pub struct Cns {
    t: Box<dyn Transport>,
    model: CardModel,
    st: State,
}

impl Cns {
    pub fn new(t: Box<dyn Transport>, model: CardModel) -> Self {
        let st = State { layout: Layout::for_card(model.cns), guard: Guard::new(model.tries_query_free) };
        Cns { t, model, st }
    }
}

fn select(t: &mut dyn Transport, path: &[u8]) -> Result<Sw> {
    Ok(send(t, 0x00, 0xA4, 0x08, 0x0C, path, None)?.sw)
}

/// Goes to a DF by path (empty: the MF).
fn goto(t: &mut dyn Transport, df: &[u8]) -> Result<()> {
    let sw = if df.is_empty() { send(t, 0x00, 0xA4, 0x00, 0x0C, &[0x3F, 0x00], None)?.sw } else { select(t, df)? };
    if sw == Sw::Ok { Ok(()) } else { Err(ClientError::Card { what: "select the PIN's DF".into(), sw }) }
}

/// Selects a file with its FCP and reads it whole; `None` when it does not exist.
fn read_file(t: &mut dyn Transport, path: &[u8], what: &str) -> Result<Option<Vec<u8>>> {
    atomic(t, |t| {
        let r = send(t, 0x00, 0xA4, 0x08, 0x00, path, Some(256))?;
        if r.sw == Sw::FileNotFound {
            return Ok(None);
        }
        let fcp = expect_ok(r, what)?;
        let size = fcp_size(&fcp).ok_or_else(|| ClientError::Content(format!("{what}: FCP without a size")))?;
        Ok(Some(read_all(t, size, 255, what)?))
    })
}

/// EF_DatiPersonali (spec/cards.md §3.3, spec/domain.md §1.2): 6 ASCII-hex digits giving
/// the length of the rest, then fields of 2 ASCII-hex digits of length and the value:
/// issuer code, issue date, expiry date, last name, first name, birth date, sex, height,
/// codice fiscale, … `None` when the bytes are not in that format.
pub fn decode_dati_personali(data: &[u8]) -> Option<Holder> {
    let text = std::str::from_utf8(data).ok()?;
    let len = usize::from_str_radix(text.get(..6)?, 16).ok()?;
    let mut rest = text.get(6..6 + len)?;
    let mut fields: Vec<&str> = vec![];
    while !rest.is_empty() {
        let n = usize::from_str_radix(rest.get(..2)?, 16).ok()?;
        fields.push(rest.get(2..2 + n)?);
        rest = rest.get(2 + n..)?;
    }
    let field = |i: usize| fields.get(i).map(|s| s.to_string()).unwrap_or_default();
    Some(Holder {
        issuer_code: field(0),
        issue_date: field(1),
        expiry_date: field(2),
        last_name: field(3),
        first_name: field(4),
        birth_date: field(5),
        sex: field(6),
        codice_fiscale: field(8),
    })
}

impl State {
    fn counters(&mut self, t: &mut dyn Transport, kind: SecretKind) -> Result<Vec<Counter>> {
        let objs = match kind {
            SecretKind::Pin => self.layout.pins.clone(),
            SecretKind::Puk => self.layout.puks.clone(),
        };
        let mut out = vec![];
        for o in objs {
            out.push(atomic(t, |t| {
                if self.guard.query_free {
                    goto(t, o.df)?;
                }
                self.guard.counter(t, o.secret)
            })?);
        }
        Ok(out)
    }

    /// Presents the PIN to one object, through the guard.
    fn verify_one(&mut self, t: &mut dyn Transport, o: Obj, pin: &str) -> Result<PinOutcome> {
        goto(t, o.df)?;
        let r = send_secret(
            &mut self.guard,
            t,
            o.secret,
            Some(pin),
            (0x00, 0x20, 0x00, o.secret.reference),
            &padded(pin, 8, 0xFF),
        )?;
        pin_outcome(&r, "VERIFY")
    }

    /// Runs `command` (CHANGE / RESET RETRY COUNTER with `data`) on every PIN object, each
    /// addressed as `address(object)`, spending a try of `spends(object index)`.
    fn on_each_pin(
        &mut self,
        t: &mut dyn Transport,
        ins: u8,
        spends: SecretKind,
        value: &str,
        data: &[u8],
        what: &str,
    ) -> Result<PinOutcome> {
        for (i, pin) in self.layout.pins.clone().into_iter().enumerate() {
            let spent = match spends {
                SecretKind::Pin => pin,
                // RESET RETRY COUNTER addresses the PIN; the card checks the PUK linked to it.
                SecretKind::Puk => self.layout.puks.get(i).copied().unwrap_or(pin),
            };
            let o = atomic(t, |t| {
                goto(t, pin.df)?;
                let r = send_secret(
                    &mut self.guard,
                    t,
                    spent.secret,
                    Some(value),
                    (0x00, ins, 0x00, pin.secret.reference),
                    data,
                )?;
                pin_outcome(&r, what)
            })?;
            if o != PinOutcome::Accepted {
                return Ok(o);
            }
        }
        Ok(PinOutcome::Accepted)
    }

    /// Logs in for a key: its PIN, through the guard; a refusal is an error.
    fn login(&mut self, t: &mut dyn Transport, slot: Slot, pin: &str) -> Result<()> {
        let o = self.layout.pins.get(slot.pin).copied().ok_or_else(|| ClientError::Content("no PIN object".into()))?;
        match self.verify_one(t, o, pin)? {
            PinOutcome::Accepted => Ok(()),
            PinOutcome::Wrong { tries_left } => {
                Err(ClientError::Card { what: "VERIFY".into(), sw: Sw::TriesLeft(tries_left) })
            }
            PinOutcome::Blocked => Err(ClientError::Card { what: "VERIFY".into(), sw: Sw::AuthBlocked }),
        }
    }
}

impl CardClient for Cns {
    fn profile(&self) -> Profile {
        Profile::Cns
    }

    fn model(&self) -> &CardModel {
        &self.model
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

    fn policy(&self) -> SecretPolicy {
        self.st.guard.policy
    }

    fn set_policy(&mut self, policy: SecretPolicy) {
        self.st.guard.policy = policy;
    }

    fn was_rejected(&self, kind: SecretKind, value: &str) -> bool {
        self.st.guard.was_rejected(kind, value)
    }

    fn serial(&mut self) -> Result<String> {
        atomic(self.t.as_mut(), |t| {
            let sw = select(t, &EF_ID_CARTA)?;
            if sw != Sw::Ok {
                return Err(ClientError::Card { what: "select EF_IDCarta".into(), sw });
            }
            let data = expect_ok(send(t, 0x00, 0xB0, 0, 0, &[], Some(16))?, "read EF_IDCarta")?;
            if data.len() != 16 {
                return Err(ClientError::Content(format!("EF_IDCarta has {} bytes, not 16", data.len())));
            }
            Ok(String::from_utf8_lossy(&data).into_owned())
        })
    }

    fn certificates(&mut self) -> Result<Vec<CardCert>> {
        let mut out = Vec::new();
        for (slot, role) in [(self.st.layout.auth, KeyRole::Authentication), (self.st.layout.sign, KeyRole::Signature)]
        {
            if let Some(der) = read_file(self.t.as_mut(), slot.cert, slot.cert_display)? {
                out.push(CardCert { role, der, path: slot.cert_display.into() });
            }
        }
        Ok(out)
    }

    fn holder(&mut self) -> Result<Option<Holder>> {
        Ok(read_file(self.t.as_mut(), &EF_DATI_PERSONALI, "EF_DatiPersonali")?.and_then(|d| decode_dati_personali(&d)))
    }

    fn life_cycle(&mut self) -> Result<Option<u8>> {
        let r = send(self.t.as_mut(), 0x00, 0xCA, 0x01, 0x83, &[], Some(256))?;
        Ok(if r.ok() { r.data.first().copied() } else { None })
    }

    fn free_memory(&mut self) -> Result<Option<u32>> {
        Ok(read_file(self.t.as_mut(), &EF_MEMORIA_RESIDUA, "EF_MemoriaResidua")?
            .and_then(|d| <[u8; 4]>::try_from(d.as_slice()).ok())
            .map(u32::from_be_bytes))
    }

    fn pin_counters(&mut self) -> Result<Vec<Counter>> {
        self.st.counters(self.t.as_mut(), SecretKind::Pin)
    }

    fn puk_counters(&mut self) -> Result<Vec<Counter>> {
        self.st.counters(self.t.as_mut(), SecretKind::Puk)
    }

    fn signing_pin(&self, role: KeyRole) -> SecretObject {
        let pins = &self.st.layout.pins;
        let slot = self.st.layout.slot(role);
        pins.get(slot.pin)
            .or(pins.first())
            .map_or(SecretObject { label: "PIN", kind: SecretKind::Pin, reference: 0x10 }, |o| o.secret)
    }

    fn verify_pin(&mut self, pin: &str) -> Result<PinOutcome> {
        // CNS1 first: a wrong PIN costs one try on one object, not two.
        let Cns { t, st, .. } = self;
        for o in st.layout.pins.clone() {
            let outcome = atomic(t.as_mut(), |t| st.verify_one(t, o, pin))?;
            if outcome != PinOutcome::Accepted {
                return Ok(outcome);
            }
        }
        Ok(PinOutcome::Accepted)
    }

    fn change_pin(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let mut data = padded(old, 8, 0xFF);
        data.extend(padded(new, 8, 0xFF));
        self.st.on_each_pin(self.t.as_mut(), 0x24, SecretKind::Pin, old, &data, "CHANGE REFERENCE DATA")
    }

    fn change_puk(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let mut data = padded(old, 8, 0xFF);
        data.extend(padded(new, 8, 0xFF));
        let Cns { t, st, .. } = self;
        for o in st.layout.puks.clone() {
            let outcome = atomic(t.as_mut(), |t| {
                goto(t, o.df)?;
                let r =
                    send_secret(&mut st.guard, t, o.secret, Some(old), (0x00, 0x24, 0x00, o.secret.reference), &data)?;
                pin_outcome(&r, "CHANGE REFERENCE DATA (PUK)")
            })?;
            if outcome != PinOutcome::Accepted {
                return Ok(outcome);
            }
        }
        Ok(PinOutcome::Accepted)
    }

    fn unblock_pin(&mut self, puk: &str, new_pin: &str) -> Result<PinOutcome> {
        let mut data = padded(puk, 8, 0xFF);
        data.extend(padded(new_pin, 8, 0xFF));
        self.st.on_each_pin(self.t.as_mut(), 0x2C, SecretKind::Puk, puk, &data, "RESET RETRY COUNTER")
    }

    fn pin_length(&self) -> (usize, usize) {
        (5, 8)
    }

    fn puk_max_length(&self) -> usize {
        8
    }

    fn sign_sha256(
        &mut self,
        role: KeyRole,
        staged: Option<&StagedKey>,
        digest: &[u8; 32],
        pin: &str,
    ) -> Result<Vec<u8>> {
        let Cns { t, st, .. } = self;
        let slot = st.layout.slot(role);
        // VERIFY, MSE and the (chained) PSO in one transaction: the PIN verified is the one
        // the signature consumes, and no other program's command comes in between.
        atomic(t.as_mut(), |t| {
            st.login(t, slot, pin)?;
            if slot.key_df != st.layout.pins.get(slot.pin).map_or(&[][..], |o| o.df) {
                goto(t, slot.key_df)?;
            }
            expect_ok(send(t, 0x00, 0x22, 0xF3, 0x03, &[], Some(256))?, "MSE RESTORE")?;
            let tag = if staged.is_some() { 0x84 } else { 0x83 };
            expect_ok(send(t, 0x00, 0x22, 0xF1, 0xB6, &[tag, 0x01, slot.key], None)?, "MSE SET")?;
            let block = pkcs1_type1(&digest_info(digest), 256);
            expect_ok(send(t, 0x00, 0x2A, 0x9E, 0x9A, &block, Some(256))?, "PSO COMPUTE DIGITAL SIGNATURE")
        })
    }

    fn stage_key(&mut self, role: KeyRole, pin: &str) -> Result<StagedKey> {
        let Cns { t, st, .. } = self;
        let slot = st.layout.slot(role);
        atomic(t.as_mut(), |t| {
            st.login(t, slot, pin)?;
            let r = send(t, 0x00, 0x46, 0x80, slot.key, &[0x08, 0x00], Some(256))?;
            let template = expect_ok(r, "GENERATE KEY PAIR")?;
            Ok(StagedKey { role, public: parse_public_template(&template)?, handle: slot.key })
        })
    }

    fn install(&mut self, staged: &StagedKey, certificate: &[u8], pin: &str) -> Result<()> {
        let Cns { t, st, .. } = self;
        let slot = st.layout.slot(staged.role);
        atomic(t.as_mut(), |t| {
            st.login(t, slot, pin)?;
            expect_ok(send(t, 0x00, 0x46, 0x81, slot.key, certificate, None)?, "commit the renewal key")?;
            Ok(())
        })
    }

    fn pending_handle(&self, role: KeyRole) -> Option<u8> {
        // GENERATE P1 = 80 keeps the new key in the slot, in EEPROM, until P1 = 81 commits
        // it with its certificate: it outlives the session that generated it.
        Some(self.st.layout.slot(role).key)
    }

    fn on_card_renewal(&mut self) -> Result<super::OnCardRenewal> {
        let r = send(self.t.as_mut(), 0x00, 0xCA, PROBE_P1P2.0, PROBE_P1P2.1, &[], Some(256))?;
        if pending_key_commands(&r) {
            return Ok(super::OnCardRenewal::Available);
        }
        Ok(super::OnCardRenewal::Unavailable(format!(
            "this card ({}) has no pending-key commands (GENERATE KEY PAIR P1=80/81, MSE tag 84), which firmalab's renewal needs: \
             a genuine CNS's on-card renewal commands belong to the vendor middleware (Bit4id) and are not public; renew it with Aruba's own software. \
             Nothing was written (capability probe GET DATA 01 88: {})",
            self.model.lot.map_or(self.model.label.as_str(), |l| l.name),
            r.sw
        )))
    }

    fn tidy(&mut self, _pin: &str) -> Result<()> {
        // The commit swaps key and certificate in one command: nothing can be half-done. A
        // pending key left by an interrupted renewal is replaced by the next one.
        Ok(())
    }

    fn reset(&mut self, pin: &str) -> Result<PinOutcome> {
        let Cns { t, st, .. } = self;
        let o = st.layout.pins.get(st.layout.auth.pin).copied().ok_or_else(|| ClientError::Content("no PIN".into()))?;
        atomic(t.as_mut(), |t| {
            let outcome = st.verify_one(t, o, pin)?;
            if outcome != PinOutcome::Accepted {
                return Ok(outcome);
            }
            expect_ok(send(t, 0xB0, 0xF5, 0x00, 0x00, &[], None)?, "ERASE")?;
            Ok(PinOutcome::Accepted)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::atr::recognise;
    use crate::wire::hex::decode;

    fn layout(atr: &str) -> Layout {
        Layout::for_card(recognise(&decode(atr).unwrap()).cns)
    }

    #[test]
    fn pin_references_and_key_slots_follow_the_mask() {
        let st = layout("3BFF1800FF8131FE55006B02091303010101434E531131808C");
        assert_eq!(st.pins.iter().map(|o| o.secret.reference).collect::<Vec<_>>(), [0x9A, 0x90]);
        assert_eq!(st.puks.iter().map(|o| o.secret.reference).collect::<Vec<_>>(), [0x9B, 0x91]);
        assert_eq!((st.sign.key, st.sign.cert_display), (0x10, "3F00/1400/9010"));
        let idemia = layout("3BFF18000081 31FE45006B05052000012101434E53103180 79");
        assert_eq!(idemia.pins.iter().map(|o| o.secret.reference).collect::<Vec<_>>(), [0x10]);
        assert_eq!(idemia.puks[0].secret.reference, 0x11);
        assert_eq!((idemia.sign.key, idemia.sign.cert_display), (0x02, "3F00/1400/9001/2002"));
        assert_eq!(idemia.sign.key_df, &[0x14, 0x00, 0x90, 0x02]);
        // Another mask: OpenSC's references without the STIncard bit.
        let siemens = layout("3BFF1800FF8131FE55006B02080503010101434E5311318080");
        assert_eq!(siemens.pins.iter().map(|o| o.secret.reference).collect::<Vec<_>>(), [0x1A, 0x10]);
    }

    #[test]
    fn dati_personali_decodes_the_fields_in_order() {
        let body = "08FIRMALAB0801012023080101202605ROSSI05MARIO080101198001M0010RSSMRA80A01H501U";
        let file = format!("{:06X}{body}", body.len());
        let h = decode_dati_personali(file.as_bytes()).unwrap();
        assert_eq!((h.last_name.as_str(), h.first_name.as_str()), ("ROSSI", "MARIO"));
        assert_eq!(h.codice_fiscale, "RSSMRA80A01H501U");
        assert_eq!(h.birth_date, "01011980");
        assert!(decode_dati_personali(b"00000ZROSSI").is_none());
        assert!(decode_dati_personali(b"000010").is_none(), "shorter than it says");
    }
}
