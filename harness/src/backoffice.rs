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
pub const SCHEMA_VERSION: u32 = 1;
/// Where the store lives unless `--ra` says otherwise.
pub const DEFAULT_PATH: &str = "firmalab-ra.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeKind {
    Issuance,
    Renewal,
}

/// Where a practice stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeState {
    /// Issuance: form created.
    CreazioneModulo,
    /// Issuance: waiting for the signed originals.
    AttesaOriginali,
    /// Issuance done; the card is in use.
    Completato,
    /// Renewal started on the card, certificate not installed yet.
    RenewalInProgress,
    /// New certificate on the card; waiting for the reseller to authorise after payment.
    AwaitingCdrlAuthorization,
    /// Renewal authorised: done.
    Completed,
    /// Renewal abandoned (refused, aborted).
    Abandoned,
    /// Card reset: what the practice issued is gone.
    Invalidated,
    Revocata,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PracticeEvent {
    pub date: String,
    pub event: String,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Email,
    Mobile,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub kind: ContactKind,
    pub value: String,
    pub codice_fiscale: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    Active,
    /// Issued, not usable until the CDRL authorises the renewal.
    Suspended,
    /// Replaced by a renewal.
    Superseded,
    Revoked,
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
    pub practices: Vec<Practice>,
    pub contacts: Vec<Contact>,
    pub certificates: Vec<CertRecord>,
    pub orders: Vec<RenewalOrder>,
}

impl Default for BackOffice {
    fn default() -> Self {
        BackOffice {
            schema: SCHEMA_NAME.into(),
            version: SCHEMA_VERSION,
            cards: vec![],
            practices: vec![],
            contacts: vec![],
            certificates: vec![],
            orders: vec![],
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

impl Store {
    /// Opens the store at `path` for writing, or an empty one if the file does not exist
    /// yet. The file is locked while the store lives: another process opening it for writing
    /// is refused with this one's pid.
    pub fn open(path: &Path) -> Result<Self, String> {
        let err = |e: std::io::Error| format!("back office {}: {e}", path.display());
        let lock = WriteLock::acquire(path).map_err(err)?;
        storage::remove_stale_temps(path).map_err(err)?;
        let data = Self::read(path)?;
        Ok(Store { data, path: Some(path.to_owned()), lock: Some(lock) })
    }

    /// Opens the store to read only (no lock; it sees the last complete save). [`Store::save`]
    /// refuses.
    pub fn open_read_only(path: &Path) -> Result<Self, String> {
        Ok(Store { data: Self::read(path)?, path: Some(path.to_owned()), lock: None })
    }

    fn read(path: &Path) -> Result<BackOffice, String> {
        match storage::read_text(path) {
            Ok(text) => {
                firmalab_emulator::image::check_unique_keys(&text)
                    .map_err(|e| format!("back office {}: {e}", path.display()))?;
                let data: BackOffice =
                    serde_json::from_str(&text).map_err(|e| format!("back office {}: {e}", path.display()))?;
                if data.schema != SCHEMA_NAME || data.version != SCHEMA_VERSION {
                    return Err(format!("back office {}: not a {SCHEMA_NAME} v{SCHEMA_VERSION} file", path.display()));
                }
                Ok(data)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BackOffice::default()),
            Err(e) => Err(format!("back office {}: {e}", path.display())),
        }
    }

    /// A store kept in memory only.
    pub fn in_memory() -> Self {
        Store { data: BackOffice::default(), path: None, lock: None }
    }

    /// Saves atomically, mode 0600 for a new file (no-op for an in-memory store).
    pub fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        let Some(lock) = &self.lock else {
            return Err(format!("back office {}: opened read-only", path.display()));
        };
        let mut text = serde_json::to_string_pretty(&self.data).map_err(|e| e.to_string())?;
        text.push('\n');
        storage::write_private(lock.target(), text.as_bytes())
            .map_err(|e| format!("back office {}: {e}", path.display()))
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
        self.certificates.iter().find(|c| c.serial == serial)
    }

    pub fn cert_mut(&mut self, serial: &str) -> Option<&mut CertRecord> {
        self.certificates.iter_mut().find(|c| c.serial == serial)
    }

    pub fn practice_mut(&mut self, id: &str) -> Option<&mut Practice> {
        self.practices.iter_mut().find(|p| p.id == id)
    }

    /// Opens a practice (`P-000001` …) with its first event; returns its id.
    pub fn new_practice(&mut self, spec: NewPractice<'_>, now: Date, event: &str) -> String {
        let id = format!("P-{:06}", self.practices.len() + 1);
        self.practices.push(Practice {
            id: id.clone(),
            kind: spec.kind,
            codice_fiscale: spec.codice_fiscale.into(),
            cdrl: spec.cdrl.into(),
            card_serial: spec.card.into(),
            state: spec.state,
            events: vec![PracticeEvent { date: now.to_string(), event: event.into() }],
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

    /// Registers a contact for a holder; errors if it is bound to another codice fiscale.
    pub fn bind_contact(&mut self, kind: ContactKind, value: &str, cf: &str) -> Result<(), String> {
        if let Some(other) = self.contact_owner(kind, value).filter(|o| *o != cf) {
            return Err(format!("{value} is bound to another holder ({other})"));
        }
        if self.contact_owner(kind, value).is_none() {
            self.contacts.push(Contact { kind, value: value.into(), codice_fiscale: cf.into() });
        }
        Ok(())
    }

    /// Who a contact belongs to.
    pub fn contact_owner(&self, kind: ContactKind, value: &str) -> Option<&str> {
        let v = value.trim().to_lowercase();
        self.contacts
            .iter()
            .find(|c| c.kind == kind && c.value.trim().to_lowercase() == v)
            .map(|c| c.codice_fiscale.as_str())
    }
}
