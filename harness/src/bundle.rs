//! Support bundles: what a user attaches to an assistance request when a flow fails (the
//! seed's "open an assistance request"), in one tar archive written `0600`.
//!
//! A bundle `firmalab-support/` holds:
//!
//! | file | what |
//! | --- | --- |
//! | `README.txt` | what the bundle is and what was replaced |
//! | `report.json` | the flow's report, as `firmalab flow … --json` prints it |
//! | `transcript.json`, `transcript.txt` | the APDU transcript (PINs and PUKs already placeholders), and its text form |
//! | `card.json` | `firmalab image show --json` of the card image after the flow (a card in a reader: its ATR and what it means) |
//! | `environment.json` | firmalab's version, the system, the reader or image, the ATR and what it means |
//!
//! **Personal data is replaced** in every file, consistently: the holder's names, codice
//! fiscale, birth date, email, mobile and address, and the card serial with what derives
//! from it (the certificates' `dnQualifier` reference), wherever they appear (JSON text, and
//! inside the transcript's APDU data, certificates and EF_DatiPersonali included, even where
//! a value is split over two READ BINARY answers). Each value becomes a pseudonym of the same
//! length and shape (letters for letters, digits for digits), derived from a random key that
//! is not kept: the same value gets the same pseudonym in every file of one bundle, two
//! different values get different ones, and nobody can turn a pseudonym back. Certificate
//! serials, dates and the ATR are kept: support needs them to find the certificate at the CA.
//!
//! **No secret**: the transcript never held a PIN or PUK (see [`crate::transcript`]), and
//! before anything is written every file is searched for the flow's secrets (as typed, and
//! padded as cards pad them) and for every private-key component of the card image (d, p,
//! q, dP, dQ, qInv, the PKCS#1 encoding, P-256 scalars): if one is found the bundle is not
//! written ([`BundleError::Secret`]).

use crate::backoffice::{BackOffice, ContactKind};
use crate::flows::FlowReport;
use crate::open::CardSpec;
use crate::transcript::Transcript;
use crate::wire::hex;
use der::Decode;
use firmalab_emulator::CardImage;
use firmalab_emulator::fs::FileBody;
use firmalab_emulator::keys::KeyMaterial;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The folder every file of a bundle sits in.
pub const ROOT: &str = "firmalab-support";

/// Why a bundle was not written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle would have held a secret: nothing is written.
    #[error("the support bundle would hold {0}, so it was not written (a firmalab bug: please report it)")]
    Secret(String),
    #[error("support bundle {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("no randomness for the pseudonyms: {0}")]
    Rng(String),
}

/// What a bundle is made of.
pub struct Bundle<'a> {
    pub report: &'a FlowReport,
    /// The card as the user named it: an image file is read again (after the flow) for
    /// `card.json`.
    pub card: &'a CardSpec,
    /// The secrets the flow was given (PIN, PUK, new ones): the bundle must hold none.
    pub secrets: Vec<String>,
    /// Personal data the flow was given besides the card's (the email and mobile typed).
    pub contacts: Vec<String>,
    /// The back office the flow used: the holder's registered contacts and address are
    /// replaced too.
    pub back_office: Option<&'a BackOffice>,
    /// firmalab's version.
    pub version: &'a str,
}

/// Where a bundle goes when the user named no file: the working directory,
/// `firmalab-support-<flow>-<UTC time>-<pid>.tar`.
pub fn default_path(flow: &str) -> PathBuf {
    PathBuf::from(format!("firmalab-support-{flow}-{}-{}.tar", utc_stamp(), std::process::id()))
}

/// Now, UTC, as `20260601T101112Z`.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let day = crate::dates::Date::from_days_since_epoch(secs.div_euclid(86_400)).to_string().replace('-', "");
    let t = secs.rem_euclid(86_400);
    format!("{day}T{:02}{:02}{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

/// Builds the bundle and writes it to `path` (mode `0600`, replaced atomically).
pub fn write(path: &Path, b: &Bundle<'_>) -> Result<(), BundleError> {
    let bytes = archive(b)?;
    crate::files::write_private(path, &bytes).map_err(|source| BundleError::Write { path: path.to_owned(), source })
}

/// The bundle as tar bytes.
pub fn archive(b: &Bundle<'_>) -> Result<Vec<u8>, BundleError> {
    let image = match b.card {
        CardSpec::Image(p) => CardImage::load(p).ok(),
        CardSpec::Reader(_) => None,
    };
    let mut salt = [0u8; 32];
    let mut rng = firmalab_emulator::CardRng::from_os().map_err(BundleError::Rng)?;
    rand_core::Rng::fill_bytes(&mut rng, &mut salt);
    let mut scrub = Scrubber::new(salt);
    personal_data(b, image.as_ref(), &mut scrub);

    let mut transcript = b.report.transcript.clone();
    scrub.transcript(&mut transcript);
    let mut report = serde_json::to_value(b.report)?;
    scrub.json(&mut report);
    let atr = hex::decode(&transcript.atr).unwrap_or_default();
    let model = crate::wire::atr::recognise(&atr);
    let mut card = match (&image, b.card) {
        (Some(img), _) => serde_json::to_value(crate::inspect::summarize(img))?,
        (None, CardSpec::Reader(reader)) => json!({
            "reader": reader,
            "atr": transcript.atr,
            "card": model.label,
            "note": "a card in a reader has no image file: its content is what the transcript shows",
        }),
        (None, CardSpec::Image(p)) => json!({
            "image": p.file_name().map(|n| n.to_string_lossy().into_owned()),
            "note": "the image could not be read again after the flow",
        }),
    };
    scrub.json(&mut card);
    let mut environment = json!({
        "firmalab": b.version,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "flow": b.report.flow,
        "profile": b.report.profile,
        "outcome": b.report.outcome,
        "exit_code": b.report.outcome.exit_code(),
        "card": match b.card {
            CardSpec::Reader(r) => json!({"reader": r}),
            CardSpec::Image(p) => json!({"image": p.file_name().map(|n| n.to_string_lossy().into_owned())}),
        },
        "atr": transcript.atr,
        "atr_means": model.label,
        "lot": model.lot.map(|l| l.name),
        "written": utc_stamp(),
    });
    scrub.json(&mut environment);

    // The card's own PIN and PUK values (an image holds them) are as secret as the ones
    // given: wherever one stands alone in the JSON text (a fixture's description says
    // "PIN 12345678") it is masked, and the check below looks for them too.
    let mut secrets = b.secrets.clone();
    secrets.extend(image.iter().flat_map(|i| i.pins.iter().map(|p| p.value.clone())));
    secrets.retain(|s| !s.is_empty());
    secrets.sort();
    secrets.dedup();
    for v in [&mut report, &mut card, &mut environment] {
        mask_secrets(v, &secrets);
    }

    let files: Vec<(&str, Vec<u8>)> = vec![
        ("README.txt", README.as_bytes().to_vec()),
        ("report.json", pretty(&report)?),
        ("transcript.json", pretty(&serde_json::to_value(&transcript)?)?),
        ("transcript.txt", transcript.render().into_bytes()),
        ("card.json", pretty(&card)?),
        ("environment.json", pretty(&environment)?),
    ];
    let forbidden = forbidden(&secrets, image.as_ref());
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for f in &forbidden {
            if f.found_in(&text) {
                return Err(BundleError::Secret(format!("{} in {name}", f.what)));
            }
        }
    }
    Ok(tar(&files))
}

/// Masks every secret standing alone (not inside a longer number or word) in the JSON's
/// strings with `*`. The public default PIN 12345 stays readable.
fn mask_secrets(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => {
            for secret in secrets.iter().filter(|x| x.as_str() != crate::client::DEFAULT_PIN) {
                let b = s.as_bytes();
                let hits: Vec<usize> = s
                    .match_indices(secret.as_str())
                    .map(|(i, _)| i)
                    .filter(|&i| {
                        let before = i.checked_sub(1).and_then(|j| b.get(j)).is_some_and(u8::is_ascii_alphanumeric);
                        !before && !b.get(i + secret.len()).is_some_and(u8::is_ascii_alphanumeric)
                    })
                    .collect();
                for i in hits.into_iter().rev() {
                    s.replace_range(i..i + secret.len(), &"*".repeat(secret.chars().count()));
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_secrets(x, secrets)),
        Value::Object(o) => o.values_mut().for_each(|x| mask_secrets(x, secrets)),
        _ => {}
    }
}

fn pretty(v: &Value) -> Result<Vec<u8>, BundleError> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s.into_bytes())
}

const README: &str = "firmalab support bundle\n\
=======================\n\n\
Attach this archive to the assistance request. It holds:\n\n\
  report.json       the flow's report (firmalab flow ... --json)\n\
  transcript.json   the APDU transcript (PINs and PUKs are placeholders such as {pin:8:FF})\n\
  transcript.txt    the same, as text\n\
  card.json         firmalab image show --json of the card image after the flow\n\
  environment.json  firmalab's version, the system, the reader or image, the ATR\n\n\
Personal data is replaced in every file by pseudonyms of the same length and shape, the same\n\
value always by the same pseudonym: the holder's names, codice fiscale, birth date, email,\n\
mobile and address, the card serial and the reference derived from it. Certificate serials,\n\
dates and the ATR are kept. No PIN, PUK or private key is in it: firmalab checks every file\n\
before it writes the archive.\n";

// ---- personal data ----

/// What kind of personal value (how its pseudonym is shaped and matched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A first or last name: matched as a whole word, in any case.
    Name,
    /// Codice fiscale, email, address, birth date: matched anywhere, in any case.
    Text,
    /// The card serial: digits stay digits, hex digits stay hex digits.
    Serial,
    /// A phone number.
    Mobile,
}

/// Replaces personal values by same-length pseudonyms, in text and in bytes.
struct Scrubber {
    salt: [u8; 32],
    /// (value, pseudonym, whole words only), longest first when applied.
    pairs: Vec<(Vec<u8>, Vec<u8>, bool)>,
}

impl Scrubber {
    fn new(salt: [u8; 32]) -> Self {
        Scrubber { salt, pairs: vec![] }
    }

    /// The pseudonym bytes for `value`: same length, letters for letters (case kept), digits
    /// for digits (hex digits for hex digits where `hex`), everything else kept.
    fn pseudonym(&self, kind: Kind, value: &str, hex_alphabet: bool) -> String {
        let upper_hex = value.bytes().any(|b| b.is_ascii_uppercase());
        let mut stream = vec![];
        let mut counter = 0u32;
        while stream.len() < value.len() {
            let mut h = Sha256::new();
            h.update(self.salt);
            h.update([kind as u8]);
            h.update(value.to_uppercase().as_bytes());
            h.update(counter.to_be_bytes());
            stream.extend_from_slice(&h.finalize());
            counter += 1;
        }
        value
            .chars()
            .zip(stream)
            .map(|(c, r)| match c {
                '0'..='9' | 'a'..='f' | 'A'..='F' if hex_alphabet => {
                    let d = char::from(b"0123456789abcdef"[usize::from(r % 16)]);
                    if upper_hex { d.to_ascii_uppercase() } else { d }
                }
                '0'..='9' => char::from(b'0' + r % 10),
                'A'..='Z' => char::from(b'A' + r % 26),
                'a'..='z' => char::from(b'a' + r % 26),
                other => other,
            })
            .collect()
    }

    fn push(&mut self, from: &str, to: &str, words: bool) {
        if from.len() == to.len() && !from.is_empty() && !self.pairs.iter().any(|(f, _, _)| f == from.as_bytes()) {
            self.pairs.push((from.as_bytes().to_vec(), to.as_bytes().to_vec(), words));
        }
    }

    /// Adds a value in the forms it may appear in (as given, upper and lower case).
    fn add(&mut self, kind: Kind, value: &str) {
        let value = value.trim();
        // A single character cannot be told from other text.
        if value.chars().count() < 2 {
            return;
        }
        let hex_serial = kind == Kind::Serial
            && value.bytes().all(|b| b.is_ascii_hexdigit())
            && !value.bytes().all(|b| b.is_ascii_digit());
        let p = self.pseudonym(kind, value, hex_serial);
        let words = kind == Kind::Name;
        self.push(value, &p, words);
        self.push(&value.to_uppercase(), &p.to_uppercase(), words);
        self.push(&value.to_lowercase(), &p.to_lowercase(), words);
        if hex_serial && value.len().is_multiple_of(2) {
            // The serial as the card stores it (Oberthur: 4 raw CPLC bytes).
            if let (Ok(raw), Ok(fake)) = (hex::decode(value), hex::decode(&p)) {
                self.pairs.push((raw, fake, false));
            }
        }
    }

    /// A reference derived from the card serial (`WSREF-` and its last digits) gets the
    /// same derivation from the serial's pseudonym.
    fn add_reference(&mut self, reference: &str, serials: &[String]) {
        for s in serials {
            let tail = &s[s.len().saturating_sub(6)..];
            if let Some(prefix) = reference.strip_suffix(tail)
                && !tail.is_empty()
            {
                let p = self.pseudonym(Kind::Serial, s, false);
                let p = self
                    .pairs
                    .iter()
                    .find(|(f, _, _)| f == s.as_bytes())
                    .map_or(p, |(_, t, _)| String::from_utf8_lossy(t).into_owned());
                let fake = format!("{prefix}{}", &p[p.len().saturating_sub(tail.len())..]);
                self.push(reference, &fake, false);
                return;
            }
        }
        let p: String = reference
            .chars()
            .zip(self.pseudonym(Kind::Text, reference, false).chars())
            .map(|(c, f)| if c.is_ascii_digit() { f } else { c })
            .collect();
        self.push(reference, &p, false);
    }

    fn sorted(&self) -> Vec<&(Vec<u8>, Vec<u8>, bool)> {
        let mut v: Vec<_> = self.pairs.iter().collect();
        v.sort_by_key(|(f, _, _)| std::cmp::Reverse(f.len()));
        v
    }

    /// Replaces in place within a byte sequence (`None`: a byte that is not known, such as a
    /// placeholder, where no match may run across).
    fn bytes(&self, data: &mut [Option<u8>]) {
        for (from, to, words) in self.sorted() {
            let n = from.len();
            let mut i = 0;
            while i + n <= data.len() {
                let hit = data[i..i + n].iter().zip(from).all(|(b, f)| *b == Some(*f));
                let letter = |j: Option<usize>| {
                    j.and_then(|j| data.get(j)).copied().flatten().is_some_and(|b| b.is_ascii_alphabetic())
                };
                if hit && (!words || (!letter(i.checked_sub(1)) && !letter(Some(i + n)))) {
                    for (k, t) in to.iter().enumerate() {
                        data[i + k] = Some(*t);
                    }
                    i += n;
                } else {
                    i += 1;
                }
            }
        }
    }

    fn text(&self, s: &str) -> String {
        let mut bytes: Vec<Option<u8>> = s.bytes().map(Some).collect();
        self.bytes(&mut bytes);
        let out: Vec<u8> = bytes.into_iter().map(|b| b.unwrap_or(b'?')).collect();
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    fn json(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            Value::Object(o) => {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    self.json(&mut x);
                    o.insert(self.text(&k), x);
                }
            }
            _ => {}
        }
    }

    /// Replaces personal values in the transcript's command data and response data, each
    /// direction as one stream (so a certificate read in several answers, or a chained
    /// command, is matched whole); placeholders and masked bytes are left alone.
    fn transcript(&self, t: &mut Transcript) {
        for direction in [Direction::Command, Direction::Response] {
            let mut cells: Vec<Vec<Tok>> = vec![];
            for s in &t.steps {
                for e in &s.exchanges {
                    cells.push(tokens(match direction {
                        Direction::Command => &e.command,
                        Direction::Response => &e.response,
                    }));
                }
            }
            let mut stream: Vec<Option<u8>> = vec![];
            let mut at: Vec<(usize, usize)> = vec![];
            for (ci, toks) in cells.iter().enumerate() {
                let range = match direction {
                    Direction::Command => command_data(toks),
                    Direction::Response => 0..toks.len().saturating_sub(2),
                };
                for ti in range {
                    match toks.get(ti) {
                        Some(Tok::Byte(b)) => {
                            stream.push(Some(*b));
                            at.push((ci, ti));
                        }
                        Some(Tok::Opaque(_)) | None => stream.push(None),
                    }
                }
            }
            self.bytes(&mut stream);
            for (k, b) in stream.into_iter().flatten().enumerate() {
                if let Some((ci, ti)) = at.get(k) {
                    cells[*ci][*ti] = Tok::Byte(b);
                }
            }
            let mut i = 0;
            for s in &mut t.steps {
                for e in &mut s.exchanges {
                    let text = untokens(&cells[i]);
                    match direction {
                        Direction::Command => e.command = text,
                        Direction::Response => e.response = text,
                    }
                    i += 1;
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Command,
    Response,
}

/// A byte of transcript hex, or a placeholder / masked byte kept as written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    Opaque(String),
}

fn tokens(h: &str) -> Vec<Tok> {
    let mut out = vec![];
    let b = h.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            let end = h[i..].find('}').map_or(b.len(), |j| i + j + 1);
            out.push(Tok::Opaque(h[i..end].to_owned()));
            i = end;
        } else if let Some(pair) = h.get(i..i + 2)
            && let Ok(v) = u8::from_str_radix(pair, 16)
        {
            out.push(Tok::Byte(v));
            i += 2;
        } else {
            let end = (i + 2).min(b.len());
            out.push(Tok::Opaque(h.get(i..end).unwrap_or("").to_owned()));
            i = end;
        }
    }
    out
}

fn untokens(t: &[Tok]) -> String {
    t.iter()
        .map(|x| match x {
            Tok::Byte(b) => hex::encode(&[*b]),
            Tok::Opaque(s) => s.clone(),
        })
        .collect()
}

/// Where a command's data field is, in tokens (short and extended Lc).
fn command_data(t: &[Tok]) -> std::ops::Range<usize> {
    let byte = |i: usize| match t.get(i) {
        Some(Tok::Byte(b)) => Some(usize::from(*b)),
        _ => None,
    };
    match byte(4) {
        Some(0) if t.len() > 7 => match (byte(5), byte(6)) {
            (Some(h), Some(l)) => 7..(7 + (h << 8 | l)).min(t.len()),
            _ => 0..0,
        },
        Some(lc) if lc > 0 && t.len() > 5 => 5..(5 + lc).min(t.len()),
        _ => 0..0,
    }
}

/// Collects the personal values the bundle must not show: from the card image, from the
/// certificates and EF_DatiPersonali in the transcript, the serial in the report, the
/// contacts given and the back office's record of the holder.
fn personal_data(b: &Bundle<'_>, image: Option<&CardImage>, scrub: &mut Scrubber) {
    let mut serials: Vec<String> = vec![];
    let mut holders: Vec<crate::client::Holder> = vec![];
    let mut subjects: Vec<crate::pki::Holder> = vec![];
    if let Some(img) = image {
        serials.extend(img.serial());
        for (_, cert) in crate::inspect::certificates(img) {
            subjects.extend(crate::ca::holder_of(cert.tbs_certificate().subject()));
        }
        if let Some(n) = firmalab_emulator::fs::lookup(&img.mf, &[0x3F00, 0x1100, 0x1102])
            && let FileBody::Transparent { data } = &n.body
        {
            holders.extend(crate::client::cns::decode_dati_personali(&data.0));
        }
    }
    if !b.report.card.is_empty() {
        serials.push(b.report.card.clone());
    }
    for stream in data_streams(&b.report.transcript) {
        for i in 0..stream.len().saturating_sub(4) {
            if stream[i] == 0x30 && stream[i + 1] == 0x82 {
                let len = usize::from(u16::from_be_bytes([stream[i + 2], stream[i + 3]])) + 4;
                if let Some(der) = stream.get(i..i + len)
                    && let Ok(cert) = x509_cert::Certificate::from_der(der)
                {
                    subjects.extend(crate::ca::holder_of(cert.tbs_certificate().subject()));
                }
            }
            if let Some(head) = stream.get(i..i + 6)
                && head.iter().all(u8::is_ascii_hexdigit)
                && let Ok(len) = usize::from_str_radix(&String::from_utf8_lossy(head), 16)
                && let Some(file) = stream.get(i..i + 6 + len)
                && let Some(h) = crate::client::cns::decode_dati_personali(file)
                && !h.last_name.is_empty()
            {
                holders.push(h);
            }
        }
    }
    serials.sort();
    serials.dedup();
    for s in &serials {
        scrub.add(Kind::Serial, s);
    }
    let mut cfs = vec![];
    for h in &subjects {
        scrub.add(Kind::Name, &h.first_name);
        scrub.add(Kind::Name, &h.last_name);
        scrub.add(Kind::Text, &h.codice_fiscale);
        cfs.push(h.codice_fiscale.clone());
        if !h.reference.is_empty() {
            scrub.add_reference(&h.reference, &serials);
        }
    }
    for h in &holders {
        scrub.add(Kind::Name, &h.first_name);
        scrub.add(Kind::Name, &h.last_name);
        scrub.add(Kind::Text, &h.codice_fiscale);
        scrub.add(Kind::Text, &h.birth_date);
        cfs.push(h.codice_fiscale.clone());
    }
    for c in &b.contacts {
        let kind = if c.contains('@') { Kind::Text } else { Kind::Mobile };
        scrub.add(kind, c);
        if kind == Kind::Mobile
            && let Ok(n) = crate::backoffice::normalise_mobile(c)
        {
            scrub.add(Kind::Mobile, &n);
        }
    }
    if let Some(bo) = b.back_office {
        for cf in &cfs {
            for c in bo.contacts.iter().filter(|c| c.codice_fiscale == *cf) {
                scrub.add(if c.kind == ContactKind::Email { Kind::Text } else { Kind::Mobile }, &c.value);
            }
            if let Some(a) = bo.holder(cf).and_then(|h| h.address.clone()) {
                scrub.add(Kind::Text, &a);
            }
        }
    }
}

/// Replaces the personal data a card image holds (holder names, codice fiscale, birth date,
/// email addresses, the card serial and the certificate reference derived from it) with
/// pseudonyms of the same length and shape, consistently in every file, record, the CPLC and
/// the description: the pseudonymiser of the support bundles, with a fresh random key (the
/// pseudonyms cannot be recomputed from a guessed name). Certificates keep their structure
/// (their signatures no longer verify). Returns how many distinct values were replaced.
pub fn scrub_image(image: &mut CardImage) -> usize {
    let mut salt = [0u8; 32];
    if let Ok(mut rng) = firmalab_emulator::CardRng::from_os() {
        rand_core::Rng::fill_bytes(&mut rng, &mut salt);
    }
    let mut scrub = Scrubber::new(salt);
    let mut serials: Vec<String> = image.serial().into_iter().collect();
    serials.dedup();
    for s in &serials {
        scrub.add(Kind::Serial, s);
    }
    let mut values = 0;
    for (_, cert) in crate::inspect::certificates(image) {
        if let Some(h) = crate::ca::holder_of(cert.tbs_certificate().subject()) {
            scrub.add(Kind::Name, &h.first_name);
            scrub.add(Kind::Name, &h.last_name);
            scrub.add(Kind::Text, &h.codice_fiscale);
            if !h.reference.is_empty() {
                scrub.add_reference(&h.reference, &serials);
            }
        }
    }
    if let Some(n) = firmalab_emulator::fs::lookup(&image.mf, &[0x3F00, 0x1100, 0x1102])
        && let FileBody::Transparent { data } = &n.body
        && let Some(h) = crate::client::cns::decode_dati_personali(&data.0)
    {
        scrub.add(Kind::Name, &h.first_name);
        scrub.add(Kind::Name, &h.last_name);
        scrub.add(Kind::Text, &h.codice_fiscale);
        scrub.add(Kind::Text, &h.birth_date);
    }
    let mut contents: Vec<Vec<u8>> = vec![];
    visit_data(&mut image.mf, &mut |d| contents.push(d.clone()));
    for c in &contents {
        for email in emails(c) {
            scrub.add(Kind::Text, &email);
        }
    }
    values += scrub.pairs.len();
    let apply = |d: &mut Vec<u8>| {
        let mut cells: Vec<Option<u8>> = d.iter().copied().map(Some).collect();
        scrub.bytes(&mut cells);
        *d = cells.into_iter().map(|b| b.unwrap_or(0)).collect();
    };
    visit_data(&mut image.mf, &mut |d| apply(d));
    if let Some(cplc) = &mut image.cplc {
        apply(&mut cplc.0);
    }
    image.description = scrub.text(&image.description);
    for p in &mut image.pins {
        p.label = scrub.text(&p.label);
    }
    for k in &mut image.keys {
        k.label = scrub.text(&k.label);
    }
    values
}

/// Every transparent EF's data and every record of a tree.
fn visit_data(node: &mut firmalab_emulator::fs::FileNode, f: &mut dyn FnMut(&mut Vec<u8>)) {
    match &mut node.body {
        FileBody::Transparent { data } => f(&mut data.0),
        FileBody::Records { records, .. } => records.iter_mut().for_each(|r| f(&mut r.0)),
        FileBody::Df { children, .. } => children.iter_mut().for_each(|c| visit_data(c, f)),
        _ => {}
    }
}

/// Email addresses written in ASCII inside bytes (certificate subjects and alternative names).
fn emails(data: &[u8]) -> Vec<String> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b".-".contains(&b);
    let mut out = vec![];
    for (at, _) in data.iter().enumerate().filter(|(_, b)| **b == b'@') {
        let start = data[..at].iter().rposition(|b| !local(*b)).map_or(0, |i| i + 1);
        let end = data[at + 1..].iter().position(|b| !domain(*b)).map_or(data.len(), |i| at + 1 + i);
        let (user, host) = (&data[start..at], &data[at + 1..end]);
        if !user.is_empty() && host.contains(&b'.') && host.len() > 3 {
            out.push(String::from_utf8_lossy(&data[start..end]).into_owned());
        }
    }
    out
}

/// The command data and the response data of a transcript, each as one byte stream
/// (placeholders and masked bytes left out).
fn data_streams(t: &Transcript) -> [Vec<u8>; 2] {
    let mut commands = vec![];
    let mut responses = vec![];
    for e in t.steps.iter().flat_map(|s| &s.exchanges) {
        let c = tokens(&e.command);
        for x in &c[command_data(&c)] {
            if let Tok::Byte(b) = x {
                commands.push(*b);
            }
        }
        let r = tokens(&e.response);
        for x in &r[..r.len().saturating_sub(2)] {
            if let Tok::Byte(b) = x {
                responses.push(*b);
            }
        }
    }
    [commands, responses]
}

// ---- what must never be in a bundle ----

/// A value the bundle must not hold, in the forms it could appear in.
struct Forbidden {
    what: String,
    /// Hex forms (searched case-insensitively anywhere).
    hex: Vec<String>,
    /// The value as text, searched where it stands alone (not inside a longer number or
    /// word).
    text: Option<String>,
}

impl Forbidden {
    fn found_in(&self, text: &str) -> bool {
        let upper = text.to_uppercase();
        if self.hex.iter().any(|h| upper.contains(h.as_str())) {
            return true;
        }
        let Some(t) = &self.text else { return false };
        let b = text.as_bytes();
        text.match_indices(t.as_str()).any(|(i, _)| {
            let before = i.checked_sub(1).and_then(|j| b.get(j)).is_some_and(u8::is_ascii_alphanumeric);
            let after = b.get(i + t.len()).is_some_and(u8::is_ascii_alphanumeric);
            !before && !after
        })
    }
}

fn forbidden(secrets: &[String], image: Option<&CardImage>) -> Vec<Forbidden> {
    let mut out = vec![];
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        let mut hexes = vec![hex::encode(s.as_bytes())];
        for (len, pad) in [(8usize, 0xFFu8), (16, 0x00), (64, 0xFF)] {
            if s.len() <= len {
                let mut p = s.as_bytes().to_vec();
                p.resize(len, pad);
                hexes.push(hex::encode(&p));
            }
        }
        out.push(Forbidden {
            what: "a PIN or PUK of the flow".into(),
            hex: hexes,
            // The default PIN 12345 is public (Aruba's FAQ; the reset's messages name it).
            text: (s != crate::client::DEFAULT_PIN).then(|| s.clone()),
        });
    }
    for (i, k) in image.map(|i| i.keys.as_slice()).unwrap_or_default().iter().enumerate() {
        for m in [&k.material, &k.pending].into_iter().flatten() {
            let mut parts: Vec<Vec<u8>> = vec![];
            match m {
                KeyMaterial::Rsa { pkcs1 } => {
                    parts.push(pkcs1.0.clone());
                    if let Ok(key) = pkcs1::RsaPrivateKeyRef::from_der(&pkcs1.0) {
                        for c in [
                            key.private_exponent,
                            key.prime1,
                            key.prime2,
                            key.exponent1,
                            key.exponent2,
                            key.coefficient,
                        ] {
                            parts.push(c.as_bytes().to_vec());
                        }
                    }
                }
                KeyMaterial::EcP256 { scalar } => parts.push(scalar.0.clone()),
            }
            out.push(Forbidden {
                what: format!("private key material of key {i} ({})", k.label),
                hex: parts.iter().filter(|p| p.len() >= 16).map(|p| hex::encode(p)).collect(),
                text: None,
            });
        }
    }
    out
}

// ---- tar ----

/// A POSIX ustar archive: the folder [`ROOT`] (`0700`) and its files (`0600`), owned by
/// uid/gid 0 with no names, dated now.
fn tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mtime = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut out = vec![];
    out.extend(header(&format!("{ROOT}/"), 0o700, 0, mtime, b'5'));
    for (name, data) in files {
        out.extend(header(&format!("{ROOT}/{name}"), 0o600, data.len() as u64, mtime, b'0'));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn header(name: &str, mode: u32, size: u64, mtime: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, format!("{mode:07o}\0").as_bytes());
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, format!("{mtime:011o}\0").as_bytes());
    put(148, b"        ");
    put(156, &[kind]);
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transcript::{Exchange, Mask, Step};

    fn exchange(command: &str, response: &str) -> Exchange {
        Exchange { command: command.into(), response: response.into(), mask: Mask::Exact, micros: 0, not_sent: false }
    }

    #[test]
    fn pseudonyms_keep_length_and_shape_and_are_consistent_per_bundle() {
        let mut s = Scrubber::new([7; 32]);
        s.add(Kind::Name, "Rossi");
        s.add(Kind::Text, "RSSMRA80A01H501U");
        s.add(Kind::Serial, "1a2b3c4d");
        let text = s.text("ROSSI, rossi and Rossi (RSSMRA80A01H501U); CROSSING stays; card 1a2b3c4d");
        assert!(!text.to_uppercase().contains("ROSSI ") && !text.contains("RSSMRA80A01H501U"), "{text}");
        assert!(text.contains("CROSSING stays"), "whole words only: {text}");
        let upper = &text[..5];
        assert!(upper.chars().all(|c| c.is_ascii_uppercase()));
        assert_eq!(text[7..12], upper.to_lowercase(), "the same name, the same pseudonym: {text}");
        let cf = text.split('(').nth(1).unwrap().split(')').next().unwrap();
        assert_eq!(cf.len(), 16);
        assert!(cf[6..8].bytes().all(|b| b.is_ascii_digit()) && cf[8..9].bytes().all(|b| b.is_ascii_uppercase()));
        let serial = text.rsplit(' ').next().unwrap();
        assert!(serial.len() == 8 && serial.bytes().all(|b| b.is_ascii_hexdigit()) && serial != "1a2b3c4d");
        // Another bundle (another key): other pseudonyms.
        let mut t = Scrubber::new([8; 32]);
        t.add(Kind::Name, "Rossi");
        assert_ne!(t.text("ROSSI"), s.text("ROSSI"));
    }

    #[test]
    fn personal_data_split_over_two_answers_is_replaced_in_the_transcript() {
        let mut s = Scrubber::new([1; 32]);
        s.add(Kind::Name, "MARIO");
        s.add(Kind::Serial, "6010000000000101");
        let mut t = Transcript {
            schema: "firmalab-transcript".into(),
            version: 1,
            flow: "x".into(),
            profile: "cns".into(),
            atr: "3B00".into(),
            steps: vec![Step {
                name: "Read".into(),
                exchanges: vec![
                    // "..MA" | "RIO.." across two READ BINARY answers.
                    exchange("00B0000004", "30314D419000"),
                    exchange("00B0000404", "52494F209000"),
                    exchange("0020009008{pin:8:FF}", "9000"),
                    exchange("00A4080C0410001003", "9000"),
                    exchange("00B0000010", "363031303030303030303030303130319000"),
                ],
            }],
        };
        s.transcript(&mut t);
        let all: String = t.steps[0].exchanges.iter().map(|e| e.response.clone()).collect();
        let (first, second) = (&t.steps[0].exchanges[0].response, &t.steps[0].exchanges[1].response);
        assert!(!first.starts_with("30314D41") && !second.starts_with("52494F"), "{all}");
        assert!(second.ends_with("209000"), "the word's neighbours stay: {all}");
        assert!(!all.contains("36303130303030303030303030313031"), "{all}");
        assert_eq!(t.steps[0].exchanges[2].command, "0020009008{pin:8:FF}", "placeholders untouched");
        assert!(
            t.steps[0].exchanges[0].response.starts_with("3031") && t.steps[0].exchanges[0].response.ends_with("9000")
        );
        assert_eq!(t.steps[0].exchanges[3].command, "00A4080C0410001003", "a path is not a name");
    }

    #[test]
    fn the_tar_is_ustar_with_private_modes() {
        let t = tar(&[("a.txt", b"hello".to_vec())]);
        assert_eq!(t.len(), 512 * 2 + 512 + 1024);
        assert_eq!(&t[0..17], b"firmalab-support/");
        assert_eq!(t[156], b'5');
        assert_eq!(&t[257..263], b"ustar\0");
        let h = &t[512..1024];
        assert_eq!(&h[..22], b"firmalab-support/a.txt");
        assert_eq!(&h[100..107], b"0000600");
        assert_eq!(&h[124..135], b"00000000005");
        let sum: u32 =
            h.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum();
        assert_eq!(u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap(), sum);
        assert_eq!(&t[1024..1029], b"hello");
    }

    #[test]
    fn a_secret_is_found_padded_or_standing_alone_but_not_inside_other_digits() {
        let f = forbidden(&["12345678".into()], None);
        assert!(f[0].found_in("0020009A083132333435363738"));
        assert!(f[0].found_in("{\"x\": \"12345678\"}"));
        assert!(!f[0].found_in("serial 9123456789"));
        let five = forbidden(&["24680".into()], None);
        assert!(five[0].found_in("3234363830FFFFFF"), "padded to 8 with FF");
        assert!(five[0].found_in("3234363830000000000000000000000000"), "padded to 16 with 00");
    }
}
