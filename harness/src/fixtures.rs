//! Card issuance from the test CA, and the fixture set under `fixtures/`.
//!
//! Every fixture is generated deterministically: keys come from a ChaCha20 generator seeded
//! with the fixture's name, and RSA PKCS#1 v1.5 signatures are deterministic, so
//! `firmalab fixtures regenerate` rewrites byte-identical files.

use crate::dates::Date;
use crate::pki::{self, CertKind, Holder, Issue, PkiError, TestCa};
use firmalab_emulator::image::{CardImage, History, ImageError, LifeCycle, ProfileKind};
use firmalab_emulator::keys::KeyMaterial;
use firmalab_emulator::perso::{self, KeySet, ObjectInfo, Personalization};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The date the fixtures are built around: "renewable" certificates expire 30 days after it,
/// inside the 2-month renewal window (spec/domain.md §1.7). Tests inject it as "now".
pub const REFERENCE_DATE: Date = Date::new(2026, 6, 1);

/// Modelled EEPROM of the fixture cards.
pub const CAPACITY: u32 = 64 * 1024;

/// Why a card or the fixture set could not be issued, read or written.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{0:?} is not the start of a codice fiscale")]
    CodiceFiscale(String),
    #[error("no built-in card {name:?}; known: {known}")]
    NoBuiltin { name: String, known: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The emulator refused the card (personalisation, key material, image rules) or found
    /// no randomness.
    #[error("{0}")]
    Card(String),
    /// RSA key generation failed.
    #[error("{0}")]
    Key(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Writing the key pool failed.
    #[error(transparent)]
    Write(#[from] std::io::Error),
    /// `image new`: a PIN or PUK no card of the profile is issued with.
    #[error("{flag}: {why} ({profile} card)")]
    SecretRule { flag: &'static str, why: String, profile: &'static str },
    /// `image new`: a revocation URL that is not `http://`.
    #[error("{0}: revocation URLs are http:// (OCSP and CRLs are plain HTTP)")]
    NotHttp(String),
    /// The issued card breaks a rule of card images (a bug of the issuer, caught before saving).
    #[error("the issued card would be invalid: {0}")]
    InvalidIssued(String),
    /// The fixtures' back office could not be built (a fixture card refused its enrolment).
    #[error("fixtures/ra.json: {0}")]
    BackOffice(String),
    /// `image new --expires-in`: the certificates would not be valid at the issue date.
    #[error(
        "--expires-in {0}: the certificates must still be valid on the issue date (at most 3 years, at least 1 day)"
    )]
    Expiry(String),
}

/// Someone a card is issued to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub first_name: String,
    pub last_name: String,
    pub codice_fiscale: String,
    pub birth_date: Date,
    pub sex: char,
    pub reference: String,
}

impl Person {
    /// A person whose codice fiscale gets its check character computed.
    pub fn new(
        first: &str,
        last: &str,
        cf15: &str,
        birth: Date,
        sex: char,
        reference: &str,
    ) -> Result<Self, FixtureError> {
        Ok(Person {
            first_name: first.to_uppercase(),
            last_name: last.to_uppercase(),
            codice_fiscale: crate::cf::complete(cf15).ok_or_else(|| FixtureError::CodiceFiscale(cf15.to_owned()))?,
            birth_date: birth,
            sex,
            reference: reference.into(),
        })
    }

    pub fn holder(&self) -> Holder {
        Holder {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            codice_fiscale: self.codice_fiscale.clone(),
            reference: self.reference.clone(),
        }
    }
}

/// Where key material comes from.
pub enum KeySource<'a> {
    /// Deterministic from a label (fixtures, tests).
    Seeded(&'a str),
    /// The operating system's randomness.
    Random,
}

/// What to issue.
pub struct CardRequest<'a> {
    pub profile: ProfileKind,
    pub description: String,
    pub serial: String,
    /// `None` issues a blank card: no keys, no certificates, default PIN 12345 (the state
    /// after a failed issuance).
    pub person: Option<Person>,
    pub pin: String,
    pub puk: String,
    pub not_before: Date,
    pub not_after: Date,
    pub keys: KeySource<'a>,
    /// The ATR to personalise with (`None`: the profile's). It decides the layout where the
    /// mask does (the IDEMIA 2021 CNS).
    pub atr: Option<Vec<u8>>,
}

fn seed_of(label: &str) -> [u8; 32] {
    Sha256::digest(format!("firmalab fixture key {label}").as_bytes()).into()
}

/// Generates an RSA key from the source.
pub fn rsa_key(source: &KeySource<'_>, slot: &str, bits: usize) -> Result<RsaPrivateKey, FixtureError> {
    match source {
        KeySource::Seeded(label) => {
            let mut rng = ChaCha20Rng::from_seed(seed_of(&format!("{label} {slot}")));
            RsaPrivateKey::new(&mut rng, bits).map_err(|e| FixtureError::Key(e.to_string()))
        }
        KeySource::Random => {
            let mut rng = firmalab_emulator::CardRng::from_os().map_err(FixtureError::Card)?;
            RsaPrivateKey::new(&mut rng, bits).map_err(|e| FixtureError::Key(e.to_string()))
        }
    }
}

fn cert_serial(label: &str) -> u64 {
    let h = Sha256::digest(label.as_bytes());
    u64::from_be_bytes([h[0] & 0x7F, h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

fn key_set(
    ca: &TestCa,
    req: &CardRequest<'_>,
    person: &Person,
    kind: CertKind,
    slot: &str,
) -> Result<KeySet, FixtureError> {
    // RSA-2048, or the largest the chip holds (the Incrypto34: 1024).
    let algorithm = req.profile.profile().key_algorithm();
    let bits = algorithm.rsa_bits().ok_or_else(|| FixtureError::Card("the card's issuer keys are not RSA".into()))?;
    let key = rsa_key(&req.keys, slot, bits)?;
    let serial = match &req.keys {
        KeySource::Seeded(label) => cert_serial(&format!("{label} {slot}")),
        KeySource::Random => {
            let mut b = [0u8; 8];
            rand_core::Rng::fill_bytes(&mut firmalab_emulator::CardRng::from_os().map_err(FixtureError::Card)?, &mut b);
            u64::from_be_bytes(b) & 0x7FFF_FFFF_FFFF_FFFF
        }
    };
    let holder = person.holder();
    let cert = ca.issue(&Issue {
        kind,
        holder: &holder,
        public_key: pki::rsa_spki(&key)?,
        serial,
        not_before: req.not_before,
        not_after: req.not_after,
    })?;
    let (modulus, exponent) = pki::rsa_public_numbers(&key);
    Ok(KeySet {
        info: object_info(&cert, kind, modulus, exponent)?,
        algorithm,
        material: KeyMaterial::from_rsa(&key).map_err(FixtureError::Card)?,
        certificate: pki::der_of(&cert)?,
    })
}

/// The public facts the Oberthur info files record for a certificate and its key.
pub fn object_info(
    cert: &x509_cert::Certificate,
    kind: CertKind,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
) -> Result<ObjectInfo, FixtureError> {
    use der::Encode;
    Ok(ObjectInfo {
        label: match kind {
            CertKind::Authentication => "CNS0 authentication".into(),
            CertKind::QualifiedSignature => "CNS1 qualified signature".into(),
        },
        id: Sha256::digest(&modulus).get(..20).unwrap_or_default().to_vec(),
        subject: cert.tbs_certificate().subject().to_der().map_err(|e| PkiError::Encoding(e.to_string()))?,
        issuer: cert.tbs_certificate().issuer().to_der().map_err(|e| PkiError::Encoding(e.to_string()))?,
        modulus,
        exponent,
    })
}

/// Issues a card image from the test CA.
pub fn issue_card(ca: &TestCa, req: &CardRequest<'_>) -> Result<CardImage, FixtureError> {
    let (auth, sign) = match &req.person {
        Some(p) => (
            Some(key_set(ca, req, p, CertKind::Authentication, "auth")?),
            Some(key_set(ca, req, p, CertKind::QualifiedSignature, "sign")?),
        ),
        None => (None, None),
    };
    let holder = req.person.as_ref().map(|p| perso::Holder {
        issuer_code: "FIRMALAB".into(),
        issue_date: req.not_before.ddmmyyyy(),
        expiry_date: req.not_after.ddmmyyyy(),
        last_name: p.last_name.clone(),
        first_name: p.first_name.clone(),
        birth_date: p.birth_date.ddmmyyyy(),
        sex: p.sex.to_string(),
        codice_fiscale: p.codice_fiscale.clone(),
    });
    Personalization {
        profile: req.profile,
        description: req.description.clone(),
        atr: req.atr.clone(),
        serial: req.serial.clone(),
        pin: req.pin.clone(),
        puk: req.puk.clone(),
        so_pin: "11223344".into(),
        pin_tries: 3,
        puk_tries: 10,
        holder: holder.unwrap_or_default(),
        auth,
        sign,
        life_cycle: if req.person.is_some() { LifeCycle::User } else { LifeCycle::Admin },
        capacity: CAPACITY,
        history: History { first_issuance: req.not_before.to_string(), renewal_count: 0 },
        p256: false,
    }
    .build()
    .map_err(FixtureError::Card)
}

/// Blocks every user PIN (tries 0) and, optionally, every PUK.
fn block(image: &mut CardImage, puk_too: bool) {
    use firmalab_emulator::security::PinRole;
    for p in &mut image.pins {
        if p.role == PinRole::User || (puk_too && p.role == PinRole::Puk) {
            p.tries_left = 0;
        }
    }
}

/// One fixture card.
pub struct Fixture {
    pub file: &'static str,
    pub description: &'static str,
    pub profile: ProfileKind,
    pub serial: &'static str,
    pub person: Option<(&'static str, &'static str, &'static str, Date, char)>,
    pub not_before: Date,
    pub not_after: Date,
    pub adjust: fn(&mut CardImage),
    /// A strict real-card twin ([`crate::twin`]): personalised with its ATR, then made strict.
    pub twin: Option<crate::twin::Twin>,
}

/// The fixture set (README, "Fixtures").
pub fn fixtures() -> Vec<Fixture> {
    let renewable = (Date::new(2023, 7, 1), Date::new(2026, 7, 1));
    vec![
        Fixture {
            file: "cns-renewable.json",
            description: "Incard CNS 1.1, signature + authentication certificates expiring 2026-07-01 (inside the renewal window at the reference date 2026-06-01); PIN 12345678, PUK 87654321",
            profile: ProfileKind::Cns,
            serial: "6010000000000101",
            person: Some(("Mario", "Rossi", "RSSMRA80A01H501", Date::new(1980, 1, 1), 'M')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: None,
        },
        Fixture {
            file: "oberthur-renewable.json",
            description: "Oberthur AuthentIC v2 (AWP), signature + authentication certificates expiring 2026-07-01; PIN 12345678, PUK 87654321, SO PIN 11223344",
            profile: ProfileKind::Oberthur,
            serial: "1a2b3c4d",
            person: Some(("Giulia", "Bianchi", "BNCGLI85M41F205", Date::new(1985, 8, 1), 'F')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: None,
        },
        Fixture {
            file: "incrypto34-issued.json",
            description: "Incard Incrypto34 (on-card PKCS#15, \"ARUBA INCRYPTO34\"), RSA-1024 signature + authentication keys and certificates expiring 2026-07-01; PIN 12345678, PUK 87654321, SO PIN 11223344; an obsolete lot: diagnostic and PIN flows run, renewal is refused",
            profile: ProfileKind::Incrypto34,
            serial: "3410000000000106",
            person: Some(("Chiara", "Esposito", "SPSCHR82D45F839", Date::new(1982, 4, 5), 'F')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: None,
        },
        Fixture {
            file: "incrypto34-blank.json",
            description: "Incard Incrypto34 as the factory (or an ERASE) leaves it: an open MF and nothing else, for pkcs15-init to personalise",
            profile: ProfileKind::Incrypto34,
            serial: "3410000000000107",
            person: None,
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: None,
        },
        Fixture {
            file: "cns-failed-issuance.json",
            description: "Incard CNS after a failed issuance: no keys, no certificates, life-cycle admin, default PIN 12345, PUK 87654321",
            profile: ProfileKind::Cns,
            serial: "6010000000000102",
            person: None,
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: None,
        },
        Fixture {
            file: "cns-pin-blocked.json",
            description: "Incard CNS whose PINs are blocked (3 wrong entries); PUK 87654321 with all 10 tries left",
            profile: ProfileKind::Cns,
            serial: "6010000000000103",
            person: Some(("Luca", "Verdi", "VRDLCU75C15F839", Date::new(1975, 3, 15), 'M')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |i| block(i, false),
            twin: None,
        },
        Fixture {
            file: "cns-puk-blocked.json",
            description: "Incard CNS whose PINs and PUKs are blocked: only revocation and a new card remain",
            profile: ProfileKind::Cns,
            serial: "6010000000000104",
            person: Some(("Anna", "Neri", "NRENNA90E50L219", Date::new(1990, 5, 10), 'F')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |i| block(i, true),
            twin: None,
        },
        Fixture {
            file: "cns-expired.json",
            description: "Incard CNS whose certificates expired on 2026-01-15 (renewal impossible); PIN 12345678, PUK 87654321",
            profile: ProfileKind::Cns,
            serial: "6010000000000105",
            person: Some(("Paolo", "Gialli", "GLLPLA70T10G273", Date::new(1970, 12, 10), 'M')),
            not_before: Date::new(2023, 1, 15),
            not_after: Date::new(2026, 1, 15),
            adjust: |_| {},
            twin: None,
        },
        Fixture {
            file: "aruba-key.json",
            description: "signature + authentication certificates expiring 2026-07-01 (inside the renewal window at the reference date 2026-06-01); PIN 12345678, PUK 87654321",
            profile: ProfileKind::Cns,
            serial: "6010000000000106",
            person: Some(("Chiara", "Russo", "RSSCHR88D45L736", Date::new(1988, 4, 5), 'F')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |i| crate::variant::Variant::ArubaKey.apply(i),
            twin: None,
        },
        Fixture {
            file: "twin-cns-incard-1.0.json",
            description: "signature + authentication certificates (RSA-2048) expiring 2026-07-01; PIN 12345678, PUK 87654321",
            profile: ProfileKind::Cns,
            serial: "6010000000000201",
            person: Some(("Marco", "Ferrari", "FRRMRC78B12F205", Date::new(1978, 2, 12), 'M')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: Some(crate::twin::Twin::CnsIncard10),
        },
        Fixture {
            file: "twin-cns-idemia-2021.json",
            description: "signature + authentication certificates (RSA-2048) expiring 2026-07-01; PIN 12345678, PUK 87654321",
            profile: ProfileKind::Cns,
            serial: "6010000000000202",
            person: Some(("Sara", "Romano", "RMNSRA86H52H501", Date::new(1986, 6, 12), 'F')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: Some(crate::twin::Twin::CnsIdemia2021),
        },
        Fixture {
            file: "twin-oberthur.json",
            description: "signature + authentication certificates expiring 2026-07-01; PIN 12345678, PUK 87654321, SO PIN 11223344",
            profile: ProfileKind::Oberthur,
            serial: "2b3c4d5e",
            person: Some(("Elena", "Costa", "CSTLNE83A41D612", Date::new(1983, 1, 1), 'F')),
            not_before: renewable.0,
            not_after: renewable.1,
            adjust: |_| {},
            twin: Some(crate::twin::Twin::OberthurAuthentic),
        },
    ]
}

/// Builds one fixture card.
pub fn build_fixture(ca: &TestCa, f: &Fixture) -> Result<CardImage, FixtureError> {
    let person = match f.person {
        Some((first, last, cf, birth, sex)) => {
            let reference = format!("WSREF-{}", &f.serial[f.serial.len().saturating_sub(6)..]);
            Some(Person::new(first, last, cf, birth, sex, &reference)?)
        }
        None => None,
    };
    let mut image = issue_card(
        ca,
        &CardRequest {
            profile: f.profile,
            description: f.description.into(),
            serial: f.serial.into(),
            person,
            pin: "12345678".into(),
            puk: "87654321".into(),
            not_before: f.not_before,
            not_after: f.not_after,
            keys: KeySource::Seeded(f.file),
            atr: f.twin.map(|t| t.atr().to_vec()),
        },
    )?;
    (f.adjust)(&mut image);
    if let Some(t) = f.twin {
        t.apply(&mut image);
    }
    image.validate().map_err(FixtureError::Card)?;
    Ok(image)
}

/// The test CA of the fixtures, from its seeded keys, with its OCSP responder and the default
/// (loopback) revocation URLs.
pub fn build_ca() -> Result<TestCa, FixtureError> {
    Ok(TestCa::from_keys(
        rsa_key(&KeySource::Seeded("test CA"), "root", 2048)?,
        rsa_key(&KeySource::Seeded("test CA"), "issuing", 2048)?,
    )?
    .with_responder(rsa_key(&KeySource::Seeded("test CA"), "ocsp responder", 2048)?)?)
}

/// Regenerates every fixture under `dir` (`dir/ca/…`, `dir/cards/…`); returns what it wrote.
pub fn regenerate(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>, FixtureError> {
    progress("test CA (3 RSA-2048 keys: root, issuing CA, OCSP responder)");
    let ca = build_ca()?;
    ca.save(&dir.join("ca"))?;
    let mut written = vec![dir.join("ca")];
    progress("RSA-2048 key pool for deterministic cards (32 keys)");
    let mut pool = String::new();
    for i in 0..32 {
        let key = rsa_key(&KeySource::Seeded("deterministic card pool"), &i.to_string(), 2048)?;
        let KeyMaterial::Rsa { pkcs1 } = KeyMaterial::from_rsa(&key).map_err(FixtureError::Card)? else {
            unreachable!()
        };
        pool.push_str(&firmalab_emulator::hex::encode(&pkcs1.0));
        pool.push('\n');
    }
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(|source| FixtureError::Io { path: keys.clone(), source })?;
    firmalab_emulator::image::write_atomically(&keys.join("rsa2048-pool.txt"), pool.as_bytes())?;
    written.push(keys.join("rsa2048-pool.txt"));
    progress("RSA-1024 key pool for deterministic Incrypto34 cards (8 keys)");
    let mut pool = String::new();
    for i in 0..8 {
        let key = rsa_key(&KeySource::Seeded("deterministic card pool rsa1024"), &i.to_string(), 1024)?;
        let KeyMaterial::Rsa { pkcs1 } = KeyMaterial::from_rsa(&key).map_err(FixtureError::Card)? else {
            unreachable!()
        };
        pool.push_str(&firmalab_emulator::hex::encode(&pkcs1.0));
        pool.push('\n');
    }
    firmalab_emulator::image::write_atomically(&keys.join("rsa1024-pool.txt"), pool.as_bytes())?;
    written.push(keys.join("rsa1024-pool.txt"));
    let cards = dir.join("cards");
    std::fs::create_dir_all(&cards).map_err(|source| FixtureError::Io { path: cards.clone(), source })?;
    let mut built = vec![];
    for f in fixtures() {
        progress(f.file);
        let image = build_fixture(&ca, &f)?;
        let path = cards.join(f.file);
        image.save(&path)?;
        written.push(path);
        built.push((f.file, image));
    }
    progress("ra.json (the back office with the fixture cards enrolled)");
    let ra = dir.join("ra.json");
    let bo = back_office(&built)?;
    let mut text = serde_json::to_string_pretty(&bo).map_err(|e| FixtureError::BackOffice(e.to_string()))?;
    text.push('\n');
    crate::files::write_private(&ra, text.as_bytes())
        .map_err(|source| FixtureError::Io { path: ra.clone(), source })?;
    written.push(ra);
    Ok(written)
}

/// The fixture cards `fixtures/ra.json` has enrolled (by CDRL-ROMA-01, at the reference
/// date), with their holders' contacts. The failed-issuance card has no certificates to
/// enrol.
pub const ENROLLED: [(&str, &str, &str); 5] = [
    ("cns-renewable.json", "mario.rossi@example.it", "+393330000001"),
    ("oberthur-renewable.json", "giulia.bianchi@example.it", "+393330000002"),
    ("cns-pin-blocked.json", "luca.verdi@example.it", "+393330000003"),
    ("cns-puk-blocked.json", "anna.neri@example.it", "+393330000004"),
    ("cns-expired.json", "paolo.gialli@example.it", "+393330000005"),
];

/// The back office of the fixtures (`fixtures/ra.json`): every card of [`ENROLLED`] read from
/// its image (in-process, as `ra enroll` reads it) and enrolled at [`REFERENCE_DATE`].
pub fn back_office(cards: &[(&str, CardImage)]) -> Result<crate::backoffice::BackOffice, FixtureError> {
    use crate::transport::in_process::InProcess;
    let mut bo = crate::backoffice::Store::in_memory();
    for (file, email, mobile) in ENROLLED {
        let Some((_, image)) = cards.iter().find(|(f, _)| *f == file) else { continue };
        let t = InProcess::ephemeral(image.clone(), firmalab_emulator::CardRng::insecure_deterministic(1), file);
        let mut client =
            crate::client::open(Box::new(t)).map_err(|e| FixtureError::BackOffice(format!("{file}: {e}")))?;
        crate::flows::renewal::enroll(
            client.as_mut(),
            &mut bo,
            crate::backoffice::DEFAULT_CDRL,
            email,
            mobile,
            REFERENCE_DATE,
        )
        .map_err(|e| FixtureError::BackOffice(format!("{file}: {e}")))?;
    }
    Ok(bo.data)
}

/// The fixture cards compiled into the binary, for ephemeral cards (`--persona`): works from
/// any folder and never touches the files.
pub const BUILTIN: [(&str, &str); 12] = [
    ("cns-renewable", include_str!("../../fixtures/cards/cns-renewable.json")),
    ("oberthur-renewable", include_str!("../../fixtures/cards/oberthur-renewable.json")),
    ("incrypto34-issued", include_str!("../../fixtures/cards/incrypto34-issued.json")),
    ("incrypto34-blank", include_str!("../../fixtures/cards/incrypto34-blank.json")),
    ("cns-failed-issuance", include_str!("../../fixtures/cards/cns-failed-issuance.json")),
    ("cns-pin-blocked", include_str!("../../fixtures/cards/cns-pin-blocked.json")),
    ("cns-puk-blocked", include_str!("../../fixtures/cards/cns-puk-blocked.json")),
    ("cns-expired", include_str!("../../fixtures/cards/cns-expired.json")),
    ("aruba-key", include_str!("../../fixtures/cards/aruba-key.json")),
    ("twin-cns-incard-1.0", include_str!("../../fixtures/cards/twin-cns-incard-1.0.json")),
    ("twin-cns-idemia-2021", include_str!("../../fixtures/cards/twin-cns-idemia-2021.json")),
    ("twin-oberthur", include_str!("../../fixtures/cards/twin-oberthur.json")),
];

/// A built-in fixture card, powered on and ready for APDUs, in one line:
///
/// ```
/// let mut card = firmalab_harness::persona("cns")?;
/// assert_eq!(card.transmit(&[0x00, 0xA4, 0x08, 0x0C, 0x04, 0x10, 0x00, 0x10, 0x03]), [0x90, 0x00]);
/// # Ok::<(), firmalab_harness::fixtures::FixtureError>(())
/// ```
///
/// `name` is one of [`BUILTIN`] (`cns-renewable`, `cns-pin-blocked` …) or a profile name
/// (`cns`, `oberthur`) for its renewable card: PIN `12345678`, PUK `87654321` (README,
/// "Fixtures"). The card lives in memory only. Its RNG is deterministic (seed 1), so
/// challenges repeat from run to run and RSA-2048 keys generated on it come from the public
/// pool: a card for tests, never for anything secret.
pub fn persona(name: &str) -> Result<firmalab_emulator::Card, FixtureError> {
    let mut card = firmalab_emulator::Card::new(builtin(name)?, firmalab_emulator::CardRng::insecure_deterministic(1));
    card.power_on();
    Ok(card)
}

/// A built-in fixture by name (`cns-renewable`, or a profile name for its renewable card).
pub fn builtin(name: &str) -> Result<CardImage, FixtureError> {
    let name = match name {
        "cns" => "cns-renewable",
        "oberthur" => "oberthur-renewable",
        "incrypto34" => "incrypto34-issued",
        other => other.trim_end_matches(".json"),
    };
    let text = BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| FixtureError::NoBuiltin { name: name.into(), known: BUILTIN.map(|(n, _)| n).join(", ") })?;
    CardImage::from_json(text).map_err(FixtureError::Card)
}

/// The test CA of a command: the one in `dir` (`--ca DIR`) when given, else the one compiled
/// into the binary ([`builtin_ca`]), so every command works from any folder.
pub fn test_ca(dir: Option<&Path>) -> Result<TestCa, PkiError> {
    match dir {
        Some(dir) => TestCa::load(dir),
        None => builtin_ca().map_err(|e| match e {
            FixtureError::Pki(e) => e,
            other => PkiError::Encoding(other.to_string()),
        }),
    }
}

/// The test CA compiled into the binary (the files of `fixtures/ca/`): what every command uses
/// unless `--ca DIR` names another.
pub fn builtin_ca() -> Result<TestCa, FixtureError> {
    use der::DecodePem;
    use pkcs1::DecodeRsaPrivateKey;
    let cert = |pem: &str| x509_cert::Certificate::from_pem(pem).map_err(|e| PkiError::Encoding(e.to_string()));
    let key = |pem: &str| RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| PkiError::Encoding(e.to_string()));
    Ok(TestCa {
        root: cert(include_str!("../../fixtures/ca/root.pem"))?,
        root_key: key(include_str!("../../fixtures/ca/root.key.pem"))?,
        issuing: cert(include_str!("../../fixtures/ca/issuing-ca.pem"))?,
        issuing_key: key(include_str!("../../fixtures/ca/issuing-ca.key.pem"))?,
        responder: Some((
            cert(include_str!("../../fixtures/ca/ocsp.pem"))?,
            key(include_str!("../../fixtures/ca/ocsp.key.pem"))?,
        )),
        urls: crate::pki::RevocationUrls::from_env(),
    })
}

/// What `firmalab image new` issues.
#[derive(Clone, Debug)]
pub struct NewImage {
    pub profile: ProfileKind,
    /// The image file to write (`0600`, locked while written).
    pub out: PathBuf,
    /// Replace an existing file.
    pub force: bool,
    pub first_name: String,
    pub last_name: String,
    /// The first 15 characters of the codice fiscale (the check character is computed).
    /// `None`: derived from the names, born 1980-01-01 in Rome, male.
    pub cf: Option<String>,
    /// CNS: 16 characters for EF_IDCarta; Oberthur: 8 hex digits. `None`: from the date.
    pub serial: Option<String>,
    pub pin: String,
    pub puk: String,
    /// Today (`--now`); `None`: the system clock.
    pub now: Option<Date>,
    /// How long after today the certificates expire (`--expires-in`, default 30 days: inside
    /// the 2-month renewal window, so the card is renewable today). They were issued 3 years
    /// before that (never after today).
    pub expires_in: Span,
    /// Derive the keys from this label (INSECURE, reproducible); `None`: the OS RNG.
    pub seed: Option<String>,
    /// A blank card (failed issuance: no keys, default PIN 12345).
    pub blank: bool,
    /// The test CA folder (`--ca`); `None`: the CA compiled into the binary.
    pub ca: Option<PathBuf>,
    /// The OCSP URL written into the certificates (default: the CA's).
    pub ocsp_url: Option<String>,
    /// The CRL distribution point written into the certificates (default: the CA's).
    pub crl_url: Option<String>,
    /// A product personalised on the profile (`aruba-key` on `cns`).
    pub variant: Option<crate::variant::Variant>,
    /// A strict real-card twin of a genuine token (`--twin`, [`crate::twin`]).
    pub twin: Option<crate::twin::Twin>,
}

/// What `image new` accepts as a PIN or PUK: digits only (what Aruba's cards are issued and
/// managed with), within the length the profile's PIN objects allow.
fn issuer_secret_rule(profile: ProfileKind, flag: &'static str, value: &str) -> Result<(), FixtureError> {
    let rule = firmalab_emulator::image::PinRule {
        charset: firmalab_emulator::security::Charset::Digits,
        ..firmalab_emulator::image::pin_rule(profile)
    };
    rule.check(value).map_err(|why| FixtureError::SecretRule { flag, why, profile: profile.name() })
}

/// `firmalab image new`: issues a card from the test CA and writes its image. Secrets no card
/// of the profile could hold and non-`http://` URLs are refused before any work; the output
/// file is locked (and created) before the keys are generated, so no running card
/// overwrites it meanwhile. Returns the image written.
pub fn new_image_file(n: &NewImage) -> Result<CardImage, FixtureError> {
    issuer_secret_rule(n.profile, "--pin", &n.pin)?;
    issuer_secret_rule(n.profile, "--puk", &n.puk)?;
    for url in n.ocsp_url.iter().chain(&n.crl_url) {
        if !url.starts_with("http://") {
            return Err(FixtureError::NotHttp(url.clone()));
        }
    }
    let today = n.now.unwrap_or_else(Date::today);
    let not_after = n.expires_in.after(today);
    let not_before = not_after.add_years(-3).min(today);
    if not_after <= today || not_after > today.add_years(3) {
        return Err(FixtureError::Expiry(n.expires_in.to_string()));
    }
    let mut file = firmalab_emulator::image::ImageFile::create(&n.out, n.force)?;
    let mut ca = test_ca(n.ca.as_deref())?;
    if let Some(u) = &n.ocsp_url {
        ca.urls.ocsp = u.clone();
    }
    if let Some(u) = &n.crl_url {
        ca.urls.crl = u.clone();
    }
    // From the clock's seconds (two cards issued the same day differ), or from the injected
    // date and the seed for reproducible runs.
    let stamp = match (n.now, &n.seed) {
        (None, _) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        (Some(day), seed) => {
            let days = day.days_since_epoch().unsigned_abs();
            let h = Sha256::digest(seed.as_deref().unwrap_or("").as_bytes());
            days * 100_000 + u64::from(u16::from_be_bytes([h[0], h[1]])) % 100_000
        }
    };
    let serial = n.serial.clone().unwrap_or_else(|| match n.profile {
        ProfileKind::Cns => format!("60100{:011}", stamp % 100_000_000_000),
        ProfileKind::Oberthur => format!("{:08x}", stamp as u32 ^ 0x5a5a_0000),
        ProfileKind::Incrypto34 => format!("3410{stamp:012x}"),
    });
    let person = if n.blank {
        None
    } else {
        let birth = Date::new(1980, 1, 1);
        let cf15 = match &n.cf {
            Some(cf) => cf.clone(),
            None => crate::cf::first15(&n.last_name, &n.first_name, birth, 'M', "H501"),
        };
        Some(Person::new(&n.first_name, &n.last_name, &cf15, birth, 'M', "WSREF-000001")?)
    };
    let image = issue_card(
        &ca,
        &CardRequest {
            profile: n.profile,
            description: format!(
                "issued by `firmalab image new` on {today}, certificates valid {not_before} .. {not_after}"
            ),
            serial,
            person,
            pin: n.pin.clone(),
            puk: n.puk.clone(),
            not_before,
            not_after,
            keys: match &n.seed {
                Some(label) => KeySource::Seeded(label),
                None => KeySource::Random,
            },
            atr: n.twin.map(|t| t.atr().to_vec()),
        },
    )?;
    let mut image = image;
    if let Some(v) = n.variant {
        v.apply(&mut image);
    }
    if let Some(t) = n.twin {
        t.apply(&mut image);
    }
    image.validate().map_err(FixtureError::InvalidIssued)?;
    file.save(&image)?;
    Ok(image)
}

/// A length of time as `image new --expires-in` takes it: `30d`, `8w`, `6m` (30-day months),
/// `3y`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Span {
    Days(i64),
    Years(i32),
}

impl Span {
    /// The date this long after `from`.
    pub fn after(self, from: Date) -> Date {
        match self {
            Span::Days(d) => from.add_days(d),
            Span::Years(y) => from.add_years(y),
        }
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Span::Days(d) => write!(f, "{d}d"),
            Span::Years(y) => write!(f, "{y}y"),
        }
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected a number and d, w, m or y (30d, 8w, 6m, 3y)");
        let unit = s.chars().last().ok_or_else(bad)?;
        let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        match unit {
            'd' => Ok(Span::Days(n)),
            'w' => Ok(Span::Days(n * 7)),
            'm' => Ok(Span::Days(n * 30)),
            'y' => Ok(Span::Years(i32::try_from(n).map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    }
}

/// The fixture whose card has this serial.
pub fn fixture_by_serial(serial: &str) -> Option<Fixture> {
    fixtures().into_iter().find(|f| f.serial == serial)
}

/// What a user should do next after a flow on `card` refused for a date or a missing
/// back-office record: the fixture cards are built around [`REFERENCE_DATE`] and enrolled in
/// `fixtures/ra.json`; any card can be enrolled with `ra enroll`, and `image new` issues a
/// card renewable today. `refusals` are the reason codes of the report (outcome and steps);
/// `now_given`: the user set `--now`; `ra`: the back office the flow used.
pub fn advice(card: &crate::open::CardSpec, refusals: &[crate::Reason], now_given: bool, ra: &Path) -> Vec<String> {
    use crate::Reason;
    let mut out = vec![];
    let image = match card {
        crate::open::CardSpec::Image(path) => CardImage::load(path).ok(),
        crate::open::CardSpec::Reader(_) => None,
    };
    let serial = image.as_ref().and_then(CardImage::serial).unwrap_or_default();
    let fixture = fixture_by_serial(&serial);
    let dated = refusals.iter().any(|r| matches!(r, Reason::CertExpired | Reason::NotInRenewalWindow));
    if dated && !now_given {
        match &fixture {
            Some(f) => out.push(format!(
                "{} is the fixture {}, built around the reference date {REFERENCE_DATE}: add --now {REFERENCE_DATE} (and --ra with a copy of fixtures/ra.json, its back office), or issue a card renewable today: firmalab image new --profile {} --out card.json",
                card,
                f.file,
                f.profile.name()
            )),
            None => out.push(
                "for a card renewable today: firmalab image new --profile cns --out card.json (its certificates expire in 30 days, inside the renewal window)".to_owned(),
            ),
        }
    }
    if refusals.contains(&Reason::NotInBackOffice) {
        let ra_flag = if ra == Path::new(crate::backoffice::DEFAULT_PATH) {
            String::new()
        } else {
            format!(" --ra {}", ra.display())
        };
        let contacts = fixture
            .as_ref()
            .and_then(|f| ENROLLED.iter().find(|(file, ..)| *file == f.file))
            .map_or(("EMAIL", "MOBILE"), |(_, email, mobile)| (*email, *mobile));
        out.push(format!(
            "card {} has no record in the back office {}: enrol it with\n  firmalab ra enroll --card {card} --email {} --mobile {}{ra_flag}",
            if serial.is_empty() { card.to_string() } else { serial.clone() },
            absolute(ra).display(),
            contacts.0,
            contacts.1,
        ));
        if fixture.is_some() {
            out.push(format!(
                "(the fixture cards are enrolled in fixtures/ra.json: cp fixtures/ra.json my-ra.json and pass --ra my-ra.json --now {REFERENCE_DATE})"
            ));
        }
    }
    out
}

/// `path` made absolute against the working directory (for messages saying where a file is).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
