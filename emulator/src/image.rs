//! Card images: the whole persistent state of a card (its EEPROM) as a versioned JSON schema.
//!
//! Named fields, explicit enum tags, a schema name and version, unknown fields rejected. Saved
//! atomically (temporary file in the same folder, fsync, rename, fsync of the folder), so a
//! crash leaves the old image or the new one, never a mix. Loading never "repairs" an image:
//! any problem is reported with the file name and what is wrong.

use crate::fs::{FileBody, FileNode, MF};
use crate::hex::Bytes;
use crate::keys::KeyObject;
use crate::security::{MAX_PINS, PinObject};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `schema` field every image carries.
pub const SCHEMA_NAME: &str = "firmalab-card-image";
/// The version this build writes. Older versions are migrated on load (see [`migrate`]).
pub const SCHEMA_VERSION: u32 = 1;
/// Longest ATR ISO 7816-3 allows (and pcscd accepts).
pub const MAX_ATR_LEN: usize = 33;

/// Which card the image is: the schema tag of its profile (`profile::ProfileKind::ALL`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// Italian CNS on an Incard (STIncard mask) chip; OpenSC driver `itacns`.
    Cns,
    /// Oberthur AuthentIC v2 / CosmopolIC v4 with the AWP layout; OpenSC driver `oberthur`.
    Oberthur,
}

// `ProfileKind::profile` (the one mapping to a profile's facts), `name` and `FromStr` are in
// `profile/mod.rs`.

/// Card life-cycle (spec/domain.md §6.1; the byte GET DATA `01 83` returns on the CNS).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifeCycle {
    /// `34`: chip made, nothing personalised.
    Manufacturing,
    /// `20`: file system present, not issued to a holder (also: after a failed issuance or a
    /// reset, with the default PIN 12345).
    Admin,
    /// `10`: issued, in the holder's hands.
    User,
}

impl LifeCycle {
    pub fn byte(self) -> u8 {
        match self {
            LifeCycle::Manufacturing => 0x34,
            LifeCycle::Admin => 0x20,
            LifeCycle::User => 0x10,
        }
    }
}

/// Optional abilities of the chip.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// ECDSA P-256 keys (generation and signature).
    pub p256: bool,
}

/// What the issuer knows about the device's life (spec/domain.md §1.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Date of the first issuance, `YYYY-MM-DD`.
    pub first_issuance: String,
    /// Renewals done on this device (Aruba allows one).
    pub renewal_count: u8,
}

/// The persistent state of a card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardImage {
    pub schema: String,
    pub version: u32,
    pub profile: ProfileKind,
    /// Free text for people (which fixture this is and why).
    pub description: String,
    pub atr: Bytes,
    pub life_cycle: LifeCycle,
    /// Modelled EEPROM size in bytes; CREATE FILE and key generation answer `6A84` past it.
    pub capacity: u32,
    pub capabilities: Capabilities,
    /// The GlobalPlatform CPLC bytes of GET DATA `9F7F`, on cards that have one (Oberthur: 42
    /// bytes, IC serial at offset 12..16; its profile checks them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cplc: Option<Bytes>,
    pub history: History,
    pub mf: FileNode,
    pub pins: Vec<PinObject>,
    pub keys: Vec<KeyObject>,
}

/// A load or save failure, naming the file.
#[derive(Debug)]
pub struct ImageError {
    pub path: PathBuf,
    pub problem: String,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "card image {}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for ImageError {}

impl CardImage {
    /// Parses an image from JSON text, migrating older schema versions.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let obj = value.as_object().ok_or_else(|| "not a JSON object".to_owned())?;
        match obj.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA_NAME) => {}
            Some(other) => return Err(format!("schema is {other:?}, expected {SCHEMA_NAME:?}")),
            None => {
                return Err(format!("no \"schema\": {SCHEMA_NAME:?} field: not a card image"));
            }
        }
        let version =
            obj.get("version").and_then(|v| v.as_u64()).ok_or_else(|| "no numeric \"version\" field".to_owned())?;
        if version > u64::from(SCHEMA_VERSION) {
            return Err(format!(
                "schema version {version} is newer than this firmalab understands ({SCHEMA_VERSION}); upgrade firmalab"
            ));
        }
        migrate(&mut value, version)?;
        let image: CardImage = serde_json::from_value(value).map_err(|e| e.to_string())?;
        image.validate()?;
        Ok(image)
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings, numbers and vectors cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Loads an image file.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let err = |problem: String| ImageError { path: path.to_owned(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::from_json(&text).map_err(err)
    }

    /// Replaces the image file atomically.
    pub fn save(&self, path: &Path) -> Result<(), ImageError> {
        write_atomically(path, self.to_json().as_bytes())
            .map_err(|e| ImageError { path: path.to_owned(), problem: format!("cannot save: {e}") })
    }

    /// Semantic checks serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.atr.0.len() < 2 || self.atr.0.len() > MAX_ATR_LEN {
            return Err(format!("atr has {} bytes (2..=33 allowed)", self.atr.0.len()));
        }
        if self.mf.fid.0 != MF || !self.mf.is_df() {
            return Err("mf must be a DF with FID 3F00".into());
        }
        if self.pins.len() > MAX_PINS {
            return Err(format!("{} PIN objects (at most {MAX_PINS})", self.pins.len()));
        }
        for (i, p) in self.pins.iter().enumerate() {
            if p.tries_left > p.max_tries {
                return Err(format!("PIN {} has tries_left > max_tries", p.reference));
            }
            if p.max_tries > 15 {
                return Err(format!("PIN {}: max_tries above 15 cannot be reported in 63Cx", p.reference));
            }
            if p.pad_len < p.max_len || p.min_len > p.max_len {
                return Err(format!("PIN {}: inconsistent lengths", p.reference));
            }
            if p.value.len() > usize::from(p.max_len) {
                return Err(format!("PIN {}: value longer than max_len", p.reference));
            }
            if self.pins[..i].iter().any(|q| q.reference == p.reference && q.df == p.df) {
                return Err(format!("PIN {} defined twice in one DF", p.reference));
            }
            if p.df.first().map(|h| h.0) != Some(MF) {
                return Err(format!("PIN {}: df must start at 3F00", p.reference));
            }
        }
        for (i, k) in self.keys.iter().enumerate() {
            if self.keys[..i].iter().any(|q| q.reference == k.reference) {
                return Err(format!("key {} defined twice", k.reference));
            }
            if !self.pins.iter().any(|p| p.reference == k.pin) {
                return Err(format!("key {} refers to missing PIN {}", k.reference, k.pin));
            }
        }
        let mut bad_key = None;
        self.mf.walk(&mut |n| {
            if let FileBody::PrivateKey { key, .. } = &n.body
                && !self.keys.iter().any(|k| k.reference == *key)
            {
                bad_key = Some((n.fid, *key));
            }
        });
        if let Some((fid, key)) = bad_key {
            return Err(format!("private-key file {fid} refers to missing key {key}"));
        }
        self.profile.profile().validate(self)
    }

    /// EEPROM bytes in use: files plus key material plus PIN objects.
    pub fn eeprom_used(&self) -> u32 {
        let keys: u32 = self
            .keys
            .iter()
            .map(|k| k.algorithm.eeprom_bytes() * (u32::from(k.material.is_some()) + u32::from(k.pending.is_some())))
            .sum();
        let pins = 32 * u32::try_from(self.pins.len()).unwrap_or(u32::MAX);
        self.mf.eeprom_used().saturating_add(keys).saturating_add(pins)
    }

    pub fn eeprom_free(&self) -> u32 {
        self.capacity.saturating_sub(self.eeprom_used())
    }

    /// The card serial where its profile keeps it (`Profile::serial`).
    pub fn serial(&self) -> Option<String> {
        self.profile.profile().serial(self)
    }
}

/// Brings an image of an older schema version up to [`SCHEMA_VERSION`]. Version 1 is the
/// first; each later version adds a step here and a golden file under `fixtures/golden/`.
fn migrate(_value: &mut serde_json::Value, version: u64) -> Result<(), String> {
    match version {
        1 => Ok(()),
        other => Err(format!("schema version {other} is not supported")),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    // Unique per call: two writers in one process must not share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            // Persist the rename; some filesystems refuse fsync on a directory: not an error.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
