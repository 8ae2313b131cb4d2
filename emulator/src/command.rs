//! The typed command set. A profile's parser (`Profile::parse`: its own arms, then the ISO
//! arms of `profile/iso.rs`) turns an [`Apdu`] into a [`Command`] (its error *is* the status
//! word to answer); the card executes it in one exhaustive `match` (`card/mod.rs`), so a new
//! variant does not compile until it is handled. A command only one card has and the engine
//! does not model is [`Command::Own`]: its profile executes it (`Profile::execute_own`).
//!
//! Parsed types enforce the APDU encoding (lengths, P1/P2 values); whether an operation is
//! allowed now (PINs, access conditions, life-cycle) is the card's call.

use crate::apdu::Apdu;
use crate::fs::Acl;
use crate::keys::Algorithm;
pub use crate::keys::SignPadding;

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
    /// Only the current DF's PIN objects (Incrypto34 reference without bit 7).
    CurrentDf,
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

/// A GET DATA object.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DataObject {
    /// CNS `00 CA 01 83`: one byte, the life-cycle.
    LifeCycle,
    /// Oberthur `80 CA 9F 7F`: `9F 7F 2A` + the 42 CPLC bytes.
    Cplc,
    /// CNS `00 CA 01 88`: firmalab's extensions (`image::PROBE_MAGIC`, `01`, a bitmap of
    /// `Extension::bit`), the harness's capability probe; `6A88` on a strict twin.
    Extensions,
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
    CreateFile(NewFile),
    /// DELETE FILE of a child of the current DF; `df` says whether the host expects a DF.
    DeleteFile {
        fid: u16,
        df: Option<bool>,
    },
    /// The proprietary erase the reset uses (CNS `B0 F5 00 00`, spec/domain.md §1.2); what
    /// it erases and who may is the profile's (`Profile::erase`).
    EraseCard,
    /// A command of the profile's own that the engine does not model (Oberthur LIST FILES,
    /// READ PUBLIC COMPONENT): the profile checked its encoding and executes it on the card
    /// through `profile::Ctx`.
    Own(Apdu<'a>),
}
