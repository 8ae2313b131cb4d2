//! The harness's flows on the Incrypto34, in-process, through its own client
//! (`client/incrypto34.rs`): the diagnostic runs every check and refuses the obsolete lot,
//! the PIN flows work with 00-padded PINs addressed `80 | ref`, and what the holder cannot do
//! on this card (renewal, reset) is refused without touching it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_harness::client::{KeyRole, PinOutcome};
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::{self, Policy};
use firmalab_harness::flows::{pin, renewal, reset};
use firmalab_harness::wire::Profile;

mod common;
use common::*;

const CARD: &str = "incrypto34-issued.json";

fn pin_of(bench: &Bench, reference: u8) -> (String, u8) {
    let p = bench.image.pins.iter().find(|p| p.reference.0 == reference).unwrap();
    (p.value.clone(), p.tries_left)
}

#[test]
fn the_client_reads_serial_certificates_and_life_cycle_from_the_pkcs15_application() {
    let bench = Bench::new(CARD);
    let mut c = bench.client();
    assert_eq!(c.profile(), Profile::Incrypto34);
    assert_eq!(c.serial().unwrap(), "3410000000000106");
    let certs = c.certificates().unwrap();
    let paths: Vec<(&str, KeyRole)> = certs.iter().map(|c| (c.path.as_str(), c.role)).collect();
    assert_eq!(paths, [("3F00/5015/3104", KeyRole::Signature), ("3F00/5015/3105", KeyRole::Authentication)]);
    assert_eq!(c.life_cycle().unwrap(), Some(0x10));
    assert_eq!((c.holder().unwrap(), c.free_memory().unwrap()), (None, None));
    // No evidence the mask answers the status query for free: the counters are not asked.
    let counters = c.pin_counters().unwrap();
    assert_eq!(counters[0].tries_left, None);
    assert!(counters[0].note.is_some());
}

#[test]
fn diagnostic_runs_every_check_and_refuses_the_obsolete_lot() {
    let mut bench = Bench::new(CARD);
    let bo = enrolled(&bench, "chiara@example.it", "+393330000106");
    let r = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| {
        diagnostic::run(r, &bo.data, &Policy::default(), Some("12345678"))
    });
    assert_eq!(refused(&r), "ObsoleteCard");
    let checks = r.details["checks"].as_array().unwrap();
    let status: Vec<&str> = checks.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["fail", "pass", "pass", "pass", "pass", "pass", "pass", "pass", "skip", "pass"]);
    assert!(checks[0]["detail"].as_str().unwrap().contains("Incard Incrypto34"));
    assert_eq!(checks[5]["detail"], "test signature verifies with the certificate");
    let text = r.transcript.render();
    assert!(text.contains("0020008308{pin:8:"), "VERIFY 80|03 with the PIN as a placeholder:\n{text}");
    assert!(text.contains("0022F301") && text.contains("0022F1B603830110"), "{text}");
    assert_eq!(pin_of(&bench, 0x03), ("12345678".into(), 3));
}

#[test]
fn a_wrong_pin_in_the_diagnostic_costs_one_try_and_says_so() {
    let mut bench = Bench::new(CARD);
    let bo = enrolled(&bench, "chiara@example.it", "+393330000106");
    let r = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| {
        diagnostic::run(r, &bo.data, &Policy::default(), Some("1111"))
    });
    let checks = r.details["checks"].as_array().unwrap();
    assert_eq!(checks[5]["reason"], "WrongPin", "{:?}", checks[5]);
    assert_eq!(checks[5]["detail"], "the PIN was refused: 2 tries left");
    assert_eq!(pin_of(&bench, 0x03).1, 2);
}

#[test]
fn pin_change_unblock_and_puk_change_work_with_00_padded_secrets() {
    let mut bench = Bench::new(CARD);
    let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, "12345678", "2468", "2468"));
    assert_eq!(done(&r), "PinChanged");
    assert_eq!(pin_of(&bench, 0x03), ("2468".into(), 3));
    // The new PIN is shorter than 8: its 00 padding shows in the placeholder.
    assert!(r.transcript.render().contains("{new_pin:8:00}"), "{}", r.transcript.render());
    // Three characters are below the card's rule: refused before the card is touched.
    let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, "2468", "123", "123"));
    assert_eq!(refused(&r), "BadLength");
    // A wrong PIN answers 63Cx (the counter the guard then knows); blocked, the PIN is
    // unblocked with the PUK (the card's object 04, found from the PIN).
    assert_eq!(bench.client().verify_pin("0000").unwrap(), PinOutcome::Wrong { tries_left: 2 });
    bench.image.pins.iter_mut().find(|p| p.reference.0 == 0x03).unwrap().tries_left = 0;
    assert_eq!(bench.client().verify_pin("2468").unwrap(), PinOutcome::Blocked);
    let r = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, "87654321", "13571357", "13571357"));
    assert_eq!(done(&r), "PinUnblocked");
    assert_eq!(pin_of(&bench, 0x03), ("13571357".into(), 3));
    let r = run(&mut bench, "puk-change", REFERENCE_DATE, |r| pin::change_puk(r, "87654321", "11112222", "11112222"));
    assert_eq!(done(&r), "PukChanged");
    assert_eq!(pin_of(&bench, 0x04), ("11112222".into(), 10));
}

#[test]
fn renewal_and_reset_are_refused_and_leave_the_card_as_it_was() {
    let mut bench = Bench::new(CARD);
    let before = bench.image.clone();
    let mut bo = enrolled(&bench, "chiara@example.it", "+393330000106");
    let ca = ca();
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &options("incrypto34")));
    assert_eq!(refused(&r), "ObsoleteCard");
    let r = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, "12345678", &mut bo));
    assert_eq!(refused(&r), "ResetNotSupported");
    assert_eq!(bench.image, before, "nothing written");
    assert!(matches!(
        bench.client().stage_key(KeyRole::Signature, "12345678"),
        Err(firmalab_harness::client::ClientError::Refused { .. })
    ));
}
