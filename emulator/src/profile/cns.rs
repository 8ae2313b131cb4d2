//! Profile B of spec/cards.md: the Italian CNS on an Incard chip (STIncard mask), as the
//! OpenSC `itacns` driver and the Aruba middleware see it.
//!
//! * ATR (§3.1): the Aruba Incard ATR with H13 = `11` (CNS 1.1) so OpenSC registers RSA-2048;
//!   the genuine CNS 1.0 ATR is available for RSA-1024 cards.
//! * Files (§3.3): EF_IDCarta `3F00/1000/1003` (serial), CNS0 certificate `3F00/1100/1101`,
//!   EF_DatiPersonali `1102`, EF_MemoriaResidua `1200/1202`, signature DF `1400` with the
//!   certificate `9010` and the key container DF `8110`. `2F00`, `5015`, `5031` are absent.
//! * PINs (§3.4, §3.6): `10`/`11` (CNS0 PIN/PUK, in the MF) and `1A`/`1B` (CNS1, in DF 1400),
//!   8 bytes `FF`-padded; STIncard addresses them with bit 7 set ("search parent DFs").
//! * Crypto (§3.7): MSE RESTORE `F3 03`, MSE SET `F1 B6|B8 83 01 kk`; PSO CDS and PSO DECIPHER
//!   are both the raw RSA private operation on a block the host padded.
//! * Administration (spec/domain.md §1.2): GET DATA `01 83` life-cycle, ERASE `B0 F5`,
//!   GENERATE KEY PAIR `00 46 00 kk`, ISO CREATE/DELETE FILE.

use super::iso::{self, fid_of, no_data, p1p2_zero};
use super::{
    Ctx, DESCRIPTOR, DF_NAME, FILE_ID, FILE_SIZE, Fcp, PinOp, Profile, Recognised, SECURITY, TOTAL_SIZE, be16,
    fcp_fields, public_key_template, template, tlv,
};
use crate::apdu::{Apdu, Reply};
use crate::command::{Command, DataObject, KeyGen, NewFile, NewFileKind, PinRef, PinScope, SignPadding};
use crate::fs::{AccessCondition, Acl, FileBody, FileNode, MF};
use crate::hex::{Bytes, Hex8, Hex16};
use crate::image::PinRule;
use crate::image::{Capabilities, CardImage, ProfileKind, SCHEMA_NAME, SCHEMA_VERSION};
use crate::keys::{Algorithm, KeyObject, KeyUsage, PublicKey};
pub use crate::perso::DEFAULT_PIN;
use crate::perso::{Holder, KeySet, Personalization};
use crate::security::{Charset, PinObject, PinRole};
use crate::sw::Sw;

/// CNS 1.1 ATR (H13 = `11`): what the emulator presents by default, so RSA-2048 signs in
/// OpenSC 0.23 (spec/cards.md §3.1; TCK correct).
pub const ATR_CNS_1_1: [u8; 25] = [
    0x3B, 0xFF, 0x18, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x55, 0x00, 0x6B, 0x02, 0x09, 0x13, 0x03, 0x01, 0x01, 0x01, 0x43,
    0x4E, 0x53, 0x11, 0x31, 0x80, 0x8C,
];

/// The genuine Aruba Incard ATR, CNS 1.0 (OpenSC registers RSA-1024 only).
pub const ATR_CNS_1_0: [u8; 25] = [
    0x3B, 0xFF, 0x18, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x55, 0x00, 0x6B, 0x02, 0x09, 0x13, 0x03, 0x01, 0x01, 0x01, 0x43,
    0x4E, 0x53, 0x10, 0x31, 0x80, 0x8D,
];

/// PIN references.
pub const PIN_CNS0: u8 = 0x10;
pub const PUK_CNS0: u8 = 0x11;
pub const PIN_CNS1: u8 = 0x1A;
pub const PUK_CNS1: u8 = 0x1B;
/// Key references (security-environment numbers).
pub const KEY_CNS0: u8 = 0x01;
pub const KEY_CNS1: u8 = 0x10;
/// Certificate EFs of the two key sets.
pub const CERT_CNS0: [u16; 3] = [MF, 0x1100, 0x1101];
pub const CERT_CNS1: [u16; 3] = [MF, 0x1400, 0x9010];

/// The IDEMIA 2021 CNS's signature key reference and certificate (spec/domain.md §1.2).
pub const KEY_IDEMIA_SIGN: u8 = 0x02;
pub const CERT_IDEMIA_SIGN: [u16; 4] = [MF, 0x1400, 0x9001, 0x2002];

/// OpenSC's IDEMIA 2021 rule on a CNS ATR: IC Infineon (`05`), mask IDEMIA (`05`), firmware
/// major at least `20` (spec/domain.md §1.1).
pub fn is_idemia_2021(atr: &[u8]) -> bool {
    cns_historical_bytes(atr).is_some_and(|h| h[2] == 0x05 && h[3] == 0x05 && h[4] >= 0x20)
}

/// DER of the P-256 curve OID, as GENERATE KEY PAIR data.
const P256_OID_TLV: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

fn pin_ref(p2: u8) -> Result<PinRef, Sw> {
    if p2 & 0x7F == 0 {
        return Err(Sw::WrongP1P2);
    }
    Ok(PinRef { reference: p2 & 0x7F, scope: if p2 & 0x80 != 0 { PinScope::Local } else { PinScope::Global } })
}

/// The CNS profile.
pub struct Cns;

impl Profile for Cns {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Cns
    }

    fn name(&self) -> &'static str {
        "cns"
    }

    fn default_atr(&self) -> &'static [u8] {
        &ATR_CNS_1_1
    }

    fn recognise(&self, atr: &[u8]) -> Option<Recognised> {
        recognise(atr)
    }

    fn classes(&self) -> &'static [u8] {
        &[0x00, 0xB0]
    }

    /// The CNS's own arms (spec/cards.md §3.5, spec/domain.md §1.2); the rest is ISO.
    fn parse<'a>(&self, apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
        match (apdu.cla, apdu.ins) {
            // No record EFs on the CNS, so no record writes.
            (0x00, 0xDC | 0xE2) => Err(Sw::InsNotSupported),
            (0x00, 0x46) if apdu.p1 == 0x81 => {
                if apdu.data.is_empty() {
                    return Err(Sw::WrongLength);
                }
                Ok(Command::CommitKey { key: apdu.p2, certificate: apdu.data })
            }
            (0x00, 0x46) => {
                let pending = match apdu.p1 {
                    0x00 => false,
                    0x80 => true,
                    _ => return Err(Sw::WrongP1P2),
                };
                let algorithm = match apdu.data {
                    [0x04, 0x00] => Algorithm::Rsa1024,
                    [0x08, 0x00] => Algorithm::Rsa2048,
                    d if d == P256_OID_TLV => Algorithm::EcP256,
                    [_, _] => return Err(Sw::WrongData),
                    _ => return Err(Sw::WrongLength),
                };
                Ok(Command::GenerateKeyPair(KeyGen::Slot { key: apdu.p2, algorithm, pending }))
            }
            (0x00, 0xE0) => {
                p1p2_zero(apdu)?;
                Ok(Command::CreateFile(parse_create(apdu.data)?))
            }
            (0x00, 0xE4) => {
                p1p2_zero(apdu)?;
                Ok(Command::DeleteFile { fid: fid_of(apdu.data)?, df: None })
            }
            (0xB0, 0xF5) => {
                no_data(apdu)?;
                p1p2_zero(apdu)?;
                Ok(Command::EraseCard)
            }
            _ => iso::parse(self, apdu),
        }
    }

    /// `10`/`11`/`1A`/`1B`, bit 7 set: search from the current DF up (§3.4).
    fn pin_ref(&self, p2: u8, _op: PinOp) -> Result<PinRef, Sw> {
        pin_ref(p2)
    }

    /// OpenSC pads (RAW algorithm flag, §3.7): PSO CDS and DECIPHER are raw RSA.
    fn pin_rule(&self) -> PinRule {
        // spec/cards.md §3.6: 5–8 digits padded with FF to 8.
        PinRule { charset: Charset::Digits, min_len: 5, max_len: 8, pad_len: 8, pad_byte: 0xFF }
    }
    fn pso_padding(&self) -> SignPadding {
        SignPadding::Raw
    }

    /// `00 CA 01 83`: the life-cycle byte; `00 CA 01 88`: firmalab's extensions (answered
    /// `6A88` by a strict twin, as by a genuine card).
    fn data_object(&self, cla: u8, p1: u8, p2: u8) -> Option<DataObject> {
        match (cla, p1, p2) {
            (0x00, 0x01, 0x83) => Some(DataObject::LifeCycle),
            (0x00, 0x01, 0x88) => Some(DataObject::Extensions),
            _ => None,
        }
    }

    fn fcp(&self, _image: &CardImage, node: &FileNode) -> Result<Fcp, Sw> {
        fcp(node)
    }

    /// SE `03` is the one OpenSC restores (§3.5).
    fn restore_se(&self, _ctx: &dyn Ctx, se: u8) -> Result<(), Sw> {
        if se == 0x03 { Ok(()) } else { Err(Sw::ReferencedDataNotFound) }
    }

    /// ISO 7816-8 public-key template.
    fn keygen_reply(&self, public: &PublicKey, reply: &mut Reply) -> Result<(), Sw> {
        public_key_template(public, reply)
    }

    /// A renewed certificate is readable by anyone and rewritten only with the key's PIN.
    fn certificate_acl(&self, pin: Hex8) -> Result<Acl, Sw> {
        Ok(Acl {
            read: AccessCondition::Always,
            update: AccessCondition::Pin(pin),
            create: AccessCondition::Never,
            delete: AccessCondition::Never,
        })
    }

    /// ERASE needs a holder PIN verified.
    fn erase(&self, ctx: &mut dyn Ctx) -> Result<(), Sw> {
        let authorised =
            ctx.image().pins.iter().enumerate().any(|(i, p)| p.role == PinRole::User && ctx.pin_verified(i));
        if !authorised {
            return Err(Sw::SecurityNotSatisfied);
        }
        erase(ctx.image_mut());
        Ok(())
    }

    /// EF_IDCarta (`3F00/1000/1003`), 16 ASCII characters.
    fn serial(&self, image: &CardImage) -> Option<String> {
        match &crate::fs::lookup(&image.mf, &[MF, 0x1000, 0x1003])?.body {
            FileBody::Transparent { data } => Some(String::from_utf8_lossy(&data.0).into_owned()),
            _ => None,
        }
    }

    fn personalize(&self, p: &Personalization) -> Result<CardImage, String> {
        personalize(p)
    }
}

/// Recognises the CNS ATRs by `card-itacns.c`'s structural rule (§3.1), and the CIE, which
/// shares the shape.
fn recognise(atr: &[u8]) -> Option<Recognised> {
    const MASKS: [&str; 14] = [
        "?",
        "Kaitech",
        "Gemplus",
        "Ghirlanda",
        "Giesecke & Devrient",
        "Oberthur/IDEMIA",
        "Orga",
        "Axalto",
        "Siemens",
        "STIncard",
        "GEP",
        "EPS Corp",
        "Athena",
        "Gemalto",
    ];
    let hist = cns_historical_bytes(atr)?;
    let mask = MASKS.get(usize::from(hist[3])).copied().unwrap_or("unknown");
    if hist[6..15] == [0x01, hist[7], hist[8], 0x43, 0x4E, 0x53, hist[12], 0x31, 0x80] {
        let v = hist[12];
        let rsa = if v >= 0x11 { "RSA-1024/2048" } else { "RSA-1024 only in OpenSC 0.23" };
        return Some(Recognised {
            profile: Some(ProfileKind::Cns),
            label: format!("Italian CNS {}.{} (mask {mask}; {rsa}; OpenSC itacns)", v >> 4, v & 0x0F),
        });
    }
    if hist[6..15] == [0x02, 0x49, 0x54, 0x49, 0x44, 0x20, 0x20, 0x31, 0x80] {
        return Some(Recognised { profile: None, label: "Italian CIE v2 (not emulated)".into() });
    }
    None
}

/// The 15 historical bytes of an ATR shaped like the CNS ones (`card-itacns.c` rule), if any.
fn cns_historical_bytes(atr: &[u8]) -> Option<[u8; 15]> {
    let (&ts, rest) = atr.split_first()?;
    let (&t0, mut rest) = rest.split_first()?;
    if ts != 0x3B || t0 & 0x8F != 0x8F {
        return None;
    }
    let skip = |y: u8, rest: &mut &[u8]| -> Option<()> {
        let n = (y & 0x70).count_ones() as usize; // TA, TB, TC present bits
        *rest = rest.get(n..)?;
        Some(())
    };
    skip(t0, &mut rest)?;
    let (&td1, r) = rest.split_first()?;
    rest = r;
    if td1 & 0x8F != 0x81 {
        return None;
    }
    skip(td1, &mut rest)?;
    let (&td2, r) = rest.split_first()?;
    rest = r;
    if td2 != 0x31 {
        return None;
    }
    rest = rest.get(2..)?; // TA3, TB3
    let hist: [u8; 15] = rest.get(..15)?.try_into().ok()?;
    (hist[0] == 0x00 && hist[1] == 0x6B).then_some(hist)
}

fn ac_byte(ac: AccessCondition) -> u8 {
    match ac {
        AccessCondition::Always => 0x00,
        AccessCondition::Never => 0xFF,
        AccessCondition::Pin(Hex8(r)) => r & 0x1F,
    }
}

fn ac_of(b: u8) -> AccessCondition {
    match b {
        0x00 => AccessCondition::Always,
        0x01..=0x1F => AccessCondition::Pin(Hex8(b)),
        _ => AccessCondition::Never,
    }
}

/// The 9 access bytes of tag 86 (spec/cards.md §3.3). EF: READ, UPDATE, WRITE, INVALIDATE,
/// REHABILITATE, ERASE, ADMIN; DF: –, UPDATE, APPEND, INVALIDATE, REHABILITATE, DELETE,
/// ADMIN, CREATE.
fn acl_bytes(node: &FileNode) -> [u8; 9] {
    let a = node.acl;
    let never = 0xFF;
    if node.is_df() {
        [0x00, ac_byte(a.update), ac_byte(a.create), never, never, ac_byte(a.delete), never, ac_byte(a.create), never]
    } else {
        [ac_byte(a.read), ac_byte(a.update), ac_byte(a.update), never, never, ac_byte(a.delete), never, never, never]
    }
}

/// ISO FCP (observed working template `62 16 80 02 size 82 01 01 83 02 fid 86 09 …`).
pub fn fcp(node: &FileNode) -> Result<Fcp, Sw> {
    let mut f = Fcp::new();
    let size = u16::try_from(node.size()).unwrap_or(u16::MAX).to_be_bytes();
    match &node.body {
        FileBody::Df { aid, .. } => {
            tlv(&mut f, DESCRIPTOR, [0x38])?;
            tlv(&mut f, FILE_ID, node.fid.0.to_be_bytes())?;
            if let Some(aid) = aid {
                tlv(&mut f, DF_NAME, aid.0.as_slice())?;
            }
        }
        FileBody::Transparent { .. } | FileBody::FreeMemory => {
            tlv(&mut f, FILE_SIZE, size)?;
            tlv(&mut f, DESCRIPTOR, [0x01])?;
            tlv(&mut f, FILE_ID, node.fid.0.to_be_bytes())?;
        }
        FileBody::Records { record_len, max_records, .. } => {
            tlv(&mut f, FILE_SIZE, size)?;
            tlv(&mut f, DESCRIPTOR, [0x02, 0x21, 0x00, *record_len, *max_records])?;
            tlv(&mut f, FILE_ID, node.fid.0.to_be_bytes())?;
        }
        FileBody::PrivateKey { .. } | FileBody::PublicKey { .. } => {
            tlv(&mut f, FILE_SIZE, size)?;
            tlv(&mut f, DESCRIPTOR, [0x11])?;
            tlv(&mut f, FILE_ID, node.fid.0.to_be_bytes())?;
        }
    }
    tlv(&mut f, SECURITY, acl_bytes(node))?;
    template(&f)
}

/// CREATE FILE data: an ISO FCP with `80` size, `82` descriptor (`01` transparent, `38` DF),
/// `83` FID and optionally `86` access bytes.
fn parse_create(data: &[u8]) -> Result<NewFile, Sw> {
    let (mut size, mut desc, mut fid, mut acl) = (None, None, None, None);
    fcp_fields(data, |tag, v| {
        match tag {
            FILE_SIZE | TOTAL_SIZE => size = Some(be16(v)?),
            DESCRIPTOR => desc = v.first().copied(),
            FILE_ID => fid = Some(be16(v)?),
            SECURITY => acl = Some(<[u8; 9]>::try_from(v).map_err(|_| Sw::WrongData)?),
            _ => return Err(Sw::WrongData),
        }
        Ok(())
    })?;
    let fid = fid.ok_or(Sw::WrongData)?;
    if fid == MF || fid == 0xFFFF || fid == 0x3FFF {
        return Err(Sw::WrongData);
    }
    let kind = match desc {
        Some(0x38) => NewFileKind::Df,
        Some(0x01) => NewFileKind::Transparent { size: size.ok_or(Sw::WrongData)? },
        _ => return Err(Sw::WrongData),
    };
    let acl = match acl {
        None => Acl {
            read: AccessCondition::Always,
            update: AccessCondition::Always,
            create: AccessCondition::Always,
            delete: AccessCondition::Always,
        },
        Some(b) if kind == NewFileKind::Df => {
            Acl { read: AccessCondition::Always, update: ac_of(b[1]), create: ac_of(b[7]), delete: ac_of(b[5]) }
        }
        Some(b) => Acl { read: ac_of(b[0]), update: ac_of(b[1]), create: AccessCondition::Never, delete: ac_of(b[5]) },
    };
    Ok(NewFile { fid, kind, acl })
}

/// EF_DatiPersonali encoding (spec/domain.md §1.2): 6 ASCII-hex digits with the length of the
/// rest, then each field as 2 ASCII-hex digits of length and the value.
pub fn encode_dati_personali(h: &Holder) -> Vec<u8> {
    let fields = [
        &h.issuer_code,
        &h.issue_date,
        &h.expiry_date,
        &h.last_name,
        &h.first_name,
        &h.birth_date,
        &h.sex,
        &String::new(),
        &h.codice_fiscale,
    ];
    let mut body = String::new();
    for f in fields {
        body.push_str(&format!("{:02X}{}", f.len().min(255), f));
    }
    format!("{:06X}{}", body.len(), body).into_bytes()
}

/// Decodes EF_DatiPersonali; `None` when it is not in that format.
pub fn decode_dati_personali(data: &[u8]) -> Option<Holder> {
    let text = core::str::from_utf8(data).ok()?;
    let total = usize::from_str_radix(text.get(..6)?, 16).ok()?;
    let mut rest = text.get(6..6 + total)?;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let len = usize::from_str_radix(rest.get(..2)?, 16).ok()?;
        fields.push(rest.get(2..2 + len)?.to_owned());
        rest = rest.get(2 + len..)?;
    }
    let get = |i: usize| fields.get(i).cloned().unwrap_or_default();
    Some(Holder {
        issuer_code: get(0),
        issue_date: get(1),
        expiry_date: get(2),
        last_name: get(3),
        first_name: get(4),
        birth_date: get(5),
        sex: get(6),
        codice_fiscale: get(8),
    })
}

const fn pin_ac(r: u8) -> AccessCondition {
    AccessCondition::Pin(Hex8(r))
}

fn ef(fid: u16, name: &str, read: AccessCondition, update: AccessCondition, data: Vec<u8>) -> FileNode {
    FileNode::new(
        fid,
        Some(name),
        Acl { read, update, create: AccessCondition::Never, delete: AccessCondition::Never },
        FileBody::Transparent { data: Bytes(data) },
    )
}

fn df(fid: u16, name: &str, admin: AccessCondition, children: Vec<FileNode>) -> FileNode {
    FileNode::new(
        fid,
        Some(name),
        Acl { read: AccessCondition::Always, update: admin, create: admin, delete: admin },
        FileBody::Df { aid: None, children },
    )
}

fn pin(
    reference: u8,
    label: &str,
    role: PinRole,
    df: &[u16],
    value: &str,
    tries: u8,
    unblocked_by: Option<u8>,
) -> PinObject {
    PinObject {
        reference: Hex8(reference),
        label: label.into(),
        role,
        df: df.iter().map(|f| Hex16(*f)).collect(),
        value: value.into(),
        charset: Charset::Digits,
        min_len: 5,
        max_len: 8,
        pad_len: 8,
        pad_byte: Hex8(0xFF),
        max_tries: tries,
        tries_left: tries,
        unblocked_by: unblocked_by.map(Hex8),
    }
}

/// The CNS file tree, PINs and keys for a personalisation (spec/cards.md §3.3).
pub fn personalize(p: &Personalization) -> Result<CardImage, String> {
    if p.serial.len() != 16 || !p.serial.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("a CNS serial is 16 ASCII characters, got {:?}", p.serial));
    }
    let cert_file = |fid: u16, name: &str, ks: &Option<KeySet>, pin: u8| {
        ks.as_ref().map(|k| ef(fid, name, AccessCondition::Always, pin_ac(pin), k.certificate.clone()))
    };
    let always = AccessCondition::Always;
    let never = AccessCondition::Never;
    let dati_processore = b"INCARD STINCARD CNS".to_vec();
    let mut dir1100 = vec![];
    dir1100.extend(cert_file(0x1101, "CNS0 certificate (authentication)", &p.auth, PIN_CNS0));
    if p.auth.is_some() || p.sign.is_some() {
        dir1100.push(ef(0x1102, "EF_DatiPersonali", always, pin_ac(PIN_CNS0), encode_dati_personali(&p.holder)));
    }
    // The IDEMIA 2021 mask (OpenSC `pkcs15-itacns.c`, spec/domain.md §1.2): one PIN `10`
    // and PUK `11` in the MF guard both keys; the signature certificate is
    // `1400/9001/2002`, its key `02` in `1400/9002`.
    let idemia = p.atr.as_deref().is_some_and(is_idemia_2021);
    let (sign_pin, sign_key, sign_cert): (u8, u8, &[u16]) =
        if idemia { (PIN_CNS0, KEY_IDEMIA_SIGN, &CERT_IDEMIA_SIGN) } else { (PIN_CNS1, KEY_CNS1, &CERT_CNS1) };
    let mut dir1400 = vec![];
    if idemia {
        let certs = cert_file(0x2002, "qualified signature certificate", &p.sign, sign_pin);
        dir1400.push(df(0x9001, "signature certificates", pin_ac(sign_pin), certs.into_iter().collect()));
        dir1400.push(df(0x9002, "signature private key container", pin_ac(sign_pin), vec![]));
    } else {
        dir1400.extend(cert_file(0x9010, "CNS1 certificate (qualified signature)", &p.sign, PIN_CNS1));
        dir1400.push(df(0x8110, "CNS1 private key container", pin_ac(PIN_CNS1), vec![]));
    }
    let mf = FileNode::new(
        MF,
        Some("MF"),
        Acl { read: always, update: never, create: never, delete: never },
        FileBody::Df {
            aid: None,
            children: vec![
                df(
                    0x1000,
                    "DF_Chip",
                    never,
                    vec![
                        ef(0x1002, "EF_DatiProcessore", always, never, dati_processore),
                        ef(0x1003, "EF_IDCarta", always, never, p.serial.as_bytes().to_vec()),
                    ],
                ),
                df(0x1100, "DF1 (CNS)", pin_ac(PIN_CNS0), dir1100),
                df(
                    0x1200,
                    "DF2 (services)",
                    pin_ac(PIN_CNS0),
                    vec![
                        ef(0x1201, "EF_DatiPersonaliAggiuntivi", always, pin_ac(PIN_CNS0), vec![0; 32]),
                        FileNode::new(0x1202, Some("EF_MemoriaResidua"), Acl::open_read_only(), FileBody::FreeMemory),
                        ef(0x1203, "EF_ServiziInstallati", always, pin_ac(PIN_CNS0), vec![0; 32]),
                    ],
                ),
                df(0x1400, "DF firma (qualified signature)", pin_ac(sign_pin), dir1400),
            ],
        },
    );
    let blank = p.auth.is_none() && p.sign.is_none();
    let value = |v: &str| {
        if blank { DEFAULT_PIN.to_owned() } else { v.to_owned() }
    };
    let pins = if idemia {
        vec![
            pin(PIN_CNS0, "PIN", PinRole::User, &[MF], &value(&p.pin), p.pin_tries, Some(PUK_CNS0)),
            pin(PUK_CNS0, "PUK", PinRole::Puk, &[MF], &p.puk, p.puk_tries, None),
        ]
    } else {
        vec![
            pin(PIN_CNS0, "PIN CNS0", PinRole::User, &[MF], &value(&p.pin), p.pin_tries, Some(PUK_CNS0)),
            pin(PUK_CNS0, "PUK CNS0", PinRole::Puk, &[MF], &p.puk, p.puk_tries, None),
            pin(PIN_CNS1, "PIN CNS1", PinRole::User, &[MF, 0x1400], &value(&p.pin), p.pin_tries, Some(PUK_CNS1)),
            pin(PUK_CNS1, "PUK CNS1", PinRole::Puk, &[MF, 0x1400], &p.puk, p.puk_tries, None),
        ]
    };
    let slot = |reference: u8, label: &str, pin: u8, always_auth: bool, ks: &Option<KeySet>, cert: &[u16]| KeyObject {
        reference: Hex8(reference),
        label: ks.as_ref().map_or_else(|| label.to_owned(), |k| k.info.label.clone()),
        algorithm: ks.as_ref().map_or(Algorithm::Rsa2048, |k| k.algorithm),
        // Both PSO forms reach both keys: OpenSC signs through DECIPHER when the certificate
        // implies a decipher usage (spec/cards.md §3.7).
        usage: KeyUsage { sign: true, decipher: true },
        pin: Hex8(pin),
        always_authenticate: always_auth,
        material: ks.as_ref().map(|k| k.material.clone()),
        pending: None,
        certificate: Some(cert.iter().map(|f| Hex16(*f)).collect()),
    };
    Ok(CardImage {
        schema: SCHEMA_NAME.into(),
        version: SCHEMA_VERSION,
        profile: ProfileKind::Cns,
        description: p.description.clone(),
        atr: Bytes(p.atr.clone().unwrap_or_else(|| ATR_CNS_1_1.to_vec())),
        life_cycle: p.life_cycle,
        capacity: p.capacity,
        capabilities: Capabilities { p256: p.p256 },
        cplc: None,
        history: p.history.clone(),
        mf,
        pins,
        keys: vec![
            slot(KEY_CNS0, "CNS0 authentication key", PIN_CNS0, false, &p.auth, &CERT_CNS0),
            slot(sign_key, "CNS1 qualified signature key", sign_pin, true, &p.sign, sign_cert),
        ],
        security_environments: vec![],
        extensions: crate::image::Extension::convenience(ProfileKind::Cns),
        tries_query_counts: false,
    })
}

/// ERASE (`B0 F5 00 00`), what PKI Manager's reset does (spec/domain.md §4, §6.3 item 5):
/// certificates and personal data deleted, key slots emptied, both user PINs back to the
/// default 12345 with full counters, life-cycle back to admin. The serial and the PUKs stay.
pub fn erase(image: &mut CardImage) {
    let remove = |image: &mut CardImage, path: &[u16], fid: u16| {
        if let Some(children) = crate::fs::lookup_mut(&mut image.mf, path).and_then(FileNode::children_mut) {
            children.retain(|c| c.fid.0 != fid);
        }
    };
    // Each key's certificate (CNS0 `1100/1101`, CNS1 `1400/9010`, or where the mask keeps
    // it), and the personal data.
    let certificates: Vec<Vec<u16>> =
        image.keys.iter().filter_map(|k| k.certificate.as_ref()).map(|p| p.iter().map(|h| h.0).collect()).collect();
    for path in certificates {
        if let Some((fid, parent)) = path.split_last() {
            remove(image, parent, *fid);
        }
    }
    remove(image, &[MF, 0x1100], 0x1102);
    for k in &mut image.keys {
        k.material = None;
        k.pending = None;
    }
    for p in image.pins.iter_mut().filter(|p| p.role == PinRole::User) {
        p.value = DEFAULT_PIN.into();
        p.tries_left = p.max_tries;
    }
    image.life_cycle = crate::image::LifeCycle::Admin;
}
