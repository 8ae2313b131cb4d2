//! The flows on strict real-card twins (issue 9 item 5): cards with nothing of firmalab's
//! convenience card, refusing what the genuine mask lacks as it would. The diagnostic and the
//! PIN flows work on every twin; a renewal that needs a command the card lacks refuses before
//! the first APDU that could change the card; the IDEMIA twin's status query costs a try, and
//! the harness never sends it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_harness::backoffice::Store;
use firmalab_harness::client::{OnCardRenewal, SecretPolicy};
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::{self, Policy};
use firmalab_harness::flows::{FlowReport, pin, renewal};
use firmalab_harness::transport::Transport;

const PIN: &str = "12345678";
const PUK: &str = "87654321";
const WRONG: &str = "11111111";

const TWINS: [&str; 3] = ["twin-cns-incard-1.0.json", "twin-cns-idemia-2021.json", "twin-oberthur.json"];

fn tries(bench: &Bench, reference: u8) -> u8 {
    bench.image.pins.iter().find(|p| p.reference.0 == reference).unwrap().tries_left
}

fn check(r: &FlowReport, id: usize) -> &serde_json::Value {
    &r.details["checks"][id - 1]
}

/// Every command the flow sent, as hex.
fn sent(r: &FlowReport) -> Vec<String> {
    r.transcript.steps.iter().flat_map(|s| &s.exchanges).filter(|e| !e.not_sent).map(|e| e.command.clone()).collect()
}

fn diagnostic(bench: &mut Bench, bo: &Store, pin: Option<&str>) -> FlowReport {
    run(bench, "diagnostic", REFERENCE_DATE, |r| {
        diagnostic::run(r.with_policy(SecretPolicy::default()), &bo.data, &Policy::default(), pin)
    })
}

#[test]
fn diagnostic_on_the_genuine_cns_1_0_twin_passes_check_1_by_lot_and_rsa_2048_keys() {
    let mut bench = Bench::new("twin-cns-incard-1.0.json");
    let bo = enrolled(&bench, "twin@example.it", "+393330000099");
    let r = diagnostic(&mut bench, &bo, Some(PIN));
    assert_eq!(check(&r, 1)["status"], "pass", "{}", check(&r, 1));
    let detail = check(&r, 1)["detail"].as_str().unwrap();
    assert!(
        detail.contains("ST Incard CNS 1.0, Aruba Digital Signature") && detail.contains("RSA-2048 keys"),
        "{detail}"
    );
    assert!(detail.contains("CNS 1.0"), "{detail}");
    // Every other check too: the card itself is renewable (by Aruba's software, see below).
    assert_eq!(done(&r), "Renewable", "{:#?}", r.details);
}

#[test]
fn on_a_twin_with_the_signature_pin_at_1_try_diagnostic_with_a_wrong_pin_leaves_it_at_1_and_skips_check_6() {
    for (twin, reference, label) in
        [("twin-cns-incard-1.0.json", 0x1A, "PIN CNS1 has 1 try left"), ("twin-oberthur.json", 0x81, "has 1 try left")]
    {
        let mut bench = Bench::new(twin);
        let bo = enrolled(&bench, "twin@example.it", "+393330000099");
        bench.image.pins.iter_mut().find(|p| p.reference.0 == reference).unwrap().tries_left = 1;
        let r = diagnostic(&mut bench, &bo, Some(WRONG));
        assert_eq!(check(&r, 6)["status"], "skip", "{twin}: {}", check(&r, 6));
        let why = check(&r, 6)["detail"].as_str().unwrap();
        assert!(why.contains(label) && why.contains("--allow-last-try"), "{twin}: {why}");
        assert!(r.steps.iter().any(|s| s.name.contains("6. key matches") && s.detail.starts_with("skipped: ")));
        assert_eq!(tries(&bench, reference), 1, "{twin}: the signature PIN keeps its last try");
        let secrets: Vec<String> =
            sent(&r).into_iter().filter(|c| c.len() > 10 && matches!(&c[2..4], "20" | "24" | "2C")).collect();
        assert!(secrets.is_empty(), "{twin}: no PIN sent: {secrets:?}");
    }
}

#[test]
fn pin_change_pin_unblock_and_puk_change_work_on_every_twin() {
    for twin in TWINS {
        let mut bench = Bench::new(twin);
        let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, PIN, "24682468", "24682468"));
        assert_eq!(done(&r), "PinChanged", "{twin}");
        let r = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, PUK, "13571357", "13571357"));
        assert_eq!(done(&r), "PinUnblocked", "{twin}");
        let r = run(&mut bench, "puk-change", REFERENCE_DATE, |r| pin::change_puk(r, PUK, "11112222", "11112222"));
        assert_eq!(done(&r), "PukChanged", "{twin}");
        let user: Vec<&str> = bench
            .image
            .pins
            .iter()
            .filter(|p| p.role == firmalab_emulator::security::PinRole::User)
            .map(|p| p.value.as_str())
            .collect();
        assert!(!user.is_empty() && user.iter().all(|v| *v == "13571357"), "{twin}: {user:?}");
        let puks: Vec<&str> = bench
            .image
            .pins
            .iter()
            .filter(|p| p.role == firmalab_emulator::security::PinRole::Puk)
            .map(|p| p.value.as_str())
            .collect();
        assert!(puks.iter().all(|v| *v == "11112222"), "{twin}: {puks:?}");
        assert!(bench.image.pins.iter().all(|p| p.tries_left == p.max_tries), "{twin}: no try spent");
        // And the diagnostic with the new PIN signs (check 6) on every twin.
        let bo = enrolled(&bench, "twin@example.it", "+393330000099");
        let r = diagnostic(&mut bench, &bo, Some("13571357"));
        assert_eq!(check(&r, 6)["status"], "pass", "{twin}: {}", check(&r, 6));
        assert_eq!(check(&r, 1)["status"], "pass", "{twin}: {}", check(&r, 1));
    }
}

#[test]
fn idemia_twin_pin_references_come_from_its_mask_one_pin_10_and_puk_11() {
    let mut bench = Bench::new("twin-cns-idemia-2021.json");
    let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, PIN, "24682468", "24682468"));
    let secrets: Vec<String> = sent(&r).into_iter().filter(|c| c.len() > 10 && &c[2..4] == "24").collect();
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert!(secrets[0].starts_with("00240010"), "{secrets:?}");
    let r = run(&mut bench, "puk-change", REFERENCE_DATE, |r| pin::change_puk(r, PUK, "11112222", "11112222"));
    assert!(sent(&r).iter().any(|c| c.starts_with("00240011")), "{:?}", sent(&r));
}

#[test]
fn the_idemia_twin_tries_query_costs_a_try_on_the_card_and_the_harness_never_sends_it() {
    let mut bench = Bench::new("twin-cns-idemia-2021.json");
    // The card models the mask: a bare VERIFY is a failed attempt.
    let mut t = bench.transport();
    assert_eq!(t.transmit_raw(&[0x00, 0x20, 0x00, 0x10]).unwrap(), [0x63, 0xC2]);
    assert_eq!(t.card().image().pins[0].tries_left, 2, "the query cost a try");
    // The harness, on every flow, never sends it: the tries stay full.
    let bo = enrolled(&bench, "twin@example.it", "+393330000099");
    let mut commands = vec![];
    let r = diagnostic(&mut bench, &bo, Some(PIN));
    assert_eq!(check(&r, 6)["status"], "pass", "{}", check(&r, 6));
    assert!(check(&r, 5)["detail"].as_str().unwrap().contains("not queried"), "{}", check(&r, 5));
    commands.extend(sent(&r));
    let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, PIN, "24682468", "24682468"));
    let status = r.steps.iter().find(|s| s.name == "PinStatus").unwrap();
    assert!(status.detail.contains("not queried"), "{}", status.detail);
    commands.extend(sent(&r));
    let r = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, PUK, "13571357", "13571357"));
    commands.extend(sent(&r));
    let r = run(&mut bench, "puk-change", REFERENCE_DATE, |r| pin::change_puk(r, PUK, "11112222", "11112222"));
    commands.extend(sent(&r));
    let queries: Vec<&String> = commands.iter().filter(|c| c.starts_with("0020") && c.len() <= 10).collect();
    assert!(queries.is_empty(), "status queries sent: {queries:?}");
    assert!(commands.iter().any(|c| c.starts_with("00200010")), "the PIN itself was presented");
    assert!(bench.image.pins.iter().all(|p| p.tries_left == p.max_tries), "{:?}", bench.image.pins);
}

#[test]
fn renewal_on_the_genuine_cns_twins_refuses_before_any_change_saying_why_and_the_image_is_unchanged() {
    let ca = ca();
    for twin in ["twin-cns-incard-1.0.json", "twin-cns-idemia-2021.json"] {
        let mut bench = Bench::new(twin);
        let mut bo = enrolled(&bench, "twin@example.it", "+393330000099");
        let before = bench.image.to_json();
        let o = options(&format!("twin-{twin}"));
        let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
        assert_eq!(refused(&r), "OnCardRenewalUnavailable", "{twin}");
        let step = r.steps.last().unwrap();
        assert_eq!(step.name, "Scanned", "{twin}: refused while scanning, before the PIN and any write");
        for words in ["GENERATE KEY PAIR P1=80/81", "vendor middleware", "not public", "Nothing was written"] {
            assert!(step.detail.contains(words), "{twin}: {words:?} in {}", step.detail);
        }
        assert_eq!(bench.image.to_json(), before, "{twin}: the card is unchanged");
        // Only reads went out: SELECT, READ BINARY and the probe GET DATA 01 88.
        for c in sent(&r) {
            assert!(matches!(&c[2..4], "A4" | "B0" | "CA"), "{twin}: {c} sent");
        }
        assert!(sent(&r).iter().any(|c| c.starts_with("00CA0188")), "{twin}: the probe");
        assert!(!std::path::Path::new(&o.out_dir).exists(), "{twin}: nothing written for the renewal");
        assert!(
            bo.data.practices.iter().all(|p| p.kind != firmalab_harness::backoffice::PracticeKind::Renewal),
            "{twin}: no renewal practice opened"
        );
    }
    // firmalab's convenience card answers the probe with its pending-key commands.
    let bench = Bench::new("cns-renewable.json");
    assert_eq!(bench.client().on_card_renewal().unwrap(), OnCardRenewal::Available);
    let bench = Bench::new("twin-oberthur.json");
    assert_eq!(bench.client().on_card_renewal().unwrap(), OnCardRenewal::Available, "AWP renewal uses public commands");
}

#[test]
fn the_aruba_key_order_on_a_genuine_cns_twin_refuses_before_any_change_too() {
    use firmalab_harness::ca::ExpiryRule;
    use firmalab_harness::client_auth::Challenge;
    use firmalab_harness::flows::order::{self, OrderOptions};
    let ca = ca();
    let mut bench = Bench::new("twin-cns-incard-1.0.json");
    let mut bo = enrolled(&bench, "twin@example.it", "+393330000099");
    let before = bench.image.to_json();
    let out = scratch("twin-order");
    let o = OrderOptions {
        pin: PIN.into(),
        accept_contracts: true,
        expiry: ExpiryRule::FromIssuance,
        out_dir: out.path().join("out"),
        policy: Policy::default(),
        challenge: Challenge::insecure_from_seed(1),
    };
    let r = run(&mut bench, "order", REFERENCE_DATE, |r| order::run(r, &ca, &mut bo, &o));
    assert_eq!(refused(&r), "OnCardRenewalUnavailable");
    assert_eq!(r.steps.last().unwrap().name, "Scanned");
    assert_eq!(bench.image.to_json(), before);
    assert!(bo.data.orders.is_empty());
    assert!(sent(&r).iter().all(|c| matches!(&c[2..4], "A4" | "B0" | "CA")), "{:?}", sent(&r));
}
