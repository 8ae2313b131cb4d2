//! Fault injection: a token pulled out (power cut before or after the card executes the
//! command), a dropped connection, or a corrupted answer, during the renewal, the reset and the
//! PIN unblock, on both profiles, with the card in memory and with the card in an image file
//! (saved before every answer, reloaded from disk after a power cut, as a real card restarts
//! from its EEPROM).
//!
//! After every fault the card is still one its holder can use: PIN and PUK counters full, the
//! personal data unchanged, one certificate per key role, and both keys (qualified signature
//! and authentication) sign with signatures their certificates verify; the back office knows
//! where the practice stands, and running the flow again completes it.
//!
//! How much runs: by default a deterministic sample of the fault positions that reaches every
//! step of every flow with every fault kind on both media ([`positions`]);
//! `FIRMALAB_FAULTS=full` injects every fault kind at every APDU.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{Bench, ca, done, enrolled, image, options, refused, run_wrapped};
use der::Decode;
use der::referenced::OwnedToRef;
use firmalab_emulator::security::PinRole;
use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::backoffice::{CertStatus, PracticeKind, PracticeState, Store};
use firmalab_harness::ca::serial_hex;
use firmalab_harness::client::{self, CardClient, KeyRole, PinOutcome};
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::{Event, Finished, FlowReport, Outcome, Reason, Runner, StepStatus, pin, renewal, reset};
use firmalab_harness::pki::TestCa;
use firmalab_harness::transport::fault::{Fault, Faulty};
use firmalab_harness::transport::in_process::InProcess;
use firmalab_harness::transport::{Transport, TransportError, exchange};
use firmalab_harness::wire::{Profile, Sw};
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const PIN: &str = "12345678";
const PUK: &str = "87654321";
const NEW_PIN: &str = "13571357";
const EMAIL: &str = "holder@example.it";
const MOBILE: &str = "+393330000001";
const KINDS: [Fault; 4] = [Fault::CutAfter, Fault::CutBefore, Fault::Drop, Fault::Corrupt];

// ---------------------------------------------------------------------------------------------
// Which positions a sweep injects at.

/// How much a sweep runs, from `FIRMALAB_FAULTS`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sweep {
    /// `full`: every fault kind at every APDU.
    Full,
    /// Unset, `sample` (shift 0) or `sample:N`: [`positions`], the one-in-[`STRIDE`] positions
    /// shifted by `N` (CI passes a number taken from the commit, so successive commits sample
    /// different APDUs; a failure names its `N` to reproduce it).
    Sample(usize),
}

fn sweep_kind() -> Sweep {
    let v = std::env::var("FIRMALAB_FAULTS").unwrap_or_default();
    match v.as_str() {
        "full" => Sweep::Full,
        "sample" | "" => Sweep::Sample(0),
        other => match other.strip_prefix("sample:").map(str::parse::<usize>) {
            Some(Ok(n)) => Sweep::Sample(n % STRIDE),
            _ => panic!("FIRMALAB_FAULTS={other:?}: expected `full`, `sample` or `sample:N`"),
        },
    }
}

/// The sampled sweep injects each (kind, medium) pair at one APDU in `STRIDE`.
const STRIDE: usize = 64;

/// The APDU positions a sweep injects `kind` at, on `medium`, in a flow whose clean run sent
/// `n` APDUs in `steps`. Full sweep: all of them. Sampled: in every step that sends any, its
/// first APDU on the in-memory card and its last on the file-backed one (so each fault kind
/// meets both ends of every step); and one APDU in [`STRIDE`], from an offset that rotates
/// with the kind and the medium so that the eight pairs together land on every eighth APDU.
fn positions(steps: &[Range<usize>], n: usize, kind: Fault, medium: Medium) -> Vec<usize> {
    let Sweep::Sample(shift) = sweep_kind() else { return (0..n).collect() };
    let pair = 2 * KINDS.iter().position(|&f| f == kind).unwrap_or(0) + medium as usize;
    let mut v: Vec<usize> = ((pair * STRIDE / 8 + shift) % STRIDE..n).step_by(STRIDE).collect();
    for s in steps.iter().filter(|s| !s.is_empty()) {
        v.push(match medium {
            Medium::Memory => s.start,
            Medium::File => s.end - 1,
        });
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The APDU positions of each step of a clean run, and how many APDUs it sent. Every APDU the
/// flow's transport sends is one exchange of the transcript (the connect sequence is step
/// `start`), so these are the positions [`Faulty`] counts.
fn shape(report: &FlowReport) -> (Vec<Range<usize>>, usize) {
    let mut at = 0;
    let mut steps = vec![];
    for s in &report.transcript.steps {
        steps.push(at..at + s.exchanges.len());
        at += s.exchanges.len();
    }
    (steps, at)
}

// ---------------------------------------------------------------------------------------------
// The card under test, in memory or in an image file.

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Medium {
    Memory = 0,
    File = 1,
}

/// A folder of one case (the card's image file, the flow's output), removed afterwards. On
/// tmpfs where there is one (`/dev/shm`): the hosted card fsyncs every save, which on a disk
/// costs more than the card; the sweep tests the order of save and answer, not the disk.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_owned() } else { std::env::temp_dir() };
        let dir = base.join(format!("firmalab-faults-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One session's in-memory card: a power cut is a reset (the volatile state goes, the image
/// stays); the image goes back to the test when the session ends.
struct InMemory {
    host: InProcess,
    out: Rc<RefCell<Option<CardImage>>>,
}

impl Transport for InMemory {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.host.transmit_raw(command)
    }
    fn atr(&self) -> Vec<u8> {
        self.host.atr()
    }
    fn name(&self) -> String {
        self.host.name()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        self.host.reset()
    }
}

impl Drop for InMemory {
    fn drop(&mut self) {
        *self.out.borrow_mut() = Some(self.host.card().image().clone());
    }
}

/// One session's card in an image file (the hosted card: every change saved before its
/// answer). A power cut throws the card away and loads it again from the file, first checking
/// that the file holds everything the card did up to the cut; so does the end of the session.
/// A change answered but not yet saved would fail here.
struct OnDisk {
    path: PathBuf,
    host: Option<InProcess>,
}

impl OnDisk {
    fn open(path: &Path) -> Self {
        let host = InProcess::open(path, CardRng::insecure_deterministic(3)).unwrap();
        OnDisk { path: path.to_owned(), host: Some(host) }
    }

    fn host(&mut self) -> Result<&mut InProcess, TransportError> {
        self.host.as_mut().ok_or_else(|| TransportError::CardGone("the image could not be reloaded".into()))
    }

    fn all_saved(&self, when: &str) {
        if let Some(host) = &self.host {
            let on_disk = CardImage::load(&self.path).unwrap();
            assert!(
                on_disk == *host.card().image(),
                "{when}: the card holds changes its image file {} does not: not saved before the answer",
                self.path.display()
            );
        }
    }
}

impl Transport for OnDisk {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.host()?.transmit_raw(command)
    }
    fn atr(&self) -> Vec<u8> {
        self.host.as_ref().map(|h| h.atr()).unwrap_or_default()
    }
    fn name(&self) -> String {
        format!("in-process {}", self.path.display())
    }
    /// Power off and on: the card restarts from what its EEPROM (the file) holds.
    fn reset(&mut self) -> Result<(), TransportError> {
        self.all_saved("at the power cut");
        self.host = None;
        self.host = Some(
            InProcess::open(&self.path, CardRng::insecure_deterministic(3))
                .map_err(|e| TransportError::Other(e.to_string()))?,
        );
        Ok(())
    }
}

impl Drop for OnDisk {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.all_saved("at the end of the session");
        }
    }
}

/// The card as one physical card across sessions: `image` is what it holds between them.
struct Card {
    image: CardImage,
    file: Option<PathBuf>,
}

impl Card {
    fn new(fixture: &str, medium: Medium, scratch: &Scratch) -> Self {
        let image = image(fixture);
        let file = (medium == Medium::File).then(|| {
            let path = scratch.0.join("card.json");
            image.save(&path).unwrap();
            path
        });
        Card { image, file }
    }

    /// Runs a flow in one session, the card's transport wrapped by `wrap`; `None` when the
    /// session could not even open (a fault in the connect sequence).
    fn session(
        &mut self,
        flow: &str,
        wrap: impl FnOnce(Box<dyn Transport>) -> Box<dyn Transport>,
        f: impl FnOnce(Runner<'_>) -> FlowReport,
    ) -> Option<FlowReport> {
        let out = Rc::new(RefCell::new(None));
        let inner: Box<dyn Transport> = match &self.file {
            None => Box::new(InMemory {
                host: InProcess::ephemeral(self.image.clone(), CardRng::insecure_deterministic(3), "test"),
                out: out.clone(),
            }),
            Some(path) => Box::new(OnDisk::open(path)),
        };
        let mut sink = |_: Event<'_>| {};
        let report = Runner::open(wrap(inner), flow, REFERENCE_DATE, &mut sink).ok().map(f);
        self.image = match &self.file {
            None => out.borrow_mut().take().expect("the session hands the card back"),
            Some(path) => CardImage::load(path).unwrap(),
        };
        report
    }

    fn run(&mut self, flow: &str, f: impl FnOnce(Runner<'_>) -> FlowReport) -> FlowReport {
        self.session(flow, |t| t, f).expect("the card answers")
    }

    /// A client on a copy of the card: checks leave the card under test as they found it.
    fn client(&self) -> Box<dyn CardClient> {
        let t = InProcess::ephemeral(self.image.clone(), CardRng::insecure_deterministic(5), "check");
        client::open(Box::new(t)).unwrap()
    }

    fn enrolled(&self) -> Store {
        enrolled(&Bench { image: self.image.clone() }, EMAIL, MOBILE)
    }
}

// ---------------------------------------------------------------------------------------------
// The checks after every fault.

/// What the checks compare with, taken once per fixture from the untouched card: its
/// certificates, its personal data, and the public key of every certificate met (parsed once:
/// the checks run hundreds of times).
struct Witness {
    fixture: &'static str,
    original: Vec<(KeyRole, Vec<u8>)>,
    personal: Option<Vec<u8>>,
    keys: RefCell<HashMap<Vec<u8>, RsaPublicKey>>,
}

impl Witness {
    fn new(fixture: &'static str) -> Self {
        let mut c =
            client::open(Box::new(InProcess::ephemeral(image(fixture), CardRng::insecure_deterministic(5), fixture)))
                .unwrap();
        let original = certificates(c.as_mut(), fixture);
        let personal = personal_data(c.as_mut());
        assert!(personal.as_ref().is_some_and(|p| !p.is_empty()), "{fixture}: no personal data to watch");
        Witness { fixture, original, personal, keys: RefCell::default() }
    }

    fn key(&self, der: &[u8]) -> RsaPublicKey {
        self.keys
            .borrow_mut()
            .entry(der.to_vec())
            .or_insert_with(|| {
                let cert = x509_cert::Certificate::from_der(der).unwrap();
                RsaPublicKey::try_from(cert.tbs_certificate().subject_public_key_info().owned_to_ref()).unwrap()
            })
            .clone()
    }

    fn original(&self, role: KeyRole) -> &[u8] {
        &self.original.iter().find(|(r, _)| *r == role).unwrap().1
    }
}

/// The card's certificates by role, signature first; exactly one per role.
fn certificates(c: &mut dyn CardClient, context: &str) -> Vec<(KeyRole, Vec<u8>)> {
    let certs = c.certificates().unwrap_or_else(|e| panic!("{context}: certificates unreadable: {e}"));
    let roles: Vec<KeyRole> = certs.iter().map(|x| x.role).collect();
    assert_eq!(certs.len(), 2, "{context}: {} certificates ({roles:?}), expected one per key role", certs.len());
    [KeyRole::Signature, KeyRole::Authentication]
        .into_iter()
        .map(|role| {
            let der = certs
                .iter()
                .find(|x| x.role == role)
                .unwrap_or_else(|| panic!("{context}: no {role:?} certificate ({roles:?})"))
                .der
                .clone();
            (role, der)
        })
        .collect()
}

/// The holder's data as stored, read with plain SELECT and READ BINARY: on the CNS
/// EF_DatiPersonali (3F00/1100/1102), on Oberthur the token info (3F00/5011/1000) that carries
/// the holder's name. `None` when the file is not there.
fn personal_data(c: &mut dyn CardClient) -> Option<Vec<u8>> {
    let profile = c.profile();
    let t = c.transport();
    let selected = match profile {
        Profile::Cns => exchange(t, &[0x00, 0xA4, 0x08, 0x00, 0x04, 0x11, 0x00, 0x11, 0x02, 0x00]).unwrap(),
        Profile::Oberthur => {
            let mut r = None;
            for fid in [[0x3F, 0x00], [0x50, 0x11], [0x10, 0x00]] {
                let x = exchange(t, &[0x00, 0xA4, 0x00, 0x00, 0x02, fid[0], fid[1]]).unwrap();
                if !x.ok() {
                    r = Some(x);
                    break;
                }
                r = Some(x);
            }
            r.unwrap()
        }
        // The fault sweeps run the CNS and Oberthur flows only: an Incrypto34 is neither
        // renewed nor reset by its holder.
        Profile::Incrypto34 => unreachable!("no fault sweep runs on an Incrypto34"),
    };
    if selected.sw == Sw::FileNotFound {
        return None;
    }
    assert!(selected.ok(), "select the personal data: {}", selected.sw);
    let size = fcp_size(&selected.data).expect("the personal data's FCP gives its size");
    let mut data = vec![];
    while data.len() < size {
        let n = (size - data.len()).min(255) as u8;
        let off = data.len();
        let r = exchange(t, &[0x00, 0xB0, (off >> 8) as u8, off as u8, n]).unwrap();
        assert!(r.ok() && !r.data.is_empty(), "read the personal data at {off}: {}", r.sw);
        data.extend(r.data);
    }
    Some(data)
}

/// Tag 80 (or 81) of an FCP, 2 bytes: the file size.
fn fcp_size(fcp: &[u8]) -> Option<usize> {
    let mut rest = fcp.get(2..)?;
    while let [tag, len, more @ ..] = rest {
        let v = more.get(..usize::from(*len))?;
        if matches!(tag, 0x80 | 0x81) && v.len() == 2 {
            return Some(usize::from(u16::from_be_bytes([v[0], v[1]])));
        }
        rest = &more[v.len()..];
    }
    None
}

/// Every PIN and PUK counter full, read from the card's image before anything presents a PIN.
fn counters_full(image: &CardImage, context: &str) {
    for p in &image.pins {
        assert_eq!(p.tries_left, p.max_tries, "{context}: {} counter {} of {}", p.label, p.tries_left, p.max_tries);
    }
}

/// The card is one its holder can use: counters full, personal data as `personal`, one
/// certificate per key role, and each role's key makes signatures its certificate verifies.
/// Returns the certificates, signature first.
fn holds_up(w: &Witness, card: &Card, pin: &str, context: &str) -> Vec<(KeyRole, Vec<u8>)> {
    counters_full(&card.image, context);
    let mut c = card.client();
    assert_eq!(personal_data(c.as_mut()), w.personal, "{context}: personal data changed");
    let certs = certificates(c.as_mut(), context);
    for (role, der) in &certs {
        let digest: [u8; 32] = Sha256::digest(format!("{context} {role:?}")).into();
        let sig = c
            .sign_sha256(*role, None, &digest, pin)
            .unwrap_or_else(|e| panic!("{context}: the {role:?} key cannot sign: {e}"));
        w.key(der)
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
            .unwrap_or_else(|_| panic!("{context}: the {role:?} key does not match its certificate"));
    }
    certs
}

fn serial_of(der: &[u8]) -> String {
    serial_hex(&x509_cert::Certificate::from_der(der).unwrap())
}

/// Runs `case` at each position, printing how many ran and how long they took.
fn sweep(what: &str, at: &[usize], mut case: impl FnMut(usize)) {
    let t = Instant::now();
    for &i in at {
        case(i);
    }
    eprintln!("{what}: {} faults ({:?}) in {:.1} s", at.len(), sweep_kind(), t.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// The fault kinds, as the card sees them.

/// A wrong PIN presented as the faulted APDU: the counter says whether the card executed it
/// (in memory, and on disk after the reload a cut means).
#[test]
fn a_cut_before_never_reaches_the_card_while_a_drop_and_a_cut_after_execute_the_command() {
    // VERIFY of PIN CNS0 (reference 90 from the MF) with a wrong value.
    let wrong = [0x00, 0x20, 0x00, 0x90, 0x08, b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'0'];
    for medium in [Medium::Memory, Medium::File] {
        for (fault, executed) in
            [(Fault::CutBefore, false), (Fault::CutAfter, true), (Fault::Drop, true), (Fault::Corrupt, true)]
        {
            let context = format!("{fault:?} ({medium:?})");
            let scratch = Scratch::new("kinds");
            let mut card = Card::new("cns-renewable.json", medium, &scratch);
            let answer = Rc::new(RefCell::new(None));
            let seen = answer.clone();
            let _ = card.session(
                "verify",
                |t| Box::new(Faulty::new(t, 0, fault)),
                move |mut r| {
                    *seen.borrow_mut() = Some(r.client.transport().transmit_raw(&wrong));
                    r.finish(
                        "verify",
                        String::new(),
                        Ok((Finished::PinChanged, String::new())),
                        serde_json::Value::Null,
                    )
                },
            );
            let tries: Vec<u8> =
                card.image.pins.iter().filter(|p| p.role == PinRole::User).map(|p| p.tries_left).collect();
            assert_eq!(tries.iter().filter(|&&t| t == 2).count(), usize::from(executed), "{context}: {tries:?}");
            let answer = answer.borrow_mut().take().unwrap();
            match fault {
                Fault::Corrupt => assert_eq!(answer, Ok(vec![0x63 ^ 0x5A, 0xC2 ^ 0x5A]), "{context}"),
                _ => assert!(matches!(answer, Err(TransportError::CardGone(_))), "{context}: {answer:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Renewal.

fn clean_renewal(fixture: &str, ca: &TestCa) -> (Vec<Range<usize>>, usize) {
    let scratch = Scratch::new("clean");
    let mut card = Card::new(fixture, Medium::Memory, &scratch);
    let mut bo = card.enrolled();
    let mut o = options("clean");
    o.out_dir = scratch.0.join("out");
    let r = card.run("renewal", |r| renewal::run(r, ca, &mut bo, &o));
    assert_eq!(done(&r), "AwaitingCdrlAuthorization");
    shape(&r)
}

fn renewal_with_fault(w: &Witness, ca: &TestCa, medium: Medium, at: usize, fault: Fault) {
    let context = format!("renewal on {} ({medium:?}): {fault:?} at APDU {at}", w.fixture);
    let scratch = Scratch::new("renewal");
    let mut card = Card::new(w.fixture, medium, &scratch);
    let mut bo = card.enrolled();
    let mut o = options("faults");
    o.out_dir = scratch.0.join("out");
    let first = card.session("renewal", |t| Box::new(Faulty::new(t, at, fault)), |r| renewal::run(r, ca, &mut bo, &o));
    // After the fault: a card the holder can use, with certificates the CA knows.
    for (role, der) in holds_up(w, &card, PIN, &context) {
        let known = der == w.original(role)
            || bo.data.cert(&serial_of(&der)).is_some_and(|c| c.status == CertStatus::Suspended && c.role == role);
        assert!(known, "{context}: the {role:?} certificate is neither the card's own nor one issued in this renewal");
    }
    for p in &bo.data.practices {
        assert!(
            matches!(
                p.state,
                PracticeState::AttesaOriginali
                    | PracticeState::RenewalInProgress
                    | PracticeState::AwaitingCdrlAuthorization
            ),
            "{context}: practice {:?}",
            p.state
        );
    }
    let first_done = matches!(first.as_ref().map(|r| &r.outcome), Some(Outcome::Done { .. }));
    // Running the flow again completes it.
    let again = card.run("renewal", |r| renewal::run(r, ca, &mut bo, &o));
    if first_done {
        assert_eq!(refused(&again), "AlreadyAwaitingAuthorization", "{context}");
    } else {
        assert_eq!(done(&again), "AwaitingCdrlAuthorization", "{context}: rerun {:?}", again.outcome);
    }
    let certs = holds_up(w, &card, PIN, &context);
    // Both keys renewed: new certificates with new public keys, and no key object left over.
    for (role, der) in &certs {
        assert_ne!(der.as_slice(), w.original(*role), "{context}: the {role:?} certificate was not renewed");
        assert_ne!(w.key(der), w.key(w.original(*role)), "{context}: the {role:?} key was not renewed");
        let record = bo
            .data
            .cert(&serial_of(der))
            .unwrap_or_else(|| panic!("{context}: the card's {role:?} certificate is unknown to the registry"));
        assert_eq!(record.status, CertStatus::Suspended, "{context}: the new certificate waits for the CDRL");
    }
    let keys = card.image.keys.iter().filter(|k| k.material.is_some() || k.pending.is_some()).count();
    assert_eq!(keys, 2, "{context}: {keys} key objects on the card, expected the two in use");
    assert_eq!(bo.data.cards[0].renewal_count, 1, "{context}: counted once");
    let renewal = bo.data.practices.iter().filter(|p| p.kind == PracticeKind::Renewal).collect::<Vec<_>>();
    assert_eq!(renewal.len(), 1, "{context}: one renewal practice");
    assert_eq!(renewal[0].state, PracticeState::AwaitingCdrlAuthorization, "{context}");
    assert_eq!(
        bo.data.certificates.iter().filter(|c| c.status == CertStatus::Suspended).count(),
        2,
        "{context}: exactly the two installed certificates wait"
    );
}

fn renewal_sweep(fixture: &'static str, medium: Medium, kinds: &[Fault]) {
    let ca = ca();
    let w = Witness::new(fixture);
    let (steps, n) = clean_renewal(fixture, &ca);
    for &fault in kinds {
        let at = positions(&steps, n, fault, medium);
        sweep(&format!("renewal on {fixture} ({medium:?}), {fault:?} of {n} APDUs"), &at, |i| {
            renewal_with_fault(&w, &ca, medium, i, fault);
        });
    }
}

// One test per profile, medium and pair of fault kinds: the test threads share them out.
const CUTS: [Fault; 2] = [Fault::CutAfter, Fault::CutBefore];
const DROPS_AND_CORRUPTIONS: [Fault; 2] = [Fault::Drop, Fault::Corrupt];

#[test]
fn renewal_on_the_cns_in_memory_survives_power_cuts() {
    renewal_sweep("cns-renewable.json", Medium::Memory, &CUTS);
}

#[test]
fn renewal_on_the_cns_in_memory_survives_dropped_connections_and_corrupted_answers() {
    renewal_sweep("cns-renewable.json", Medium::Memory, &DROPS_AND_CORRUPTIONS);
}

#[test]
fn renewal_on_the_cns_in_an_image_file_survives_power_cuts() {
    renewal_sweep("cns-renewable.json", Medium::File, &CUTS);
}

#[test]
fn renewal_on_the_cns_in_an_image_file_survives_dropped_connections_and_corrupted_answers() {
    renewal_sweep("cns-renewable.json", Medium::File, &DROPS_AND_CORRUPTIONS);
}

#[test]
fn renewal_on_oberthur_in_memory_survives_power_cuts() {
    renewal_sweep("oberthur-renewable.json", Medium::Memory, &CUTS);
}

#[test]
fn renewal_on_oberthur_in_memory_survives_dropped_connections_and_corrupted_answers() {
    renewal_sweep("oberthur-renewable.json", Medium::Memory, &DROPS_AND_CORRUPTIONS);
}

#[test]
fn renewal_on_oberthur_in_an_image_file_survives_power_cuts() {
    renewal_sweep("oberthur-renewable.json", Medium::File, &CUTS);
}

#[test]
fn renewal_on_oberthur_in_an_image_file_survives_dropped_connections_and_corrupted_answers() {
    renewal_sweep("oberthur-renewable.json", Medium::File, &DROPS_AND_CORRUPTIONS);
}

// ---------------------------------------------------------------------------------------------
// Reset and PIN unblock.

fn reset_with_fault(w: &Witness, blank: &Option<Vec<u8>>, medium: Medium, at: usize, fault: Fault) {
    let context = format!("reset on {} ({medium:?}): {fault:?} at APDU {at}", w.fixture);
    let scratch = Scratch::new("reset");
    let mut card = Card::new(w.fixture, medium, &scratch);
    let mut bo = card.enrolled();
    let first = card.session("reset", |t| Box::new(Faulty::new(t, at, fault)), |r| reset::reset(r, PIN, &mut bo));
    let first_done = matches!(first.as_ref().map(|r| &r.outcome), Some(Outcome::Done { .. }));
    counters_full(&card.image, &context);
    if !first_done && !card.client().certificates().unwrap().is_empty() {
        // Not erased yet: still the holder's working card.
        let certs = holds_up(w, &card, PIN, &context);
        assert_eq!(certs, w.original, "{context}: the certificates changed");
    }
    // Run again with the holder's PIN, as the user does. If the erase had happened, the card
    // now has the default PIN: the flow says so (it never tries 12345 on its own), and the
    // user runs it again with --default-pin, whose success restores the counter.
    let mut again = card.run("reset", |r| reset::reset(r, PIN, &mut bo));
    if let Outcome::Refused { reason, message } = &again.outcome {
        assert_eq!(*reason, Reason::WrongPin, "{context}: {message}");
        assert!(message.contains("--default-pin") && message.contains("2 tries left"), "{context}: {message}");
        again = card.run("reset", |r| reset::reset(r, "12345", &mut bo));
    }
    assert_eq!(done(&again), "Reset", "{context}");
    counters_full(&card.image, &context);
    let mut c = card.client();
    assert!(c.certificates().unwrap().is_empty(), "{context}: blank");
    assert_eq!(personal_data(c.as_mut()), *blank, "{context}: personal data not as a reset leaves it");
    assert_eq!(c.verify_pin("12345").unwrap(), PinOutcome::Accepted, "{context}");
    assert!(card.image.keys.iter().all(|k| k.material.is_none() && k.pending.is_none()), "{context}: no key left");
}

fn blocked(card: &mut Card) {
    for p in card.image.pins.iter_mut().filter(|p| p.role == PinRole::User) {
        p.tries_left = 0;
    }
    if let Some(path) = &card.file {
        card.image.save(path).unwrap();
    }
}

fn unblock_with_fault(w: &Witness, medium: Medium, at: usize, fault: Fault) {
    let context = format!("unblock on {} ({medium:?}): {fault:?} at APDU {at}", w.fixture);
    let scratch = Scratch::new("unblock");
    let mut card = Card::new(w.fixture, medium, &scratch);
    blocked(&mut card);
    let _ = card.session(
        "pin-unblock",
        |t| Box::new(Faulty::new(t, at, fault)),
        |r| pin::unblock(r, PUK, NEW_PIN, NEW_PIN),
    );
    // The PIN is blocked or unblocked, the PUK spent no try, the rest untouched.
    for p in card.image.pins.iter().filter(|p| p.role != PinRole::User) {
        assert_eq!(p.tries_left, p.max_tries, "{context}: {}", p.label);
    }
    let mut c = card.client();
    assert_eq!(personal_data(c.as_mut()), w.personal, "{context}: personal data changed");
    assert_eq!(certificates(c.as_mut(), &context), w.original, "{context}: the certificates changed");
    let again = card.run("pin-unblock", |r| pin::unblock(r, PUK, NEW_PIN, NEW_PIN));
    assert_eq!(done(&again), "PinUnblocked", "{context}");
    let certs = holds_up(w, &card, NEW_PIN, &context);
    assert_eq!(certs, w.original, "{context}: the certificates changed");
}

fn reset_and_unblock_sweep(medium: Medium) {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let w = Witness::new(fixture);
        // A clean reset: its shape and what it leaves of the personal data.
        let scratch = Scratch::new("clean");
        let mut card = Card::new(fixture, Medium::Memory, &scratch);
        let mut bo = card.enrolled();
        let r = card.run("reset", |r| reset::reset(r, PIN, &mut bo));
        assert_eq!(done(&r), "Reset");
        let blank = personal_data(card.client().as_mut());
        let (steps, n) = shape(&r);
        for fault in KINDS {
            sweep(
                &format!("reset on {fixture} ({medium:?}), {fault:?} of {n} APDUs"),
                &positions(&steps, n, fault, medium),
                |i| {
                    reset_with_fault(&w, &blank, medium, i, fault);
                },
            );
        }
        // A clean unblock: its shape.
        let mut card = Card::new(fixture, Medium::Memory, &scratch);
        blocked(&mut card);
        let r = card.run("pin-unblock", |r| pin::unblock(r, PUK, NEW_PIN, NEW_PIN));
        assert_eq!(done(&r), "PinUnblocked");
        let (steps, n) = shape(&r);
        for fault in KINDS {
            sweep(
                &format!("unblock on {fixture} ({medium:?}), {fault:?} of {n} APDUs"),
                &positions(&steps, n, fault, medium),
                |i| {
                    unblock_with_fault(&w, medium, i, fault);
                },
            );
        }
    }
}

#[test]
fn reset_and_unblock_in_memory_survive_every_fault_on_both_profiles() {
    reset_and_unblock_sweep(Medium::Memory);
}

#[test]
fn reset_and_unblock_in_an_image_file_survive_every_fault_on_both_profiles() {
    reset_and_unblock_sweep(Medium::File);
}

#[test]
fn a_diagnostic_cut_short_by_the_card_says_what_failed_in_plain_words() {
    let mut bench = Bench::new("cns-renewable.json");
    let bo = firmalab_harness::backoffice::BackOffice::default();
    let policy = firmalab_harness::flows::diagnostic::Policy::default();
    let r = run_wrapped(
        &mut bench,
        "diagnostic",
        REFERENCE_DATE,
        |t| Box::new(Faulty::new(t, 3, Fault::Drop)),
        |r| firmalab_harness::flows::diagnostic::run(r, &bo, &policy, None),
    )
    .unwrap();
    let Outcome::Failed { message } = &r.outcome else { panic!("{:?}", r.outcome) };
    assert!(message.starts_with("card removed or reset: "), "{message}");
    let step = &r.steps[0];
    assert_eq!((step.name.as_str(), step.status), ("Diagnostic", StepStatus::Failed));
    assert_eq!(&step.detail, message, "the step shows the message, not a debug dump");
}
