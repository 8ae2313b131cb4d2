//! Every flow checks the secrets it was given against the card's rule before the first APDU
//! (issue 14 item 6): a 13-digit PIN on a CNS is refused `BadLength` and the card, behind a
//! transport that counts, sees nothing; on Oberthur nothing after the client's connect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_harness::backoffice::Store;
use firmalab_harness::ca::ExpiryRule;
use firmalab_harness::client_auth::Challenge;
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::{self, Policy};
use firmalab_harness::flows::import::{self, ImportOptions};
use firmalab_harness::flows::order::{self, OrderOptions};
use firmalab_harness::flows::renewal;
use firmalab_harness::flows::{Event, FlowReport, Outcome, Reason, Runner, pin, reset};
use firmalab_harness::transport::{Transport, TransportError};
use std::cell::Cell;
use std::rc::Rc;

/// Counts the APDUs that reach the card.
struct Counting {
    inner: Box<dyn Transport>,
    sent: Rc<Cell<usize>>,
}

impl Transport for Counting {
    fn transmit_raw(&mut self, c: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.sent.set(self.sent.get() + 1);
        self.inner.transmit_raw(c)
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        self.inner.reset()
    }
}

type Flow = Box<dyn Fn(Runner<'_>) -> FlowReport>;

const BAD: &str = "1234567890123";

fn flows() -> Vec<(&'static str, Flow)> {
    vec![
        ("diagnostic", Box::new(|r| diagnostic::run(r, &Default::default(), &Policy::default(), Some(BAD)))),
        ("pin-change", Box::new(|r| pin::change(r, BAD, "24682468", "24682468"))),
        ("pin-change new", Box::new(|r| pin::change(r, "12345678", "2468246x", "2468246x"))),
        ("pin-unblock", Box::new(|r| pin::unblock(r, BAD, "24682468", "24682468"))),
        ("puk-change", Box::new(|r| pin::change_puk(r, BAD, "11112222", "11112222"))),
        ("reset", Box::new(|r| reset::reset(r, BAD, &mut Store::in_memory()))),
        (
            "renewal",
            Box::new(|r| {
                let mut o = options("secrets");
                o.pin = BAD.into();
                renewal::run(r, &ca(), &mut Store::in_memory(), &o)
            }),
        ),
        (
            "order",
            Box::new(|r| {
                let o = OrderOptions {
                    pin: BAD.into(),
                    accept_contracts: true,
                    expiry: ExpiryRule::FromIssuance,
                    out_dir: std::env::temp_dir(),
                    policy: Policy::default(),
                    challenge: Challenge::insecure_from_seed(1),
                };
                order::run(r, &ca(), &mut Store::in_memory(), &o)
            }),
        ),
        (
            "import",
            Box::new(|r| import::run(r, &mut Store::in_memory(), &ImportOptions { serial: None, pin: BAD.into() })),
        ),
    ]
}

#[test]
fn a_secret_the_card_could_not_hold_stops_every_flow_before_its_first_apdu() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let bench = Bench::new(fixture);
        for (name, flow) in flows() {
            let sent = Rc::new(Cell::new(0));
            let t = Counting { inner: bench.transport(), sent: sent.clone() };
            let mut sink = |_: Event<'_>| {};
            let r = Runner::open(Box::new(t), name, REFERENCE_DATE, &mut sink).unwrap();
            let at_open = sent.get();
            let report = flow(r);
            let Outcome::Refused { reason, message } = &report.outcome else {
                panic!("{fixture} {name}: {:?}", report.outcome)
            };
            // Oberthur's PINs take printable characters: a 13-digit one is a PIN it could hold.
            if fixture.starts_with("oberthur") && !name.ends_with("new") {
                assert_ne!(*reason, Reason::BadLength, "{fixture} {name}");
                continue;
            }
            assert!(matches!(reason, Reason::BadLength | Reason::NotDigits), "{fixture} {name}: {reason} {message}");
            assert_eq!(sent.get(), at_open, "{fixture} {name}: APDUs after the client opened");
            if fixture.starts_with("cns") {
                assert_eq!(sent.get(), 0, "{fixture} {name}: the CNS client opens without an APDU");
            }
            assert!(!message.contains(BAD) && !message.contains("2468246x"), "{message}");
            let first = report.steps.first().unwrap();
            assert!(first.name == "SecretsChecked" || first.name == "Diagnostic", "{fixture} {name}: {first:?}");
        }
    }
}
