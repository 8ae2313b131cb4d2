//! The Incard Incrypto34 client (spec/cards.md §4): a card with an on-card PKCS#15
//! application, read the way a PKCS#15 middleware reads it (the ODF names the AODF, PrKDF and
//! CDF; the AODF the PIN's reference and padding; the PrKDF each key's reference; the CDF
//! each certificate's file). Independent of the emulator: its own constants, its own DER
//! reading (`iso7816::tlv`).
//!
//! * Paths are selected from the MF with `00 A4 08 0C`; the PKCS#15 DF is `3F00/5015`.
//! * PINs are padded with `00` to 8 bytes and addressed `80 | ref` ("search the parent DFs",
//!   what OpenSC's `incrypto34_pin_cmd` sends). The PUK is not in the AODF: `pkcs15-init`
//!   gives it the PIN's reference + 1, and RESET RETRY COUNTER names the PIN.
//! * Keys sign only (the driver refuses keys that also decipher), with algorithm `88`: the
//!   card pads the DigestInfo it receives. MSE RESTORE `F3 01`, MSE SET `F1 B6 83 01 kk`.
//! * The serial is the TokenInfo serial number in lowercase hex (as OpenSC shows it); the
//!   card has no holder data file and does not report its free memory.
//! * An obsolete lot (RSA-1024 at most): no renewal, and no reset by the holder (ERASE needs
//!   the issuer's SO PIN).

use super::guard::{Guard, SecretKind, SecretObject, SecretPolicy, send_secret};
use super::{
    CardCert, CardClient, ClientError, Counter, Holder, KeyRole, PinOutcome, Result, StagedKey, atomic, digest_info,
    expect_ok, fcp_size, padded, pin_outcome, read_all, role_of, send,
};
use crate::Reason;
use crate::transport::Transport;
use crate::wire::{CardModel, Profile, Sw, hex};
use iso7816::tlv::{Tag, take_data_object};

/// The PKCS#15 application DF, as a path below the MF.
const APP: [u8; 2] = [0x50, 0x15];
/// EF.ODF and EF.TokenInfo in it.
const ODF: [u8; 4] = [0x50, 0x15, 0x50, 0x31];
const TOKEN_INFO: [u8; 4] = [0x50, 0x15, 0x50, 0x32];
/// ODF entries: privateKeys `A0`, certificates `A4`, authObjects `A8`.
const ODF_PRKDF: u8 = 0xA0;
const ODF_CDF: u8 = 0xA4;
const ODF_AODF: u8 = 0xA8;
/// PIN values are padded to this length with this byte (`incrypto34.profile`).
const PIN_LEN: usize = 8;
const PAD: u8 = 0x00;
/// The security environment `pkcs15-init` creates in the application DF (and the driver
/// restores before every MSE SET).
const SE: u8 = 0x01;

/// What the card's PKCS#15 objects say, read once per client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Layout {
    /// The user PIN's reference (not the SO PIN, not an unblocking PIN).
    pin: u8,
    /// Its PUK's reference: the AODF's unblocking PIN if it lists one, else `pin + 1`.
    puk: u8,
    keys: Vec<Key>,
    certs: Vec<Cert>,
}

/// A private key of the PrKDF.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    id: Vec<u8>,
    reference: u8,
    /// Modulus bytes.
    size: usize,
}

/// A certificate of the CDF.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cert {
    id: Vec<u8>,
    /// Path from the MF, `3F00` included.
    path: Vec<u8>,
}

pub struct Incrypto34 {
    t: Box<dyn Transport>,
    model: CardModel,
    guard: Guard,
    layout: Option<Layout>,
    /// The role of each certificate (by its PKCS#15 ID), once read.
    roles: Vec<(Vec<u8>, KeyRole)>,
}

impl Incrypto34 {
    pub fn new(t: Box<dyn Transport>, model: CardModel) -> Self {
        let guard = Guard::new(model.tries_query_free);
        Incrypto34 { t, model, guard, layout: None, roles: vec![] }
    }

    fn layout(&mut self) -> Result<Layout> {
        if let Some(l) = &self.layout {
            return Ok(l.clone());
        }
        let l = read_layout(self.t.as_mut())?;
        self.layout = Some(l.clone());
        Ok(l)
    }

    fn pin_object(layout: &Layout) -> SecretObject {
        SecretObject { label: "PIN", kind: SecretKind::Pin, reference: 0x80 | layout.pin }
    }

    fn puk_object(layout: &Layout) -> SecretObject {
        SecretObject { label: "PUK", kind: SecretKind::Puk, reference: 0x80 | layout.puk }
    }

    /// Sends a command carrying secrets to `target` (P2 = its reference), spending a try of
    /// `spent`, in the application DF.
    fn secret_command(
        &mut self,
        ins: u8,
        target: SecretObject,
        spent: SecretObject,
        value: &str,
        data: &[u8],
        what: &str,
    ) -> Result<PinOutcome> {
        let Incrypto34 { t, guard, .. } = self;
        atomic(t.as_mut(), |t| {
            select(t, &APP)?;
            let r = send_secret(guard, t, spent, Some(value), (0x00, ins, 0x00, target.reference), data)?;
            pin_outcome(&r, what)
        })
    }
}

fn select(t: &mut dyn Transport, path: &[u8]) -> Result<()> {
    let sw = send(t, 0x00, 0xA4, 0x08, 0x0C, path, None)?.sw;
    if sw == Sw::Ok { Ok(()) } else { Err(ClientError::Card { what: format!("select {}", hex::encode(path)), sw }) }
}

/// Selects a file by its path below the MF, with its FCP, and reads it whole.
fn read_file(t: &mut dyn Transport, path: &[u8]) -> Result<Vec<u8>> {
    let what = format!("3F00{}", hex::encode(path));
    atomic(t, |t| {
        let fcp = expect_ok(send(t, 0x00, 0xA4, 0x08, 0x00, path, Some(256))?, &what)?;
        let size = fcp_size(&fcp).ok_or_else(|| ClientError::Content(format!("{what}: FCP without a size")))?;
        read_all(t, size, 255, &what)
    })
}

/// The BER-TLVs of a PKCS#15 directory file or of a constructed value; stops at the zero
/// padding a directory file is created with.
fn objects(mut data: &[u8]) -> Vec<(Tag, &[u8])> {
    let mut out = vec![];
    while data.first().is_some_and(|b| *b != 0x00) {
        let Some((tag, value, rest)) = take_data_object(data) else { break };
        out.push((tag, value));
        data = rest;
    }
    out
}

fn first(data: &[u8], tag: u8) -> Option<&[u8]> {
    objects(data).into_iter().find(|(t, _)| *t == Tag::from_u8(tag)).map(|(_, v)| v)
}

/// The path bytes of a PKCS#15 `Path` (`SEQUENCE { OCTET STRING }`).
fn path_of(value: &[u8]) -> Option<Vec<u8>> {
    first(first(value, 0x30)?, 0x04).map(<[u8]>::to_vec)
}

/// A path from the MF as the select command wants it (without `3F00`).
fn below_mf(path: &[u8]) -> &[u8] {
    path.strip_prefix(&[0x3F, 0x00]).unwrap_or(path)
}

/// A BIT STRING's bit `n` (0 = the most significant bit of the first value byte).
fn bit(bits: &[u8], n: usize) -> bool {
    bits.get(1 + n / 8).is_some_and(|b| b & (0x80 >> (n % 8)) != 0)
}

fn small_int(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 4 {
        return None;
    }
    Some(v.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)))
}

/// Reads the ODF, then the AODF, PrKDF and CDF it names.
fn read_layout(t: &mut dyn Transport) -> Result<Layout> {
    let bad = |what: &str| ClientError::Content(format!("the card's PKCS#15 {what} cannot be read"));
    let odf = read_file(t, &ODF)?;
    let mut paths = (None, None, None);
    for (tag, value) in objects(&odf) {
        let p = path_of(value);
        match tag {
            t if t == Tag::from_u8(ODF_AODF) => paths.0 = p,
            t if t == Tag::from_u8(ODF_PRKDF) => paths.1 = p,
            t if t == Tag::from_u8(ODF_CDF) => paths.2 = p,
            _ => {}
        }
    }
    let (Some(aodf), Some(prkdf)) = (paths.0, paths.1) else {
        return Err(bad("ODF (no AODF or PrKDF)"));
    };
    // AODF: PKCS15Object { common, class { authId }, [1] { PinAttributes } }.
    let mut pin = None;
    let mut puk = None;
    for (_, object) in objects(&read_file(t, below_mf(&aodf))?) {
        let Some(attrs) = first(object, 0xA1).and_then(|a| first(a, 0x30)) else { continue };
        let fields = objects(attrs);
        let flags = fields.iter().find(|(t, _)| *t == Tag::from_u8(0x03)).map(|(_, v)| *v).unwrap_or_default();
        let Some(reference) = fields.iter().find(|(t, _)| *t == Tag::from_u8(0x80)).and_then(|(_, v)| v.first()) else {
            continue;
        };
        // pinFlags: unblockingPin (6), soPin (7).
        match (bit(flags, 6), bit(flags, 7)) {
            (true, _) => puk = puk.or(Some(*reference)),
            (false, false) => pin = pin.or(Some(*reference)),
            (false, true) => {}
        }
    }
    let pin = pin.ok_or_else(|| bad("AODF (no user PIN)"))?;
    // PrKDF: PKCS15Object { common, class { id, usage, …, keyReference }, …, [1] { path, modulusLength } }.
    let mut keys = vec![];
    for (_, object) in objects(&read_file(t, below_mf(&prkdf))?) {
        let parts = objects(object);
        let Some(class) = parts.get(1).filter(|(t, _)| *t == Tag::from_u8(0x30)).map(|(_, v)| objects(v)) else {
            continue;
        };
        let id = class.iter().find(|(t, _)| *t == Tag::from_u8(0x04)).map(|(_, v)| v.to_vec());
        let reference = class.iter().find(|(t, _)| *t == Tag::from_u8(0x02)).and_then(|(_, v)| small_int(v));
        let bits =
            first(object, 0xA1).and_then(|a| first(a, 0x30)).and_then(|rsa| first(rsa, 0x02)).and_then(small_int);
        if let (Some(id), Some(reference), Some(bits)) = (id, reference, bits) {
            keys.push(Key { id, reference: reference as u8, size: bits / 8 });
        }
    }
    // CDF: PKCS15Object { common, class { id }, [1] { x509 { path } } }.
    let mut certs = vec![];
    if let Some(cdf) = paths.2 {
        for (_, object) in objects(&read_file(t, below_mf(&cdf))?) {
            let id = objects(object).get(1).and_then(|(_, class)| first(class, 0x04)).map(<[u8]>::to_vec);
            let path = first(object, 0xA1).and_then(|a| first(a, 0x30)).and_then(path_of);
            if let (Some(id), Some(path)) = (id, path) {
                certs.push(Cert { id, path });
            }
        }
    }
    Ok(Layout { pin, puk: puk.unwrap_or(pin + 1), keys, certs })
}

/// `3F00/5015/3104` from path bytes.
fn display(path: &[u8]) -> String {
    path.chunks(2).map(hex::encode).collect::<Vec<_>>().join("/")
}

impl CardClient for Incrypto34 {
    fn profile(&self) -> Profile {
        Profile::Incrypto34
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

    /// The TokenInfo serialNumber (`SEQUENCE { version, OCTET STRING serial, … }`).
    fn serial(&mut self) -> Result<String> {
        let info = read_file(self.t.as_mut(), &TOKEN_INFO)?;
        let serial = first(&info, 0x30)
            .and_then(|body| first(body, 0x04))
            .ok_or_else(|| ClientError::Content("the TokenInfo has no serial number".into()))?;
        Ok(serial.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn certificates(&mut self) -> Result<Vec<CardCert>> {
        let layout = self.layout()?;
        let mut out = vec![];
        for c in &layout.certs {
            let der = read_file(self.t.as_mut(), below_mf(&c.path))?;
            let role = role_of(&der)
                .ok_or_else(|| ClientError::Content(format!("the certificate in {} is not X.509", display(&c.path))))?;
            out.push(CardCert { role, der, path: display(&c.path) });
            self.roles.retain(|(id, _)| *id != c.id);
            self.roles.push((c.id.clone(), role));
        }
        Ok(out)
    }

    fn holder(&mut self) -> Result<Option<Holder>> {
        Ok(None)
    }

    fn life_cycle(&mut self) -> Result<Option<u8>> {
        let r = send(self.t.as_mut(), 0x00, 0xCA, 0x01, 0x83, &[], Some(256))?;
        Ok(if r.ok() { r.data.first().copied() } else { None })
    }

    fn free_memory(&mut self) -> Result<Option<u32>> {
        Ok(None)
    }

    fn pin_counters(&mut self) -> Result<Vec<Counter>> {
        let obj = Self::pin_object(&self.layout()?);
        let Incrypto34 { t, guard, .. } = self;
        Ok(vec![atomic(t.as_mut(), |t| {
            if guard.query_free {
                select(t, &APP)?;
            }
            guard.counter(t, obj)
        })?])
    }

    fn puk_counters(&mut self) -> Result<Vec<Counter>> {
        let obj = Self::puk_object(&self.layout()?);
        let Incrypto34 { t, guard, .. } = self;
        Ok(vec![atomic(t.as_mut(), |t| {
            if guard.query_free {
                select(t, &APP)?;
            }
            guard.counter(t, obj)
        })?])
    }

    fn signing_pin(&self, _role: KeyRole) -> SecretObject {
        // One user PIN guards every key.
        let pin = self.layout.as_ref().map_or(0x03, |l| l.pin);
        SecretObject { label: "PIN", kind: SecretKind::Pin, reference: 0x80 | pin }
    }

    fn verify_pin(&mut self, pin: &str) -> Result<PinOutcome> {
        let obj = Self::pin_object(&self.layout()?);
        self.secret_command(0x20, obj, obj, pin, &padded(pin, PIN_LEN, PAD), "VERIFY")
    }

    fn change_pin(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let obj = Self::pin_object(&self.layout()?);
        let mut data = padded(old, PIN_LEN, PAD);
        data.extend(padded(new, PIN_LEN, PAD));
        self.secret_command(0x24, obj, obj, old, &data, "CHANGE REFERENCE DATA")
    }

    fn change_puk(&mut self, old: &str, new: &str) -> Result<PinOutcome> {
        let obj = Self::puk_object(&self.layout()?);
        let mut data = padded(old, PIN_LEN, PAD);
        data.extend(padded(new, PIN_LEN, PAD));
        self.secret_command(0x24, obj, obj, old, &data, "CHANGE REFERENCE DATA (PUK)")
    }

    /// RESET RETRY COUNTER names the PIN; the card checks the PUK linked to it.
    fn unblock_pin(&mut self, puk: &str, new_pin: &str) -> Result<PinOutcome> {
        let layout = self.layout()?;
        let mut data = padded(puk, PIN_LEN, PAD);
        data.extend(padded(new_pin, PIN_LEN, PAD));
        self.secret_command(
            0x2C,
            Self::pin_object(&layout),
            Self::puk_object(&layout),
            puk,
            &data,
            "RESET RETRY COUNTER",
        )
    }

    /// `incrypto34.profile`: 4 to 8 characters.
    fn pin_length(&self) -> (usize, usize) {
        (4, PIN_LEN)
    }

    fn puk_max_length(&self) -> usize {
        PIN_LEN
    }

    /// VERIFY, MSE RESTORE, MSE SET and PSO CDS with the DigestInfo (the card pads it), in
    /// one transaction.
    fn sign_sha256(
        &mut self,
        role: KeyRole,
        staged: Option<&StagedKey>,
        digest: &[u8; 32],
        pin: &str,
    ) -> Result<Vec<u8>> {
        if staged.is_some() {
            return Err(no_renewal());
        }
        let layout = self.layout()?;
        if self.roles.is_empty() {
            self.certificates()?;
        }
        let id = self
            .roles
            .iter()
            .find(|(_, r)| *r == role)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| ClientError::Content(format!("no {} certificate on the card", role_name(role))))?;
        let key =
            layout.keys.iter().find(|k| k.id == id).cloned().ok_or_else(|| {
                ClientError::Content(format!("no private key for the {} certificate", role_name(role)))
            })?;
        let obj = Self::pin_object(&layout);
        let Incrypto34 { t, guard, .. } = self;
        atomic(t.as_mut(), |t| {
            select(t, &APP)?;
            let r =
                send_secret(guard, t, obj, Some(pin), (0x00, 0x20, 0x00, obj.reference), &padded(pin, PIN_LEN, PAD))?;
            if r.sw != Sw::Ok {
                return Err(ClientError::Card { what: "VERIFY".into(), sw: r.sw });
            }
            expect_ok(send(t, 0x00, 0x22, 0xF3, SE, &[], None)?, "MSE RESTORE")?;
            expect_ok(send(t, 0x00, 0x22, 0xF1, 0xB6, &[0x83, 0x01, key.reference], None)?, "MSE SET")?;
            let le = u16::try_from(key.size).unwrap_or(256);
            expect_ok(send(t, 0x00, 0x2A, 0x9E, 0x9A, &digest_info(digest), Some(le))?, "PSO COMPUTE DIGITAL SIGNATURE")
        })
    }

    fn stage_key(&mut self, _role: KeyRole, _pin: &str) -> Result<StagedKey> {
        Err(no_renewal())
    }

    fn install(&mut self, _staged: &StagedKey, _certificate: &[u8], _pin: &str) -> Result<()> {
        Err(no_renewal())
    }

    fn tidy(&mut self, _pin: &str) -> Result<()> {
        Ok(())
    }

    /// The holder cannot reset an Incrypto34: ERASE is under the MF's delete condition, the
    /// issuer's SO PIN, and takes the whole PKCS#15 application with it.
    fn reset(&mut self, _pin: &str) -> Result<PinOutcome> {
        Err(ClientError::Refused {
            reason: Reason::ResetNotSupported,
            message: "an Incrypto34 is erased only with the issuer's SO PIN (and loses its PKCS#15 application): \
                      take it back to the registration office"
                .into(),
        })
    }
}

fn role_name(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Signature => "signature",
        KeyRole::Authentication => "authentication",
    }
}

fn no_renewal() -> ClientError {
    ClientError::Refused {
        reason: Reason::ObsoleteCard,
        message: "an Incrypto34 holds RSA keys of 1024 bits at most: it cannot be renewed, the holder needs a new card"
            .into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::hex::decode;

    #[test]
    fn directory_files_stop_at_their_zero_padding() {
        // An ODF as pkcs15-init writes it: AODF and CDF paths, then zeros to the file size.
        let odf = decode("A80A300804063F0050154401A40A300804063F00501544040000000000").unwrap();
        let entries = objects(&odf);
        assert_eq!(entries.len(), 2);
        assert_eq!(path_of(entries[1].1), Some(decode("3F0050154404").unwrap()));
        assert_eq!(below_mf(&decode("3F0050154404").unwrap()), &[0x50, 0x15, 0x44, 0x04]);
    }

    #[test]
    fn pin_flags_bits_count_from_the_most_significant_bit() {
        // local, initialized, needs-padding, soPin (0x4D, no unused bits).
        let so = decode("004D").unwrap();
        assert!(bit(&so, 7) && bit(&so, 1) && !bit(&so, 6) && !bit(&so, 0));
        let user = decode("024C").unwrap();
        assert!(!bit(&user, 7) && !bit(&user, 6) && bit(&user, 4));
        assert_eq!(small_int(&[0x04, 0x00]), Some(1024));
        assert_eq!(display(&decode("3F0050153104").unwrap()), "3F00/5015/3104");
    }
}
