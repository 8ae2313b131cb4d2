//! The Oberthur AWP client (spec/cards.md §2, §7.1): the driver's connect sequence, paths
//! walked one FID at a time with the FCP requested, PINs padded with `FF` to 64, the card
//! padding DigestInfos, the PUK-file unblock OpenSC 0.23 cannot do, and renewal through AWP
//! objects: new key files `30nn`/`10nn` next to the old ones, then the lists and the container
//! switched to them and the old objects deleted.

use super::guard::{Guard, SecretKind, SecretObject, SecretPolicy, send_secret};
use super::{
    CardCert, CardClient, ClientError, Counter, Holder, KeyRole, PinOutcome, Result, StagedKey, atomic, digest_info,
    expect_ok, fcp_fields, fcp_size, padded, pin_outcome, read_all, role_of, rsa_public, send,
};
use crate::transport::Transport;
use crate::wire::{CardModel, Profile, Sw};
use iso7816::tlv::Tag;
use rsa::traits::PublicKeyParts;

/// The GlobalPlatform card manager (Open Platform 2.0.1 AID), selected first by the driver.
pub const AID_CARD_MANAGER: [u8; 7] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00];
/// The AuthentIC application.
pub const AID_AUTHENTIC: [u8; 16] =
    [0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x03, 0x03, 0x00, 0x00, 0x00, 0xF1, 0x00, 0x00, 0x00, 0x02];

const AWP: u16 = 0x5011;
const PUBLIC: u16 = 0x9001;
const PRIVATE: u16 = 0x9002;
/// The AWP "PUK file": the 16-byte unblock code.
const PUK_FILE: u16 = 0x2000;
/// Record length of the container list `3000` (OpenSC's oberthur.profile).
const CONTAINER_RECORD_LEN: u8 = 141;

const USER_PIN: SecretObject = SecretObject { label: "SCM (user PIN)", kind: SecretKind::Pin, reference: 0x81 };
const PUK: SecretObject = SecretObject { label: "PUK", kind: SecretKind::Puk, reference: 0x84 };

/// Oberthur attribute flags of a private key info blob (spec/cards.md §2.4): modifiable
/// `0001`, generated on card `0004`, decrypt `0010`, sign `0020`, sign-recover `0080`,
/// unwrap `0400`. The renewal keys are generated on the card.
const FLAGS_AUTH_KEY: u16 = 0x0001 | 0x0004 | 0x0010 | 0x0020 | 0x0080 | 0x0400;
const FLAGS_SIGN_KEY: u16 = 0x0001 | 0x0004 | 0x0020;

pub struct Oberthur {
    t: Box<dyn Transport>,
    model: CardModel,
    serial: String,
    guard: Guard,
}

/// A length-prefixed value of the info blobs: 2-byte big-endian length, then the value.
fn llv(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&u16::try_from(v.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(v);
}

/// What the info blobs say about a key and its certificate.
struct ObjectInfo {
    label: &'static str,
    /// The PKCS#15 ID linking key and certificate: SHA-1 of the modulus (20 bytes).
    id: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl ObjectInfo {
    fn new(role: KeyRole, cert: &x509_cert::Certificate, public: &rsa::RsaPublicKey) -> Result<Self> {
        use der::Encode;
        use sha1::Digest;
        let tbs = cert.tbs_certificate();
        let der = |e: der::Error| ClientError::Content(format!("new certificate: {e}"));
        let modulus = public.n().to_be_bytes_trimmed_vartime().to_vec();
        Ok(ObjectInfo {
            label: match role {
                KeyRole::Signature => "CNS1 qualified signature",
                KeyRole::Authentication => "CNS0 authentication",
            },
            id: sha1::Sha1::digest(&modulus).to_vec(),
            subject: tbs.subject().to_der().map_err(der)?,
            issuer: tbs.issuer().to_der().map_err(der)?,
            serial: tbs.serial_number().as_bytes().to_vec(),
            exponent: public.e().to_be_bytes_trimmed_vartime().to_vec(),
            modulus,
        })
    }

    /// Certificate info `21nn` (spec/cards.md §2.4): flags (modifiable), label, ID, subject,
    /// issuer, serial, each LLV.
    fn cert_info(&self) -> Vec<u8> {
        let mut b = 0x0001u16.to_be_bytes().to_vec();
        llv(&mut b, self.label.as_bytes());
        llv(&mut b, &self.id);
        llv(&mut b, &self.subject);
        llv(&mut b, &self.issuer);
        llv(&mut b, &self.serial);
        b
    }

    /// Private-key info `31nn` (spec/cards.md §2.4): flags, label LLV, ID LLV, 16 date bytes
    /// (ASCII `0`s, as pkcs15-init writes), subject LLV, the modulus raw, the exponent as a
    /// 1-byte length and the value.
    fn key_info(&self, flags: u16) -> Vec<u8> {
        let mut b = flags.to_be_bytes().to_vec();
        llv(&mut b, self.label.as_bytes());
        llv(&mut b, &self.id);
        b.extend_from_slice(&[b'0'; 16]);
        llv(&mut b, &self.subject);
        b.extend_from_slice(&self.modulus);
        b.push(u8::try_from(self.exponent.len()).unwrap_or(0));
        b.extend_from_slice(&self.exponent);
        b
    }
}

/// An object-list entry (spec/cards.md §2.4): `FF`, file ID, size, big endian.
fn list_entry(fid: u16, size: u16) -> [u8; 5] {
    let [f0, f1] = fid.to_be_bytes();
    let [s0, s1] = size.to_be_bytes();
    [0xFF, f0, f1, s0, s1]
}

fn fcp_ef(fid: u16, size: u16) -> Vec<u8> {
    let [f0, f1] = fid.to_be_bytes();
    let [s0, s1] = size.to_be_bytes();
    // Transparent EF: WRITE/UPDATE/ERASE with the user PIN, READ always.
    vec![
        0x62, 0x16, 0x82, 0x02, 0x01, 0x01, 0x83, 0x02, f0, f1, 0x85, 0x02, s0, s1, 0x86, 0x08, 0x21, 0x21, 0x00, 0x21,
        0xFF, 0xFF, 0xFF, 0xFF,
    ]
}

fn fcp_key(fid: u16, private: bool) -> Vec<u8> {
    let [f0, f1] = fid.to_be_bytes();
    let (ty, ac) = if private {
        (0x14, [0x21, 0x21, 0xFF, 0x21, 0xFF, 0x21, 0xFF, 0xFF])
    } else {
        (0x12, [0x21, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF])
    };
    let mut v = vec![0x62, 0x16, 0x82, 0x02, ty, 0x00, 0x83, 0x02, f0, f1, 0x85, 0x02, 0x08, 0x00, 0x86, 0x08];
    v.extend_from_slice(&ac);
    v
}

impl Oberthur {
    /// Runs the connect sequence of spec/cards.md §2.2.
    pub fn new(mut t: Box<dyn Transport>, model: CardModel) -> Result<Self> {
        let serial = atomic(t.as_mut(), |t| {
            expect_ok(send(t, 0x00, 0xA4, 0x04, 0x0C, &AID_CARD_MANAGER, None)?, "select the card manager")?;
            let cplc = expect_ok(send(t, 0x80, 0xCA, 0x9F, 0x7F, &[], Some(0x2D))?, "GET DATA CPLC")?;
            // CPLC bytes 15..18 of the answer: the IC serial number, the token serial.
            let serial: String = cplc
                .get(15..19)
                .ok_or_else(|| ClientError::Content("CPLC shorter than 19 bytes".into()))?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            expect_ok(send(t, 0x00, 0xA4, 0x04, 0x0C, &AID_AUTHENTIC, None)?, "select the AuthentIC application")?;
            Ok(serial)
        })?;
        let guard = Guard::new(model.tries_query_free);
        Ok(Oberthur { t, model, serial, guard })
    }

    /// Runs `f` on this client with the card held exclusively.
    fn atomic<R>(&mut self, f: impl FnOnce(&mut Session<'_>) -> Result<R>) -> Result<R> {
        let Oberthur { t, guard, .. } = self;
        atomic(t.as_mut(), |t| f(&mut Session { t, guard }))
    }
}

/// The client inside one exclusive section.
struct Session<'a> {
    t: &'a mut dyn Transport,
    guard: &'a mut Guard,
}

impl Session<'_> {
    /// Walks a path from the MF one FID at a time, FCP requested (as the driver does).
    fn select(&mut self, path: &[u16]) -> Result<(Sw, Vec<u8>)> {
        let mut last = (Sw::Ok, vec![]);
        for fid in std::iter::once(&0x3F00).chain(path) {
            let r = send(self.t, 0x00, 0xA4, 0x00, 0x00, &fid.to_be_bytes(), None)?;
            if !r.ok() {
                return Ok((r.sw, vec![]));
            }
            last = (r.sw, r.data);
        }
        Ok(last)
    }

    fn select_ok(&mut self, path: &[u16], what: &str) -> Result<Vec<u8>> {
        match self.select(path)? {
            (Sw::Ok, fcp) => Ok(fcp),
            (sw, _) => Err(ClientError::Card { what: format!("select {what}"), sw }),
        }
    }

    fn read(&mut self, path: &[u16], what: &str) -> Result<Vec<u8>> {
        let fcp = self.select_ok(path, what)?;
        let size = fcp_size(&fcp).ok_or_else(|| ClientError::Content(format!("{what}: FCP without a size")))?;
        read_all(self.t, size, 256, what)
    }

    /// Presents a PIN or PUK in the AWP DF, through the guard.
    fn verify(&mut self, obj: SecretObject, value: &str) -> Result<PinOutcome> {
        self.select_ok(&[AWP], "the AWP DF")?;
        let r = send_secret(
            self.guard,
            self.t,
            obj,
            Some(value),
            (0x00, 0x20, 0x00, obj.reference),
            &padded(value, 64, 0xFF),
        )?;
        pin_outcome(&r, "VERIFY")
    }

    fn login(&mut self, pin: &str) -> Result<()> {
        match self.verify(USER_PIN, pin)? {
            PinOutcome::Accepted => Ok(()),
            PinOutcome::Wrong { tries_left } => {
                Err(ClientError::Card { what: "VERIFY".into(), sw: Sw::TriesLeft(tries_left) })
            }
            PinOutcome::Blocked => Err(ClientError::Card { what: "VERIFY".into(), sw: Sw::AuthBlocked }),
        }
    }

    fn counter(&mut self, obj: SecretObject) -> Result<Counter> {
        if self.guard.query_free {
            self.select_ok(&[AWP], "the AWP DF")?;
        }
        self.guard.counter(self.t, obj)
    }

    /// The object index `nn` of the key with this role, from the certificates listed.
    fn index_of(&mut self, role: KeyRole) -> Result<u8> {
        for c in self.list(0x4000, 250)? {
            if c >> 8 == 0x20 {
                let der = self.read(&[AWP, PUBLIC, c], "certificate")?;
                if role_of(&der) == Some(role) {
                    return Ok(c as u8);
                }
            }
        }
        Err(ClientError::Content(format!("no {role:?} certificate listed")))
    }

    /// FIDs listed in an object list (`4000` public, `5000` private).
    fn list(&mut self, fid: u16, size: usize) -> Result<Vec<u16>> {
        let data = self.read(&[AWP, fid], "object list")?;
        Ok(data
            .get(..size.min(data.len()))
            .unwrap_or_default()
            .chunks_exact(5)
            .filter(|e| e[0] == 0xFF)
            .map(|e| u16::from_be_bytes([e[1], e[2]]))
            .collect())
    }

    fn update_binary(&mut self, data: &[u8], what: &str) -> Result<()> {
        for (i, chunk) in data.chunks(255).enumerate() {
            let off = i * 255;
            expect_ok(send(self.t, 0x00, 0xD6, (off >> 8) as u8, off as u8, chunk, None)?, what)?;
        }
        Ok(())
    }

    /// Creates (replacing) a transparent EF in a DF and writes it.
    fn write_ef(&mut self, df: u16, fid: u16, data: &[u8], what: &str) -> Result<()> {
        self.select_ok(&[AWP, df], "DF")?;
        let _ = send(self.t, 0x00, 0xE4, 0x02, 0x00, &fid.to_be_bytes(), None)?;
        let size = u16::try_from(data.len()).map_err(|_| ClientError::Content(format!("{what} too large")))?;
        expect_ok(send(self.t, 0x00, 0xE0, 0x00, 0x00, &fcp_ef(fid, size), None)?, &format!("create {what}"))?;
        self.update_binary(data, what)
    }

    fn delete(&mut self, df: u16, fid: u16) -> Result<()> {
        self.select_ok(&[AWP, df], "DF")?;
        let r = send(self.t, 0x00, 0xE4, 0x02, 0x00, &fid.to_be_bytes(), None)?;
        match r.sw {
            Sw::Ok | Sw::FileNotFound => Ok(()),
            sw => Err(ClientError::Card { what: format!("delete {fid:04X}"), sw }),
        }
    }

    /// Replaces the list entry for `old` with one for `new` (or appends it).
    fn relist(&mut self, list: u16, size: usize, old: u16, new: u16, entry_size: u16) -> Result<()> {
        let mut data = self.read(&[AWP, list], "object list")?;
        data.resize(size, 0);
        let entry = list_entry(new, entry_size);
        let pos = data.chunks_exact(5).position(|e| e[0] == 0xFF && u16::from_be_bytes([e[1], e[2]]) == old);
        let free = data.chunks_exact(5).position(|e| e[0] != 0xFF);
        let at = pos.or(free).ok_or_else(|| ClientError::Content("object list full".into()))? * 5;
        data.get_mut(at..at + 5)
            .ok_or_else(|| ClientError::Content("object list full".into()))?
            .copy_from_slice(&entry);
        self.update_binary(&data, "object list")
    }

    /// Makes the private list and the containers follow the certificates listed in the public
    /// list (the commit point of an installation) and, with `sweep_orphans`, deletes objects of
    /// indices no listed certificate has. Needs the user PIN verified.
    fn repair(&mut self, sweep_orphans: bool) -> Result<()> {
        let listed: Vec<u8> = self.list(0x4000, 250)?.into_iter().filter(|f| f >> 8 == 0x20).map(|f| f as u8).collect();
        // Private list: exactly the keys of the listed certificates.
        let mut private = self.read(&[AWP, 0x5000], "private list")?;
        private.resize(125, 0);
        let mut changed = false;
        let mut present: Vec<u8> = vec![];
        for e in private.chunks_exact_mut(5) {
            if e[0] == 0xFF && e[1] == 0x30 {
                if listed.contains(&e[2]) && !present.contains(&e[2]) {
                    present.push(e[2]);
                } else {
                    e.copy_from_slice(&[0; 5]);
                    changed = true;
                }
            }
        }
        for nn in listed.iter().filter(|nn| !present.contains(nn)) {
            if let Some(e) = private.chunks_exact_mut(5).find(|e| e[0] != 0xFF) {
                e.copy_from_slice(&list_entry(0x3000 | u16::from(*nn), 0x0800));
                changed = true;
            }
        }
        if changed {
            self.select_ok(&[AWP, 0x5000], "private list")?;
            self.update_binary(&private, "private list")?;
        }
        // Containers: a record naming an unlisted key takes a listed one no record names.
        self.select_ok(&[AWP, 0x3000], "the container list")?;
        let mut records = vec![];
        for rec in 1..=u8::MAX {
            let r = send(self.t, 0x00, 0xB2, rec, 0x04, &[], Some(u16::from(CONTAINER_RECORD_LEN)))?;
            if r.sw == Sw::RecordNotFound {
                break;
            }
            records.push((rec, expect_ok(r, "READ RECORD")?));
        }
        let named: Vec<u8> =
            records.iter().filter_map(|(_, r)| r.get(3).copied()).filter(|nn| listed.contains(nn)).collect();
        let mut free = listed.iter().filter(|nn| !named.contains(nn)).copied();
        for (rec, mut record) in records {
            if record.get(3).is_some_and(|nn| !listed.contains(nn))
                && let Some(nn) = free.next()
                && let Some(head) = record.get_mut(0..6)
            {
                head.copy_from_slice(&[0x10, nn, 0x30, nn, 0x20, nn]);
                expect_ok(send(self.t, 0x00, 0xDC, rec, 0x04, &record, None)?, "UPDATE RECORD")?;
            }
        }
        // Orphans: objects of an index no listed certificate has (left by an interrupted
        // renewal). Not during an install: the other role's staged key is not listed yet.
        if !sweep_orphans {
            return Ok(());
        }
        for (df, classes) in [(PRIVATE, &[0x30u8, 0x31][..]), (PUBLIC, &[0x10, 0x20, 0x21][..])] {
            self.select_ok(&[AWP, df], "DF")?;
            let files = expect_ok(send(self.t, 0x80, 0x34, 0, 0, &[], Some(0x40))?, "LIST FILES")?;
            for f in files.chunks_exact(2) {
                if classes.contains(&f[0]) && !listed.contains(&f[1]) {
                    self.delete(df, u16::from_be_bytes([f[0], f[1]]))?;
                }
            }
        }
        Ok(())
    }

    fn free_index(&mut self) -> Result<u8> {
        let used: Vec<u8> =
            self.list(0x5000, 125)?.iter().chain(self.list(0x4000, 250)?.iter()).map(|f| *f as u8).collect();
        self.select_ok(&[AWP, PRIVATE], "private DF")?;
        let present = expect_ok(send(self.t, 0x80, 0x34, 0, 0, &[], Some(0x40))?, "LIST FILES")?;
        let present: Vec<u8> = present.chunks_exact(2).map(|c| c[1]).collect();
        (1..=0x0F)
            .find(|i| !used.contains(i) && !present.contains(i))
            .ok_or_else(|| ClientError::Content("no free key index".into()))
    }
}

impl CardClient for Oberthur {
    fn profile(&self) -> Profile {
        Profile::Oberthur
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
        self.guard.policy
    }

    fn set_policy(&mut self, policy: SecretPolicy) {
        self.guard.policy = policy;
    }

    fn was_rejected(&self, kind: SecretKind, value: &str) -> bool {
        self.guard.was_rejected(kind, value)
    }

    fn serial(&mut self) -> Result<String> {
        Ok(self.serial.clone())
    }

    fn certificates(&mut self) -> Result<Vec<CardCert>> {
        self.atomic(|s| {
            let mut out = Vec::new();
            for fid in s.list(0x4000, 250)? {
                if fid >> 8 != 0x20 {
                    continue;
                }
                let der = s.read(&[AWP, PUBLIC, fid], "certificate")?;
                let role = role_of(&der)
                    .ok_or_else(|| ClientError::Content(format!("certificate {fid:04X} does not parse")))?;
                out.push(CardCert { role, der, path: format!("3F00/5011/9001/{fid:04X}") });
            }
            Ok(out)
        })
    }

    fn holder(&mut self) -> Result<Option<Holder>> {
        Ok(None)
    }

    fn life_cycle(&mut self) -> Result<Option<u8>> {
        Ok(None)
    }

    fn free_memory(&mut self) -> Result<Option<u32>> {
        self.atomic(|s| {
            let fcp = s.select_ok(&[], "MF")?;
            // Tag 85 of a DF FCP: free space in KiB, one byte (§2.3, informative).
            let kib = fcp_fields(&fcp).find_map(|(tag, v)| match v {
                [kib] if tag == Tag::from_u8(0x85) => Some(u32::from(*kib)),
                _ => None,
            });
            Ok(kib.map(|k| k * 1024))
        })
    }

    fn pin_counters(&mut self) -> Result<Vec<Counter>> {
        self.atomic(|s| Ok(vec![s.counter(USER_PIN)?]))
    }

    fn puk_counters(&mut self) -> Result<Vec<Counter>> {
        self.atomic(|s| Ok(vec![s.counter(PUK)?]))
    }

    fn signing_pin(&self, _role: KeyRole) -> SecretObject {
        USER_PIN
    }

    fn verify_pin(&mut self, pin: &str) -> Result<PinOutcome> {
        self.atomic(|s| s.verify(USER_PIN, pin))
    }

    fn change_pin(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let mut data = padded(old, 64, 0xFF);
        data.extend(padded(new, 64, 0xFF));
        self.atomic(|s| {
            s.select_ok(&[AWP], "the AWP DF")?;
            let r = send_secret(s.guard, s.t, USER_PIN, Some(old), (0x00, 0x24, 0x00, 0x01), &data)?;
            pin_outcome(&r, "CHANGE REFERENCE DATA")
        })
    }

    fn change_puk(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let mut data = padded(old, 64, 0xFF);
        data.extend(padded(new, 64, 0xFF));
        self.atomic(|s| {
            s.select_ok(&[AWP], "the AWP DF")?;
            let r = send_secret(s.guard, s.t, PUK, Some(old), (0x00, 0x24, 0x00, PUK.reference), &data)?;
            pin_outcome(&r, "CHANGE REFERENCE DATA (PUK)")
        })
    }

    fn unblock_pin(&mut self, puk: &str, new_pin: &str) -> Result<PinOutcome> {
        // The AWP unblock (§2.6): VERIFY the PUK, read the unblock code from 5011/2000, then
        // RESET RETRY COUNTER with it, in one transaction.
        self.atomic(|s| {
            let o = s.verify(PUK, puk)?;
            if o != PinOutcome::Accepted {
                return Ok(o);
            }
            let code = s.read(&[AWP, PUK_FILE], "the PUK file")?;
            s.select_ok(&[AWP], "the AWP DF")?;
            let mut data = code;
            data.extend(padded(new_pin, 64, 0xFF));
            // The code comes from the card, not from the user: nothing to remember if refused.
            let r = send_secret(s.guard, s.t, PUK, None, (0x00, 0x2C, 0x00, 0x01), &data)?;
            pin_outcome(&r, "RESET RETRY COUNTER")
        })
    }

    fn pin_length(&self) -> (usize, usize) {
        (4, 64)
    }

    fn puk_max_length(&self) -> usize {
        64
    }

    fn sign_sha256(
        &mut self,
        role: KeyRole,
        staged: Option<&StagedKey>,
        digest: &[u8; 32],
        pin: &str,
    ) -> Result<Vec<u8>> {
        self.atomic(|s| {
            let nn = match staged {
                Some(k) => k.handle,
                None => s.index_of(role)?,
            };
            s.login(pin)?;
            s.select_ok(&[AWP, PRIVATE, 0x3000 | u16::from(nn)], "the private key")?;
            expect_ok(send(s.t, 0x00, 0x22, 0x41, 0xB6, &[0x80, 0x01, 0x11], None)?, "MSE SET")?;
            expect_ok(send(s.t, 0x00, 0x2A, 0x9E, 0x9A, &digest_info(digest), None)?, "PSO COMPUTE DIGITAL SIGNATURE")
        })
    }

    fn stage_key(&mut self, role: KeyRole, pin: &str) -> Result<StagedKey> {
        self.atomic(|s| {
            s.login(pin)?;
            let nn = s.free_index()?;
            let (prv, publ) = (0x3000 | u16::from(nn), 0x1000 | u16::from(nn));
            s.select_ok(&[AWP, PRIVATE], "private DF")?;
            expect_ok(send(s.t, 0x00, 0xE0, 0x00, 0x00, &fcp_key(prv, true), None)?, "create the private key file")?;
            s.select_ok(&[AWP, PUBLIC], "public DF")?;
            expect_ok(send(s.t, 0x00, 0xE0, 0x00, 0x00, &fcp_key(publ, false), None)?, "create the public key file")?;
            let mut data = publ.to_be_bytes().to_vec();
            data.extend(prv.to_be_bytes());
            let modulus = expect_ok(send(s.t, 0x00, 0x46, 0x00, 0x00, &data, Some(256))?, "GENERATE KEY PAIR")?;
            s.select_ok(&[AWP, PUBLIC, publ], "the public key")?;
            let exponent = expect_ok(send(s.t, 0x80, 0xB4, 0x02, 0x00, &[], Some(256))?, "READ PUBLIC COMPONENT")?;
            Ok(StagedKey { role, public: rsa_public(&modulus, &exponent)?, handle: nn })
        })
    }

    fn install(&mut self, staged: &StagedKey, certificate: &[u8], pin: &str) -> Result<()> {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(certificate)
            .map_err(|e| ClientError::Content(format!("new certificate: {e}")))?;
        let info = ObjectInfo::new(staged.role, &cert, &staged.public)?;
        let flags = if staged.role == KeyRole::Signature { FLAGS_SIGN_KEY } else { FLAGS_AUTH_KEY };
        self.atomic(|s| {
            let old = s.index_of(staged.role)?;
            let nn = staged.handle;
            s.login(pin)?;
            let cert_fid = 0x2000 | u16::from(nn);
            s.write_ef(PUBLIC, cert_fid, certificate, "certificate")?;
            s.write_ef(PUBLIC, 0x2100 | u16::from(nn), &info.cert_info(), "certificate info")?;
            s.write_ef(PRIVATE, 0x3100 | u16::from(nn), &info.key_info(flags), "key info")?;
            // The commit point: the public list names the new certificate for the role. Before
            // it the old certificate and key are current; after it the new ones (both exist).
            let cert_len = u16::try_from(certificate.len()).unwrap_or(u16::MAX);
            s.relist(0x4000, 250, 0x2000 | u16::from(old), cert_fid, cert_len)?;
            // Private list and containers follow the public list; the old objects go.
            s.repair(false)?;
            for (df, fid) in
                [(PRIVATE, 0x3000), (PRIVATE, 0x3100), (PUBLIC, 0x2000), (PUBLIC, 0x2100), (PUBLIC, 0x1000)]
            {
                s.delete(df, fid | u16::from(old))?;
            }
            Ok(())
        })
    }

    fn tidy(&mut self, pin: &str) -> Result<()> {
        self.atomic(|s| {
            s.login(pin)?;
            s.repair(true)
        })
    }

    fn logout(&mut self) -> Result<()> {
        if !self.guard.succeeded(USER_PIN) {
            return Ok(());
        }
        // LOGOUT (`80 2E 00 21`, spec/cards.md §2.5), as OpenSC's PKCS#11 module ends a session.
        expect_ok(send(self.t.as_mut(), 0x80, 0x2E, 0x00, 0x21, &[], None)?, "LOGOUT")?;
        Ok(())
    }

    fn reset(&mut self, pin: &str) -> Result<PinOutcome> {
        self.atomic(|s| {
            let o = s.verify(USER_PIN, pin)?;
            if o != PinOutcome::Accepted {
                return Ok(o);
            }
            // The commit point: with the public list empty the card holds no certificate for
            // any client. Then the lists, containers and objects go, and the PIN last.
            s.select_ok(&[AWP, 0x4000], "public list")?;
            s.update_binary(&[0; 250], "public list")?;
            s.select_ok(&[AWP, 0x5000], "private list")?;
            s.update_binary(&[0; 125], "private list")?;
            s.select_ok(&[AWP, 0x3000], "container list")?;
            while send(s.t, 0x80, 0x32, 0x01, 0x04, &[], None)?.ok() {}
            for df in [PRIVATE, PUBLIC] {
                s.select_ok(&[AWP, df], "DF")?;
                let files = expect_ok(send(s.t, 0x80, 0x34, 0, 0, &[], Some(0x40))?, "LIST FILES")?;
                for f in files.chunks_exact(2) {
                    s.delete(df, u16::from_be_bytes([f[0], f[1]]))?;
                }
            }
            s.select_ok(&[AWP], "the AWP DF")?;
            // The PIN back to the default 12345 with CHANGE REFERENCE DATA (`00 24 00 01`,
            // old ‖ new): the holder knows the PIN; redefining a PIN object (CREATE PIN) is
            // the security officer's.
            let mut data = padded(pin, 64, 0xFF);
            data.extend(padded(super::DEFAULT_PIN, 64, 0xFF));
            let r = send_secret(s.guard, s.t, USER_PIN, Some(pin), (0x00, 0x24, 0x00, 0x01), &data)?;
            pin_outcome(&r, "CHANGE REFERENCE DATA")
        })
    }
}
