//! `firmalab image capture`: a virtual twin of a card in a reader, read without changing it.
//!
//! Every APDU goes through the dry-run [`Gate`] ([`read_only`]): only what the harness's own
//! table classes as a read or volatile (SELECT, READ BINARY/RECORD, GET DATA, the tries query
//! where the mask answers it for free) can reach the card; a write or a secret is refused
//! before it is sent, whatever this module asks for. The capture reads:
//!
//! * the ATR, and from it the profile and mask (`wire::atr`);
//! * the file tree the profile knows (the built-in fixture of that profile is the template):
//!   each file is selected with its FCP; files the card lacks are left out of the twin;
//!   transparent EFs and records are read whole (certificates, public-key EFs, EF_IDCarta,
//!   EF_DatiPersonali, the AWP object lists …), except files that hold a secret (Oberthur's
//!   PUK file) and private-key EFs;
//! * the life cycle (GET DATA `01 83`), the CPLC (GET DATA `9F7F`), the free EEPROM;
//! * the PIN and PUK counters, only where the mask answers the query without counting a try.
//!
//! What cannot be read stands in from the template, and the capture says so: private keys
//! (fresh key pairs of the same algorithm; the certificates then no longer match their keys,
//! which `image show` reports), PIN and PUK values (the template's test values), the access
//! conditions (the profile's; an FCP the twin would answer differently is reported), files the
//! profile does not know, the device history. `--scrub` replaces holder names, codice fiscale,
//! email and serial-derived data with pseudonyms of the same shape, consistently in every file
//! ([`crate::bundle::scrub_image`], the support bundle's pseudonymiser).

use crate::fixtures::{self, FixtureError, KeySource};
use crate::transport::gate::{Gate, Mode};
use crate::transport::{Response, Transport, TransportError};
use crate::wire::{CardModel, Profile, Sw, hex};
use firmalab_emulator::fs::{FileBody, FileNode, display_path};
use firmalab_emulator::hex::Bytes;
use firmalab_emulator::image::{CardImage, LifeCycle};
use firmalab_emulator::keys::KeyMaterial;

/// What to capture, and how.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// Replace personal data with consistent pseudonyms.
    pub scrub: bool,
    /// INSECURE: derive the stand-in keys from this label (reproducible) instead of the OS RNG.
    pub key_seed: Option<String>,
    /// Where the card was (for the twin's description).
    pub source: String,
}

/// A captured twin and what the capture could not copy.
#[derive(Debug)]
pub struct Capture {
    pub image: CardImage,
    /// One line per thing that stands in for, or differs from, the card.
    pub notes: Vec<String>,
    /// Files read from the card.
    pub files: usize,
    /// APDUs sent.
    pub apdus: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Fixture(#[from] FixtureError),
    #[error("cannot capture this card: {0}")]
    Unsupported(String),
    #[error("the card answered {sw} to {what}")]
    Card { what: String, sw: Sw },
    #[error("the twin is not a valid card image: {0}")]
    Invalid(String),
}

/// The card behind the dry-run gate: reads and volatile commands only.
pub fn read_only(t: Box<dyn Transport>) -> Gate {
    Gate::new(t, Mode::DryRun).0
}

/// Captures the card in a PC/SC reader (exact name or a unique part of it).
#[cfg(feature = "pcsc")]
pub fn capture_reader(reader: &str, opts: &CaptureOptions) -> Result<Capture, CaptureError> {
    let t = crate::transport::pcsc::PcscTransport::connect(reader, std::time::Duration::from_secs(5))?;
    capture(Box::new(t), opts)
}

/// Capturing from a reader needs the `pcsc` feature.
#[cfg(not(feature = "pcsc"))]
pub fn capture_reader(_reader: &str, _opts: &CaptureOptions) -> Result<Capture, CaptureError> {
    Err(CaptureError::Unsupported("this firmalab was built without --features pcsc".into()))
}

/// Files whose content is a secret: never copied (Oberthur's PUK file holds the unblock code).
const SECRET_FILES: &[(Profile, &[u16])] = &[(Profile::Oberthur, &[0x3F00, 0x5011, 0x2000])];

/// Counter labels of the harness's clients, by PIN reference.
const COUNTER_LABELS: &[(&str, u8)] = &[
    ("PIN CNS0", 0x10),
    ("PUK CNS0", 0x11),
    ("PIN CNS1", 0x1A),
    ("PUK CNS1", 0x1B),
    ("SCM (user PIN)", 0x81),
    ("PUK", 0x84),
];

/// The gated transport and a count of what went through it.
struct Reader {
    t: Gate,
    apdus: usize,
}

impl Reader {
    fn send(&mut self, command: &[u8]) -> Result<Response, CaptureError> {
        self.apdus += 1;
        Ok(self.t.exchange(command)?)
    }

    /// Selects `path` from the MF one FID at a time, asking for the FCP; `None` when the card
    /// has no such file.
    fn select(&mut self, path: &[u16]) -> Result<Option<Vec<u8>>, CaptureError> {
        let mut fcp = None;
        for fid in path {
            let [hi, lo] = fid.to_be_bytes();
            let r = self.send(&[0x00, 0xA4, 0x00, 0x00, 0x02, hi, lo, 0x00])?;
            match r.sw {
                Sw::Ok => fcp = Some(r.data),
                Sw::FileNotFound => return Ok(None),
                sw => return Err(CaptureError::Card { what: format!("SELECT {}", display_path(path)), sw }),
            }
        }
        Ok(fcp)
    }

    /// READ BINARY of the selected EF: `size` bytes when the FCP says, else until the end.
    fn read_binary(&mut self, size: Option<usize>) -> Result<Result<Vec<u8>, Sw>, CaptureError> {
        let mut data = Vec::new();
        loop {
            let want = size.map_or(0xFF, |s| s.saturating_sub(data.len()).min(0xFF));
            if size.is_some() && want == 0 || data.len() > 0x7FFF {
                break;
            }
            let [hi, lo] = (data.len() as u16).to_be_bytes();
            let r = self.send(&[0x00, 0xB0, hi, lo, want as u8])?;
            match r.sw {
                Sw::Ok if r.data.is_empty() => break,
                Sw::Ok => {
                    let short = r.data.len() < want.max(1) && size.is_none();
                    data.extend_from_slice(&r.data);
                    if short {
                        break;
                    }
                }
                Sw::EndOfFile | Sw::WrongLength | Sw::Other(0x6B00) if !data.is_empty() || size == Some(0) => break,
                sw => return Ok(Err(sw)),
            }
        }
        Ok(Ok(data))
    }

    /// Every record of the selected EF.
    fn read_records(&mut self) -> Result<Result<Vec<Vec<u8>>, Sw>, CaptureError> {
        let mut records = Vec::new();
        for n in 1..=254u8 {
            let r = self.send(&[0x00, 0xB2, n, 0x04, 0x00])?;
            match r.sw {
                Sw::Ok => records.push(r.data),
                Sw::RecordNotFound => break,
                _ if n > 1 => break,
                sw => return Ok(Err(sw)),
            }
        }
        Ok(Ok(records))
    }
}

/// The size an FCP gives (tag `80`, else `81`), if any.
fn fcp_size(fcp: &[u8]) -> Option<usize> {
    let body = match fcp {
        [0x62 | 0x6F, _, rest @ ..] => rest,
        _ => fcp,
    };
    let mut i = 0;
    let mut found = None;
    while i + 1 < body.len() {
        let (tag, len) = (body[i], usize::from(body[i + 1]));
        let value = body.get(i + 2..i + 2 + len)?;
        if (tag == 0x80 || tag == 0x81) && found.is_none() && !value.is_empty() && value.len() <= 4 {
            found = Some(value.iter().fold(0usize, |a, b| a << 8 | usize::from(*b)));
        }
        i += 2 + len;
    }
    found
}

/// Captures the card behind `t` (a reader, or any transport) into a twin.
pub fn capture(t: Box<dyn Transport>, opts: &CaptureOptions) -> Result<Capture, CaptureError> {
    let atr = t.atr();
    let model = crate::wire::atr::recognise(&atr);
    let profile = model
        .profile
        .ok_or_else(|| CaptureError::Unsupported(format!("ATR {} is {}", hex::encode(&atr), model.label)))?;
    let template_name = match profile {
        Profile::Cns => "cns",
        Profile::Oberthur => "oberthur",
        Profile::Incrypto34 => "incrypto34",
    };
    let mut twin = fixtures::builtin(template_name)?;
    let mut notes = Vec::new();
    let mut reader = Reader { t: read_only(t), apdus: 0 };

    // The file tree the profile knows, with what the card holds.
    let mut files = 0;
    let mut fcps: Vec<(Vec<u16>, Vec<u8>)> = Vec::new();
    let mut path = Vec::new();
    walk(&mut reader, profile, &mut twin.mf, &mut path, &mut fcps, &mut files, &mut notes)?;

    // Life cycle, CPLC, free EEPROM, counters, through the harness's own client where it has
    // the query (the client runs behind the same gate).
    let mut client = crate::client::open(Box::new(reader.t)).map_err(|e| CaptureError::Unsupported(e.to_string()))?;
    twin.atr = Bytes(atr.clone());
    match client.life_cycle() {
        Ok(Some(0x10)) => twin.life_cycle = LifeCycle::User,
        Ok(Some(0x20)) => twin.life_cycle = LifeCycle::Admin,
        Ok(Some(0x34)) => twin.life_cycle = LifeCycle::Manufacturing,
        Ok(Some(b)) => notes.push(format!("life-cycle byte {b:02X} is none firmalab models: the template's kept")),
        Ok(None) => notes.push("the card has no life-cycle query: the template's kept".into()),
        Err(e) => notes.push(format!("life cycle unreadable ({e}): the template's kept")),
    }
    // What tells a genuine card from firmalab's convenience card: the renewal's read-only
    // capability probe (GET DATA on the CNS; nothing sent on the others), and whether the
    // mask's tries query costs a try.
    match client.on_card_renewal() {
        Ok(crate::client::OnCardRenewal::Available) => {}
        Ok(crate::client::OnCardRenewal::Unavailable(_)) => {
            twin.extensions.clear();
            notes.push(
                "the card does not answer firmalab's capability probe: a strict twin, without firmalab's extensions \
                 (no pending-key renewal commands)"
                    .into(),
            );
        }
        Err(e) => notes.push(format!("capability probe failed ({e}): the template's extensions kept")),
    }
    twin.tries_query_counts = !model.tries_query_free;
    if twin.cplc.is_some() {
        let r = client.transport().exchange(&[0x80, 0xCA, 0x9F, 0x7F, 0x00])?;
        reader.apdus += 1;
        match r.data.as_slice() {
            [0x9F, 0x7F, len, rest @ ..] if r.ok() && usize::from(*len) == rest.len() => {
                twin.cplc = Some(Bytes(rest.to_vec()))
            }
            _ => notes.push(format!("CPLC unreadable ({}): the template's kept", r.sw)),
        }
    }
    counters(client.as_mut(), &model, &mut twin, &mut notes);
    notes.push(format!(
        "PIN and PUK values cannot be read: the twin's are the template's ({})",
        twin.pins.iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(", ")
    ));

    // Fresh key pairs stand in for the private keys.
    let source = match &opts.key_seed {
        Some(label) => KeySource::Seeded(label),
        None => KeySource::Random,
    };
    for k in &mut twin.keys {
        k.pending = None;
        if k.material.is_none() {
            continue;
        }
        let Some(bits) = k.algorithm.rsa_bits() else {
            return Err(CaptureError::Unsupported(format!("key {} is not RSA", k.label)));
        };
        let key = fixtures::rsa_key(&source, &format!("twin {}", k.reference), bits)?;
        k.material = Some(KeyMaterial::from_rsa(&key).map_err(FixtureError::Card)?);
    }
    notes.push(format!(
        "private keys cannot leave a card: {} fresh RSA key pair(s) stand in{}; the certificates no longer match them",
        twin.keys.iter().filter(|k| k.material.is_some()).count(),
        if opts.key_seed.is_some() { " (derived from --seed: public)" } else { "" }
    ));

    // Free EEPROM: the twin's capacity is what it uses plus what the card has free (the
    // Oberthur reports whole KiB: a twin within the same KiB keeps its capacity).
    if let Ok(Some(free)) = client.free_memory() {
        let used = twin.eeprom_used();
        let twin_free = twin.capacity.saturating_sub(used);
        let unit = if profile == Profile::Oberthur { 1024 } else { 1 };
        if twin_free / unit * unit != free {
            twin.capacity = used.saturating_add(free);
            notes.push(format!(
                "capacity {} bytes: {used} used by the twin + {free} the card reports free",
                twin.capacity
            ));
        }
    }
    let serial = client.serial().ok();
    twin.description = format!(
        "twin of the {} card {} in {}, captured read-only by firmalab image capture{}",
        template_name,
        serial.as_deref().unwrap_or("(serial unreadable)"),
        opts.source,
        if opts.scrub { " (personal data scrubbed)" } else { "" }
    );
    twin.history.renewal_count = twin.history.renewal_count.min(1);
    notes.push(format!(
        "device history (first issuance {}, renewals {}) is not on the card: the template's",
        twin.history.first_issuance, twin.history.renewal_count
    ));

    // The FCPs the twin answers, against the card's.
    fcp_differences(&twin, &fcps, &mut notes);

    if opts.scrub {
        let replaced = crate::bundle::scrub_image(&mut twin);
        notes.push(format!("personal data scrubbed: {replaced} value(s) replaced by pseudonyms of the same shape"));
    }
    twin.validate().map_err(CaptureError::Invalid)?;
    Ok(Capture { image: twin, notes, files, apdus: reader.apdus })
}

#[allow(clippy::too_many_arguments)]
fn walk(
    r: &mut Reader,
    profile: Profile,
    node: &mut FileNode,
    path: &mut Vec<u16>,
    fcps: &mut Vec<(Vec<u16>, Vec<u8>)>,
    files: &mut usize,
    notes: &mut Vec<String>,
) -> Result<(), CaptureError> {
    path.push(node.fid.0);
    let here = display_path(path);
    let fcp = r.select(path)?.unwrap_or_default();
    fcps.push((path.clone(), fcp.clone()));
    let secret = SECRET_FILES.iter().any(|(p, f)| *p == profile && *f == path.as_slice());
    match &mut node.body {
        FileBody::Df { children, .. } => {
            let mut kept = Vec::new();
            for mut child in std::mem::take(children) {
                path.push(child.fid.0);
                let present = r.select(path)?.is_some();
                path.pop();
                if present {
                    walk(r, profile, &mut child, path, fcps, files, notes)?;
                    kept.push(child);
                } else {
                    notes.push(format!("{}/{:04X}: not on the card, left out of the twin", here, child.fid.0));
                }
            }
            *children = kept;
        }
        FileBody::Transparent { .. } if secret => {
            notes.push(format!("{here}: holds a secret, not copied: the template's content stands in"));
        }
        FileBody::Transparent { data } => {
            r.select(path)?;
            match r.read_binary(fcp_size(&fcp))? {
                Ok(content) => {
                    data.0 = content;
                    *files += 1;
                }
                Err(sw) => notes.push(format!("{here}: READ BINARY answered {sw}: the template's content stands in")),
            }
        }
        FileBody::Records { records, record_len, .. } => {
            r.select(path)?;
            match r.read_records()? {
                Ok(read) => {
                    if let Some(longest) = read.iter().map(Vec::len).max()
                        && longest > usize::from(*record_len)
                    {
                        *record_len = longest.min(255) as u8;
                    }
                    *records = read.into_iter().map(Bytes).collect();
                    *files += 1;
                }
                Err(sw) => notes.push(format!("{here}: READ RECORD answered {sw}: the template's records stand in")),
            }
        }
        FileBody::PublicKey { key, .. } => notes.push(format!(
            "{here}: public-key EF of key {key}: the twin's shows its stand-in key's public half (an image derives it from the key)"
        )),
        FileBody::PrivateKey { .. } | FileBody::FreeMemory => {}
    }
    path.pop();
    Ok(())
}

/// Tries left, where the harness's client may ask for them (the query is free on the mask).
fn counters(
    client: &mut dyn crate::client::CardClient,
    model: &CardModel,
    twin: &mut CardImage,
    notes: &mut Vec<String>,
) {
    if !model.tries_query_free {
        notes.push(format!(
            "the tries query may cost a try on this mask ({}): not sent; the counters are the template's",
            model.label
        ));
        return;
    }
    let mut all = Vec::new();
    match client.pin_counters() {
        Ok(c) => all.extend(c),
        Err(e) => notes.push(format!("PIN counters unreadable: {e}")),
    }
    match client.puk_counters() {
        Ok(c) => all.extend(c),
        Err(e) => notes.push(format!("PUK counters unreadable: {e}")),
    }
    for c in all {
        let reference = COUNTER_LABELS.iter().find(|(l, _)| *l == c.label).map(|(_, r)| *r);
        let pin = twin.pins.iter_mut().find(|p| p.label == c.label || Some(p.reference.0) == reference);
        match (pin, c.tries_left) {
            (Some(p), Some(n)) => p.tries_left = n.min(p.max_tries),
            (Some(p), None) if c.blocked => p.tries_left = 0,
            (Some(p), None) => notes.push(format!("{}: tries unknown, the template's {} kept", p.label, p.tries_left)),
            (None, _) => notes.push(format!("{}: no such object in the twin", c.label)),
        }
    }
}

/// Compares the FCP the card gave for each file with the one the twin answers.
fn fcp_differences(twin: &CardImage, card: &[(Vec<u16>, Vec<u8>)], notes: &mut Vec<String>) {
    let mut t = crate::transport::in_process::InProcess::ephemeral(
        twin.clone(),
        firmalab_emulator::CardRng::insecure_deterministic(0),
        "twin",
    );
    let mut differ = Vec::new();
    for (path, fcp) in card {
        let mut got = Vec::new();
        for fid in path {
            let [hi, lo] = fid.to_be_bytes();
            match t.exchange(&[0x00, 0xA4, 0x00, 0x00, 0x02, hi, lo, 0x00]) {
                Ok(r) if r.ok() => got = r.data,
                _ => got.clear(),
            }
        }
        if &got != fcp {
            differ.push(format!("{} (card {}, twin {})", display_path(path), hex::encode(fcp), hex::encode(&got)));
        }
    }
    if !differ.is_empty() {
        notes.push(format!(
            "{} FCP(s) differ from the twin's (access conditions and sizes are the profile's): {}",
            differ.len(),
            differ.join("; ")
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::transport::in_process::InProcess;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// An in-process card that records every command reaching it.
    struct Recorded {
        card: InProcess,
        seen: Rc<RefCell<Vec<Vec<u8>>>>,
    }

    impl Transport for Recorded {
        fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            self.seen.borrow_mut().push(command.to_vec());
            self.card.transmit_raw(command)
        }
        fn atr(&self) -> Vec<u8> {
            self.card.atr()
        }
        fn name(&self) -> String {
            self.card.name()
        }
        fn reset(&mut self) -> Result<(), TransportError> {
            self.card.reset()
        }
    }

    /// Luca Verdi's CNS with its CNS0 PIN at 1 try, without EF_ServiziInstallati, in the
    /// administration life cycle: nothing of it is the template's.
    fn original() -> CardImage {
        let mut image = fixtures::builtin("cns-pin-blocked").unwrap();
        image.pins.iter_mut().find(|p| p.reference.0 == 0x1A).unwrap().tries_left = 1;
        let ef1200 = image.mf.children_mut().unwrap().iter_mut().find(|c| c.fid.0 == 0x1200).unwrap();
        ef1200.children_mut().unwrap().retain(|c| c.fid.0 != 0x1203);
        image.life_cycle = LifeCycle::Admin;
        image.validate().unwrap();
        image
    }

    fn capture_of(image: &CardImage, opts: &CaptureOptions) -> (Capture, Vec<Vec<u8>>) {
        let seen = Rc::new(RefCell::new(vec![]));
        let card = InProcess::ephemeral(image.clone(), firmalab_emulator::CardRng::insecure_deterministic(3), "orig");
        let c = capture(Box::new(Recorded { card, seen: seen.clone() }), opts).unwrap();
        let seen = seen.borrow().clone();
        (c, seen)
    }

    fn opts() -> CaptureOptions {
        CaptureOptions { scrub: false, key_seed: Some("capture test".into()), source: "a test".into() }
    }

    #[test]
    fn a_twin_shows_the_cards_public_state_and_only_its_keys_differ() {
        let image = original();
        let (c, _) = capture_of(&image, &opts());
        let mut want = serde_json::to_value(crate::inspect::summarize(&image)).unwrap();
        let mut got = serde_json::to_value(crate::inspect::summarize(&c.image)).unwrap();
        // By design: the description names the capture, and no certificate matches the
        // stand-in keys.
        for v in [&mut want, &mut got] {
            v["description"] = "".into();
            for cert in v["certificates"].as_array_mut().unwrap() {
                cert["key"] = serde_json::Value::Null;
            }
        }
        assert_eq!(got, want);
        let summary = crate::inspect::summarize(&c.image);
        assert!(summary.certificates.iter().all(|c| c.key.is_none()));
        assert!(crate::inspect::summarize(&image).certificates.iter().all(|c| c.key.is_some()));
        // The files are the card's, byte for byte (the free-memory EF is computed).
        assert_eq!(c.image.mf, image.mf);
        assert_eq!((c.image.life_cycle, c.image.atr.clone()), (LifeCycle::Admin, image.atr.clone()));
        for (a, b) in c.image.keys.iter().zip(&image.keys) {
            assert_ne!(a.material, b.material, "key {} is a fresh stand-in", a.label);
        }
        assert!(c.notes.iter().any(|n| n.contains("fresh RSA key pair(s) stand in")), "{:?}", c.notes);
    }

    #[test]
    fn a_genuine_cns_captures_as_a_strict_twin_and_firmalabs_card_keeps_its_extensions() {
        let genuine = fixtures::builtin("twin-cns-incard-1.0").unwrap();
        assert!(genuine.extensions.is_empty());
        let (c, _) = capture_of(&genuine, &opts());
        assert!(c.image.extensions.is_empty(), "{:?}", c.image.extensions);
        assert!(c.notes.iter().any(|n| n.contains("strict twin")), "{:?}", c.notes);
        let (c, _) = capture_of(&original(), &opts());
        assert_eq!(c.image.extensions, original().extensions);
        assert!(!c.image.tries_query_counts);
        let idemia = fixtures::builtin("twin-cns-idemia-2021").unwrap();
        let (c, seen) = capture_of(&idemia, &opts());
        assert!(c.image.tries_query_counts, "the IDEMIA mask's status query counts");
        assert!(!seen.iter().any(|cmd| cmd.get(1) == Some(&0x20)), "no tries query on that mask");
    }

    #[test]
    fn the_capture_sends_only_reads_and_a_write_or_a_pin_cannot_pass_its_gate() {
        let (_, seen) = capture_of(&original(), &opts());
        assert!(!seen.is_empty());
        for c in &seen {
            let read = match c.as_slice() {
                [0x00, 0xA4 | 0xB0 | 0xB2 | 0xC0, ..] | [0x00 | 0x80, 0xCA, ..] => true,
                // The tries query: VERIFY without data (free on this mask).
                [0x00, 0x20, _, _] => true,
                _ => false,
            };
            assert!(read, "capture sent {}", hex::encode(c));
        }
        let image = original();
        let card = InProcess::ephemeral(image.clone(), firmalab_emulator::CardRng::insecure_deterministic(3), "orig");
        let mut gate = read_only(Box::new(card));
        for write in [
            "00D60000013F",               // UPDATE BINARY
            "00200090083131313131313131", // VERIFY with a PIN
            "0046000102080000",           // GENERATE KEY PAIR
            "00E40000023F00",             // DELETE FILE
        ] {
            let r = gate.transmit_raw(&hex::decode(write).unwrap());
            assert!(matches!(r, Err(TransportError::DryRun(_))), "{write}: {r:?}");
        }
    }

    #[test]
    fn scrub_replaces_the_holder_email_and_serial_everywhere_with_the_same_pseudonyms() {
        let mut image = original();
        // An email address in EF_DatiPersonaliAggiuntivi (32 bytes).
        let ef = firmalab_emulator::fs::lookup_mut(&mut image.mf, &[0x3F00, 0x1200, 0x1201]).unwrap();
        let FileBody::Transparent { data } = &mut ef.body else { panic!("1201 is transparent") };
        data.0[..21].copy_from_slice(b"luca.verdi@example.it");
        let (c, _) = capture_of(&image, &CaptureOptions { scrub: true, ..opts() });
        let json = c.image.to_json();
        let hex_of = |s: &str| hex::encode(s.as_bytes());
        for personal in ["VERDI", "LUCA", "VRDLCU75C15F839D", "6010000000000103", "luca.verdi@example.it"] {
            assert!(!json.contains(personal) && !json.contains(&hex_of(personal)), "{personal} left in the twin");
        }
        let s = crate::inspect::summarize(&c.image);
        let holder = s.holder.clone().unwrap();
        let serial = s.serial.clone().unwrap();
        assert_eq!(serial.len(), 16);
        assert!(serial.bytes().all(|b| b.is_ascii_digit()));
        // The certificates name the same pseudonymous holder as EF_DatiPersonali.
        let last = holder.split(' ').nth(1).unwrap();
        assert!(s.certificates.iter().all(|c| c.subject.contains(last)), "{holder}: {:?}", s.certificates);
        assert!(s.certificates.iter().all(|c| c.subject.contains(&serial[serial.len() - 6..])));
        let ef = firmalab_emulator::fs::lookup(&c.image.mf, &[0x3F00, 0x1200, 0x1201]).unwrap();
        let FileBody::Transparent { data } = &ef.body else { panic!("1201 is transparent") };
        let email = String::from_utf8_lossy(&data.0[..21]).into_owned();
        assert!(
            email.len() == 21 && email.as_bytes()[10] == b'@' && email.as_bytes()[18] == b'.',
            "same shape: {email}"
        );
        c.image.validate().unwrap();
    }
}
