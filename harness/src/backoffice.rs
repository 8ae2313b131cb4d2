//! The back office (CA / CMS / CDRL side, spec/domain.md §6.4): cards, practices with their
//! event log, the contact registry (uniqueness of email and mobile), the certificate registry
//! and renewal orders. A JSON store, locked while a process has it open for writing, replaced
//! atomically on every change (`firmalab_emulator::storage`).

use crate::client::KeyRole;
use crate::dates::Date;
use firmalab_emulator::storage::{self, WriteLock};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SCHEMA_NAME: &str = "firmalab-backoffice";
/// Version 2 added holders, code envelopes, typed events and revocation details; version 1
/// files are read (the new fields start empty) and saved as version 2.
pub const SCHEMA_VERSION: u32 = 2;
/// Where the store lives unless `--ra` says otherwise.
pub const DEFAULT_PATH: &str = "firmalab-ra.json";
/// The CDRL (registration office) that operates when none is named: the fixtures, the demo
/// and every `--cdrl` default.
pub const DEFAULT_CDRL: &str = "CDRL-ROMA-01";

crate::reason::codes! {
    /// Why the back office refused an operation or a contact (the codes of
    /// [`crate::cms::Refusal`] and [`ContactError`]).
    pub enum Reason {
        NoSuchPractice,
        NoSuchCard,
        NoSuchCertificate,
        NoSuchHolder,
        AlreadyEnrolled,
        /// The back office knows this codice fiscale under other names.
        HolderMismatch,
        /// The card holds no qualified signature certificate.
        CertificateMissing,
        /// Only the CDRL that issued the card operates on it.
        IssuedByOtherCdrl,
        PracticeOfOtherCdrl,
        WrongPracticeState,
        /// Codes belong to an issuance.
        NotAnIssuance,
        /// The codes went in a sealed paper envelope.
        CodesOnPaper,
        AlreadyRevoked,
        NotActive,
        NotSuspended,
        /// A renewal's certificate waits for `ra authorize`.
        AwaitingAuthorization,
        NoCertificateToChange,
        InvalidCodes,
        InvalidAddress,
        /// Not an email address / not a mobile number.
        InvalidContact,
        /// The contact is bound to another codice fiscale.
        ContactNotUnique,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeKind {
    Issuance,
    Renewal,
}

/// Where a practice stands (README, "Back office": states and transitions).
///
/// Issuance: `CreazioneModulo` → `AttesaOriginali` (certificates issued, codes sent) →
/// `Completato` (`ra receive-originals`). Renewal: `RenewalInProgress` →
/// `AwaitingCdrlAuthorization` → `Completed` (`ra authorize`). The Aruba Key's two-phase
/// renewal: `AwaitingImport` (`ra order`: paid, certificates issued) → `Completed` (`flow
/// import`). Any → `Revocata` when its card's last live certificate is revoked, →
/// `Invalidated` when the card is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeState {
    /// Issuance: form created.
    CreazioneModulo,
    /// Issuance: certificates issued and codes sent; waiting for the signed originals.
    AttesaOriginali,
    /// Issuance done; the originals are at the CA.
    Completato,
    /// Renewal started on the card, certificate not installed yet.
    RenewalInProgress,
    /// New certificate on the card; waiting for the reseller to authorise after payment.
    AwaitingCdrlAuthorization,
    /// Two-phase renewal (Aruba Key): ordered and paid, the CA issued the certificates; they
    /// wait to be imported onto the device (`flow import`).
    AwaitingImport,
    /// Renewal authorised (or, two-phase, imported): done.
    Completed,
    /// Renewal abandoned (refused, aborted).
    Abandoned,
    /// Card reset: what the practice issued is gone.
    Invalidated,
    /// Every certificate of the practice's card was revoked.
    Revocata,
}

impl PracticeState {
    /// How the CMS shows it.
    pub fn label(self) -> &'static str {
        match self {
            PracticeState::CreazioneModulo => "Creazione Modulo",
            PracticeState::AttesaOriginali => "Attesa Originali",
            PracticeState::Completato => "Completato",
            PracticeState::RenewalInProgress => "Rinnovo in corso",
            PracticeState::AwaitingCdrlAuthorization => "Attesa autorizzazione CDRL",
            PracticeState::AwaitingImport => "Attesa importazione certificati",
            PracticeState::Completed => "Rinnovo completato",
            PracticeState::Abandoned => "Abbandonata",
            PracticeState::Invalidated => "Invalidata (reset)",
            PracticeState::Revocata => "Revocata",
        }
    }
}

/// What happened to a practice ("Eventi Carta").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// "creazione modulo": the request form; where the CMS resends the codes from.
    FormCreated,
    CertificatesIssued,
    /// First half of PIN/PUK by SMS, second half by email (or a paper envelope).
    CodesSent,
    /// The second half sent again (`ra resend-codes`).
    CodesResent,
    OriginalsReceived,
    HolderDataChanged,
    RenewalStarted,
    RenewalFormSigned,
    RenewalInterrupted,
    CertificatesInstalled,
    RenewalAuthorized,
    /// Two-phase renewal: the order placed (and paid) after the client authentication.
    RenewalOrdered,
    /// Two-phase renewal: the issued certificates installed on the device.
    CertificatesImported,
    RenewalNotice,
    Suspended,
    Reactivated,
    Revoked,
    CardReset,
    /// An event of a version 1 store (no type recorded).
    #[default]
    Note,
}

impl EventKind {
    /// The CMS's name for it.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::FormCreated => "creazione modulo",
            EventKind::CertificatesIssued => "emissione certificati",
            EventKind::CodesSent => "invio codici",
            EventKind::CodesResent => "reinvio seconda parte codici",
            EventKind::OriginalsReceived => "ricezione originali",
            EventKind::HolderDataChanged => "modifica dati titolare",
            EventKind::RenewalStarted => "avvio rinnovo",
            EventKind::RenewalFormSigned => "firma modulo di rinnovo",
            EventKind::RenewalInterrupted => "rinnovo interrotto",
            EventKind::CertificatesInstalled => "installazione certificati",
            EventKind::RenewalAuthorized => "autorizzazione CDRL",
            EventKind::RenewalOrdered => "ordine di rinnovo",
            EventKind::CertificatesImported => "importazione certificati",
            EventKind::RenewalNotice => "avviso di scadenza",
            EventKind::Suspended => "sospensione",
            EventKind::Reactivated => "riattivazione",
            EventKind::Revoked => "revoca",
            EventKind::CardReset => "reset carta",
            EventKind::Note => "nota",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PracticeEvent {
    pub date: String,
    #[serde(default)]
    pub kind: EventKind,
    pub event: String,
}

impl PracticeEvent {
    pub fn new(kind: EventKind, date: Date, event: impl Into<String>) -> Self {
        PracticeEvent { date: date.to_string(), kind, event: event.into() }
    }
}

/// How the PIN and PUK reached the holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeDelivery {
    /// A sealed paper envelope: not recoverable, nothing to resend.
    Paper,
    /// First half by SMS, second half by email (Aruba: "metà via SMS e metà via email").
    SmsAndEmail,
}

/// The second half of the codes, kept to be sent again. The first half went by SMS and is not
/// kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeHalf {
    pub pin: String,
    pub puk: String,
    /// Digits of the first halves (sent by SMS, not kept): where the second halves start.
    pub pin_first_digits: usize,
    pub puk_first_digits: usize,
}

/// The PIN/PUK envelope of an issuance (spec/domain.md §6.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeEnvelope {
    pub delivery: CodeDelivery,
    /// Where the first half went (SMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Where the second half goes (email), and goes again on `ra resend-codes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_half: Option<CodeHalf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Practice {
    pub id: String,
    pub kind: PracticeKind,
    pub codice_fiscale: String,
    pub cdrl: String,
    pub card_serial: String,
    pub state: PracticeState,
    pub events: Vec<PracticeEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<CodeEnvelope>,
}

impl Practice {
    /// Appends an event to the practice's log.
    pub fn log(&mut self, kind: EventKind, date: Date, event: impl Into<String>) {
        self.events.push(PracticeEvent::new(kind, date, event));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Email,
    Mobile,
}

impl ContactKind {
    pub fn name(self) -> &'static str {
        match self {
            ContactKind::Email => "email",
            ContactKind::Mobile => "mobile",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub kind: ContactKind,
    /// Normalised: see [`normalise_contact`].
    pub value: String,
    pub codice_fiscale: String,
}

/// A holder's data that the certificate does not carry and the holder may change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderRecord {
    pub codice_fiscale: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    Active,
    /// Not usable: issued by a renewal and waiting for the CDRL's authorisation, or suspended
    /// by the CDRL (`ra suspend`; then `change` says so). CRL and OCSP: certificateHold.
    Suspended,
    /// Replaced by a renewal.
    Superseded,
    Revoked,
}

/// Why a certificate stopped being good (RFC 5280 CRLReason, the ones the CA uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
}

impl RevocationReason {
    /// The CRLReason code (RFC 5280 §5.3.1).
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
        }
    }

    /// The name OpenSSL's `index.txt` and `openssl ocsp` use.
    pub fn openssl_name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
        }
    }
}

/// A revocation reason `ra revoke` does not take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?}: the reasons are unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation (suspend with `ra suspend`)"
)]
pub struct UnknownRevocationReason(pub String);

impl std::str::FromStr for RevocationReason {
    type Err = UnknownRevocationReason;
    fn from_str(s: &str) -> Result<Self, UnknownRevocationReason> {
        Ok(match s {
            "unspecified" => RevocationReason::Unspecified,
            "key-compromise" | "keyCompromise" => RevocationReason::KeyCompromise,
            "affiliation-changed" | "affiliationChanged" => RevocationReason::AffiliationChanged,
            "superseded" => RevocationReason::Superseded,
            "cessation-of-operation" | "cessationOfOperation" => RevocationReason::CessationOfOperation,
            _ => return Err(UnknownRevocationReason(s.to_owned())),
        })
    }
}

/// When, why and by whom a certificate left `Active` (revoked, superseded, suspended by a CDRL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub date: String,
    pub reason: RevocationReason,
    /// The CDRL that did it, when a CDRL did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRecord {
    /// Certificate serial, hex.
    pub serial: String,
    pub role: KeyRole,
    pub codice_fiscale: String,
    pub card_serial: String,
    pub status: CertStatus,
    pub not_before: String,
    pub not_after: String,
    /// Set when the status left `Active` (none for a renewal's certificates waiting for the
    /// CDRL, nor in version 1 stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<StatusChange>,
}

impl CertRecord {
    /// Marks the certificate revoked (or superseded, for that reason) on `date`.
    pub fn revoke(&mut self, reason: RevocationReason, date: Date, by: Option<&str>) {
        self.status = if reason == RevocationReason::Superseded { CertStatus::Superseded } else { CertStatus::Revoked };
        self.change = Some(StatusChange { date: date.to_string(), reason, by: by.map(str::to_owned) });
    }

    /// Suspended by a CDRL (`ra suspend`), as opposed to waiting for a renewal's authorisation.
    pub fn held_by_cdrl(&self) -> bool {
        self.status == CertStatus::Suspended
            && self.change.as_ref().is_some_and(|c| c.reason == RevocationReason::CertificateHold)
    }

    /// Still usable or usable again: active or suspended.
    pub fn live(&self) -> bool {
        matches!(self.status, CertStatus::Active | CertStatus::Suspended)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Requested,
    Paid,
    AuthorizedByCdrl,
    Completed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalOrder {
    pub id: String,
    pub practice: String,
    pub status: OrderStatus,
    /// Two-phase renewal: the certificates the CA issued for the order, which `flow import`
    /// installs (empty for an Enroll renewal, whose certificates go on the card at once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<IssuedCertificate>,
}

/// A certificate issued for an order and not yet on the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedCertificate {
    pub role: KeyRole,
    /// Serial, hex, as the registry keeps it.
    pub serial: String,
    /// DER, hex.
    pub der: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRecord {
    pub serial: String,
    pub codice_fiscale: String,
    pub cdrl: String,
    pub first_issuance: String,
    pub renewal_count: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackOffice {
    pub schema: String,
    pub version: u32,
    pub cards: Vec<CardRecord>,
    #[serde(default)]
    pub holders: Vec<HolderRecord>,
    pub practices: Vec<Practice>,
    pub contacts: Vec<Contact>,
    pub certificates: Vec<CertRecord>,
    pub orders: Vec<RenewalOrder>,
    /// The number of the last CRL the CA signed (`ra crl`).
    #[serde(default)]
    pub crl_number: u64,
}

impl Default for BackOffice {
    fn default() -> Self {
        BackOffice {
            schema: SCHEMA_NAME.into(),
            version: SCHEMA_VERSION,
            cards: vec![],
            holders: vec![],
            practices: vec![],
            contacts: vec![],
            certificates: vec![],
            orders: vec![],
            crl_number: 0,
        }
    }
}

/// An open store: the data and where it is saved.
pub struct Store {
    pub data: BackOffice,
    pub path: Option<PathBuf>,
    /// Held for as long as the store is open for writing.
    lock: Option<WriteLock>,
}

/// Why the back-office store could not be opened, read or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("back office {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Not a back-office file this firmalab reads (JSON, duplicate keys, schema).
    #[error("back office {}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("back office {}: opened read-only", path.display())]
    ReadOnly { path: PathBuf },
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

impl Store {
    /// Opens the store at `path` for writing, or an empty one if the file does not exist
    /// yet. The file is locked while the store lives: another process opening it for writing
    /// is refused with this one's pid.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source: std::io::Error| StoreError::Io { path: path.to_owned(), source };
        let lock = WriteLock::acquire(path).map_err(err)?;
        storage::remove_stale_temps(path).map_err(err)?;
        let data = Self::read(path)?;
        Ok(Store { data, path: Some(path.to_owned()), lock: Some(lock) })
    }

    /// Opens the store to read only (no lock; it sees the last complete save). [`Store::save`]
    /// refuses.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        Ok(Store { data: Self::read(path)?, path: Some(path.to_owned()), lock: None })
    }

    fn read(path: &Path) -> Result<BackOffice, StoreError> {
        let invalid = |why: String| StoreError::Invalid { path: path.to_owned(), why };
        match storage::read_text(path) {
            Ok(text) => {
                firmalab_emulator::image::check_unique_keys(&text).map_err(invalid)?;
                let mut data: BackOffice = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
                if data.schema != SCHEMA_NAME || !(1..=SCHEMA_VERSION).contains(&data.version) {
                    return Err(invalid(format!("not a {SCHEMA_NAME} file of version 1 to {SCHEMA_VERSION}")));
                }
                data.version = SCHEMA_VERSION;
                Ok(data)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BackOffice::default()),
            Err(source) => Err(StoreError::Io { path: path.to_owned(), source }),
        }
    }

    /// A store kept in memory only.
    pub fn in_memory() -> Self {
        Store { data: BackOffice::default(), path: None, lock: None }
    }

    /// Saves atomically, mode 0600 for a new file (no-op for an in-memory store).
    pub fn save(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else { return Ok(()) };
        let Some(lock) = &self.lock else {
            return Err(StoreError::ReadOnly { path: path.clone() });
        };
        let mut text = serde_json::to_string_pretty(&self.data)?;
        text.push('\n');
        storage::write_private(lock.target(), text.as_bytes())
            .map_err(|source| StoreError::Io { path: path.clone(), source })
    }
}

/// What a new practice is about.
pub struct NewPractice<'a> {
    pub kind: PracticeKind,
    pub codice_fiscale: &'a str,
    pub cdrl: &'a str,
    pub card: &'a str,
    pub state: PracticeState,
}

impl BackOffice {
    pub fn card(&self, serial: &str) -> Option<&CardRecord> {
        self.cards.iter().find(|c| c.serial == serial)
    }

    pub fn card_mut(&mut self, serial: &str) -> Option<&mut CardRecord> {
        self.cards.iter_mut().find(|c| c.serial == serial)
    }

    pub fn cert(&self, serial: &str) -> Option<&CertRecord> {
        self.certificates.iter().find(|c| c.serial.eq_ignore_ascii_case(serial))
    }

    pub fn cert_mut(&mut self, serial: &str) -> Option<&mut CertRecord> {
        self.certificates.iter_mut().find(|c| c.serial.eq_ignore_ascii_case(serial))
    }

    pub fn practice(&self, id: &str) -> Option<&Practice> {
        self.practices.iter().find(|p| p.id == id)
    }

    pub fn practice_mut(&mut self, id: &str) -> Option<&mut Practice> {
        self.practices.iter_mut().find(|p| p.id == id)
    }

    pub fn holder(&self, cf: &str) -> Option<&HolderRecord> {
        self.holders.iter().find(|h| h.codice_fiscale == cf)
    }

    pub fn holder_mut(&mut self, cf: &str) -> Option<&mut HolderRecord> {
        self.holders.iter_mut().find(|h| h.codice_fiscale == cf)
    }

    /// Opens a practice (`P-000001` …) with its first event; returns its id.
    pub fn new_practice(&mut self, spec: NewPractice<'_>, now: Date, kind: EventKind, event: &str) -> String {
        let id = format!("P-{:06}", self.practices.len() + 1);
        self.practices.push(Practice {
            id: id.clone(),
            kind: spec.kind,
            codice_fiscale: spec.codice_fiscale.into(),
            cdrl: spec.cdrl.into(),
            card_serial: spec.card.into(),
            state: spec.state,
            events: vec![PracticeEvent::new(kind, now, event)],
            envelope: None,
        });
        id
    }

    /// The renewal practice in progress for a card, if any.
    pub fn open_renewal(&self, card: &str) -> Option<&Practice> {
        self.practices.iter().rev().find(|p| {
            p.kind == PracticeKind::Renewal
                && p.card_serial == card
                && matches!(p.state, PracticeState::RenewalInProgress | PracticeState::AwaitingCdrlAuthorization)
        })
    }

    /// The two-phase renewal of a card whose certificates are issued and not yet imported
    /// onto it (Aruba Key: "import the certificate before renewing").
    pub fn pending_import(&self, card: &str) -> Option<&Practice> {
        self.practices.iter().rev().find(|p| {
            p.kind == PracticeKind::Renewal && p.card_serial == card && p.state == PracticeState::AwaitingImport
        })
    }

    /// The renewal order of a practice.
    pub fn order_of(&self, practice: &str) -> Option<&RenewalOrder> {
        self.orders.iter().find(|o| o.practice == practice)
    }

    /// The practice a card's current certificates came from: its latest issuance or renewal
    /// that was not abandoned.
    pub fn current_practice_mut(&mut self, card: &str) -> Option<&mut Practice> {
        self.practices.iter_mut().rev().find(|p| p.card_serial == card && p.state != PracticeState::Abandoned)
    }

    /// Registers a contact for a holder (normalised first); refuses one that is malformed or
    /// bound to another codice fiscale. Returns the normalised value.
    pub fn bind_contact(&mut self, kind: ContactKind, value: &str, cf: &str) -> Result<String, ContactError> {
        let normal = self.check_contact(kind, value, cf)?;
        if self.contact_owner(kind, &normal).is_none() {
            self.contacts.push(Contact { kind, value: normal.clone(), codice_fiscale: cf.into() });
        }
        Ok(normal)
    }

    /// The holder's contact of this kind becomes `value` (the old one is released).
    pub fn replace_contact(&mut self, kind: ContactKind, value: &str, cf: &str) -> Result<String, ContactError> {
        let normal = self.check_contact(kind, value, cf)?;
        self.contacts.retain(|c| !(c.kind == kind && c.codice_fiscale == cf));
        self.contacts.push(Contact { kind, value: normal.clone(), codice_fiscale: cf.into() });
        Ok(normal)
    }

    /// Checks a contact for a holder without registering it: well formed, and not bound to
    /// another codice fiscale once normalised. Returns the normalised value.
    pub fn check_contact(&self, kind: ContactKind, value: &str, cf: &str) -> Result<String, ContactError> {
        let normal = normalise_contact(kind, value)?;
        if self.contact_owner(kind, &normal).is_some_and(|o| o != cf) {
            return Err(ContactError::ContactNotUnique { kind, value: normal, given: value.to_owned() });
        }
        Ok(normal)
    }

    /// Who a contact belongs to (compared normalised; a value that does not normalise is
    /// compared trimmed and case-folded).
    pub fn contact_owner(&self, kind: ContactKind, value: &str) -> Option<&str> {
        let key = |v: &str| normalise_contact(kind, v).unwrap_or_else(|_| v.trim().to_lowercase());
        let v = key(value);
        self.contacts.iter().find(|c| c.kind == kind && key(&c.value) == v).map(|c| c.codice_fiscale.as_str())
    }

    /// A holder's latest registered contact of a kind.
    pub fn contact_of(&self, kind: ContactKind, cf: &str) -> Option<&str> {
        self.contacts.iter().rev().find(|c| c.kind == kind && c.codice_fiscale == cf).map(|c| c.value.as_str())
    }

    /// The store as `ra show` prints it: the second halves of the codes masked.
    pub fn redacted(&self) -> BackOffice {
        let mut b = self.clone();
        for p in &mut b.practices {
            if let Some(h) = p.envelope.as_mut().and_then(|e| e.second_half.as_mut()) {
                h.pin = "*".repeat(h.pin.chars().count());
                h.puk = "*".repeat(h.puk.chars().count());
            }
        }
        b
    }
}

/// Why a contact was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "code")]
pub enum ContactError {
    /// Not an email address / not a mobile number.
    InvalidContact { kind: ContactKind, given: String, why: String },
    /// Bound to another codice fiscale (spec/domain.md §0 step 6): `value` is the normalised
    /// form that matched.
    ContactNotUnique { kind: ContactKind, value: String, given: String },
}

impl ContactError {
    /// The reason code: `InvalidContact` or `ContactNotUnique`.
    pub fn code(&self) -> Reason {
        match self {
            ContactError::InvalidContact { .. } => Reason::InvalidContact,
            ContactError::ContactNotUnique { .. } => Reason::ContactNotUnique,
        }
    }
}

impl std::fmt::Display for ContactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContactError::InvalidContact { kind, given, why } => {
                write!(f, "the {} {given:?} is not valid: {why}", kind.name())
            }
            ContactError::ContactNotUnique { kind, value, given } if value == given => write!(
                f,
                "the {} {value} is already bound to another codice fiscale: change it to continue",
                kind.name()
            ),
            ContactError::ContactNotUnique { kind, value, given } => write!(
                f,
                "the {} {given:?} (normalised: {value}) is already bound to another codice fiscale: change it to continue",
                kind.name()
            ),
        }
    }
}

impl std::error::Error for ContactError {}

/// A contact in the form the registry compares and keeps: see [`normalise_email`] and
/// [`normalise_mobile`].
pub fn normalise_contact(kind: ContactKind, value: &str) -> Result<String, ContactError> {
    let r = match kind {
        ContactKind::Email => normalise_email(value),
        ContactKind::Mobile => normalise_mobile(value),
    };
    r.map_err(|why| ContactError::InvalidContact { kind, given: value.to_owned(), why: why.0 })
}

/// Why a contact or an address is not valid: the rule it breaks, in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// An email address trimmed and case-folded, checked for the shape `local@domain.tld`
/// (RFC 5321 lengths; dot-atom local part; letters, digits and hyphens in the domain's labels).
pub fn normalise_email(value: &str) -> Result<String, Invalid> {
    let v = value.trim().to_lowercase();
    if v.is_empty() {
        return Err(Invalid("empty".into()));
    }
    if v.len() > 254 {
        return Err(Invalid("longer than 254 characters".into()));
    }
    let Some((local, domain)) = v.rsplit_once('@') else { return Err(Invalid("no @".into())) };
    if local.is_empty() || local.len() > 64 {
        return Err(Invalid("the part before @ must have 1 to 64 characters".into()));
    }
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    if local.split('.').any(|part| part.is_empty() || !part.chars().all(atext)) {
        return Err(Invalid(format!(
            "{local:?} is not a valid local part (letters, digits, !#$%&'*+/=?^_`{{|}}~- and single dots)"
        )));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(Invalid(format!("the domain {domain:?} has no dot")));
    }
    for l in &labels {
        if l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        {
            return Err(Invalid(format!("the domain {domain:?} is not a host name")));
        }
    }
    Ok(v)
}

/// A mobile number in E.164 (`+393330000003`). Spaces, dashes, dots, slashes and one pair of
/// parentheses are dropped; `00` becomes `+`; a number without a country code is Italian and
/// must be a mobile (it starts with 3 and has 9 or 10 digits). An Italian number has 6 to 11
/// digits after `+39`; any number 8 to 15 digits after the `+`.
pub fn normalise_mobile(value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Invalid("empty".into()));
    }
    if v.matches('(').count() > 1 || v.matches('(').count() != v.matches(')').count() {
        return Err(Invalid("unbalanced parentheses".into()));
    }
    let mut compact = String::new();
    for c in v.chars() {
        match c {
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            '+' if compact.is_empty() => compact.push(c),
            '0'..='9' => compact.push(c),
            other => return Err(Invalid(format!("{other:?} is not part of a phone number"))),
        }
    }
    let international = if let Some(rest) = compact.strip_prefix('+') {
        rest.to_owned()
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest.to_owned()
    } else if compact.starts_with('3') {
        if !(9..=10).contains(&compact.len()) {
            return Err(Invalid(format!("an Italian mobile number has 9 or 10 digits, not {}", compact.len())));
        }
        format!("39{compact}")
    } else if compact.starts_with('0') {
        return Err(Invalid("a landline number (it starts with 0), not a mobile".into()));
    } else {
        return Err(Invalid("give the number with its country code (+39 …) or as an Italian mobile (3…)".into()));
    };
    if !international.starts_with(|c: char| ('1'..='9').contains(&c)) {
        return Err(Invalid("the country code cannot start with 0".into()));
    }
    if !(8..=15).contains(&international.len()) {
        return Err(Invalid(format!("an international number has 8 to 15 digits, not {}", international.len())));
    }
    if let Some(national) = international.strip_prefix("39")
        && !(6..=11).contains(&national.len())
    {
        return Err(Invalid(format!("an Italian number has 6 to 11 digits after +39, not {}", national.len())));
    }
    Ok(format!("+{international}"))
}

/// A postal address as the holder gives it: trimmed, one line, at most 200 characters.
pub fn normalise_address(value: &str) -> Result<String, Invalid> {
    let v = value.split_whitespace().collect::<Vec<_>>().join(" ");
    if v.is_empty() {
        return Err(Invalid("empty".into()));
    }
    if v.chars().count() > 200 {
        return Err(Invalid("longer than 200 characters".into()));
    }
    if v.chars().any(char::is_control) {
        return Err(Invalid("control characters".into()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobiles_normalise_to_e164_and_bad_ones_are_refused() {
        for given in ["+39 333 0000003", "3330000003", "0039 333 0000003", "+39-333-000.0003", "(+39) 3330000003"] {
            assert_eq!(normalise_mobile(given).as_deref(), Ok("+393330000003"), "{given}");
        }
        assert_eq!(normalise_mobile("+44 7700 900123").as_deref(), Ok("+447700900123"));
        for bad in ["", "  ", "06 1234567", "333 000 0003 x", "+0 123456789", "+39 33", "12345", "333000000312"] {
            assert!(normalise_mobile(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails_are_trimmed_case_folded_and_checked() {
        assert_eq!(normalise_email("  Mario.Rossi@Example.IT ").as_deref(), Ok("mario.rossi@example.it"));
        for bad in ["", " ", "mario", "mario@", "@example.it", "mario@example", "ma..rio@example.it", "m r@example.it"]
        {
            assert!(normalise_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn uniqueness_compares_normalised_contacts_and_names_the_contact() {
        let mut b = BackOffice::default();
        b.bind_contact(ContactKind::Mobile, "+393330000003", "AAAAAA00A00A000A").unwrap();
        let e = b.bind_contact(ContactKind::Mobile, "+39 333 0000003", "BBBBBB00B00B000B").unwrap_err();
        assert_eq!(e.code(), Reason::ContactNotUnique);
        assert!(e.to_string().contains("mobile \"+39 333 0000003\" (normalised: +393330000003)"), "{e}");
        b.bind_contact(ContactKind::Email, "a@example.it", "AAAAAA00A00A000A").unwrap();
        let e = b.bind_contact(ContactKind::Email, " A@Example.it", "BBBBBB00B00B000B").unwrap_err();
        assert_eq!(e.code(), Reason::ContactNotUnique);
        assert_eq!(
            b.bind_contact(ContactKind::Email, "", "BBBBBB00B00B000B").unwrap_err().code(),
            Reason::InvalidContact
        );
        // The owner may give it in any form.
        assert_eq!(b.bind_contact(ContactKind::Mobile, "3330000003", "AAAAAA00A00A000A").unwrap(), "+393330000003");
        assert_eq!(b.contacts.len(), 2);
    }
}
