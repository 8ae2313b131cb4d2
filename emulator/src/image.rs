//! Card images: the whole persistent state of a card (its EEPROM) as a versioned JSON schema.
//!
//! Named fields, explicit enum tags, a schema name and version, unknown fields and duplicate
//! keys rejected. Saved atomically through [`crate::storage`] (a private temporary file in the
//! same folder, fsync, rename, fsync of the folder), so a crash leaves the old image or the new
//! one, never a mix. A process that keeps an image open for writing holds it as an
//! [`ImageFile`]: locked for as long as it lives. Loading never "repairs" an image: any problem
//! is reported with the file name, where in the JSON, and the rule.

use crate::fs::{FileBody, FileNode, MAX_DEPTH, MF};
use crate::hex::{Bytes, Hex8, Hex16};
use crate::keys::{Algorithm, KeyMaterial, KeyObject, LoadedKey};
use crate::security::{Charset, MAX_PINS, PinObject};
use crate::storage::{self, WriteLock};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The `schema` field every image carries.
pub const SCHEMA_NAME: &str = "firmalab-card-image";
/// The version this build writes. Older versions are migrated on load (`migrate` in this module).
/// Version 2 added [`CardImage::security_environments`]; version 3 [`CardImage::extensions`]
/// and [`CardImage::tries_query_counts`] (what tells a strict real-card twin from firmalab's
/// convenience card).
pub const SCHEMA_VERSION: u32 = 3;
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
    /// Incard Incrypto34 with an on-card PKCS#15 application; OpenSC driver `incrypto34`.
    Incrypto34,
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

/// A command or behaviour firmalab's convenience card has that a genuine mask lacks. An image
/// without it refuses the command as the real card would: a strict real-card twin lists none.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extension {
    /// CNS renewal on the card: GENERATE KEY PAIR `P1 = 80` (a pending key next to the slot's
    /// key), `P1 = 81` (commit it with its certificate) and MSE SET tag `84` (sign with the
    /// pending key). Without it: GENERATE `P1 = 80/81` answers `6A86`, MSE tag `84` `6A80`.
    /// A genuine CNS's on-card renewal commands belong to the vendor middleware and are not
    /// public.
    PendingKey,
    /// Extended-length APDUs on a card whose ATR offers only T=0 (ISO 7816-3's T=0 carries
    /// one length byte, P3). Without it such a card answers an extended APDU `6700`.
    ExtendedLengthOnT0,
    /// GET DATA `00 CA 01 88`: the card says which extensions it has (the harness's
    /// read-only capability probe). Without it: `6A88`, what a genuine card answers for a
    /// data object it does not have.
    CapabilityProbe,
}

impl Extension {
    pub const ALL: [Extension; 3] = [Extension::PendingKey, Extension::ExtendedLengthOnT0, Extension::CapabilityProbe];

    /// The name in the JSON (`pending_key` …).
    pub fn name(self) -> &'static str {
        match self {
            Extension::PendingKey => "pending_key",
            Extension::ExtendedLengthOnT0 => "extended_length_on_t0",
            Extension::CapabilityProbe => "capability_probe",
        }
    }

    /// Its bit in the capability probe's answer.
    pub fn bit(self) -> u8 {
        match self {
            Extension::PendingKey => 0x01,
            Extension::ExtendedLengthOnT0 => 0x02,
            Extension::CapabilityProbe => 0x04,
        }
    }

    /// Whether a card of `profile` can have it (the CNS commands only on the CNS).
    pub fn applies_to(self, profile: ProfileKind) -> bool {
        match self {
            Extension::PendingKey | Extension::CapabilityProbe => profile == ProfileKind::Cns,
            Extension::ExtendedLengthOnT0 => true,
        }
    }

    /// firmalab's convenience card of `profile`: every extension that applies. What images
    /// of schema versions before 3 get, so they keep their behaviour.
    pub fn convenience(profile: ProfileKind) -> Vec<Extension> {
        Extension::ALL.into_iter().filter(|e| e.applies_to(profile)).collect()
    }
}

/// The capability probe's answer: `"FLAB"`, format `01`, then one byte of [`Extension::bit`]s.
pub const PROBE_MAGIC: [u8; 4] = *b"FLAB";

/// Whether an ATR offers T=0 only: no TDi byte names another protocol (the Oberthur ATRs
/// have no TD1 at all, spec/cards.md §2.1).
pub fn offers_only_t0(atr: &[u8]) -> bool {
    let Some(&t0) = atr.get(1) else { return true };
    let mut y = t0 >> 4;
    let mut i = 2;
    loop {
        // TA, TB, TC present as bits 1, 2, 3 of Y; TD as bit 4.
        i += (y & 0x07).count_ones() as usize;
        if y & 0x08 == 0 {
            return true;
        }
        let Some(&td) = atr.get(i) else { return true };
        if td & 0x0F != 0 {
            return false;
        }
        y = td >> 4;
        i += 1;
    }
}

fn is_false(b: &bool) -> bool {
    !*b
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
    /// Security environments a command created in a DF (Incrypto34 PUT DATA SECI), which MSE
    /// RESTORE then finds. Cards whose environments are fixed by their mask have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_environments: Vec<SecurityEnvironmentObject>,
    /// What this card has beyond the genuine mask ([`Extension`]); firmalab's convenience
    /// cards have every one that applies, strict real-card twins none. Required from
    /// version 3 on (older images migrate with [`Extension::convenience`]).
    pub extensions: Vec<Extension>,
    /// The mask counts the PIN status query (VERIFY without data) as a failed attempt
    /// (spec/domain.md §1.3: "some cards wrongly count the query"); the harness does not send
    /// it to such masks. Absent: `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tries_query_counts: bool,
}

/// A security environment stored on the card (ISO 7816-8 §5.1), in a DF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityEnvironmentObject {
    /// The DF it belongs to (path from the MF).
    pub df: Vec<Hex16>,
    /// Its number, as MSE RESTORE names it.
    pub number: Hex8,
    /// Its content as the card received it; the profile reads it.
    pub data: Bytes,
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
    /// Parses an image from JSON text, migrating older schema versions. Refuses duplicate
    /// keys (JSON parsers keep the last one silently) and any image no card could be
    /// ([`CardImage::validate`]); the reason names the place in the JSON and the rule.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        check_unique_keys(text)?;
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

    /// Loads an image file (a regular file of at most 16 MiB, see [`storage::read_text`]),
    /// without locking it: what a reader sees is always a complete save.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let err = |problem: String| ImageError { path: path.to_owned(), problem };
        let text = storage::read_text(path).map_err(|e| err(e.to_string()))?;
        Self::from_json(&text).map_err(err)
    }

    /// Replaces the image file atomically ([`storage::write_private`]: a new file is `0600`,
    /// an existing one keeps its mode, a symlink is written through). Takes no lock: a
    /// process that keeps an image open for writing uses [`ImageFile`].
    pub fn save(&self, path: &Path) -> Result<(), ImageError> {
        storage::write_private(path, self.to_json().as_bytes())
            .map_err(|e| ImageError { path: path.to_owned(), problem: format!("cannot save: {e}") })
    }

    /// Semantic checks serde cannot express: everything that makes an image a card that
    /// could exist. Each error is one line: where in the JSON, and the rule broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.atr.0.len() < 2 || self.atr.0.len() > MAX_ATR_LEN {
            return Err(format!("atr has {} bytes (2..=33 allowed)", self.atr.0.len()));
        }
        if self.mf.fid.0 != MF || !self.mf.is_df() {
            return Err("mf must be a DF with FID 3F00".into());
        }
        self.validate_pins()?;
        self.validate_keys()?;
        self.validate_environments()?;
        self.validate_extensions()?;
        validate_tree(&self.mf, &mut vec![], &mut vec![MF])?;
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
        self.profile.profile().validate(self)?;
        let used = self.eeprom_used();
        if used > self.capacity {
            return Err(format!(
                "capacity: files, keys and PINs need {used} bytes of EEPROM, more than the card's {}",
                self.capacity
            ));
        }
        Ok(())
    }

    fn validate_pins(&self) -> Result<(), String> {
        if self.pins.len() > MAX_PINS {
            return Err(format!("pins: {} PIN objects (at most {MAX_PINS})", self.pins.len()));
        }
        let rule = pin_rule(self.profile);
        let profile = self.profile.name();
        for (i, p) in self.pins.iter().enumerate() {
            // Written only for an error (validation runs after every command in the checks).
            let at = Lazy(|| format!("pins[{i}] ({})", p.label));
            if p.tries_left > p.max_tries {
                return Err(format!("{at}: PIN {} has tries_left > max_tries", p.reference));
            }
            if p.max_tries > 15 {
                return Err(format!("{at}.max_tries: above 15 cannot be reported in 63Cx"));
            }
            if p.max_tries == 0 {
                return Err(format!("{at}.max_tries: 0, a PIN that can never be presented"));
            }
            // An object may demand longer values than the profile's minimum (an Incrypto34 SO
            // PIN created with a minimum of 6), never shorter ones.
            if p.min_len < rule.min_len || p.min_len > rule.max_len {
                return Err(format!(
                    "{at}.min_len: {}, a {profile} card's PIN objects have {} to {}",
                    p.min_len, rule.min_len, rule.max_len
                ));
            }
            for (field, got, want) in [
                ("max_len", p.max_len, rule.max_len),
                ("pad_len", p.pad_len, rule.pad_len),
                ("pad_byte", p.pad_byte.0, rule.pad_byte),
            ] {
                if got != want {
                    return Err(format!("{at}.{field}: {got}, a {profile} card's PIN objects have {want}"));
                }
            }
            if p.charset != rule.charset {
                return Err(format!(
                    "{at}.charset: {:?}, a {profile} card's PIN objects use {:?}",
                    p.charset, rule.charset
                ));
            }
            if let Err(why) = (PinRule { min_len: p.min_len, ..rule }).check(&p.value) {
                return Err(format!("{at}.value: {why}"));
            }
            if self.pins[..i].iter().any(|q| q.reference == p.reference && q.df == p.df) {
                return Err(format!("{at}: PIN {} defined twice in one DF", p.reference));
            }
            if p.df.first().map(|h| h.0) != Some(MF) {
                return Err(format!("{at}.df: must start at 3F00"));
            }
        }
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), String> {
        for (i, k) in self.keys.iter().enumerate() {
            let at = Lazy(|| format!("keys[{i}] ({})", k.label));
            if self.keys[..i].iter().any(|q| q.reference == k.reference) {
                return Err(format!("{at}: key {} defined twice", k.reference));
            }
            if !self.pins.iter().any(|p| p.reference == k.pin) {
                return Err(format!("{at}.pin: key {} refers to missing PIN {}", k.reference, k.pin));
            }
            if k.algorithm == crate::keys::Algorithm::EcP256 && !self.capabilities.p256 {
                return Err(format!("{at}.algorithm: ec_p256 on a card without capabilities.p256"));
            }
            for (field, material) in [("material", &k.material), ("pending", &k.pending)] {
                if let Some(m) = material {
                    check_key_material(k.algorithm, m).map_err(|why| format!("{at}.{field}: {why}"))?;
                }
            }
        }
        Ok(())
    }

    fn validate_environments(&self) -> Result<(), String> {
        for (i, e) in self.security_environments.iter().enumerate() {
            let at = Lazy(|| format!("security_environments[{i}]"));
            // The DF may be gone (deleted with the environment still recorded): then nothing
            // finds it again. Only its path must be one.
            if e.df.first().map(|h| h.0) != Some(MF) || e.df.len() > MAX_DEPTH {
                return Err(format!("{at}.df: must be a path from 3F00 of at most {MAX_DEPTH} DFs"));
            }
            if self.security_environments[..i].iter().any(|o| o.df == e.df && o.number == e.number) {
                return Err(format!("{at}: environment {} defined twice in one DF", e.number));
            }
            if e.data.0.len() > 255 {
                return Err(format!("{at}.data: {} bytes (at most 255)", e.data.0.len()));
            }
        }
        Ok(())
    }

    fn validate_extensions(&self) -> Result<(), String> {
        for (i, e) in self.extensions.iter().enumerate() {
            if self.extensions[..i].contains(e) {
                return Err(format!("extensions[{i}]: {} listed twice", e.name()));
            }
            if !e.applies_to(self.profile) {
                return Err(format!(
                    "extensions[{i}]: {} does not exist on the {} profile",
                    e.name(),
                    self.profile.name()
                ));
            }
        }
        Ok(())
    }

    /// Whether the card has an extension.
    pub fn has(&self, e: Extension) -> bool {
        self.extensions.contains(&e)
    }

    /// EEPROM bytes in use: files plus key material plus PIN objects and security
    /// environments.
    pub fn eeprom_used(&self) -> u32 {
        let keys: u32 = self
            .keys
            .iter()
            .map(|k| k.algorithm.eeprom_bytes() * (u32::from(k.material.is_some()) + u32::from(k.pending.is_some())))
            .sum();
        let pins = 32 * u32::try_from(self.pins.len()).unwrap_or(u32::MAX);
        let environments: u32 = self
            .security_environments
            .iter()
            .map(|e| 8 + u32::try_from(e.data.0.len()).unwrap_or(u32::MAX))
            .fold(0, u32::saturating_add);
        self.mf.eeprom_used().saturating_add(keys).saturating_add(pins).saturating_add(environments)
    }

    pub fn eeprom_free(&self) -> u32 {
        self.capacity.saturating_sub(self.eeprom_used())
    }

    /// The card serial where its profile keeps it (`Profile::serial`).
    pub fn serial(&self) -> Option<String> {
        self.profile.profile().serial(self)
    }
}

/// A place in the JSON for an error message, formatted only when one is written.
struct Lazy<F: Fn() -> String>(F);

impl<F: Fn() -> String> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// Brings an image of an older schema version up to [`SCHEMA_VERSION`], one step per
/// version; each version has its golden files under `fixtures/golden/`.
/// * 1 → 2: `security_environments` appeared (absent means none): only the number changes.
/// * 2 → 3: `extensions` and `tries_query_counts` appeared: an older image is firmalab's
///   convenience card, so it gets every extension its profile can have
///   ([`Extension::convenience`]) and a free status query: it behaves as before.
fn migrate(value: &mut serde_json::Value, version: u64) -> Result<(), String> {
    let mut version = version;
    loop {
        match version {
            1 => {
                let obj = value.as_object_mut().ok_or("not a JSON object")?;
                if obj.contains_key("security_environments") {
                    return Err("unknown field `security_environments` in a schema version 1 image".into());
                }
                obj.insert("version".into(), serde_json::Value::from(2));
                version = 2;
            }
            2 => {
                let obj = value.as_object_mut().ok_or("not a JSON object")?;
                for field in ["extensions", "tries_query_counts"] {
                    if obj.contains_key(field) {
                        return Err(format!("unknown field `{field}` in a schema version 2 image"));
                    }
                }
                // An unknown profile is left for deserialisation to name.
                let profile: Option<ProfileKind> =
                    obj.get("profile").cloned().and_then(|p| serde_json::from_value(p).ok());
                let all = profile.map(Extension::convenience).unwrap_or_default();
                let names = all.iter().map(|e| serde_json::Value::from(e.name())).collect();
                obj.insert("extensions".into(), serde_json::Value::Array(names));
                obj.insert("version".into(), serde_json::Value::from(3));
                version = 3;
            }
            v if v == u64::from(SCHEMA_VERSION) => return Ok(()),
            other => return Err(format!("schema version {other} is not supported")),
        }
    }
}

/// Same as [`storage::write_private`] (kept for existing callers).
pub use crate::storage::write_private as write_atomically;

/// What a profile's PIN objects look like and which values they accept.
///
/// Every PIN, PUK and SO PIN object of one profile follows it (the card's CHANGE REFERENCE
/// DATA, RESET RETRY COUNTER and CREATE PIN enforce the same numbers). Each profile states
/// its own ([`crate::profile::Profile::pin_rule`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PinRule {
    pub charset: Charset,
    pub min_len: u8,
    pub max_len: u8,
    pub pad_len: u8,
    pub pad_byte: u8,
}

impl PinRule {
    /// Whether `value` is a secret a card of this profile can hold; the reason when not.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let what = match self.charset {
            Charset::Digits => "digits",
            Charset::Ascii => "printable ASCII characters",
        };
        let rule = format!("{} to {} {what}", self.min_len, self.max_len);
        let n = value.len();
        if n == 0 {
            return Err(format!("empty; the rule is {rule}"));
        }
        let chars_ok = match self.charset {
            Charset::Digits => value.bytes().all(|b| b.is_ascii_digit()),
            Charset::Ascii => value.bytes().all(|b| (0x20..0x7F).contains(&b)),
        };
        if !chars_ok {
            return Err(format!("has characters other than {what}; the rule is {rule}"));
        }
        if n < usize::from(self.min_len) || n > usize::from(self.max_len) {
            return Err(format!("{n} characters; the rule is {rule}"));
        }
        Ok(())
    }
}

/// The PIN rule of a profile (spec/cards.md §2.6, §3.6): CNS 5–8 digits padded with `FF` to
/// 8; Oberthur AWP 4–64 characters padded with `FF` to 64.
pub fn pin_rule(profile: ProfileKind) -> PinRule {
    profile.profile().pin_rule()
}

/// Whether stored key material is a key of `algorithm` the card can use. Parsing an RSA key
/// checks its numbers (a few ms); material already found good is remembered by its SHA-256,
/// so validating the same image after every command (the invariant checks) stays cheap.
fn check_key_material(algorithm: Algorithm, material: &KeyMaterial) -> Result<(), String> {
    use sha2::Digest;
    static GOOD: std::sync::Mutex<Vec<[u8; 32]>> = std::sync::Mutex::new(Vec::new());
    const REMEMBERED: usize = 64;
    let bytes = match material {
        KeyMaterial::Rsa { pkcs1 } => &pkcs1.0,
        KeyMaterial::EcP256 { scalar } => &scalar.0,
    };
    let mut h = sha2::Sha256::new();
    h.update([algorithm as u8, u8::from(matches!(material, KeyMaterial::Rsa { .. }))]);
    h.update(bytes);
    let digest: [u8; 32] = h.finalize().into();
    if GOOD.lock().is_ok_and(|g| g.contains(&digest)) {
        return Ok(());
    }
    match (algorithm.rsa_bits(), material) {
        (Some(bits), KeyMaterial::Rsa { pkcs1 }) => match material.load() {
            Ok(LoadedKey::Rsa(k)) => {
                let got = rsa::traits::PublicKeyParts::size(k.as_ref()) * 8;
                if got != bits {
                    return Err(format!("an RSA-{got} key where the slot holds RSA-{bits}"));
                }
                // The parser recomputes dP, dQ and qInv from p, q and d and ignores the stored
                // ones, but a backend that reads the DER (OpenSSL) signs with them: a wrong
                // CRT value gives a faulty signature, and one faulty CRT signature reveals a
                // prime of n (Boneh-DeMillo-Lipton). The stored key must be exactly the key
                // its numbers make.
                use rsa::pkcs1::EncodeRsaPrivateKey;
                if k.to_pkcs1_der().map_err(|e| e.to_string())?.as_bytes() != pkcs1.0.as_slice() {
                    return Err("an RSA key whose CRT values (dP, dQ, qInv) do not follow from its primes and \
                                private exponent (or a non-canonical DER encoding)"
                        .into());
                }
            }
            _ => return Err("not an RSA private key (PKCS#1 RSAPrivateKey DER with consistent numbers)".into()),
        },
        (None, KeyMaterial::EcP256 { .. }) => {
            material.load().map_err(|_| "not a P-256 private scalar (32 bytes, 0 < s < n)".to_owned())?;
        }
        (Some(_), KeyMaterial::EcP256 { .. }) => return Err("a P-256 scalar in an RSA slot".into()),
        (None, KeyMaterial::Rsa { .. }) => return Err("an RSA key in a P-256 slot".into()),
    }
    if let Ok(mut g) = GOOD.lock() {
        if g.len() >= REMEMBERED {
            g.remove(0);
        }
        g.push(digest);
    }
    Ok(())
}

/// File-tree rules: no child named 3F00, unique FIDs among siblings, records within
/// `record_len` and `max_records`, transparent files within the FCP's 2-byte size, at most
/// [`MAX_DEPTH`] levels. `at` is the node's place in the JSON, `path` its FID path.
fn validate_tree(node: &FileNode, trail: &mut Vec<usize>, path: &mut Vec<u16>) -> Result<(), String> {
    // The place in the JSON and the FID path, written only for an error: validation runs
    // after every command in the invariant checks.
    let at = |trail: &[usize]| trail.iter().fold(String::from("mf"), |a, i| format!("{a}.body.children[{i}]"));
    let here = |path: &[u16]| crate::fs::display_path(path);
    match &node.body {
        FileBody::Df { children, .. } => {
            if path.len() >= MAX_DEPTH && !children.is_empty() {
                return Err(format!("{} ({}): DFs nest at most {MAX_DEPTH} levels deep", at(trail), here(path)));
            }
            for (i, c) in children.iter().enumerate() {
                let child_at = || format!("{}.body.children[{i}]", at(trail));
                if c.fid.0 == MF {
                    return Err(format!("{}.fid: 3F00 under {}; 3F00 is the MF's own FID", child_at(), here(path)));
                }
                if children[..i].iter().any(|o| o.fid == c.fid) {
                    return Err(format!("{}.fid: {} appears twice under {}", child_at(), c.fid, here(path)));
                }
                path.push(c.fid.0);
                trail.push(i);
                let r = validate_tree(c, trail, path);
                trail.pop();
                path.pop();
                r?;
            }
        }
        FileBody::Records { record_len, max_records, records } => {
            if records.len() > usize::from(*max_records) {
                return Err(format!(
                    "{}.body.records ({}): {} records, more than max_records {max_records}",
                    at(trail),
                    here(path),
                    records.len()
                ));
            }
            if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| r.0.len() > usize::from(*record_len)) {
                return Err(format!(
                    "{}.body.records[{i}] ({}): {} bytes, longer than record_len {record_len}",
                    at(trail),
                    here(path),
                    r.0.len()
                ));
            }
        }
        FileBody::Transparent { data } if data.0.len() > usize::from(u16::MAX) => {
            return Err(format!(
                "{}.body.data ({}): {} bytes; a file holds at most 65535 (its FCP size field)",
                at(trail),
                here(path),
                data.0.len()
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Refuses JSON text in which an object has the same key twice (serde_json keeps the last one
/// silently, so an image could say two things). The error names the JSON path.
pub fn check_unique_keys(text: &str) -> Result<(), String> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    UniqueKeys { at: "" }.deserialize(&mut de).map_err(|e| e.to_string())
}

struct UniqueKeys<'a> {
    at: &'a str,
}

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let at = format!("{}[{i}]", self.at);
            if seq.next_element_seed(UniqueKeys { at: &at })?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = if self.at.is_empty() { key.clone() } else { format!("{}.{key}", self.at) };
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format!("{at}: key {key:?} appears twice in one object")));
            }
            map.next_value_seed(UniqueKeys { at: &at })?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// An image file opened for writing: locked ([`WriteLock`]) for as long as this value lives,
/// so no other firmalab process writes it meanwhile. Opening removes the temporary files a
/// killed writer of this image left behind.
#[derive(Debug)]
pub struct ImageFile {
    path: PathBuf,
    lock: WriteLock,
}

impl ImageFile {
    fn lock(path: &Path) -> Result<Self, ImageError> {
        let err = |problem: String| ImageError { path: path.to_owned(), problem };
        let lock = WriteLock::acquire(path).map_err(|e| err(e.to_string()))?;
        storage::remove_stale_temps(path).map_err(|e| err(format!("cannot clean its temporary files: {e}")))?;
        Ok(ImageFile { path: path.to_owned(), lock })
    }

    /// Locks and loads an existing image. Fails at once, naming the holder's pid, when another
    /// process has it open for writing.
    pub fn open(path: &Path) -> Result<(Self, CardImage), ImageError> {
        let file = Self::lock(path)?;
        let image = CardImage::load(file.lock.target())
            .map_err(|e| ImageError { path: path.to_owned(), problem: e.problem })?;
        Ok((file, image))
    }

    /// Locks a path to write a new image to; refuses an existing file unless `replace`.
    pub fn create(path: &Path, replace: bool) -> Result<Self, ImageError> {
        let file = Self::lock(path)?;
        if !replace && std::fs::symlink_metadata(file.lock.target()).is_ok() {
            return Err(ImageError { path: path.to_owned(), problem: "exists; pass --force to replace it".into() });
        }
        Ok(file)
    }

    /// Replaces the image on disk atomically (the locked file; a symlink stays a link).
    pub fn save(&mut self, image: &CardImage) -> Result<(), ImageError> {
        storage::write_private(self.lock.target(), image.to_json().as_bytes())
            .map_err(|e| ImageError { path: self.path.clone(), problem: format!("cannot save: {e}") })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
