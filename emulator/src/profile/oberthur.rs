//! Profile A of spec/cards.md: Oberthur AuthentIC v2 / CosmopolIC v4 with the AWP layout, as
//! the OpenSC `oberthur` driver and Bit4id's `bit4opki` see it.
//!
//! * ATR (§2.1): `3B 7D 18 00 00 00 31 80 71 8E 64 77 E3 02 00 82 90 00`, T=0 only: case-4
//!   commands arrive without Le, case-1 with a `00` P3.
//! * Init (§2.2): SELECT of the GP card manager and of the AuthentIC AID answer `9000`;
//!   GET DATA `80 CA 9F 7F` returns the CPLC with the serial at response bytes 15..18.
//! * FCP (§2.3): Oberthur file types (`01`, `04`, `12`, `14`, `38`) and 8 access bytes.
//! * AWP tree (§2.4): DF `5011` with token info `1000`, PUK file `2000`, container records
//!   `3000`, public/private object lists `4000`/`5000`, DFs `9001` (certificates and info
//!   blobs) and `9002` (private keys `30nn` and their info `31nn`).
//! * PINs (§2.6): user `81` (`01` in CHANGE/RESET), SO `04`, PUK `84`, 64 bytes `FF`-padded;
//!   LOGOUT `80 2E 00 2r`.
//! * Crypto (§2.5): MSE `00 22 41 B6|B8 80 01 11` on the selected key EF; PSO CDS pads a
//!   DigestInfo; PSO DECIPHER removes type-02 padding (2048 bits: the 8 + 248 chained split).
//! * Key management (§2.5): CREATE/DELETE FILE, LIST FILES, GENERATE KEY PAIR `00 46`,
//!   READ PUBLIC COMPONENT `80 B4`, CREATE PIN `00 24 01`.

use super::iso::{self, fid_of, mse_op, no_data, p1p2_zero, record_number};
use super::{
    Application, Ctx, DESCRIPTOR, FILE_ID, FILE_SIZE, Fcp, PROPRIETARY, PinOp, Profile, Recognised, SECURITY,
    SecretFile, be16, fcp_fields, public_key_template, template, tlv,
};
use crate::apdu::{Apdu, MAX_RESPONSE_DATA, Reply};
use crate::command::{
    Command, DataObject, KeyGen, KeySelector, NewFile, NewFileKind, PinRef, PinScope, SignPadding, UnblockProof,
};
use crate::fs::{AccessCondition, Acl, FileBody, FileNode, MF};
use crate::hex::{Bytes, Hex8, Hex16};
use crate::image::PinRule;
use crate::image::{Capabilities, CardImage, ProfileKind, SCHEMA_NAME, SCHEMA_VERSION};
use crate::keys::{Algorithm, KeyObject, KeyUsage, PublicKey};
use crate::perso::{DEFAULT_PIN, KeySet, ObjectInfo, Personalization};
use crate::security::{Charset, MAX_TRIES, PinObject, PinRole};
use crate::sw::Sw;

/// The ATR recommended by spec/cards.md §2.1 ("Oberthur 64k v4/2.1.1"), T=0.
pub const ATR: [u8; 18] =
    [0x3B, 0x7D, 0x18, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x02, 0x00, 0x82, 0x90, 0x00];

/// GlobalPlatform card manager AID (OP 2.0.1).
pub const AID_CARD_MANAGER: [u8; 7] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00];
/// The AuthentIC application AID.
pub const AID_AUTHENTIC: [u8; 16] =
    [0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x03, 0x03, 0x00, 0x00, 0x00, 0xF1, 0x00, 0x00, 0x00, 0x02];

pub const PIN_USER: u8 = 0x81;
pub const PIN_SO: u8 = 0x04;
pub const PUK: u8 = 0x84;
/// Key index of the authentication key (files `3001`, `1001`, `2001`).
pub const KEY_AUTH: u8 = 0x01;
/// Key index of the qualified signature key (files `3002`, `1002`, `2002`).
pub const KEY_SIGN: u8 = 0x02;
/// The AWP application DF.
pub const DF_AWP: u16 = 0x5011;
pub const DF_PUBLIC: u16 = 0x9001;
pub const DF_PRIVATE: u16 = 0x9002;
/// The AWP "PUK file" with the 16-byte unblock code.
pub const PUK_FILE: [u16; 3] = [MF, DF_AWP, 0x2000];
/// The files holding a secret: the PUK file, the PUK's unblock code.
static SECRET_FILES: [SecretFile; 1] = [SecretFile { path: &PUK_FILE, pin: PUK, encode: puk_file_code }];
/// Record length of the container list `3000`.
pub const CONTAINER_RECORD_LEN: u8 = 141;

fn pin_ref(reference: u8) -> PinRef {
    PinRef { reference, scope: PinScope::Anywhere }
}

/// CHANGE / RESET / CREATE PIN address the user PIN as `01` (spec/cards.md §2.6).
fn management_ref(p2: u8) -> PinRef {
    pin_ref(if p2 == PIN_SO { PIN_SO } else { p2 | 0x80 })
}

/// The ATRs of `card-oberthur.c`'s table (§2.1, exact match).
const ATRS: [&[u8]; 6] = [
    &[0x3B, 0x7D, 0x18, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x01, 0x00, 0x82, 0x90, 0x00],
    &ATR,
    &[0x3B, 0x7D, 0x11, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x01, 0x00, 0x82, 0x90, 0x00],
    &[0x3B, 0x7D, 0x11, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x02, 0x00, 0x82, 0x90, 0x00],
    &[0x3B, 0x7B, 0x18, 0x00, 0x00, 0x00, 0x31, 0xC0, 0x64, 0x77, 0xE3, 0x03, 0x00, 0x82, 0x90, 0x00],
    &[
        0x3B, 0xFB, 0x11, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x00, 0x31, 0xC0, 0x64, 0x77, 0xE9, 0x10, 0x00, 0x00,
        0x90, 0x00, 0x6A,
    ],
];

/// The Oberthur AuthentIC profile.
pub struct Oberthur;

/// Oberthur commands the engine does not model, executed here (§2.5).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Own {
    /// `80 B4 nn 00`: 1 = modulus, 2 = exponent of the selected public-key EF.
    ReadPublicComponent { exponent: bool },
    /// LIST FILES `80 34 00 00`: the FIDs of the current DF's children, at most Le/2.
    ListFiles { le: usize },
}

impl Own {
    /// `None`: not one of them.
    fn parse(apdu: &Apdu<'_>) -> Option<Result<Own, Sw>> {
        let decode = match (apdu.cla, apdu.ins) {
            (0x80, 0xB4) => |apdu: &Apdu<'_>| {
                no_data(apdu)?;
                match (apdu.p1, apdu.p2) {
                    (0x01, 0x00) => Ok(Own::ReadPublicComponent { exponent: false }),
                    (0x02, 0x00) => Ok(Own::ReadPublicComponent { exponent: true }),
                    _ => Err(Sw::WrongP1P2),
                }
            },
            (0x80, 0x34) => |apdu: &Apdu<'_>| {
                no_data(apdu)?;
                p1p2_zero(apdu)?;
                Ok(Own::ListFiles { le: apdu.le.unwrap_or(256) })
            },
            _ => return None,
        };
        Some(decode(apdu))
    }

    fn execute(self, ctx: &mut dyn Ctx) -> Result<Sw, Sw> {
        match self {
            Own::ReadPublicComponent { exponent } => {
                let ef = ctx.current_ef()?;
                let FileBody::PublicKey { key, .. } = ef.body else {
                    return Err(Sw::IncompatibleFile);
                };
                ctx.require(ef.acl.read)?;
                match ctx.public_key(key.0)? {
                    PublicKey::Rsa { modulus, exponent: e } => {
                        ctx.reply().push(if exponent { &e } else { &modulus })?;
                        Ok(Sw::Ok)
                    }
                    PublicKey::EcP256 { .. } => Err(Sw::IncompatibleFile),
                }
            }
            Own::ListFiles { le } => {
                let df = ctx.current_df()?;
                ctx.require(df.acl.read)?;
                let mut list: heapless::Vec<u8, MAX_RESPONSE_DATA> = heapless::Vec::new();
                for c in df.children().iter().take(le / 2) {
                    list.extend_from_slice(&c.fid.0.to_be_bytes())?;
                }
                ctx.reply().push(&list)?;
                Ok(Sw::Ok)
            }
        }
    }
}

impl Profile for Oberthur {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Oberthur
    }

    fn name(&self) -> &'static str {
        "oberthur"
    }

    fn default_atr(&self) -> &'static [u8] {
        &ATR
    }

    fn recognise(&self, atr: &[u8]) -> Option<Recognised> {
        ATRS.contains(&atr).then(|| Recognised {
            profile: Some(ProfileKind::Oberthur),
            label: "Oberthur AuthentIC v2 / CosmopolIC (OpenSC oberthur)".into(),
        })
    }

    fn classes(&self) -> &'static [u8] {
        &[0x00, 0x80]
    }

    /// The AuthentIC's own arms (§2.5, §2.6); the rest is ISO.
    fn parse<'a>(&self, apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
        if let Some(own) = Own::parse(apdu) {
            return own.map(|_| Command::Own(*apdu));
        }
        let p1p2 = (apdu.p1, apdu.p2);
        match (apdu.cla, apdu.ins) {
            (0x80, 0x32) => {
                no_data(apdu)?;
                Ok(Command::DeleteRecord { record: record_number(apdu)? })
            }
            // CREATE PIN: tries ‖ 40 ‖ PIN padded to 64 (the optional PUK part is not supported).
            (0x00, 0x24) if apdu.p1 == 0x01 => match apdu.data {
                [tries, 0x40, value @ ..] if value.len() == 64 => {
                    Ok(Command::CreatePin { pin: pin_ref(apdu.p2 | 0x80), tries: *tries, value })
                }
                _ => Err(Sw::WrongData),
            },
            (0x00, 0x2C) => {
                if p1p2 != (0x00, 0x01) {
                    return Err(Sw::WrongP1P2);
                }
                // 16-byte content of 5011/2000 ‖ new PIN padded to 64 (Lc = 50).
                if apdu.data.len() != 16 + 64 {
                    return Err(Sw::WrongLength);
                }
                let (code, new) = apdu.data.split_at(16);
                Ok(Command::ResetRetryCounter {
                    pin: management_ref(apdu.p2),
                    proof: UnblockProof::PukFile { code, path: &PUK_FILE },
                    new_pin: Some(new),
                })
            }
            (0x80, 0x2E) => {
                no_data(apdu)?;
                match p1p2 {
                    (0x00, r @ (0x21 | 0x22)) => Ok(Command::Logout { pin: pin_ref(0x80 | (r & 0x0F)) }),
                    _ => Err(Sw::WrongP1P2),
                }
            }
            (0x00, 0x22) => {
                if apdu.p1 != 0x41 {
                    return Err(Sw::WrongP1P2);
                }
                let op = mse_op(apdu.p2)?;
                match apdu.data {
                    // RSA; the key is the private-key EF selected before (no key reference).
                    [0x80, 0x01, 0x11] => Ok(Command::MseSet { op, key: KeySelector::CurrentEf }),
                    [0x80, 0x01, _] => Err(Sw::WrongData),
                    _ => Err(Sw::WrongLength),
                }
            }
            (0x00, 0x46) => {
                p1p2_zero(apdu)?;
                match *apdu.data {
                    [a, b, x, y] => Ok(Command::GenerateKeyPair(KeyGen::Files {
                        public: u16::from_be_bytes([a, b]),
                        private: u16::from_be_bytes([x, y]),
                    })),
                    // An explicit exponent: only 65537 is generated.
                    [_, _, _, _, ..] => Err(Sw::WrongData),
                    _ => Err(Sw::WrongLength),
                }
            }
            (0x00, 0xE0) => {
                if apdu.p1 != 0 {
                    return Err(Sw::WrongP1P2);
                }
                Ok(Command::CreateFile(parse_create(apdu.data, apdu.p2)?))
            }
            (0x00, 0xE4) => {
                let df = match p1p2 {
                    (0x02, 0x00) => false,
                    (0x01, 0x00) => true,
                    _ => return Err(Sw::WrongP1P2),
                };
                Ok(Command::DeleteFile { fid: fid_of(apdu.data)?, df: Some(df) })
            }
            _ => iso::parse(self, apdu),
        }
    }

    fn execute_own(&self, ctx: &mut dyn Ctx, apdu: &Apdu<'_>) -> Result<Sw, Sw> {
        Own::parse(apdu).unwrap_or(Err(Sw::InsNotSupported))?.execute(ctx)
    }

    /// VERIFY names the user PIN `81`; CHANGE and RESET name it `01` (§2.6).
    fn pin_ref(&self, p2: u8, op: PinOp) -> Result<PinRef, Sw> {
        Ok(match op {
            PinOp::Verify => pin_ref(p2),
            PinOp::Change | PinOp::Unblock => management_ref(p2),
        })
    }

    /// The card pads a DigestInfo and unpads a cryptogram (PAD_PKCS1, §2.5).
    fn pin_rule(&self) -> PinRule {
        // spec/cards.md §2.6: AWP PINs of 4–64 characters padded with FF to 64.
        PinRule { charset: Charset::Ascii, min_len: 4, max_len: 64, pad_len: 64, pad_byte: 0xFF }
    }
    fn pso_padding(&self) -> SignPadding {
        SignPadding::Pkcs1
    }

    /// `80 CA 9F 7F`: the CPLC (§2.2).
    fn data_object(&self, cla: u8, p1: u8, p2: u8) -> Option<DataObject> {
        ((cla, p1, p2) == (0x80, 0x9F, 0x7F)).then_some(DataObject::Cplc)
    }

    fn fcp(&self, image: &CardImage, node: &FileNode) -> Result<Fcp, Sw> {
        fcp(node, image.eeprom_free())
    }

    fn application(&self, aid: &[u8]) -> Option<Application> {
        if aid == AID_CARD_MANAGER {
            Some(Application::Other)
        } else if aid == AID_AUTHENTIC {
            Some(Application::FileSystem)
        } else {
            None
        }
    }

    /// An AWP PIN (reference `x4` with bit 7 masked is a PUK), 1 to 15 tries.
    fn new_pin(&self, reference: u8, tries: u8, home: Vec<Hex16>) -> Result<PinObject, Sw> {
        if !(1..=MAX_TRIES).contains(&tries) {
            return Err(Sw::WrongData);
        }
        let role = if reference & 0x7F == 0x04 { PinRole::Puk } else { PinRole::User };
        Ok(awp_pin(reference, role, home, tries))
    }

    /// The AWP PUK file holds the PUK's unblock code (§2.6).
    fn secret_files(&self) -> &'static [SecretFile] {
        &SECRET_FILES
    }

    /// The key behind a new key EF `30nn`/`10nn`: index `nn`, both usages, guarded by the PIN
    /// of the file's read condition (else the user PIN).
    fn key_file_object(&self, image: &CardImage, fid: u16, bits: u16, acl: Acl) -> Result<KeyObject, Sw> {
        let pin = match acl.read {
            AccessCondition::Pin(r) => r,
            _ => image.pins.iter().find(|p| p.role == PinRole::User).map_or(Hex8(0), |p| p.reference),
        };
        Ok(KeyObject {
            reference: Hex8(fid as u8),
            label: String::new(),
            algorithm: Algorithm::from_rsa_bits(usize::from(bits)).unwrap_or(Algorithm::Rsa2048),
            usage: KeyUsage { sign: true, decipher: true },
            pin,
            always_authenticate: false,
            material: None,
            pending: None,
            certificate: None,
        })
    }

    /// The bare modulus (read the exponent with READ PUBLIC COMPONENT).
    fn keygen_reply(&self, public: &PublicKey, reply: &mut Reply) -> Result<(), Sw> {
        match public {
            PublicKey::Rsa { modulus, .. } => reply.push(modulus),
            other => public_key_template(other, reply),
        }
    }

    /// The 4 CPLC IC-serial bytes, lowercase hex as OpenSC shows them (§2.2).
    fn serial(&self, image: &CardImage) -> Option<String> {
        let cplc = image.cplc.as_ref()?;
        Some(cplc.0.get(12..16)?.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn validate(&self, image: &CardImage) -> Result<(), String> {
        if image.cplc.as_ref().map(|c| c.0.len()) != Some(42) {
            return Err("an oberthur image needs 42 cplc bytes".into());
        }
        Ok(())
    }

    fn personalize(&self, p: &Personalization) -> Result<CardImage, String> {
        personalize(p)
    }
}

/// Access-condition byte coding of §2.3.
fn ac_byte(ac: AccessCondition) -> u8 {
    match ac {
        AccessCondition::Always => 0x00,
        AccessCondition::Never => 0xFF,
        AccessCondition::Pin(Hex8(PIN_USER)) => 0x21,
        AccessCondition::Pin(Hex8(0x82)) => 0x22,
        AccessCondition::Pin(Hex8(PIN_SO)) => 0x24,
        AccessCondition::Pin(Hex8(PUK)) => 0x25,
        AccessCondition::Pin(_) => 0xFF,
    }
}

fn ac_of(b: u8) -> AccessCondition {
    match b {
        0x00 => AccessCondition::Always,
        0x21 => AccessCondition::Pin(Hex8(PIN_USER)),
        0x22 => AccessCondition::Pin(Hex8(0x82)),
        0x24 => AccessCondition::Pin(Hex8(PIN_SO)),
        0x25 => AccessCondition::Pin(Hex8(PUK)),
        _ => AccessCondition::Never,
    }
}

/// The 8 access bytes of tag 86, positions per file type (§2.3 table).
fn acl_bytes(node: &FileNode) -> [u8; 8] {
    let a = node.acl;
    let (r, u, cr, d) = (ac_byte(a.read), ac_byte(a.update), ac_byte(a.create), ac_byte(a.delete));
    let x = 0xFF;
    match node.body {
        // CREATE, CRYPTO, LIST FILES, DELETE, PIN DEFINE, PIN CHANGE, PIN RESET, –
        FileBody::Df { .. } => [cr, 0x00, r, d, cr, cr, cr, x],
        // UPDATE, DECRYPT, –, SIGN, –, INT. AUTH, –, –
        FileBody::PrivateKey { .. } => [u, r, x, r, x, r, x, x],
        // UPDATE, –, ENCRYPT, –, VERIFY, –, EXT. AUTH, –
        FileBody::PublicKey { .. } => [u, x, r, x, r, x, r, x],
        // WRITE, UPDATE, READ, ERASE
        FileBody::Transparent { .. } | FileBody::Records { .. } | FileBody::FreeMemory => [u, u, r, d, x, x, x, x],
    }
}

/// The Oberthur FCP (templates observed in §2.3).
pub fn fcp(node: &FileNode, free: u32) -> Result<Fcp, Sw> {
    let mut f = Fcp::new();
    let fid = node.fid.0.to_be_bytes();
    match &node.body {
        FileBody::Df { .. } => {
            tlv(&mut f, DESCRIPTOR, [0x38, 0x00])?;
            tlv(&mut f, FILE_ID, fid)?;
            // Free space, informative: KiB, saturating at one byte.
            tlv(&mut f, PROPRIETARY, [u8::try_from(free / 1024).unwrap_or(0xFF)])?;
        }
        FileBody::Transparent { .. } | FileBody::FreeMemory => {
            let size = u16::try_from(node.size()).unwrap_or(u16::MAX).to_be_bytes();
            tlv(&mut f, FILE_SIZE, size)?;
            tlv(&mut f, DESCRIPTOR, [0x01, 0x01])?;
            tlv(&mut f, FILE_ID, fid)?;
        }
        FileBody::Records { record_len, max_records, .. } => {
            tlv(&mut f, DESCRIPTOR, [0x04, 0x01, 0x00, *record_len, *max_records])?;
            tlv(&mut f, FILE_ID, fid)?;
            tlv(&mut f, PROPRIETARY, [record_len / 7])?;
        }
        FileBody::PrivateKey { bits, .. } => {
            tlv(&mut f, DESCRIPTOR, [0x14, 0x00])?;
            tlv(&mut f, FILE_ID, fid)?;
            tlv(&mut f, PROPRIETARY, bits.to_be_bytes())?;
        }
        FileBody::PublicKey { bits, .. } => {
            tlv(&mut f, DESCRIPTOR, [0x12, 0x00])?;
            tlv(&mut f, FILE_ID, fid)?;
            tlv(&mut f, PROPRIETARY, bits.to_be_bytes())?;
        }
    }
    tlv(&mut f, SECURITY, acl_bytes(node))?;
    template(&f)
}

/// CREATE FILE data: `62 16 82 02 type 01|00 83 02 FID 85 02 size 86 08 AC×8`; P2 is the
/// record count of a record EF.
fn parse_create(data: &[u8], record_count: u8) -> Result<NewFile, Sw> {
    if data.len() != 24 {
        return Err(Sw::WrongLength);
    }
    let (mut ty, mut fid, mut size, mut ac) = (None, None, None, None);
    fcp_fields(data, |tag, v| {
        match tag {
            DESCRIPTOR => ty = v.first().copied(),
            FILE_ID => fid = Some(be16(v)?),
            PROPRIETARY | FILE_SIZE => size = Some(be16(v)?),
            SECURITY => ac = Some(<[u8; 8]>::try_from(v).map_err(|_| Sw::WrongData)?),
            _ => return Err(Sw::WrongData),
        }
        Ok(())
    })?;
    let (fid, size, b) = (fid.ok_or(Sw::WrongData)?, size.ok_or(Sw::WrongData)?, ac.ok_or(Sw::WrongData)?);
    let (kind, acl) = match ty {
        Some(0x38) => {
            (NewFileKind::Df, Acl { create: ac_of(b[0]), read: ac_of(b[2]), delete: ac_of(b[3]), update: ac_of(b[0]) })
        }
        Some(0x01) => (
            NewFileKind::Transparent { size },
            Acl { update: ac_of(b[1]), read: ac_of(b[2]), delete: ac_of(b[3]), create: AccessCondition::Never },
        ),
        Some(0x04) => {
            let record_len = u8::try_from(size).map_err(|_| Sw::WrongData)?;
            if record_len == 0 || record_count == 0 {
                return Err(Sw::WrongData);
            }
            (
                NewFileKind::Records { record_len, max_records: record_count },
                Acl { update: ac_of(b[1]), read: ac_of(b[2]), delete: ac_of(b[3]), create: AccessCondition::Never },
            )
        }
        Some(0x14) if matches!(size, 1024 | 2048) => (
            NewFileKind::PrivateKey { bits: size },
            Acl {
                update: ac_of(b[0]),
                read: ac_of(b[1]),
                create: AccessCondition::Never,
                delete: AccessCondition::Never,
            },
        ),
        Some(0x12) if matches!(size, 1024 | 2048) => (
            NewFileKind::PublicKey { bits: size },
            Acl {
                update: ac_of(b[0]),
                read: ac_of(b[2]),
                create: AccessCondition::Never,
                delete: AccessCondition::Never,
            },
        ),
        _ => return Err(Sw::WrongData),
    };
    if fid == MF {
        return Err(Sw::WrongData);
    }
    Ok(NewFile { fid, kind, acl })
}

/// Builds the 42 CPLC bytes with the 4-byte IC serial at offset 12 (spec/cards.md §2.2).
pub fn cplc(serial: [u8; 4]) -> Vec<u8> {
    let mut c = vec![
        0x40, 0x90, // IC fabricator
        0x62, 0x03, // IC type
        0x82, 0x31, // OS identifier
        0x60, 0x53, // OS release date
        0x10, 0x02, // OS release level
        0x61, 0x40, // IC fabrication date
    ];
    c.extend_from_slice(&serial);
    c.extend_from_slice(&[0x01, 0x51]); // IC batch identifier
    c.extend_from_slice(&[0x47, 0x90, 0x61, 0x45]); // module fabricator, packaging date
    c.extend_from_slice(&[0x40, 0x90, 0x61, 0x45]); // ICC manufacturer, embedding date
    c.extend_from_slice(&[0x00; 16]); // pre-personalisation and personalisation data
    c
}

fn llv(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&u16::try_from(v.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(v);
}

/// Certificate info blob `21nn` (§2.4).
pub fn cert_info(k: &ObjectInfo) -> Vec<u8> {
    let mut b = vec![0x00, 0x01];
    llv(&mut b, k.label.as_bytes());
    llv(&mut b, &k.id);
    llv(&mut b, &k.subject);
    llv(&mut b, &k.issuer);
    llv(&mut b, &[]);
    b
}

/// Private-key info blob `31nn` (§2.4): flags, label, ID, 16 date bytes, subject, modulus,
/// exponent (1-byte length + value).
pub fn key_info(k: &ObjectInfo, flags: u16) -> Vec<u8> {
    let mut b = flags.to_be_bytes().to_vec();
    llv(&mut b, k.label.as_bytes());
    llv(&mut b, &k.id);
    b.extend_from_slice(&[b'0'; 16]);
    llv(&mut b, &k.subject);
    b.extend_from_slice(&k.modulus);
    b.push(u8::try_from(k.exponent.len()).unwrap_or(0));
    b.extend_from_slice(&k.exponent);
    b
}

/// A container record (§2.4): exchange public/private/certificate FIDs, a zero signature
/// triple, then the braced GUID.
pub fn container_record(index: u8, guid: &str) -> Vec<u8> {
    let mut r = vec![0x10, index, 0x30, index, 0x20, index, 0, 0, 0, 0, 0, 0, 0x26];
    r.extend_from_slice(format!("{{{guid}}}").as_bytes());
    r.resize(usize::from(CONTAINER_RECORD_LEN), 0);
    r
}

/// An object-list entry `FF FID size` (§2.4).
pub fn list_entry(fid: u16, size: u16) -> [u8; 5] {
    let f = fid.to_be_bytes();
    let s = size.to_be_bytes();
    [0xFF, f[0], f[1], s[0], s[1]]
}

/// Attribute flags of the key info blobs (§2.4): modifiable | decrypt | sign | sign-recover |
/// unwrap for the authentication key; modifiable | sign for the signature key.
pub const FLAGS_AUTH_KEY: u16 = 0x04B1;
pub const FLAGS_SIGN_KEY: u16 = 0x0021;

fn guid(serial: &str, index: u8) -> String {
    format!("{serial:0>8}-0000-4000-8000-{:012X}", index)
}

/// The AWP tree, PINs and keys for a personalisation.
pub fn personalize(p: &Personalization) -> Result<CardImage, String> {
    let serial = crate::hex::decode(&p.serial).ok().and_then(|b| <[u8; 4]>::try_from(b).ok());
    let Some(serial_bytes) = serial else {
        return Err(format!("an Oberthur serial is 8 hex digits, got {:?}", p.serial));
    };
    let user = AccessCondition::Pin(Hex8(PIN_USER));
    let so = AccessCondition::Pin(Hex8(PIN_SO));
    let always = AccessCondition::Always;
    let never = AccessCondition::Never;
    let acl = |read, update, create, delete| Acl { read, update, create, delete };
    let ef = |fid: u16, name: &str, read, update, data: Vec<u8>| {
        FileNode::new(fid, Some(name), acl(read, update, never, user), FileBody::Transparent { data: Bytes(data) })
    };
    let mut label = format!("{} {}", p.holder.first_name, p.holder.last_name).trim().to_owned();
    if label.is_empty() {
        label = "Aruba PEC".into();
    }
    let mut token_info = label.as_bytes().to_vec();
    token_info.resize(32, b' ');
    token_info.extend_from_slice(&[0x00, 0x00, 0x04, 0x0D]);

    let sets: Vec<(u8, &KeySet, u16)> = [(KEY_AUTH, &p.auth, FLAGS_AUTH_KEY), (KEY_SIGN, &p.sign, FLAGS_SIGN_KEY)]
        .into_iter()
        .filter_map(|(i, k, f)| k.as_ref().map(|k| (i, k, f)))
        .collect();
    let mut public_list = Vec::new();
    let mut private_list = Vec::new();
    let mut containers = Vec::new();
    let mut public_files = Vec::new();
    let mut private_files = Vec::new();
    for &(i, k, flags) in &sets {
        let bits = u16::try_from(k.algorithm.rsa_bits().ok_or("Oberthur keys are RSA")?).unwrap_or(2048);
        let cert_len = u16::try_from(k.certificate.len()).map_err(|_| "certificate too large")?;
        public_list.extend_from_slice(&list_entry(0x2000 | u16::from(i), cert_len));
        private_list.extend_from_slice(&list_entry(0x3000 | u16::from(i), bits));
        containers.push(Bytes(container_record(i, &guid(&p.serial, i))));
        public_files.push(FileNode::new(
            0x1000 | u16::from(i),
            Some("RSA public key"),
            acl(always, user, never, never),
            FileBody::PublicKey { key: Hex8(i), bits },
        ));
        public_files.push(ef(0x2000 | u16::from(i), "X.509 certificate", always, user, k.certificate.clone()));
        public_files.push(ef(0x2100 | u16::from(i), "certificate info", always, user, cert_info(&k.info)));
        private_files.push(FileNode::new(
            0x3000 | u16::from(i),
            Some("RSA private key"),
            acl(user, user, never, never),
            FileBody::PrivateKey { key: Hex8(i), bits },
        ));
        private_files.push(ef(0x3100 | u16::from(i), "private key info", always, user, key_info(&k.info, flags)));
    }
    public_list.resize(250, 0);
    private_list.resize(125, 0);
    let awp = FileNode::new(
        DF_AWP,
        Some("AWP application DF"),
        acl(always, user, user, user),
        FileBody::Df {
            aid: None,
            children: vec![
                ef(0x1000, "token info", always, so, token_info),
                ef(0x2000, "PUK file (unblock code)", AccessCondition::Pin(Hex8(PUK)), so, puk_file_code(&p.puk)),
                FileNode::new(
                    0x3000,
                    Some("container list"),
                    acl(always, user, never, user),
                    FileBody::Records { record_len: CONTAINER_RECORD_LEN, max_records: 4, records: containers },
                ),
                ef(0x4000, "public object list", always, user, public_list),
                ef(0x5000, "private object list", always, user, private_list),
                FileNode::new(
                    DF_PUBLIC,
                    Some("public objects"),
                    acl(always, user, user, user),
                    FileBody::Df { aid: None, children: public_files },
                ),
                FileNode::new(
                    DF_PRIVATE,
                    Some("private objects"),
                    acl(always, user, user, user),
                    FileBody::Df { aid: None, children: private_files },
                ),
            ],
        },
    );
    let mf =
        FileNode::new(MF, Some("MF"), acl(always, never, so, never), FileBody::Df { aid: None, children: vec![awp] });
    let blank = sets.is_empty();
    let pin = |reference: u8, label: &str, role, value: &str, tries: u8, unblocked_by: Option<u8>| {
        let mut o = awp_pin(reference, role, vec![Hex16(MF), Hex16(DF_AWP)], tries);
        o.label = label.into();
        o.value = value.into();
        o.unblocked_by = unblocked_by.map(Hex8);
        o
    };
    let user_pin = if blank { DEFAULT_PIN } else { p.pin.as_str() };
    let keys = sets
        .iter()
        .map(|&(i, k, _)| KeyObject {
            reference: Hex8(i),
            label: k.info.label.clone(),
            algorithm: k.algorithm,
            usage: KeyUsage { sign: true, decipher: i == KEY_AUTH },
            pin: Hex8(PIN_USER),
            always_authenticate: i == KEY_SIGN,
            material: Some(k.material.clone()),
            pending: None,
            certificate: None,
        })
        .collect();
    Ok(CardImage {
        schema: SCHEMA_NAME.into(),
        version: SCHEMA_VERSION,
        profile: ProfileKind::Oberthur,
        description: p.description.clone(),
        atr: Bytes(p.atr.clone().unwrap_or_else(|| ATR.to_vec())),
        life_cycle: p.life_cycle,
        capacity: p.capacity,
        capabilities: Capabilities { p256: p.p256 },
        cplc: Some(Bytes(cplc(serial_bytes))),
        history: p.history.clone(),
        mf,
        pins: vec![
            pin(PIN_SO, "SO PIN", PinRole::So, &p.so_pin, 3, None),
            pin(PIN_USER, "SCM", PinRole::User, user_pin, p.pin_tries, Some(PUK)),
            pin(PUK, "PUK", PinRole::Puk, &p.puk, p.puk_tries, None),
        ],
        keys,
        security_environments: vec![],
        extensions: crate::image::Extension::convenience(ProfileKind::Oberthur),
        tries_query_counts: false,
    })
}

/// An AWP PIN object (§2.6): ASCII, 4 to 64 characters, padded with `FF` to 64; empty value.
pub fn awp_pin(reference: u8, role: PinRole, df: Vec<Hex16>, tries: u8) -> PinObject {
    PinObject {
        reference: Hex8(reference),
        label: String::new(),
        role,
        df,
        value: String::new(),
        charset: Charset::Ascii,
        min_len: 4,
        max_len: 64,
        pad_len: 64,
        pad_byte: Hex8(0xFF),
        max_tries: tries,
        tries_left: tries,
        unblocked_by: None,
    }
}

/// The 16-byte unblock code stored in `5011/2000`: the PUK's ASCII, zero-padded (what AWP
/// middleware writes is not public; any 16 bytes the host reads back work the same).
pub fn puk_file_code(puk: &str) -> Vec<u8> {
    let mut v = puk.as_bytes().to_vec();
    v.resize(16, 0);
    v
}
