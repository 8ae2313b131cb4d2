//! A physical token is someone's qualified signature: the flows never spend a PIN or PUK try
//! the user did not mean, show the tries before sending a secret, never send one twice after
//! the card refused it, never send a secret the user did not give, group each logical
//! operation in one exclusive section, keep secrets out of transcripts, and stop a dry run
//! before anything changes. In-process, on the fixture cards (issue 9 items 1-3, 5, issue 10
//! item 9).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::fs::{FileBody, lookup_mut};
use firmalab_emulator::hex::Bytes;
use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::backoffice::Store;
use firmalab_harness::client::{self, ClientError, KeyRole, PinOutcome, SecretPolicy};
use firmalab_harness::fixtures::{KeySource, REFERENCE_DATE, rsa_key};
use firmalab_harness::flows::diagnostic::{self, Policy};
use firmalab_harness::flows::{Finished, FlowReport, Outcome, Reason, Runner, pin, renewal, reset};
use firmalab_harness::pki::{CertKind, Holder, Issue, rsa_spki};
use firmalab_harness::transcript::Recorder;
use firmalab_harness::transport::gate::{Gate, Mode};
use firmalab_harness::transport::in_process::InProcess;
use firmalab_harness::transport::{Transport, TransportError};
use std::cell::RefCell;
use std::rc::Rc;

const PIN: &str = "12345678";
const WRONG: &str = "11111111";

fn tries(bench: &Bench, reference: u8) -> u8 {
    bench.image.pins.iter().find(|p| p.reference.0 == reference).unwrap().tries_left
}

fn set_tries(bench: &mut Bench, reference: u8, n: u8) {
    bench.image.pins.iter_mut().find(|p| p.reference.0 == reference).unwrap().tries_left = n;
}

/// Commands of the transcript that carry a PIN, PUK or unblock code (INS 20/24/2C with data).
fn secret_commands(r: &FlowReport) -> Vec<String> {
    r.transcript
        .steps
        .iter()
        .flat_map(|s| &s.exchanges)
        .filter(|e| !e.not_sent && e.command.len() > 8 && matches!(&e.command[2..4], "20" | "24" | "2C"))
        .map(|e| e.command.clone())
        .collect()
}

fn check(r: &FlowReport, id: usize) -> &serde_json::Value {
    &r.details["checks"][id - 1]
}

fn diagnostic_with(bench: &mut Bench, bo: &Store, pin: Option<&str>, policy: SecretPolicy) -> FlowReport {
    run(bench, "diagnostic", REFERENCE_DATE, |r| {
        diagnostic::run(r.with_policy(policy), &bo.data, &Policy::default(), pin)
    })
}

#[test]
fn diagnostic_with_a_wrong_pin_at_the_last_try_keeps_the_try_and_skips_check_6_with_the_reason() {
    let mut bench = Bench::new("cns-renewable.json");
    let bo = enrolled(&bench, "a@example.it", "+390000000001");
    set_tries(&mut bench, 0x1A, 1);
    let r = diagnostic_with(&mut bench, &bo, Some(WRONG), SecretPolicy::default());
    assert_eq!(check(&r, 5)["status"], "pass");
    assert!(check(&r, 5)["detail"].as_str().unwrap().contains("PIN CNS1 1"), "{}", check(&r, 5));
    assert_eq!(check(&r, 6)["status"], "skip", "{}", check(&r, 6));
    let why = check(&r, 6)["detail"].as_str().unwrap();
    assert!(why.contains("PIN CNS1 has 1 try left") && why.contains("--allow-last-try"), "{why}");
    assert_eq!(tries(&bench, 0x1A), 1, "the qualified signature PIN keeps its last try");
    assert!(secret_commands(&r).is_empty(), "no PIN sent: {:?}", secret_commands(&r));
    assert!(r.steps.iter().any(|s| s.name.contains("6. key matches") && s.detail.starts_with("skipped: ")));
    // The verdict does not claim more than was checked.
    let firmalab_harness::flows::Outcome::Done { message, .. } = &r.outcome else { panic!("{:?}", r.outcome) };
    assert!(message.contains("check 6 (key matches") && message.contains("skipped"), "{message}");
    assert!(!message.starts_with("every check passed"), "{message}");

    // The user who is sure of the PIN allows the last try: the test signature is made, and
    // the accepted PIN fills the counter again.
    let allow = SecretPolicy { allow_last_try: true, ..SecretPolicy::default() };
    let r = diagnostic_with(&mut bench, &bo, Some(PIN), allow);
    assert_eq!(check(&r, 6)["status"], "pass", "{}", check(&r, 6));
    assert_eq!(tries(&bench, 0x1A), 3);
}

#[test]
fn diagnostic_with_a_wrong_pin_costs_one_try_and_fails_check_6_as_wrong_pin() {
    let mut bench = Bench::new("cns-renewable.json");
    let bo = enrolled(&bench, "a@example.it", "+390000000001");
    let r = diagnostic_with(&mut bench, &bo, Some(WRONG), SecretPolicy::default());
    assert_eq!(check(&r, 6)["status"], "fail");
    assert_eq!(check(&r, 6)["reason"], "WrongPin");
    assert!(check(&r, 6)["detail"].as_str().unwrap().contains("2 tries left"));
    assert_eq!(secret_commands(&r).len(), 1, "{:?}", secret_commands(&r));
    assert_eq!((tries(&bench, 0x1A), tries(&bench, 0x10)), (2, 3));
}

#[test]
fn reset_with_a_wrong_pin_on_a_blank_card_whose_pin_was_changed_costs_exactly_one_try_and_says_so() {
    let mut bench = Bench::new("cns-failed-issuance.json");
    for p in bench.image.pins.iter_mut().filter(|p| p.role == firmalab_emulator::security::PinRole::User) {
        p.value = "24682468".into();
    }
    let mut bo = Store::in_memory();
    let r = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, WRONG, &mut bo));
    let Outcome::Refused { reason, message } = &r.outcome else { panic!("{:?}", r.outcome) };
    assert_eq!(*reason, Reason::WrongPin);
    assert!(message.contains("2 tries left") && message.contains("--default-pin"), "{message}");
    assert_eq!(secret_commands(&r).len(), 1, "one VERIFY, no retry with 12345: {:?}", secret_commands(&r));
    let text = r.transcript.render();
    assert!(!text.contains("3132333435FFFFFF") && !text.contains("{default_pin"), "12345 never sent:\n{text}");
    assert_eq!((tries(&bench, 0x10), tries(&bench, 0x1A)), (2, 3), "exactly one try spent");
    let r = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, "24682468", &mut bo));
    assert_eq!(done(&r), "Reset");
}

#[test]
fn reset_logs_in_with_the_default_pin_only_when_the_user_gives_it() {
    let mut bench = Bench::new("cns-failed-issuance.json");
    let mut bo = Store::in_memory();
    let r = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, client::DEFAULT_PIN, &mut bo));
    assert_eq!(done(&r), "Reset");
    assert_eq!(secret_commands(&r), ["0020009008{pin:8:FF}"]);
}

type FlowFn = Box<dyn Fn(Runner<'_>, &mut Store) -> FlowReport>;
/// flow, fixture, objects set to 1 try, objects blocked, the flow.
type LastTryCase = (&'static str, &'static str, &'static [u8], &'static [u8], FlowFn);

#[test]
fn every_flow_refuses_at_the_last_try_without_sending_a_secret() {
    let ca = ca();
    let cases: Vec<LastTryCase> = vec![
        (
            "pin-change",
            "cns-renewable.json",
            &[0x1A],
            &[],
            Box::new(|r, _| pin::change(r, PIN, "24682468", "24682468")),
        ),
        (
            "pin-change",
            "oberthur-renewable.json",
            &[0x81],
            &[],
            Box::new(|r, _| pin::change(r, PIN, "24682468", "24682468")),
        ),
        (
            "pin-unblock",
            "cns-pin-blocked.json",
            &[0x1B],
            &[],
            Box::new(|r, _| pin::unblock(r, "87654321", "13571357", "13571357")),
        ),
        (
            "pin-unblock",
            "oberthur-renewable.json",
            &[0x84],
            &[0x81],
            Box::new(|r, _| pin::unblock(r, "87654321", "13571357", "13571357")),
        ),
        (
            "puk-change",
            "cns-renewable.json",
            &[0x11],
            &[],
            Box::new(|r, _| pin::change_puk(r, "87654321", "11112222", "11112222")),
        ),
        (
            "puk-change",
            "oberthur-renewable.json",
            &[0x84],
            &[],
            Box::new(|r, _| pin::change_puk(r, "87654321", "11112222", "11112222")),
        ),
        ("reset", "cns-renewable.json", &[0x10], &[], Box::new(|r, bo| reset::reset(r, PIN, bo))),
        ("reset", "oberthur-renewable.json", &[0x81], &[], Box::new(|r, bo| reset::reset(r, PIN, bo))),
        (
            "renewal",
            "cns-renewable.json",
            &[0x1A],
            &[],
            Box::new(move |r, bo| renewal::run(r, &ca, bo, &options("last-try"))),
        ),
    ];
    for (flow, fixture, at_one, blocked, f) in cases {
        let mut bench = Bench::new(fixture);
        let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
        for r in at_one {
            set_tries(&mut bench, *r, 1);
        }
        for r in blocked {
            set_tries(&mut bench, *r, 0);
        }
        let before = bench.image.clone();
        let r = run(&mut bench, flow, REFERENCE_DATE, |r| f(r, &mut bo));
        assert_eq!(refused(&r), "LastTry", "{flow} on {fixture}");
        let Outcome::Refused { message, .. } = &r.outcome else { unreachable!() };
        assert!(message.contains("1 try left") && message.contains("--allow-last-try"), "{flow}: {message}");
        assert!(secret_commands(&r).is_empty(), "{flow} on {fixture}: {:?}", secret_commands(&r));
        assert_eq!(bench.image, before, "{flow} on {fixture}: the card is unchanged");
    }
    // Allowed, the PIN change goes through and the accepted PIN fills the counter.
    let mut bench = Bench::new("cns-renewable.json");
    set_tries(&mut bench, 0x1A, 1);
    let allow = SecretPolicy { allow_last_try: true, ..SecretPolicy::default() };
    let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| {
        pin::change(r.with_policy(allow), PIN, "24682468", "24682468")
    });
    assert_eq!(done(&r), "PinChanged");
    assert_eq!(tries(&bench, 0x1A), 3);
}

#[test]
fn a_pin_or_puk_the_card_refused_is_never_sent_again_in_the_same_run() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let mut bench = Bench::new(fixture);
        let r = run(&mut bench, "client", REFERENCE_DATE, |mut r| {
            let c = r.client.as_mut();
            assert!(matches!(c.verify_pin(WRONG).unwrap(), PinOutcome::Wrong { tries_left: 2 }));
            let again = c.verify_pin(WRONG).unwrap_err();
            assert!(matches!(&again, ClientError::Refused { reason: Reason::PinAlreadyRejected, .. }), "{again}");
            let sign = c.sign_sha256(KeyRole::Signature, None, &[7; 32], WRONG).unwrap_err();
            assert!(matches!(sign, ClientError::Refused { .. }), "{sign}");
            assert!(matches!(c.change_pin(WRONG, "24682468").unwrap_err(), ClientError::Refused { .. }));
            assert!(matches!(c.unblock_pin("99999999", "24682468").unwrap(), PinOutcome::Wrong { .. }));
            assert!(matches!(c.change_puk("99999999", "11112222").unwrap_err(), ClientError::Refused { .. }));
            // A different value is a different attempt: the right PIN still goes out.
            assert_eq!(c.verify_pin(PIN).unwrap(), PinOutcome::Accepted);
            r.finish("client", String::new(), Ok((Finished::PinChanged, String::new())), serde_json::Value::Null)
        });
        // One wrong PIN and one wrong PUK went out, once each; the right PIN refilled the PINs.
        let wrong_pin = secret_commands(&r).iter().filter(|c| c.contains("3131313131313131")).count();
        assert_eq!(wrong_pin, 0, "a wrong value is masked, never in clear");
        let pins = bench.image.pins.iter().filter(|p| p.role == firmalab_emulator::security::PinRole::User);
        assert!(pins.clone().all(|p| p.tries_left == p.max_tries), "{fixture}");
        let puk_tries: u32 = bench
            .image
            .pins
            .iter()
            .filter(|p| p.role == firmalab_emulator::security::PinRole::Puk)
            .map(|p| u32::from(p.max_tries - p.tries_left))
            .sum();
        assert_eq!(puk_tries, 1, "{fixture}: the wrong PUK cost one try, its repetition none");
    }
}

/// The object a command carrying a secret spends a try of, as its status query addresses it.
fn spent(profile: &str, command: &str) -> String {
    let (ins, p2) = (&command[2..4], &command[6..8]);
    let p2 = match (profile, ins, p2) {
        ("oberthur", "24", "01") => "81",
        ("oberthur", "2C", "01") => "84",
        ("cns", "2C", "9A") => "9B",
        ("cns", "2C", "90") => "91",
        (_, _, p2) => p2,
    };
    format!("002000{p2}")
}

#[test]
fn tries_are_queried_and_shown_before_any_pin_or_puk_is_sent() {
    use firmalab_harness::fuzz_corpus::deterministic_flow;
    for fixture in ["cns-renewable.json", "oberthur-renewable.json", "cns-pin-blocked.json"] {
        let flows: &[&str] = if fixture == "cns-pin-blocked.json" {
            &["pin-unblock"]
        } else {
            &["diagnostic", "pin-change", "puk-change", "reset", "renewal"]
        };
        for flow in flows {
            let r = deterministic_flow(flow, image(fixture)).unwrap();
            assert_eq!(r.outcome.exit_code(), 0, "{flow} on {fixture}: {:?}", r.outcome);
            let all: Vec<&str> =
                r.transcript.steps.iter().flat_map(|s| &s.exchanges).map(|e| e.command.as_str()).collect();
            let mut checked = 0;
            for (i, c) in all.iter().enumerate() {
                let secret = c.len() > 8 && matches!(&c[2..4], "20" | "24" | "2C") && !c.starts_with("00240101");
                if secret {
                    let query = spent(&r.profile, c);
                    let known = all[..i].iter().any(|p| *p == query || p.starts_with(&format!("{query}40")));
                    assert!(known, "{flow} on {fixture}: {c} sent before its tries were known ({query})");
                    checked += 1;
                }
            }
            assert!(checked > 0 || *flow == "diagnostic", "{flow}");
            if *flow != "diagnostic" {
                let status = r.steps.iter().find(|s| s.name == "PinStatus" || s.name == "PukStatus").unwrap();
                assert!(status.detail.starts_with("tries left: "), "{flow}: {}", status.detail);
            }
        }
    }
}

const IDEMIA_2021_ATR: &str = "3BFF1800008131FE45006B05052000012101434E5310318079";

#[test]
fn on_masks_whose_status_query_may_count_as_a_try_nothing_is_queried_and_the_flow_says_so() {
    let mut bench = Bench::new("cns-renewable.json");
    bench.image.atr.0 = firmalab_harness::wire::hex::decode(IDEMIA_2021_ATR).unwrap();
    let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, PIN, "24682468", "24682468"));
    let status = r.steps.iter().find(|s| s.name == "PinStatus").unwrap();
    assert!(status.detail.contains("PIN ?") && status.detail.contains("not queried"), "{}", status.detail);
    let queries: Vec<&String> = r
        .transcript
        .steps
        .iter()
        .flat_map(|s| &s.exchanges)
        .map(|e| &e.command)
        .filter(|c| c.len() == 8 && c.starts_with("0020"))
        .collect();
    assert!(queries.is_empty(), "{queries:?}");
    // The IDEMIA 2021 CNS has one global PIN 10 (OpenSC pkcs15-itacns): no bit 7, no CNS1 object.
    assert!(secret_commands(&r).iter().all(|c| c.starts_with("00240010")), "{:?}", secret_commands(&r));
}

fn issue_signature_cert(bits: usize) -> Vec<u8> {
    let key = rsa_key(&KeySource::Seeded("token-safety-small-key"), "sign", bits).unwrap();
    let holder = Holder {
        first_name: "MARIO".into(),
        last_name: "ROSSI".into(),
        codice_fiscale: "RSSMRA80A01H501U".into(),
        reference: "WSREF-000009".into(),
    };
    let cert = ca()
        .issue(&Issue {
            kind: CertKind::QualifiedSignature,
            holder: &holder,
            public_key: rsa_spki(&key).unwrap(),
            serial: 0x5151,
            not_before: firmalab_harness::dates::Date::new(2023, 7, 1),
            not_after: firmalab_harness::dates::Date::new(2026, 7, 1),
        })
        .unwrap();
    firmalab_harness::pki::der_of(&cert).unwrap()
}

#[test]
fn diagnostic_check_1_judges_mask_lot_and_key_sizes_not_the_cns_version() {
    let run_check1 = |tweak: &dyn Fn(&mut CardImage)| {
        let mut bench = Bench::new("cns-renewable.json");
        let bo = enrolled(&bench, "a@example.it", "+390000000001");
        tweak(&mut bench.image);
        let r = diagnostic_with(&mut bench, &bo, Some(PIN), SecretPolicy::default());
        (check(&r, 1).clone(), r.outcome)
    };
    // Both genuine Aruba Incard ATRs of spec/cards.md are CNS 1.0 with RSA-2048 keys: current.
    for atr in
        ["3BFF1800FF8131FE55006B02091303010101434E531031808D", "3BFF9600008131FE55006B02090403010101434E53103180EB"]
    {
        let (c1, outcome) =
            run_check1(&|i: &mut CardImage| i.atr.0 = firmalab_harness::wire::hex::decode(atr).unwrap());
        assert_eq!(c1["status"], "pass", "{atr}: {c1}");
        let d = c1["detail"].as_str().unwrap();
        assert!(d.contains("ST Incard CNS 1.0") && d.contains("RSA-2048 keys"), "{d}");
        assert!(matches!(outcome, Outcome::Done { .. }), "{atr}: {outcome:?}");
    }
    let (c1, _) =
        run_check1(&|i: &mut CardImage| i.atr.0 = firmalab_harness::wire::hex::decode(IDEMIA_2021_ATR).unwrap());
    assert!(c1["status"] == "pass" && c1["detail"].as_str().unwrap().contains("IDEMIA CNS 2021"), "{c1}");
    let (c1, _) = run_check1(&|i: &mut CardImage| {
        i.atr.0 = firmalab_harness::wire::hex::decode("3BFF1800FF8131FE55006B02090503010101434E531131808A").unwrap()
    });
    assert_eq!((c1["status"].as_str(), c1["reason"].as_str()), (Some("fail"), Some("ObsoleteCard")));
    assert!(c1["detail"].as_str().unwrap().contains("unknown lot"), "{c1}");
    // A current lot whose certificate certifies an RSA-1024 key is obsolete.
    let small = issue_signature_cert(1024);
    let (c1, _) = run_check1(&|i: &mut CardImage| {
        let node = lookup_mut(&mut i.mf, &[0x3F00, 0x1400, 0x9010]).unwrap();
        node.body = FileBody::Transparent { data: Bytes(small.clone()) };
    });
    assert_eq!(c1["reason"], "ObsoleteCard", "{c1}");
    assert!(c1["detail"].as_str().unwrap().contains("RSA-1024 keys"), "{c1}");
}

#[test]
fn after_an_oberthur_puk_change_the_unblock_transcript_holds_neither_puk() {
    let mut bench = Bench::new("oberthur-renewable.json");
    let r = run(&mut bench, "puk-change", REFERENCE_DATE, |r| pin::change_puk(r, "87654321", "11112222", "11112222"));
    assert_eq!(done(&r), "PukChanged");
    set_tries(&mut bench, 0x81, 0);
    let r = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, "11112222", "13571357", "13571357"));
    let junit = firmalab_harness::report::junit(std::slice::from_ref(&r));
    let outputs = [
        r.transcript.render(),
        serde_json::to_string(&r.transcript).unwrap(),
        serde_json::to_string(&r).unwrap(),
        junit,
    ];
    for out in &outputs {
        for puk in ["87654321", "11112222"] {
            let hexed: String = puk.bytes().map(|b| format!("{b:02X}")).collect();
            assert!(!out.contains(&hexed) && !out.contains(puk), "{puk} appears in\n{out}");
        }
    }
    // The PUK file's answer is either the PUK the flow knows (a placeholder) or masked.
    let text = &outputs[0];
    let read = text.lines().skip_while(|l| !l.starts_with("> 00B0000010")).nth(1).unwrap();
    assert!(read.starts_with("< {puk:16:00}") || read.starts_with("< ********************************"), "{read}");
}

#[test]
fn secret_command_data_is_masked_unless_it_is_all_placeholders() {
    let card = InProcess::ephemeral(image("cns-renewable.json"), CardRng::insecure_deterministic(1), "t");
    let mut rec = Recorder::new(Box::new(card), "t", "cns");
    rec.recording.borrow_mut().secret("pin", PIN);
    let hex = firmalab_harness::wire::hex::decode;
    rec.transmit_raw(&hex("00A4080C0414008110").unwrap()).unwrap();
    rec.transmit_raw(&hex("0020009A083132333435363738").unwrap()).unwrap();
    rec.transmit_raw(&hex("0020009A083939393939393939").unwrap()).unwrap();
    rec.transmit_raw(&hex("0024009A1031323334353637383535353535353535").unwrap()).unwrap();
    let commands: Vec<String> =
        rec.recording.borrow().transcript.steps[0].exchanges.iter().map(|e| e.command.clone()).collect();
    assert_eq!(
        commands,
        [
            "00A4080C0414008110",
            "0020009A08{pin:8:FF}",
            "0020009A08****************",
            "0024009A10********************************",
        ]
    );
}

/// A transport that logs the exclusive sections and the command headers inside them.
struct Tracer {
    inner: Box<dyn Transport>,
    log: Rc<RefCell<Vec<String>>>,
}

struct TracerView<'a> {
    inner: &'a mut dyn Transport,
    log: &'a RefCell<Vec<String>>,
}

impl Transport for TracerView<'_> {
    fn transmit_raw(&mut self, c: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.log.borrow_mut().push(firmalab_harness::wire::hex::encode(&c[..4]));
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
    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        f(self);
        Ok(())
    }
}

impl Transport for Tracer {
    fn transmit_raw(&mut self, c: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.log.borrow_mut().push(format!("alone {}", firmalab_harness::wire::hex::encode(&c[..4])));
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
    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        self.log.borrow_mut().push("begin".into());
        let log = &*self.log;
        f(&mut TracerView { inner: self.inner.as_mut(), log });
        self.log.borrow_mut().push("end".into());
        Ok(())
    }
}

#[test]
fn a_signature_runs_verify_mse_and_the_chained_pso_in_one_exclusive_section() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let log = Rc::new(RefCell::new(vec![]));
        let card = InProcess::ephemeral(image(fixture), CardRng::insecure_deterministic(1), "t");
        let mut c = client::open(Box::new(Tracer { inner: Box::new(card), log: log.clone() })).unwrap();
        log.borrow_mut().clear();
        c.sign_sha256(KeyRole::Signature, None, &[9; 32], PIN).unwrap();
        let log = log.borrow();
        assert_eq!(log.first().map(String::as_str), Some("begin"), "{fixture}: {log:?}");
        assert_eq!(log.last().map(String::as_str), Some("end"), "{fixture}: {log:?}");
        assert_eq!(log.iter().filter(|l| *l == "begin" || *l == "end").count(), 2, "{fixture}: one section: {log:?}");
        assert!(!log.iter().any(|l| l.starts_with("alone")), "{fixture}: {log:?}");
        let verify = log.iter().position(|l| l.starts_with("0020")).unwrap();
        let pso: Vec<usize> =
            log.iter().enumerate().filter(|(_, l)| l[2..].starts_with("2A9E9A")).map(|(i, _)| i).collect();
        assert!(verify < pso[0], "{fixture}: {log:?}");
        if fixture.starts_with("cns") {
            assert_eq!(log[pso[0]], "102A9E9A", "the 256-byte block is chained in the same section: {log:?}");
            assert_eq!(log[pso[1]], "002A9E9A");
        }
    }
}

#[test]
fn a_dry_run_gate_sends_only_reads_and_stops_before_the_first_change() {
    let tmp = scratch("dry-run");
    let dir = tmp.path();
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let path = dir.join(fixture);
        std::fs::copy(root().join("fixtures/cards").join(fixture), &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let card = InProcess::open(&path, CardRng::insecure_deterministic(1)).unwrap();
        let (gate, _) = Gate::new(Box::new(card), Mode::DryRun);
        let mut sink = |_: firmalab_harness::flows::Event<'_>| {};
        let mut bo = Store::in_memory();
        let r = Runner::open(Box::new(gate), "reset", REFERENCE_DATE, &mut sink).unwrap().dry_run();
        let report = reset::reset(r, PIN, &mut bo);
        let Outcome::DryRun { message } = &report.outcome else { panic!("{:?}", report.outcome) };
        assert!(message.contains("VERIFY"), "{message}");
        let last = report.transcript.steps.iter().flat_map(|s| &s.exchanges).last().unwrap();
        assert!(last.not_sent && last.command.contains("{pin:"), "{last:?}");
        assert!(report.transcript.render().contains("(not sent: dry run)"));
        assert_eq!(std::fs::read(&path).unwrap(), before, "{fixture}: the image is byte-identical");
    }
}

/// An in-process card the test keeps a handle on while a flow owns the transport.
#[derive(Clone)]
struct Shared(Rc<RefCell<InProcess>>);

impl Transport for Shared {
    fn transmit_raw(&mut self, c: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.0.borrow_mut().transmit_raw(c)
    }
    fn atr(&self) -> Vec<u8> {
        self.0.borrow().atr()
    }
    fn name(&self) -> String {
        self.0.borrow().name()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        self.0.borrow_mut().reset()
    }
}

#[test]
fn on_a_card_behind_the_consent_gate_writes_wait_for_the_confirmation_by_serial() {
    let run_reset = |answer: Result<(), String>| {
        let card = Shared(Rc::new(RefCell::new(InProcess::ephemeral(
            image("cns-renewable.json"),
            CardRng::insecure_deterministic(1),
            "t",
        ))));
        let (gate, consent) = Gate::new(Box::new(card.clone()), Mode::Consent);
        let mut sink = |_: firmalab_harness::flows::Event<'_>| {};
        let asked = Rc::new(RefCell::new(vec![]));
        let seen = asked.clone();
        let r = Runner::open(Box::new(gate), "reset", REFERENCE_DATE, &mut sink).unwrap().confirming(
            consent,
            Box::new(move |serial: &str, what: &str| {
                seen.borrow_mut().push(format!("{serial}: {what}"));
                answer.clone()
            }),
        );
        let report = reset::reset(r, PIN, &mut Store::in_memory());
        let keys_left = card.0.borrow().card().image().keys.iter().filter(|k| k.material.is_some()).count();
        let asked = asked.borrow().clone();
        (report, keys_left, asked)
    };
    let (r, keys, asked) = run_reset(Err("not this card".into()));
    assert_eq!(refused(&r), "NotConfirmed");
    assert_eq!(asked, ["6010000000000101: erase every key, certificate and personal data on the card"]);
    assert!(secret_commands(&r).is_empty(), "nothing but reads before the confirmation");
    assert_eq!(keys, 2, "nothing erased");
    let (r, keys, _) = run_reset(Ok(()));
    assert_eq!(done(&r), "Reset");
    assert!(r.steps.iter().any(|s| s.name == "SerialConfirmed" && s.detail.contains("6010000000000101")));
    assert_eq!(keys, 0);

    // A flow that writes nothing needs no confirmation: the PIN change goes through.
    let card = InProcess::ephemeral(image("cns-renewable.json"), CardRng::insecure_deterministic(1), "t");
    let (gate, _) = Gate::new(Box::new(card), Mode::Consent);
    let mut sink = |_: firmalab_harness::flows::Event<'_>| {};
    let r = Runner::open(Box::new(gate), "pin-change", REFERENCE_DATE, &mut sink).unwrap();
    assert_eq!(done(&pin::change(r, PIN, "24682468", "24682468")), "PinChanged");

    // Without confirmation the gate refuses any write, whatever a client sends.
    let card = InProcess::ephemeral(image("cns-renewable.json"), CardRng::insecure_deterministic(1), "t");
    let (gate, _) = Gate::new(Box::new(card), Mode::Consent);
    let mut c = client::open(Box::new(gate)).unwrap();
    let e = c.reset(PIN).unwrap_err();
    assert!(matches!(&e, ClientError::Transport(TransportError::NotConfirmed(m)) if m.contains("ERASE")), "{e}");
}

/// The client's guard refuses on its own, whatever the flow checked before.
#[test]
fn the_client_guard_refuses_the_last_try_and_a_known_blocked_pin_without_sending_anything() {
    for (fixture, reference) in [("cns-renewable.json", 0x1A), ("oberthur-renewable.json", 0x81)] {
        let mut bench = Bench::new(fixture);
        set_tries(&mut bench, reference, 1);
        let r = run(&mut bench, "client", REFERENCE_DATE, |mut r| {
            let c = r.client.as_mut();
            let e = c.verify_pin(WRONG).unwrap_err();
            assert!(matches!(&e, ClientError::Refused { reason: Reason::LastTry, .. }), "{fixture}: {e}");
            let e = c.sign_sha256(KeyRole::Signature, None, &[1; 32], PIN).unwrap_err();
            assert!(matches!(&e, ClientError::Refused { reason: Reason::LastTry, .. }), "{fixture}: {e}");
            c.set_policy(SecretPolicy { allow_last_try: true, ..SecretPolicy::default() });
            assert_eq!(c.verify_pin(PIN).unwrap(), PinOutcome::Accepted);
            r.finish("client", String::new(), Ok((Finished::PinChanged, String::new())), serde_json::Value::Null)
        });
        assert_eq!(secret_commands(&r).len(), if fixture.starts_with("cns") { 2 } else { 1 }, "{fixture}");
        assert_eq!(tries(&bench, reference), 3);
        let mut bench = Bench::new(fixture);
        set_tries(&mut bench, reference, 0);
        let r = run(&mut bench, "client", REFERENCE_DATE, |mut r| {
            assert_eq!(r.client.verify_pin(PIN).unwrap(), PinOutcome::Blocked);
            r.finish("client", String::new(), Ok((Finished::PinChanged, String::new())), serde_json::Value::Null)
        });
        assert!(secret_commands(&r).is_empty(), "{fixture}: a blocked PIN is not tried");
    }
}
