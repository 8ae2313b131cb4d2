//! The typed command set. A profile's parser turns an [`Apdu`] into a [`Command`] (its error
//! *is* the status word to answer); the card executes it in one exhaustive `match`
//! (`Card::execute`), so a new variant does not compile until it is handled.
//!
//! Parsed types enforce the APDU encoding (lengths, P1/P2 values); whether an operation is
//! allowed now (PINs, access conditions, life-cycle) is the card's call.

use crate::apdu::Apdu;
use crate::fs::Acl;
use crate::keys::Algorithm;
use crate::sw::Sw;

/// How a PIN reference is resolved against the file tree.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PinScope {
    /// Only the MF's PIN objects (CNS reference without bit 7).
    Global,
    /// The current DF, then each parent up to the MF (CNS reference with bit 7: STIncard's
    /// "search parent directories", spec/cards.md §3.1).
    Local,
    /// Any PIN object with that reference (Oberthur, whose PINs are card-global).
    Anywhere,
}

/// A PIN as a command addresses it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PinRef {
    /// Canonical reference, as the image stores it.
    pub reference: u8,
    pub scope: PinScope,
}

/// What SELECT selects.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SelectTarget<'a> {
    /// P1 = 00: MF, current DF, or a child of the current DF, by FID.
    Fid(u16),
    /// P1 = 03: the parent of the current DF.
    Parent,
    /// P1 = 04: a DF by name (AID).
    DfName(&'a [u8]),
    /// P1 = 08: a path from the MF (MF's FID omitted), 2 bytes per level.
    PathFromMf(&'a [u8]),
    /// P1 = 09: a path from the current DF.
    PathFromCurrent(&'a [u8]),
}

/// A SELECT command.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Select<'a> {
    pub target: SelectTarget<'a>,
    /// P2 = 00/04: return the FCP; P2 = 0C: no response data.
    pub return_fcp: bool,
}

/// Operation a security environment is set up for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SecOp {
    /// CRT B6: digital signature.
    Sign,
    /// CRT B8: confidentiality (decipher).
    Decipher,
}

/// Which key MSE SET chooses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeySelector {
    /// By reference (CNS: `83 01 kk`).
    Reference(u8),
    /// The pending (generated, not yet committed) key of slot `kk` (CNS renewal: `84 01 kk`).
    Pending(u8),
    /// The private-key EF selected just before (Oberthur: MSE carries no key reference).
    CurrentEf,
}

/// How RESET RETRY COUNTER authenticates the unblock.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnblockProof<'a> {
    /// The PUK object linked to the PIN (CNS: `PUK(8) ‖ new PIN(8)`, P2 = the PIN).
    Puk(&'a [u8]),
    /// The code stored in a "PUK file" (Oberthur AWP `3F00/5011/2000`, spec/cards.md §2.6);
    /// a wrong code counts against the PUK object linked to the PIN.
    PukFile { code: &'a [u8], path: &'static [u16] },
}

/// What the new key is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyGen {
    /// CNS: `00 46 00 kk` with the modulus bits (`08 00`) or the P-256 OID: regenerate slot `kk`;
    /// with P1 = `80` the new key is *pending*: the active key stays in use until committed.
    Slot { key: u8, algorithm: Algorithm, pending: bool },
    /// Oberthur: `00 46 00 00` with public FID ‖ private FID: size from the private-key EF.
    Files { public: u16, private: u16 },
}

/// Who pads a signature input.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SignPadding {
    /// The host sent the whole PKCS#1 block; the card does the raw RSA operation (CNS).
    Raw,
    /// The host sent a DigestInfo; the card adds PKCS#1 v1.5 type-01 padding (Oberthur).
    Pkcs1,
}

/// A GET DATA object.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DataObject {
    /// CNS `00 CA 01 83`: one byte, the life-cycle.
    LifeCycle,
    /// Oberthur `80 CA 9F 7F`: `9F 7F 2A` + the 42 CPLC bytes.
    Cplc,
}

/// What CREATE FILE creates.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NewFileKind {
    Df,
    Transparent { size: u16 },
    Records { record_len: u8, max_records: u8 },
    PrivateKey { bits: u16 },
    PublicKey { bits: u16 },
}

/// A CREATE FILE request, decoded from the profile's FCP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    pub fid: u16,
    pub kind: NewFileKind,
    pub acl: Acl,
}

/// Every command the card understands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Select(Select<'a>),
    ReadBinary {
        offset: usize,
        le: usize,
    },
    UpdateBinary {
        offset: usize,
        data: &'a [u8],
    },
    ReadRecord {
        record: u8,
        le: usize,
    },
    UpdateRecord {
        record: u8,
        data: &'a [u8],
    },
    AppendRecord {
        data: &'a [u8],
    },
    DeleteRecord {
        record: u8,
    },
    /// VERIFY; without data it is a status query (`9000` / `63Cx` / `6983`).
    Verify {
        pin: PinRef,
        data: Option<&'a [u8]>,
    },
    /// CHANGE REFERENCE DATA: old ‖ new, each padded.
    ChangeReferenceData {
        pin: PinRef,
        data: &'a [u8],
    },
    /// RESET RETRY COUNTER: proof, then optionally the new PIN (padded).
    ResetRetryCounter {
        pin: PinRef,
        proof: UnblockProof<'a>,
        new_pin: Option<&'a [u8]>,
    },
    /// Oberthur CREATE PIN (`00 24 01 ref`): tries ‖ `40` ‖ PIN padded to 64.
    CreatePin {
        pin: PinRef,
        tries: u8,
        value: &'a [u8],
    },
    /// Oberthur LOGOUT (`80 2E 00 2r`).
    Logout {
        pin: PinRef,
    },
    MseRestore {
        se: u8,
    },
    MseSet {
        op: SecOp,
        key: KeySelector,
    },
    ComputeSignature {
        input: &'a [u8],
        padding: SignPadding,
    },
    /// PSO DECIPHER; `unpad` removes PKCS#1 type-02 padding from the result (Oberthur), else
    /// the raw k-byte block is returned (CNS).
    Decipher {
        input: &'a [u8],
        unpad: bool,
    },
    GetChallenge {
        len: usize,
    },
    GetData(DataObject),
    GetResponse {
        le: usize,
    },
    GenerateKeyPair(KeyGen),
    /// CNS renewal commit (`00 46 81 kk` + the new certificate): in one step the pending key
    /// of slot `kk` becomes its key and the certificate EF of the slot gets the new content.
    CommitKey {
        key: u8,
        certificate: &'a [u8],
    },
    /// Oberthur `80 B4 nn 00`: 1 = modulus, 2 = exponent of the selected public-key EF.
    ReadPublicComponent {
        exponent: bool,
        le: usize,
    },
    CreateFile(NewFile),
    /// DELETE FILE of a child of the current DF; `df` says whether the host expects a DF.
    DeleteFile {
        fid: u16,
        df: Option<bool>,
    },
    /// Oberthur LIST FILES: the FIDs of the current DF's children.
    ListFiles {
        le: usize,
    },
    /// The proprietary erase the reset uses (CNS `B0 F5 00 00`, spec/domain.md §1.2).
    EraseCard,
}

// ---- shared ISO 7816-4 decoders, used by both profiles ----

pub(crate) fn no_data(apdu: &Apdu<'_>) -> Result<(), Sw> {
    if apdu.data.is_empty() { Ok(()) } else { Err(Sw::WrongLength) }
}

pub(crate) fn fid_of(data: &[u8]) -> Result<u16, Sw> {
    match *data {
        [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(Sw::WrongLength),
    }
}

/// SELECT (ISO 7816-4 §11.1.1).
pub(crate) fn select<'a>(apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    let return_fcp = match apdu.p2 & 0xFC {
        0x00 | 0x04 => true,
        0x0C => false,
        _ => return Err(Sw::WrongP1P2),
    };
    let occurrence = apdu.p2 & 0x03;
    if occurrence != 0 && apdu.p1 != 0x04 {
        return Err(Sw::WrongP1P2);
    }
    let target = match apdu.p1 {
        0x00 => {
            if apdu.data.is_empty() {
                SelectTarget::Fid(crate::fs::MF)
            } else {
                SelectTarget::Fid(fid_of(apdu.data)?)
            }
        }
        0x03 => {
            no_data(apdu)?;
            SelectTarget::Parent
        }
        0x04 => {
            if apdu.data.is_empty() || apdu.data.len() > 16 {
                return Err(Sw::WrongLength);
            }
            if occurrence != 0 {
                // "next occurrence": no card here has two DFs with one name.
                return Err(Sw::FileNotFound);
            }
            SelectTarget::DfName(apdu.data)
        }
        0x08 | 0x09 => {
            if apdu.data.is_empty() || !apdu.data.len().is_multiple_of(2) {
                return Err(Sw::WrongLength);
            }
            if apdu.p1 == 0x08 { SelectTarget::PathFromMf(apdu.data) } else { SelectTarget::PathFromCurrent(apdu.data) }
        }
        _ => return Err(Sw::WrongP1P2),
    };
    Ok(Command::Select(Select { target, return_fcp }))
}

/// Offset of READ/UPDATE BINARY: 15 bits of P1-P2. Short EF identifiers (P1 b8 = 1) are not
/// supported by these cards.
pub(crate) fn binary_offset(apdu: &Apdu<'_>) -> Result<usize, Sw> {
    if apdu.p1 & 0x80 != 0 {
        return Err(Sw::WrongP1P2);
    }
    Ok(usize::from(apdu.p1) << 8 | usize::from(apdu.p2))
}

pub(crate) fn read_binary<'a>(apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    no_data(apdu)?;
    Ok(Command::ReadBinary { offset: binary_offset(apdu)?, le: apdu.le.unwrap_or(256) })
}

pub(crate) fn update_binary<'a>(apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    if apdu.data.is_empty() {
        return Err(Sw::WrongLength);
    }
    Ok(Command::UpdateBinary { offset: binary_offset(apdu)?, data: apdu.data })
}

/// Record commands address by absolute record number in P1 (P2 = `04`).
pub(crate) fn record_number(apdu: &Apdu<'_>) -> Result<u8, Sw> {
    if apdu.p2 != 0x04 || apdu.p1 == 0 {
        return Err(Sw::WrongP1P2);
    }
    Ok(apdu.p1)
}

pub(crate) fn get_challenge<'a>(apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    no_data(apdu)?;
    if apdu.p1 != 0 || apdu.p2 != 0 {
        return Err(Sw::WrongP1P2);
    }
    match apdu.le {
        Some(len) if len <= 256 => Ok(Command::GetChallenge { len }),
        _ => Err(Sw::WrongLength),
    }
}

pub(crate) fn get_response<'a>(apdu: &Apdu<'a>) -> Result<Command<'a>, Sw> {
    no_data(apdu)?;
    if apdu.p1 != 0 || apdu.p2 != 0 {
        return Err(Sw::WrongP1P2);
    }
    Ok(Command::GetResponse { le: apdu.le.unwrap_or(256) })
}

/// PSO (ISO 7816-8 §11): `9E 9A` compute digital signature, `80 86` decipher.
pub(crate) fn pso<'a>(apdu: &Apdu<'a>, padding: SignPadding) -> Result<Command<'a>, Sw> {
    // The CNS receives an ISO padding indicator `00` before the cryptogram and returns the raw
    // block; Oberthur receives the bare cryptogram and removes the padding itself.
    let decipher_indicator = padding == SignPadding::Raw;
    match (apdu.p1, apdu.p2) {
        (0x9E, 0x9A) => {
            if apdu.data.is_empty() {
                return Err(Sw::WrongLength);
            }
            Ok(Command::ComputeSignature { input: apdu.data, padding })
        }
        (0x80, 0x86) => {
            let input = if decipher_indicator {
                match apdu.data.split_first() {
                    Some((0x00, rest)) if !rest.is_empty() => rest,
                    Some(_) => return Err(Sw::WrongData),
                    None => return Err(Sw::WrongLength),
                }
            } else {
                apdu.data
            };
            if input.is_empty() {
                return Err(Sw::WrongLength);
            }
            Ok(Command::Decipher { input, unpad: !decipher_indicator })
        }
        _ => Err(Sw::WrongP1P2),
    }
}

/// The CRT tag of MSE SET P2.
pub(crate) fn mse_op(p2: u8) -> Result<SecOp, Sw> {
    match p2 {
        0xB6 => Ok(SecOp::Sign),
        0xB8 => Ok(SecOp::Decipher),
        _ => Err(Sw::WrongP1P2),
    }
}

/// Walks simple BER-TLV with 1-byte tags and short lengths (security environment data).
pub(crate) fn simple_tlv(mut data: &[u8], mut f: impl FnMut(u8, &[u8]) -> Result<(), Sw>) -> Result<(), Sw> {
    while let [tag, len, rest @ ..] = data {
        let len = usize::from(*len);
        let value = rest.get(..len).ok_or(Sw::WrongData)?;
        f(*tag, value)?;
        data = rest.get(len..).ok_or(Sw::WrongData)?;
    }
    if data.is_empty() { Ok(()) } else { Err(Sw::WrongData) }
}
