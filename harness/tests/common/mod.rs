//! Helpers shared by the harness's flow tests: in-process cards that keep their state between
//! flows (as one physical card), enrolment, outcome checks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::backoffice::Store;
use firmalab_harness::ca::ExpiryRule;
use firmalab_harness::client::{self, CardClient};
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::Policy;
use firmalab_harness::flows::renewal::{self, RenewalOptions};
use firmalab_harness::flows::{FlowReport, Outcome, Runner};
use firmalab_harness::pki::TestCa;
use firmalab_harness::transport::Transport;
use firmalab_harness::transport::in_process::InProcess;
use std::path::PathBuf;

pub mod tools;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn image(name: &str) -> CardImage {
    CardImage::load(&root().join("fixtures/cards").join(name)).unwrap()
}

pub fn ca() -> TestCa {
    TestCa::load(&root().join("fixtures/ca")).unwrap()
}

/// A card that stays in memory and can be reopened after a flow (as the same physical card).
pub struct Bench {
    pub image: CardImage,
}

impl Bench {
    pub fn new(name: &str) -> Self {
        Bench { image: image(name) }
    }
    pub fn transport(&self) -> Box<InProcess> {
        Box::new(InProcess::ephemeral(self.image.clone(), CardRng::insecure_deterministic(3), "test"))
    }
    pub fn client(&self) -> Box<dyn CardClient> {
        client::open(self.transport()).unwrap()
    }
}

/// Runs a flow on an in-process card and keeps the card's state afterwards.
pub fn run(bench: &mut Bench, flow: &str, now: Date, f: impl FnOnce(Runner<'_>) -> FlowReport) -> FlowReport {
    let shared = std::rc::Rc::new(std::cell::RefCell::new(None));
    let transport = Keep { inner: bench.transport(), out: shared.clone() };
    let mut sink = |_: firmalab_harness::flows::Event<'_>| {};
    let runner = Runner::open(Box::new(transport), flow, now, &mut sink).unwrap();
    let report = f(runner);
    if let Some(img) = shared.borrow_mut().take() {
        bench.image = img;
    }
    report
}

/// A transport that hands the card's image back when dropped.
pub struct Keep {
    inner: Box<InProcess>,
    out: std::rc::Rc<std::cell::RefCell<Option<CardImage>>>,
}

impl firmalab_harness::transport::Transport for Keep {
    fn transmit_raw(&mut self, c: &[u8]) -> Result<Vec<u8>, firmalab_harness::transport::TransportError> {
        self.inner.transmit_raw(c)
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn reset(&mut self) -> Result<(), firmalab_harness::transport::TransportError> {
        self.inner.reset()
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        *self.out.borrow_mut() = Some(self.inner.card().image().clone());
    }
}

pub fn enrolled(bench: &Bench, email: &str, mobile: &str) -> Store {
    let mut bo = Store::in_memory();
    renewal::enroll(bench.client().as_mut(), &mut bo, "CDRL-ROMA-01", email, mobile, REFERENCE_DATE).unwrap();
    bo
}

pub fn refused(r: &FlowReport) -> &str {
    match &r.outcome {
        Outcome::Refused { reason, .. } => reason.as_str(),
        other => panic!("expected a refusal, got {other:?}\nsteps: {:#?}", r.steps),
    }
}

pub fn done(r: &FlowReport) -> &str {
    match &r.outcome {
        Outcome::Done { state, .. } => state.as_str(),
        other => panic!("expected success, got {other:?}\nsteps: {:#?}", r.steps),
    }
}

/// A test's own folder in the temporary folder, removed with its contents when dropped.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("firmalab-{name}-")).tempdir().unwrap()
}

/// Renewal options whose output folder is removed when they are dropped.
pub struct Options {
    pub options: RenewalOptions,
    _out: tempfile::TempDir,
}

impl std::ops::Deref for Options {
    type Target = RenewalOptions;
    fn deref(&self) -> &RenewalOptions {
        &self.options
    }
}

impl std::ops::DerefMut for Options {
    fn deref_mut(&mut self) -> &mut RenewalOptions {
        &mut self.options
    }
}

pub fn options(dir: &str) -> Options {
    let out = scratch(&format!("renewal-{dir}"));
    let options = RenewalOptions {
        pin: "12345678".into(),
        acknowledge_key_loss: true,
        holder_data_correct: true,
        email: "holder@example.it".into(),
        mobile: "+393330000001".into(),
        accept_contracts: true,
        cdrl: "CDRL-ROMA-01".into(),
        expiry: ExpiryRule::FromOldExpiry,
        out_dir: out.path().join("out"),
        policy: Policy::default(),
    };
    Options { options, _out: out }
}

/// Like [`run`], with the card's transport wrapped (fault injection).
pub fn run_wrapped(
    bench: &mut Bench,
    flow: &str,
    now: Date,
    wrap: impl FnOnce(Box<dyn Transport>) -> Box<dyn Transport>,
    f: impl FnOnce(Runner<'_>) -> FlowReport,
) -> Option<FlowReport> {
    let shared = std::rc::Rc::new(std::cell::RefCell::new(None));
    let transport = wrap(Box::new(Keep { inner: bench.transport(), out: shared.clone() }));
    let mut sink = |_: firmalab_harness::flows::Event<'_>| {};
    // Opening may itself hit the fault (Oberthur's connect sequence).
    let report = Runner::open(transport, flow, now, &mut sink).ok().map(f);
    if let Some(img) = shared.borrow_mut().take() {
        bench.image = img;
    }
    report
}
