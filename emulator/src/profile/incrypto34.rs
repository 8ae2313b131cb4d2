//! Profile C of spec/cards.md: the Incard Incrypto34 ("ARUBA INCRYPTO34" in its TokenInfo),
//! as OpenSC's `incrypto34` driver (`card-incrypto34.c`, `pkcs15-incrypto34.c`,
//! `incrypto34.profile`, OpenSC 0.23; removed in 0.25) drives it.
//!
//! * ATR (§4.1): the single "DSD" ATR of the driver's table; T=1. OpenSC tries the driver only
//!   with `card_drivers = incrypto34, internal` in `opensc.conf`.
//! * Files (§4.2): an on-card PKCS#15 application, DF `5015` with the ODF `5031`, TokenInfo
//!   `5032`, AODF `4401`, PrKDF `4402`, CDF `4404` and certificate EFs `31xx`, all created by
//!   ISO CREATE FILE (FCP `62` or FCI `6F` templates, 9 access bytes in tag `86`).
//! * BS objects (§4.4): PINs, key components and security environments are not files but
//!   objects of a DF, created with PUT DATA OCI (`00 DA 01 6E`) and SECI (`00 DA 01 6D`); an
//!   object that exists already answers `6A89`, which `pkcs15-incrypto34.c` relies on.
//! * PINs (§4.3): ASCII, 4 to 8 characters, padded with `00` to 8; VERIFY/CHANGE/RESET RETRY
//!   COUNTER name them `80 | ref` ("search the parent DFs"); wrong secret `63Cx` (the
//!   driver's table does not know `63Cx` and reports "card command failed"; spec §4.3).
//! * Keys (§4.4): RSA 512, 768 or 1024 bits. CHANGE KEY DATA (`90 24`) and GENERATE KEY
//!   (`00 46`, public key into the record file `7EAD`) under the key's own PIN once the key
//!   is live. Signature keys are algorithm `88` (RSA_SIG): the card pads the DigestInfo it
//!   receives, so OpenSC's first attempt (the padded block) gets `6700` and its second (the
//!   DigestInfo) the signature; decipher keys (`0C`, RSA_PURE) return the raw block.
//! * Administration: SCAN DF (`B0 FC`), ERASE (`B0 F5`, under the MF's delete condition: the
//!   whole file system and every BS object go, the MF opens for the driver to recreate
//!   `2F01` and `FD01`), GET DATA `01 83` life-cycle.
//! * Status words: only ones in the driver's table (`incrypto34_errors`), so OpenSC reads
//!   every answer the way the driver's authors meant.

use super::iso::{self, fid_of, no_data, p1p2_zero};
use super::{
    Ctx, DESCRIPTOR, DF_NAME, FILE_ID, FILE_SIZE, Fcp, PinOp, Profile, Recognised, SECURITY, TOTAL_SIZE, template, tlv,
};
use crate::apdu::{Apdu, Class, Reply};
use crate::command::{Command, DataObject, NewFile, NewFileKind, PinRef, PinScope, SignPadding};
use crate::fs::{AccessCondition, Acl, FileBody, FileNode, MF};
use crate::hex::{Bytes, Hex8, Hex16};
use crate::image::{
    Capabilities, CardImage, LifeCycle, PinRule, ProfileKind, SCHEMA_NAME, SCHEMA_VERSION, SecurityEnvironmentObject,
};
use crate::keys::{Algorithm, KeyObject, KeyUsage, PublicKey};
use crate::perso::{KeySet, Personalization};
use crate::security::{Charset, MAX_PINS, MAX_TRIES, PinObject, PinRole};
use crate::sw::Sw;
use iso7816::tlv::{Tag, take_data_object};

/// The ATR of `incrypto34_atrs` (historical bytes "DSD"; TCK correct).
pub const ATR: [u8; 25] = [
    0x3B, 0xFF, 0x18, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x55, 0x00, 0x6B, 0x02, 0x09, 0x02, 0x00, 0x01, 0x01, 0x01, 0x44,
    0x53, 0x44, 0x10, 0x31, 0x80, 0x92,
];

/// The PKCS#15 application DF and its files (spec/cards.md §4.2).
pub const DF_PKCS15: u16 = 0x5015;
pub const EF_ODF: u16 = 0x5031;
pub const EF_TOKEN_INFO: u16 = 0x5032;
pub const EF_AODF: u16 = 0x4401;
pub const EF_PRKDF: u16 = 0x4402;
pub const EF_PUKDF: u16 = 0x4403;
pub const EF_CDF: u16 = 0x4404;
/// `pkcs15-init`'s marker file (`01 06 "pkcs15"`: the profile option it was built with).
pub const EF_INIT: u16 = 0x4946;
/// EF.DIR in the MF.
pub const EF_DIR: u16 = 0x2F00;
/// The token label of an Aruba card.
pub const TOKEN_LABEL: &str = "ARUBA INCRYPTO34";
/// The PKCS#15 application identifier.
pub const AID_PKCS15: [u8; 12] = [0xA0, 0x00, 0x00, 0x00, 0x63, 0x50, 0x4B, 0x43, 0x53, 0x2D, 0x31, 0x35];

/// PIN references of an issued card, as `pkcs15-init` numbers them (§4.3): SO PIN 1, user
/// PIN 3 with its PUK 4.
pub const PIN_SO: u8 = 0x01;
pub const PIN_USER: u8 = 0x03;
pub const PUK_USER: u8 = 0x04;
/// Key references of an issued card (`pkcs15-incrypto34.c` numbers keys from 16).
pub const KEY_SIGN: u8 = 0x10;
pub const KEY_AUTH: u8 = 0x11;

/// Every PIN object: up to 8 bytes, padded with `00` to 8 (`incrypto34.profile`).
const PIN_LEN: u8 = 8;
/// OCI object classes (`83` first byte): a PIN test object, a PSO key component `2n`.
const CLASS_PIN: u8 = 0x00;
const CLASS_KEY: u8 = 0x20;
/// OCI algorithm bytes (`85` third byte).
const ALGO_PIN: u8 = 0x87;
/// Longest record of a record EF (one length byte).
const MAX_RECORD: u16 = 255;

/// The Incrypto34 profile.
pub struct Incrypto34;

/// The Incrypto34's commands the engine does not model (§4.4), executed here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Own {
    /// PUT DATA OCI: a PIN or key-component BS object in the current DF.
    PutOci,
    /// PUT DATA SECI: a security environment in the current DF.
    PutSeci,
    /// CHANGE KEY DATA `90 24 2n (80|kk)`: component `n` of key `kk`.
    ChangeKeyData { component: u8, key: u8 },
    /// GENERATE KEY `00 46 00 kk`: the key pair into BS object `kk`, the public key into the
    /// record EF `file` of the current DF.
    GenerateKey { key: u8, file: u16 },
    /// SCAN DF `B0 FC 00 00|01`: the first or next child of the current DF.
    ScanDf { first: bool },
}

impl Own {
    /// `None`: not one of them.
    fn parse(apdu: &Apdu<'_>) -> Option<Result<Own, Sw>> {
        let r = match (apdu.cla, apdu.ins) {
            (0x00, 0xDA) => match (apdu.p1, apdu.p2) {
                _ if apdu.data.is_empty() => Err(Sw::WrongLength),
                (0x01, 0x6E) => Ok(Own::PutOci),
                (0x01, 0x6D) => Ok(Own::PutSeci),
                // PUT DATA FCI (`01 6C`) exists on the chip; OpenSC never sends it.
                (0x01, 0x6C) => Err(Sw::FunctionNotSupported),
                _ => Err(Sw::WrongP1P2),
            },
            (0x90, 0x24) => match (apdu.p1, apdu.p2) {
                _ if apdu.data.is_empty() => Err(Sw::WrongLength),
                (c @ (0x20 | 0x21), kk) if kk & 0x80 != 0 => {
                    Ok(Own::ChangeKeyData { component: c & 0x0F, key: kk & 0x7F })
                }
                _ => Err(Sw::WrongP1P2),
            },
            (0x00, 0x46) => match (apdu.p1, apdu.data) {
                (0x00, &[0x20, kk, hi, lo, _, _, _, _]) if kk == apdu.p2 => {
                    Ok(Own::GenerateKey { key: kk, file: u16::from_be_bytes([hi, lo]) })
                }
                (0x00, [_, _, _, _, _, _, _, _]) => Err(Sw::WrongData),
                (0x00, _) => Err(Sw::WrongLength),
                _ => Err(Sw::WrongP1P2),
            },
            (0xB0, 0xFC) => match (apdu.p1, apdu.p2) {
                _ if !apdu.data.is_empty() => Err(Sw::WrongLength),
                (0x00, 0x00) => Ok(Own::ScanDf { first: true }),
                (0x00, 0x01) => Ok(Own::ScanDf { first: false }),
                _ => Err(Sw::WrongP1P2),
            },
            _ => return None,
        };
        Some(r)
    }

    fn execute(self, ctx: &mut dyn Ctx, data: &[u8]) -> Result<Sw, Sw> {
        match self {
            Own::PutOci => put_oci(ctx, data),
            Own::PutSeci => put_seci(ctx, data),
            Own::ChangeKeyData { component, key } => change_key_data(ctx, component, key, data),
            Own::GenerateKey { key, file } => generate_key(ctx, key, file),
            Own::ScanDf { first } => scan_df(ctx, first),
        }
    }
}

impl Profile for Incrypto34 {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Incrypto34
    }

    fn name(&self) -> &'static str {
        "incrypto34"
    }

    fn default_atr(&self) -> &'static [u8] {
        &ATR
    }

    /// The driver's table has this one ATR (exact match).
    fn recognise(&self, atr: &[u8]) -> Option<Recognised> {
        (atr == ATR).then(|| Recognised {
            profile: Some(ProfileKind::Incrypto34),
            label: "Incard Incrypto34 (OpenSC incrypto34, with card_drivers = incrypto34 in opensc.conf)".into(),
        })
    }

    fn classes(&self) -> &'static [u8] {
        &[0x00, 0x90, 0xB0]
    }

    /// `90` is CHANGE KEY DATA's own class, not a chained `80`.
    fn class(&self, cla: u8) -> Result<Class, Sw> {
        if cla == 0x90 {
            return Ok(Class { base: 0x90, chained: false });
        }
        let class = Class::iso(cla)?;
        if self.classes().contains(&class.base) { Ok(class) } else { Err(Sw::ClaNotSupported) }
    }

    /// The Incrypto34's own arms (§4.4); the rest is ISO.
    fn parse<'a>(&self, apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
        if let Some(own) = Own::parse(apdu) {
            return own.map(|_| Command::Own(*apdu));
        }
        match (apdu.cla, apdu.ins) {
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
            // Signature keys are RSA_SIG (algorithm 88): the card pads the DigestInfo.
            (0x00, 0x2A) if (apdu.p1, apdu.p2) == (0x9E, 0x9A) => {
                if apdu.data.is_empty() {
                    return Err(Sw::WrongLength);
                }
                Ok(Command::ComputeSignature { input: apdu.data, padding: SignPadding::Pkcs1 })
            }
            _ => iso::parse(self, apdu),
        }
    }

    fn execute_own(&self, ctx: &mut dyn Ctx, apdu: &Apdu<'_>) -> Result<Sw, Sw> {
        Own::parse(apdu).unwrap_or(Err(Sw::InsNotSupported))?.execute(ctx, apdu.data)
    }

    /// `80 | ref` searches the current DF and its parents (what OpenSC always sends); a bare
    /// reference only the current DF.
    fn pin_ref(&self, p2: u8, _op: PinOp) -> Result<PinRef, Sw> {
        if p2 & 0x7F == 0 {
            return Err(Sw::WrongP1P2);
        }
        let scope = if p2 & 0x80 != 0 { PinScope::Local } else { PinScope::CurrentDf };
        Ok(PinRef { reference: p2 & 0x7F, scope })
    }

    /// Printable ASCII, 4 to 8 characters, padded with `00` to 8 (`incrypto34.profile`).
    fn pin_rule(&self) -> PinRule {
        PinRule { charset: Charset::Ascii, min_len: 4, max_len: PIN_LEN, pad_len: PIN_LEN, pad_byte: 0x00 }
    }

    /// PSO DECIPHER carries the ISO padding indicator and returns the raw block (RSA_PURE);
    /// PSO CDS is parsed above.
    fn pso_padding(&self) -> SignPadding {
        SignPadding::Raw
    }

    /// `00 CA 01 83`: the life-cycle byte (`incrypto34_lifecycle_get`).
    fn data_object(&self, cla: u8, p1: u8, p2: u8) -> Option<DataObject> {
        ((cla, p1, p2) == (0x00, 0x01, 0x83)).then_some(DataObject::LifeCycle)
    }

    fn fcp(&self, _image: &CardImage, node: &FileNode) -> Result<Fcp, Sw> {
        fcp(node)
    }

    /// A security environment PUT DATA SECI stored in the current DF or one of its parents.
    fn restore_se(&self, ctx: &dyn Ctx, se: u8) -> Result<(), Sw> {
        let df = ctx.current_path();
        let found = ctx
            .image()
            .security_environments
            .iter()
            .any(|e| e.number.0 == se && e.df.len() <= df.len() && e.df.iter().zip(df).all(|(a, b)| a.0 == *b));
        if found { Ok(()) } else { Err(Sw::ReferencedDataNotFound) }
    }

    /// Never asked: GENERATE KEY is this profile's own command (the public key goes to a
    /// record EF, not into the answer).
    fn keygen_reply(&self, _public: &PublicKey, _reply: &mut Reply) -> Result<(), Sw> {
        Err(Sw::InsNotSupported)
    }

    /// ERASE (`B0 F5`, `incrypto34_erase_files`): under the MF's delete condition, every file
    /// and BS object goes and the MF opens (the driver then recreates `2F01` and `FD01` in
    /// it); back to an unissued card.
    fn erase(&self, ctx: &mut dyn Ctx) -> Result<(), Sw> {
        let mf = &ctx.image().mf;
        ctx.require(mf.acl.delete)?;
        let image = ctx.image_mut();
        image.mf = FileNode::new(MF, Some("MF"), open_acl(), FileBody::Df { aid: None, children: vec![] });
        image.pins.clear();
        image.keys.clear();
        image.security_environments.clear();
        image.life_cycle = LifeCycle::Admin;
        Ok(())
    }

    /// The TokenInfo serial number (`5015/5032`), in lowercase hex as OpenSC shows it.
    fn serial(&self, image: &CardImage) -> Option<String> {
        let FileBody::Transparent { data } = &crate::fs::lookup(&image.mf, &[MF, DF_PKCS15, EF_TOKEN_INFO])?.body
        else {
            return None;
        };
        token_info_serial(&data.0).map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// RSA keys of 512 to 1024 bits only (`RSAKEY_MAX_BITS`).
    fn validate(&self, image: &CardImage) -> Result<(), String> {
        for (i, k) in image.keys.iter().enumerate() {
            if k.algorithm.rsa_bits().is_none_or(|b| b > 1024) {
                return Err(format!(
                    "keys[{i}] ({}).algorithm: {:?}; an incrypto34 holds RSA keys of 512 to 1024 bits",
                    k.label, k.algorithm
                ));
            }
        }
        Ok(())
    }

    fn personalize(&self, p: &Personalization) -> Result<CardImage, String> {
        personalize(p)
    }

    /// RSA-1024, the largest the chip holds (`RSAKEY_MAX_BITS`).
    fn key_algorithm(&self) -> Algorithm {
        Algorithm::Rsa1024
    }
}

// ---- access conditions and FCPs (spec/cards.md §4.4, `card-incrypto34.c` df_acl/ef_acl) ----

/// One access byte: `00` always, `FF` never, `01`..`7F` the PIN with that reference; the
/// driver treats anything above `7F` as unknown, the card as never.
fn ac_of(b: u8) -> AccessCondition {
    match b {
        0x00 => AccessCondition::Always,
        0x01..=0x7F => AccessCondition::Pin(Hex8(b)),
        _ => AccessCondition::Never,
    }
}

fn ac_byte(ac: AccessCondition) -> u8 {
    match ac {
        AccessCondition::Always => 0x00,
        AccessCondition::Never => 0xFF,
        AccessCondition::Pin(Hex8(r)) if r <= 0x7F => r,
        AccessCondition::Pin(_) => 0xFF,
    }
}

/// Everything allowed: the MF of a blank (erased) card.
const fn open_acl() -> Acl {
    Acl {
        read: AccessCondition::Always,
        update: AccessCondition::Always,
        create: AccessCondition::Always,
        delete: AccessCondition::Always,
    }
}

/// The 9 access bytes of tag `86`. DF: life cycle, UPDATE objects, APPEND objects,
/// INVALIDATE, REHABILITATE, DELETE, ADMIN, CREATE files, –. EF: READ, UPDATE, WRITE,
/// INVALIDATE, REHABILITATE, ERASE, ADMIN, INCREASE, DECREASE.
fn acl_bytes(node: &FileNode) -> [u8; 9] {
    let a = node.acl;
    let never = 0xFF;
    if node.is_df() {
        let (u, c, d) = (ac_byte(a.update), ac_byte(a.create), ac_byte(a.delete));
        [0x00, u, c, never, never, d, never, c, never]
    } else {
        let (r, u, d) = (ac_byte(a.read), ac_byte(a.update), ac_byte(a.delete));
        [r, u, u, never, never, d, never, never, never]
    }
}

/// The descriptor byte of a file: `38` DF, `01` transparent, `05` linear variable TLV (the
/// key-generation file).
fn descriptor(node: &FileNode) -> u8 {
    match node.body {
        FileBody::Df { .. } => 0x38,
        FileBody::Records { .. } => 0x05,
        FileBody::Transparent { .. }
        | FileBody::FreeMemory
        | FileBody::PrivateKey { .. }
        | FileBody::PublicKey { .. } => 0x01,
    }
}

/// The FCP SELECT returns: `62 { 80 size, 82 descriptor, 83 FID, [84 AID], 86 access }`.
pub fn fcp(node: &FileNode) -> Result<Fcp, Sw> {
    let mut f = Fcp::new();
    if !node.is_df() {
        tlv(&mut f, FILE_SIZE, u16::try_from(node.size()).unwrap_or(u16::MAX).to_be_bytes())?;
    }
    tlv(&mut f, DESCRIPTOR, [descriptor(node)])?;
    tlv(&mut f, FILE_ID, node.fid.0.to_be_bytes())?;
    if let FileBody::Df { aid: Some(aid), .. } = &node.body {
        tlv(&mut f, DF_NAME, aid.0.as_slice())?;
    }
    tlv(&mut f, SECURITY, acl_bytes(node))?;
    template(&f)
}

/// CREATE FILE data, as `iso7816_construct_fci` (`6F`) or the driver's fixed FCPs (`62`)
/// build it: `80`/`81` size, `82` type (`38` DF; `01`/`09` transparent; `02`/`05` and their
/// internal variants records; cyclic files are not modelled), `83` FID, `84` DF name, `85`
/// status bytes, `86` up to 9 access bytes (missing ones are `FF`).
fn parse_create(data: &[u8]) -> Result<NewFile, Sw> {
    let inner = match take_data_object(data) {
        Some((tag, inner, [])) if tag == Tag::from_u8(0x62) || tag == Tag::from_u8(0x6F) => inner,
        _ => return Err(Sw::WrongData),
    };
    let (mut size, mut kind_byte, mut fid, mut access) = (None, None, None, [0xFF; 9]);
    let mut rest = inner;
    while !rest.is_empty() {
        let (tag, v, tail) = take_data_object(rest).ok_or(Sw::WrongData)?;
        match tag {
            FILE_SIZE | TOTAL_SIZE => size = Some(u16::from_be_bytes(v.try_into().map_err(|_| Sw::WrongData)?)),
            DESCRIPTOR => kind_byte = Some(*v.first().ok_or(Sw::WrongData)?),
            FILE_ID => fid = Some(u16::from_be_bytes(v.try_into().map_err(|_| Sw::WrongData)?)),
            // OpenSC never sends a DF name (the driver's FIXME); the status bytes say nothing
            // the card keeps.
            DF_NAME | super::PROPRIETARY => {}
            SECURITY if v.len() <= 9 => access.get_mut(..v.len()).ok_or(Sw::WrongData)?.copy_from_slice(v),
            _ => return Err(Sw::WrongData),
        }
        rest = tail;
    }
    let fid = fid.ok_or(Sw::WrongData)?;
    if fid == MF || fid == 0xFFFF || fid == 0x3FFF {
        return Err(Sw::WrongData);
    }
    let size = size.unwrap_or(0);
    let kind = match kind_byte.ok_or(Sw::WrongData)? {
        0x38 => NewFileKind::Df,
        0x01 | 0x09 => NewFileKind::Transparent { size },
        0x02 | 0x05 | 0x0A | 0x0D => {
            // Records of up to 255 bytes; as many as the size holds (at least one).
            let record_len = size.clamp(1, MAX_RECORD);
            let max_records = (size / record_len).clamp(1, 255);
            NewFileKind::Records { record_len: record_len as u8, max_records: max_records as u8 }
        }
        _ => return Err(Sw::WrongData),
    };
    let acl = if kind == NewFileKind::Df {
        Acl {
            read: AccessCondition::Always,
            update: ac_of(access[1]),
            create: ac_of(access[7]),
            delete: ac_of(access[5]),
        }
    } else {
        Acl {
            read: ac_of(access[0]),
            update: ac_of(access[1]),
            create: AccessCondition::Never,
            delete: ac_of(access[5]),
        }
    };
    Ok(NewFile { fid, kind, acl })
}

// ---- BS objects (PUT DATA OCI / SECI, CHANGE KEY DATA, GENERATE KEY) ----

/// The card's TLVs in OCI/SECI data are simple TLVs: one tag byte, one length byte (a
/// 128-byte key component has length `82`, which is not BER).
fn simple_tlvs(mut data: &[u8]) -> Result<Vec<(u8, &[u8])>, Sw> {
    let mut out = vec![];
    while let [tag, len, rest @ ..] = data {
        let len = usize::from(*len);
        let value = rest.get(..len).ok_or(Sw::WrongData)?;
        out.push((*tag, value));
        data = rest.get(len..).ok_or(Sw::WrongData)?;
    }
    if data.is_empty() { Ok(out) } else { Err(Sw::WrongData) }
}

fn field<'a>(tlvs: &[(u8, &'a [u8])], tag: u8) -> Result<&'a [u8], Sw> {
    tlvs.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v).ok_or(Sw::WrongData)
}

fn home(ctx: &dyn Ctx) -> Vec<Hex16> {
    ctx.current_path().iter().map(|f| Hex16(*f)).collect()
}

/// PUT DATA OCI: a PIN (`83 00 ref`) or key component (`83 2n kk`) object in the current DF,
/// under the DF's create condition; `6A89` when it exists already.
fn put_oci(ctx: &mut dyn Ctx, data: &[u8]) -> Result<Sw, Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.acl.create)?;
    let tlvs = simple_tlvs(data)?;
    match *field(&tlvs, 0x83)? {
        [CLASS_PIN, reference] => put_pin(ctx, &tlvs, reference),
        [class, key] if class & 0xF0 == CLASS_KEY => put_key_component(ctx, &tlvs, class & 0x0F, key),
        _ => Err(Sw::WrongData),
    }
}

/// A PIN BS object (`pkcs15-incrypto34.c` `incrypto34_store_pin`): `85` options, flags,
/// algorithm `87`, error counter (the tries), use counter, DEK, ARA, minimum length; `86`
/// access: use, change, unblock (the PUK's reference, `FF` none); `8F` the value padded.
fn put_pin(ctx: &mut dyn Ctx, tlvs: &[(u8, &[u8])], reference: u8) -> Result<Sw, Sw> {
    let [_options, _flags, algorithm, errcount, _usecount, _dek, _ara, min_len] = *field(tlvs, 0x85)? else {
        return Err(Sw::WrongData);
    };
    let [_use, _change, unblock, ..] = *field(tlvs, 0x86)? else {
        return Err(Sw::WrongData);
    };
    let tries = errcount & 0x0F;
    if algorithm != ALGO_PIN || reference == 0 || reference > 0x7F || !(1..=MAX_TRIES).contains(&tries) {
        return Err(Sw::WrongData);
    }
    let df = home(ctx);
    let image = ctx.image();
    if image.pins.iter().any(|p| p.reference.0 == reference && p.df == df) {
        return Err(Sw::FileExists);
    }
    if image.pins.len() >= MAX_PINS || image.eeprom_free() < 32 {
        return Err(Sw::NotEnoughMemory);
    }
    let unblocked_by = (unblock != 0xFF && unblock != 0x00 && unblock != reference).then_some(Hex8(unblock));
    let is_puk = image.pins.iter().any(|p| p.df == df && p.unblocked_by == Some(Hex8(reference)));
    let mut pin = PinObject {
        reference: Hex8(reference),
        label: String::new(),
        role: if is_puk { PinRole::Puk } else { PinRole::User },
        df: df.clone(),
        value: String::new(),
        charset: Charset::Ascii,
        min_len: min_len.clamp(4, PIN_LEN),
        max_len: PIN_LEN,
        pad_len: PIN_LEN,
        pad_byte: Hex8(0x00),
        max_tries: tries,
        tries_left: tries,
        unblocked_by,
    };
    pin.value = pin.check_new_value(field(tlvs, 0x8F)?)?.to_owned();
    pin.label = label_of(&pin);
    let image = ctx.image_mut();
    // The unblocking code named here is a PUK (pkcs15-init creates it just before).
    if let Some(puk) = image.pins.iter_mut().find(|p| Some(p.reference) == unblocked_by && p.df == df) {
        puk.role = PinRole::Puk;
        puk.label = label_of(puk);
    }
    image.pins.push(pin);
    Ok(Sw::Ok)
}

fn label_of(p: &PinObject) -> String {
    let what = match p.role {
        PinRole::Puk => "PUK",
        PinRole::So => "SO PIN",
        PinRole::User => "PIN",
    };
    format!("{what} {:02X}", p.reference.0)
}

/// What an OCI algorithm byte lets a key do: `88`/`8C`/`C8`/`CC` sign, `08`/`0C` decipher.
fn usage_of(algorithm: u8) -> Result<KeyUsage, Sw> {
    match algorithm {
        0x88 | 0x8C | 0xC8 | 0xCC => Ok(KeyUsage { sign: true, decipher: false }),
        0x08 | 0x0C => Ok(KeyUsage { sign: false, decipher: true }),
        _ => Err(Sw::WrongData),
    }
}

/// A key component (`incrypto34_store_key_component`): component 0, the modulus, creates the
/// key object (its size is the modulus's; its PIN the `86` use condition, a PIN of the
/// card); component 1, the private exponent, completes it. The values themselves are loaded
/// by CHANGE KEY DATA or made by GENERATE KEY.
fn put_key_component(ctx: &mut dyn Ctx, tlvs: &[(u8, &[u8])], component: u8, key: u8) -> Result<Sw, Sw> {
    let [_options, _flags, algorithm, ..] = *field(tlvs, 0x85)? else {
        return Err(Sw::WrongData);
    };
    let [use_ac, ..] = *field(tlvs, 0x86)? else {
        return Err(Sw::WrongData);
    };
    let value = match field(tlvs, 0x8F)? {
        [n, 0x00, value @ ..] if usize::from(*n) == value.len() + 1 => value,
        _ => return Err(Sw::WrongData),
    };
    let usage = usage_of(algorithm)?;
    let existing = ctx.image().keys.iter().find(|k| k.reference.0 == key);
    match (component, existing) {
        (0, Some(_)) => Err(Sw::FileExists),
        (0, None) => {
            let algorithm = Algorithm::from_rsa_bits(value.len() * 8)
                .filter(|a| a.rsa_bits().is_some_and(|b| b <= 1024))
                .ok_or(Sw::WrongData)?;
            // The key's PIN must be one of the card's (a key usable by anyone is not modelled).
            if !ctx.image().pins.iter().any(|p| p.reference.0 == use_ac) {
                return Err(Sw::ReferencedDataNotFound);
            }
            if ctx.image().eeprom_free() < algorithm.eeprom_bytes() {
                return Err(Sw::NotEnoughMemory);
            }
            ctx.image_mut().keys.push(KeyObject {
                reference: Hex8(key),
                label: format!("RSA key {key:02X}"),
                algorithm,
                usage,
                pin: Hex8(use_ac),
                always_authenticate: false,
                material: None,
                pending: None,
                certificate: None,
            });
            Ok(Sw::Ok)
        }
        (1, None) => Err(Sw::ReferencedDataNotFound),
        (1, Some(k)) if k.material.is_some() => Err(Sw::FileExists),
        (1, Some(k)) if k.algorithm.rsa_bits() != Some(value.len() * 8) || k.usage != usage => Err(Sw::WrongData),
        (1, Some(_)) => Ok(Sw::Ok),
        _ => Err(Sw::WrongData),
    }
}

/// PUT DATA SECI (`incrypto34_create_sec_env`): `83 01 se` and the rest of the template, kept
/// as it came; `6A89` when the DF has that environment.
fn put_seci(ctx: &mut dyn Ctx, data: &[u8]) -> Result<Sw, Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.acl.create)?;
    if data.len() > 255 {
        // One short APDU's worth: a chained template is longer than any environment.
        return Err(Sw::WrongLength);
    }
    let tlvs = simple_tlvs(data)?;
    let [number] = *field(&tlvs, 0x83)? else {
        return Err(Sw::WrongData);
    };
    let df = home(ctx);
    let image = ctx.image();
    if image.security_environments.iter().any(|e| e.df == df && e.number.0 == number) {
        return Err(Sw::FileExists);
    }
    if image.eeprom_free() < 8 + data.len() as u32 {
        return Err(Sw::NotEnoughMemory);
    }
    ctx.image_mut().security_environments.push(SecurityEnvironmentObject {
        df,
        number: Hex8(number),
        data: Bytes(data.to_vec()),
    });
    Ok(Sw::Ok)
}

/// The key object `key` and whether the session may change it: a live key (one with material)
/// only under its PIN; a key object still waiting for its values always (`pkcs15-init`
/// fills it right after creating it).
fn key_for_change(ctx: &dyn Ctx, key: u8) -> Result<(Algorithm, bool), Sw> {
    let k = ctx.image().keys.iter().find(|k| k.reference.0 == key).ok_or(Sw::ReferencedDataNotFound)?;
    let live = k.material.is_some();
    if live {
        ctx.require(AccessCondition::Pin(k.pin))?;
    }
    Ok((k.algorithm, live))
}

/// CHANGE KEY DATA: a component's value, modulus length. `pkcs15-init --generate-key` loads
/// `FF` placeholders before GENERATE KEY: the key object then has no usable key until the
/// card generates one. Loading a real key from outside is not modelled (`6A81`).
fn change_key_data(ctx: &mut dyn Ctx, component: u8, key: u8, data: &[u8]) -> Result<Sw, Sw> {
    let (algorithm, live) = key_for_change(ctx, key)?;
    if Some(data.len() * 8) != algorithm.rsa_bits() {
        return Err(Sw::WrongLength);
    }
    if component > 1 {
        return Err(Sw::WrongP1P2);
    }
    if !data.iter().all(|b| *b == 0xFF) {
        return Err(Sw::FunctionNotSupported);
    }
    if live && let Some(k) = ctx.image_mut().keys.iter_mut().find(|k| k.reference.0 == key) {
        k.material = None;
    }
    Ok(Sw::Ok)
}

/// A record of the key-generation file: tag, length, length − 1, `00`, value
/// (`incrypto34_extract_pubkey`).
fn pubkey_record(tag: u8, value: &[u8]) -> Result<Vec<u8>, Sw> {
    let n = u8::try_from(value.len() + 2).map_err(|_| Sw::WrongLength)?;
    let mut r = vec![tag, n, n - 1, 0x00];
    r.extend_from_slice(value);
    Ok(r)
}

/// GENERATE KEY: a new key pair in BS object `key` (its size), the public key written to the
/// record EF `file` of the current DF (record 1 `10` modulus, record 2 `11` exponent), no
/// response data.
fn generate_key(ctx: &mut dyn Ctx, key: u8, file: u16) -> Result<Sw, Sw> {
    let (algorithm, _) = key_for_change(ctx, key)?;
    let target = ctx.current_df()?.child(file).ok_or(Sw::FileNotFound)?;
    let FileBody::Records { record_len, max_records, .. } = target.body else {
        return Err(Sw::IncompatibleFile);
    };
    ctx.require(target.acl.update)?;
    let k = algorithm.rsa_bits().unwrap_or(0) / 8;
    if usize::from(record_len) < k + 4 || max_records < 2 {
        return Err(Sw::NotEnoughMemory);
    }
    let PublicKey::Rsa { modulus, exponent } = ctx.generate_key(key, algorithm)? else {
        return Err(Sw::Unknown);
    };
    let records = vec![Bytes(pubkey_record(0x10, &modulus)?), Bytes(pubkey_record(0x11, &exponent)?)];
    let path: Vec<u16> = ctx.current_path().to_vec();
    let node = crate::fs::lookup_mut(&mut ctx.image_mut().mf, &path).and_then(|df| df.child_mut(file));
    match node.map(|n| &mut n.body) {
        Some(FileBody::Records { records: r, .. }) => *r = records,
        _ => return Err(Sw::Unknown),
    }
    Ok(Sw::Ok)
}

/// SCAN DF: type and FID of the current DF's first (or next) child; `6A82` past the last.
fn scan_df(ctx: &mut dyn Ctx, first: bool) -> Result<Sw, Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.acl.read)?;
    let index = if first { 0 } else { usize::from(*ctx.listing()) };
    let entry = {
        let df = ctx.current_df()?;
        let child = df.children().get(index).ok_or(Sw::FileNotFound)?;
        let [hi, lo] = child.fid.0.to_be_bytes();
        [descriptor(child), hi, lo]
    };
    *ctx.listing() = u16::try_from(index + 1).unwrap_or(u16::MAX);
    ctx.reply().push(&entry)?;
    Ok(Sw::Ok)
}

// ---- PKCS#15 DER (personalisation) and the TokenInfo serial ----

/// A DER TLV with a one-byte tag.
fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    match value.len() {
        n @ 0..=0x7F => v.push(n as u8),
        n @ 0x80..=0xFF => v.extend([0x81, n as u8]),
        n => v.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend_from_slice(value);
    v
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn der_int(n: u32) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(3);
    let mut v = bytes[start..].to_vec();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

/// A PKCS#15 Path: `SEQUENCE { OCTET STRING path }`.
fn der_path(path: &[u16]) -> Vec<u8> {
    let bytes: Vec<u8> = path.iter().flat_map(|f| f.to_be_bytes()).collect();
    der(0x30, &der(0x04, &bytes))
}

/// `serialNumber` of a TokenInfo: the OCTET STRING after the version.
fn token_info_serial(data: &[u8]) -> Option<&[u8]> {
    let (tag, mut body, _) = take_data_object(data)?;
    if tag != Tag::from_u8(0x30) {
        return None;
    }
    while !body.is_empty() {
        let (tag, value, rest) = take_data_object(body)?;
        if tag == Tag::from_u8(0x04) {
            return Some(value);
        }
        body = rest;
    }
    None
}

fn ef(fid: u16, name: &str, acl: Acl, data: Vec<u8>) -> FileNode {
    FileNode::new(fid, Some(name), acl, FileBody::Transparent { data: Bytes(data) })
}

fn acl(read: AccessCondition, update: AccessCondition, delete: AccessCondition) -> Acl {
    Acl { read, update, create: AccessCondition::Never, delete }
}

fn pin_object(
    reference: u8,
    role: PinRole,
    value: &str,
    tries: u8,
    unblocked_by: Option<u8>,
    min_len: u8,
) -> PinObject {
    let mut p = PinObject {
        reference: Hex8(reference),
        label: String::new(),
        role,
        df: vec![Hex16(MF), Hex16(DF_PKCS15)],
        value: value.into(),
        charset: Charset::Ascii,
        min_len,
        max_len: PIN_LEN,
        pad_len: PIN_LEN,
        pad_byte: Hex8(0x00),
        max_tries: tries,
        tries_left: tries,
        unblocked_by: unblocked_by.map(Hex8),
    };
    p.label = label_of(&p);
    p
}

/// An AODF PIN entry as `pkcs15-init` writes it: label, flags private + modifiable, authId,
/// PinAttributes { flags, ascii-numeric, min, stored 8, max 8, reference, pad `00`, path }.
fn aodf_pin(label: &str, auth_id: u8, flags: &[u8], reference: u8, min_len: u8) -> Vec<u8> {
    der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[der(0x0C, label.as_bytes()), der(0x03, &[0x06, 0xC0])])),
            der(0x30, &der(0x04, &[auth_id])),
            der(
                0xA1,
                &der(
                    0x30,
                    &cat(&[
                        der(0x03, flags),
                        der(0x0A, &[0x01]),
                        der_int(u32::from(min_len)),
                        der_int(u32::from(PIN_LEN)),
                        der_int(u32::from(PIN_LEN)),
                        der(0x80, &[reference]),
                        der(0x04, &[0x00]),
                        der_path(&[MF, DF_PKCS15]),
                    ]),
                ),
            ),
        ]),
    )
}

/// `data` padded with zeros to `size` (a PKCS#15 directory file is created bigger than its
/// content; parsers stop at the first `00`).
fn padded(mut data: Vec<u8>, size: usize) -> Vec<u8> {
    if data.len() < size {
        data.resize(size, 0);
    }
    data
}

/// DER `RSAPublicKey`.
fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if v.first().is_some_and(|b| b & 0x80 != 0) { vec![0] } else { vec![] };
        body.extend(v);
        der(0x02, &body)
    };
    der(0x30, &cat(&[int(modulus), int(exponent)]))
}

/// One issued key: its objects in the PrKDF, PuKDF and CDF, its files, its BS object.
struct IssuedKey {
    prkdf: Vec<u8>,
    pukdf: Vec<u8>,
    cdf: Vec<u8>,
    files: Vec<FileNode>,
    key: KeyObject,
}

fn issued_key(
    reference: u8,
    index: u16,
    ks: &KeySet,
    qualified: bool,
    user: AccessCondition,
) -> Result<IssuedKey, String> {
    let bits = ks
        .algorithm
        .rsa_bits()
        .filter(|b| *b <= 1024)
        .ok_or_else(|| format!("a {:?} key: an incrypto34 holds RSA keys of 512 to 1024 bits", ks.algorithm))?;
    let app = [MF, DF_PKCS15];
    let (public_fid, cert_fid) = (0x3003 + index, 0x3104 + index);
    let label = der(0x0C, ks.info.label.as_bytes());
    let id = der(0x04, &ks.info.id);
    let modulus_length = der_int(bits as u32);
    // sign, signRecover (+ nonRepudiation for the qualified key); the driver refuses keys
    // that also decipher.
    let usage: &[u8] = if qualified { &[0x06, 0x30, 0x40] } else { &[0x04, 0x30] };
    let prkdf = der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[label.clone(), der(0x03, &[0x06, 0xC0]), der(0x04, &[0x01])])),
            // sensitive, alwaysSensitive, neverExtractable, local; the key's reference.
            der(0x30, &cat(&[id.clone(), der(0x03, usage), der(0x03, &[0x03, 0xB8]), der_int(u32::from(reference))])),
            der(0xA0, &der(0x30, &ks.info.subject)),
            der(0xA1, &der(0x30, &cat(&[der_path(&app), modulus_length.clone()]))),
        ]),
    );
    let pukdf = der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[label.clone(), der(0x03, &[0x06, 0x40])])),
            // verify, verifyRecover; not native; reference 0.
            der(0x30, &cat(&[id.clone(), der(0x03, &[0x00, 0x03]), der(0x01, &[0x00]), der_int(0)])),
            der(0xA1, &der(0x30, &cat(&[der_path(&[MF, DF_PKCS15, public_fid]), modulus_length]))),
        ]),
    );
    let cdf = der(
        0x30,
        &cat(&[
            der(0x30, &cat(&[label, der(0x03, &[0x06, 0x40])])),
            der(0x30, &id),
            der(0xA1, &der(0x30, &der_path(&[MF, DF_PKCS15, cert_fid]))),
        ]),
    );
    let always = AccessCondition::Always;
    let files = vec![
        ef(public_fid, &format!("{} public key", ks.info.label), acl(always, user, user), {
            rsa_public_key(&ks.info.modulus, &ks.info.exponent)
        }),
        ef(cert_fid, &format!("{} certificate", ks.info.label), acl(always, user, user), ks.certificate.clone()),
    ];
    let key = KeyObject {
        reference: Hex8(reference),
        label: ks.info.label.clone(),
        algorithm: ks.algorithm,
        usage: KeyUsage { sign: true, decipher: false },
        pin: Hex8(PIN_USER),
        always_authenticate: false,
        material: Some(ks.material.clone()),
        pending: None,
        certificate: Some(vec![Hex16(MF), Hex16(DF_PKCS15), Hex16(cert_fid)]),
    };
    Ok(IssuedKey { prkdf, pukdf, cdf, files, key })
}

/// A blank chip when the personalisation has no key. Otherwise an issued card laid out as
/// `pkcs15-init` lays out a blank Incrypto34 (`--create-pkcs15`, `--store-pin`,
/// `--generate-key`, `--store-certificate`): EF.DIR `2F00`; in DF `5015` the ODF, TokenInfo
/// ("ARUBA INCRYPTO34", serial from hex digits), the init marker `4946`, AODF (SO PIN, user
/// PIN), PrKDF, PuKDF, CDF, public-key EFs `3003`+ and certificate EFs `3104`+; the BS
/// objects SO PIN 1, user PIN 3 with its PUK 4, security environment 1, and the holder's
/// signature key (`10`, nonRepudiation) and authentication key (`11`), both signature-only
/// as the driver requires, RSA of 512 to 1024 bits. The MF's create and delete conditions are
/// the SO PIN (an ERASE needs it).
pub fn personalize(p: &Personalization) -> Result<CardImage, String> {
    let serial = crate::hex::decode(&p.serial)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 16)
        .ok_or_else(|| format!("an incrypto34 serial is 2 to 32 hex digits, got {:?}", p.serial))?;
    let mut image = CardImage {
        schema: SCHEMA_NAME.into(),
        version: SCHEMA_VERSION,
        profile: ProfileKind::Incrypto34,
        description: p.description.clone(),
        atr: Bytes(p.atr.clone().unwrap_or_else(|| ATR.to_vec())),
        life_cycle: p.life_cycle,
        capacity: p.capacity,
        capabilities: Capabilities { p256: false },
        cplc: None,
        history: p.history.clone(),
        mf: FileNode::new(MF, Some("MF"), open_acl(), FileBody::Df { aid: None, children: vec![] }),
        pins: vec![],
        keys: vec![],
        security_environments: vec![],
    };
    if p.auth.is_none() && p.sign.is_none() {
        // A blank chip, as the factory (or ERASE) leaves it: an open MF, nothing else, for
        // `pkcs15-init` to personalise.
        return Ok(image);
    }
    let always = AccessCondition::Always;
    let never = AccessCondition::Never;
    let so = AccessCondition::Pin(Hex8(PIN_SO));
    let user = AccessCondition::Pin(Hex8(PIN_USER));
    let app = [MF, DF_PKCS15];
    let mut keys = vec![];
    for (index, (reference, ks, qualified)) in
        [(KEY_SIGN, &p.sign, true), (KEY_AUTH, &p.auth, false)].into_iter().enumerate()
    {
        if let Some(ks) = ks {
            keys.push(issued_key(reference, index as u16, ks, qualified, user)?);
        }
    }
    let df_path = |fid: u16| der_path(&[MF, DF_PKCS15, fid]);
    let odf = cat(&[
        der(0xA8, &df_path(EF_AODF)),
        der(0xA0, &df_path(EF_PRKDF)),
        der(0xA1, &df_path(EF_PUKDF)),
        der(0xA4, &df_path(EF_CDF)),
    ]);
    // version 0, serial, manufacturer, label, tokenflags eidCompliant.
    let token_info = der(
        0x30,
        &cat(&[
            der_int(0),
            der(0x04, &serial),
            der(0x0C, b"Incard"),
            der(0x80, TOKEN_LABEL.as_bytes()),
            der(0x03, &[0x04, 0x10]),
        ]),
    );
    // soPin: local, initialized, needs-padding, soPin; user: local, initialized, needs-padding.
    let aodf = cat(&[
        aodf_pin("Security Officer PIN", 0xFF, &[0x00, 0x4D], PIN_SO, 6),
        aodf_pin("User PIN", 0x01, &[0x02, 0x4C], PIN_USER, 4),
    ]);
    let dir = der(
        0x61,
        &cat(&[der(0x4F, &AID_PKCS15), der(0x50, TOKEN_LABEL.as_bytes()), der(0x51, &[0x3F, 0x00, 0x50, 0x15])]),
    );
    let open = acl(always, always, always);
    let protected = acl(always, so, so);
    let mut files = vec![
        ef(EF_ODF, "EF.ODF", open, padded(odf, 256)),
        ef(EF_TOKEN_INFO, "EF.TokenInfo", open, token_info),
        ef(EF_INIT, "pkcs15-init marker", protected, padded(b"\x01\x06pkcs15".to_vec(), 128)),
        ef(EF_AODF, "EF.AODF", protected, padded(aodf, 256)),
        ef(EF_PRKDF, "EF.PrKDF", protected, padded(keys.iter().flat_map(|k| k.prkdf.clone()).collect(), 256)),
        ef(EF_PUKDF, "EF.PuKDF", protected, padded(keys.iter().flat_map(|k| k.pukdf.clone()).collect(), 256)),
        ef(EF_CDF, "EF.CDF", protected, padded(keys.iter().flat_map(|k| k.cdf.clone()).collect(), 512)),
    ];
    files.extend(keys.iter().flat_map(|k| k.files.clone()));
    let pkcs15 = FileNode::new(
        DF_PKCS15,
        Some("PKCS#15 application"),
        Acl { read: always, update: never, create: always, delete: always },
        FileBody::Df { aid: None, children: files },
    );
    image.mf = FileNode::new(
        MF,
        Some("MF"),
        Acl { read: always, update: never, create: so, delete: so },
        FileBody::Df { aid: None, children: vec![ef(EF_DIR, "EF.DIR", open, padded(dir, 128)), pkcs15] },
    );
    image.pins = vec![
        pin_object(PIN_SO, PinRole::So, &p.so_pin, 3, None, 6),
        pin_object(PIN_USER, PinRole::User, &p.pin, p.pin_tries, Some(PUK_USER), 4),
        pin_object(PUK_USER, PinRole::Puk, &p.puk, p.puk_tries, None, 4),
    ];
    image.keys = keys.into_iter().map(|k| k.key).collect();
    image.security_environments = vec![SecurityEnvironmentObject {
        df: app.iter().map(|f| Hex16(*f)).collect(),
        number: Hex8(0x01),
        data: Bytes(vec![0x83, 0x01, 0x01, 0x86, 0x02, 0x00, 0x00, 0x8F, 0x06, 0, 0, 0, 0, 0, 0]),
    }];
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_atr_is_the_driver_s_and_its_checksum_is_right() {
        let tck = ATR[1..].iter().fold(0u8, |a, b| a ^ b);
        assert_eq!(tck, 0, "TCK makes T0..TCK XOR to zero");
        assert_eq!(Incrypto34.recognise(&ATR).and_then(|r| r.profile), Some(ProfileKind::Incrypto34));
        let mut cns = ATR;
        cns[18..21].copy_from_slice(b"CNS");
        assert!(Incrypto34.recognise(&cns).is_none());
    }

    #[test]
    fn class_90_is_change_key_data_s_own_class_not_a_chain() {
        assert_eq!(Incrypto34.class(0x90), Ok(Class { base: 0x90, chained: false }));
        assert_eq!(Incrypto34.class(0x10), Ok(Class { base: 0x00, chained: true }));
        assert_eq!(Incrypto34.class(0xB0), Ok(Class { base: 0xB0, chained: false }));
        assert_eq!(Incrypto34.class(0x80), Err(Sw::ClaNotSupported));
    }

    #[test]
    fn simple_tlvs_take_one_byte_lengths_even_above_7f() {
        let mut data = vec![0x83, 0x02, 0x20, 0x10, 0x8F, 0x82, 0x81, 0x00];
        data.extend([0xAB; 0x80]);
        let t = simple_tlvs(&data).unwrap_or_default();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].1.len(), 0x82);
        assert_eq!(simple_tlvs(&[0x83, 0x03, 0x00]), Err(Sw::WrongData));
    }

    #[test]
    fn token_info_serial_is_the_octet_string_after_the_version() {
        let ti = der(0x30, &cat(&[der_int(0), der(0x04, &[0x12, 0x34]), der(0x0C, b"Incard")]));
        assert_eq!(token_info_serial(&ti), Some(&[0x12, 0x34][..]));
        assert_eq!(token_info_serial(&[0x31, 0x00]), None);
        assert_eq!(der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der_int(1024), vec![0x02, 0x02, 0x04, 0x00]);
        assert_eq!(der_int(0x80), vec![0x02, 0x02, 0x00, 0x80]);
    }
}
