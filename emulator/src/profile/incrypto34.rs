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
use crate::hex::Hex8;
use crate::image::{CardImage, LifeCycle, PinRule, ProfileKind};
use crate::keys::{Algorithm, PublicKey};
use crate::perso::Personalization;
use crate::security::Charset;
use crate::sw::Sw;
use iso7816::tlv::{Tag, take_data_object};

mod objects;
mod pkcs15;

use objects::{change_key_data, generate_key, put_oci, put_seci, scan_df};
pub use pkcs15::personalize;
use pkcs15::token_info_serial;

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
}
