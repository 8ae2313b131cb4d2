//! Fault injection: a token pulled out (power cut before or after the card executes the
//! command), a dropped connection, or a corrupted answer, at every APDU of the renewal, the
//! reset and the PIN unblock, on both profiles. Afterwards the card still holds a usable
//! signing key with its matching certificate (old or new), the counters are consistent, the back
//! office knows where the practice stands, and running the flow again completes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use der::Decode;
use der::referenced::OwnedToRef;
use firmalab_harness::backoffice::{CertStatus, PracticeState};
use firmalab_harness::ca::serial_hex;
use firmalab_harness::client::KeyRole;
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::renewal;
use firmalab_harness::flows::{Outcome, Reason, StepStatus, pin, reset};
use firmalab_harness::transport::fault::{Fault, Faulty};
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};

const PIN: &str = "12345678";

/// The card signs with its qualified key and the signature verifies with the certificate it
/// holds; returns that certificate's serial.
fn usable_signing_key(bench: &Bench, context: &str) -> String {
    let mut c = bench.client();
    let certs = c.certificates().unwrap_or_else(|e| panic!("{context}: certificates unreadable: {e}"));
    let der = &certs
        .iter()
        .find(|x| x.role == KeyRole::Signature)
        .unwrap_or_else(|| panic!("{context}: no signature certificate"))
        .der;
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    let key = rsa::RsaPublicKey::try_from(cert.tbs_certificate().subject_public_key_info().owned_to_ref()).unwrap();
    let digest: [u8; 32] = Sha256::digest(context.as_bytes()).into();
    let sig =
        c.sign_sha256(KeyRole::Signature, None, &digest, PIN).unwrap_or_else(|e| panic!("{context}: cannot sign: {e}"));
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .unwrap_or_else(|_| panic!("{context}: key and certificate do not match"));
    serial_hex(&cert)
}

fn counters_full(bench: &Bench, context: &str) {
    for p in &bench.image.pins {
        assert_eq!(p.tries_left, p.max_tries, "{context}: {} counter {} of {}", p.label, p.tries_left, p.max_tries);
    }
}

fn clean_length(fixture: &str) -> usize {
    let mut bench = Bench::new(fixture);
    let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
    let (ca, o) = (ca(), options("clean"));
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
    assert_eq!(done(&r), "AwaitingCdrlAuthorization");
    r.transcript.steps.iter().map(|s| s.exchanges.len()).sum()
}

fn renewal_with_fault(fixture: &str, at: usize, fault: Fault) {
    let context = format!("{fixture}: {fault:?} at APDU {at}");
    let mut bench = Bench::new(fixture);
    let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
    let (ca, o) = (ca(), options(&format!("fault-{at}")));
    let first = run_wrapped(
        &mut bench,
        "renewal",
        REFERENCE_DATE,
        |t| Box::new(Faulty::new(t, at, fault)),
        |r| renewal::run(r, &ca, &mut bo, &o),
    );
    // After the fault: a usable key with its certificate, full counters, a known practice state.
    usable_signing_key(&bench, &context);
    counters_full(&bench, &context);
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
    let again = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
    if first_done {
        assert_eq!(refused(&again), "AlreadyAwaitingAuthorization", "{context}");
    } else {
        assert_eq!(done(&again), "AwaitingCdrlAuthorization", "{context}: rerun {:?}", again.outcome);
    }
    let serial = usable_signing_key(&bench, &context);
    counters_full(&bench, &context);
    let record =
        bo.data.cert(&serial).unwrap_or_else(|| panic!("{context}: the card's certificate is unknown to the registry"));
    assert_eq!(record.status, CertStatus::Suspended, "{context}: the new certificate waits for the CDRL");
    assert_eq!(bo.data.cards[0].renewal_count, 1, "{context}: counted once");
    let renewal = bo
        .data
        .practices
        .iter()
        .filter(|p| p.kind == firmalab_harness::backoffice::PracticeKind::Renewal)
        .collect::<Vec<_>>();
    assert_eq!(renewal.len(), 1, "{context}: one renewal practice");
    assert_eq!(renewal[0].state, PracticeState::AwaitingCdrlAuthorization, "{context}");
    assert_eq!(
        bo.data.certificates.iter().filter(|c| c.status == CertStatus::Suspended).count(),
        2,
        "{context}: exactly the two installed certificates wait"
    );
}

#[test]
fn renewal_survives_a_power_cut_after_every_apdu_on_both_profiles() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let n = clean_length(fixture);
        for at in 0..n {
            renewal_with_fault(fixture, at, Fault::CutAfter);
        }
    }
}

/// A cut before command N leaves the card as a cut after command N-1 (tested at every
/// index above); what differs is what the host saw, so these kinds are sampled.
#[test]
fn renewal_survives_cuts_before_corrupted_answers_and_dropped_connections() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let n = clean_length(fixture);
        for at in (0..n).step_by(5) {
            renewal_with_fault(fixture, at, Fault::CutBefore);
        }
        for at in (2..n).step_by(5) {
            renewal_with_fault(fixture, at, Fault::Corrupt);
        }
        for at in (4..n).step_by(11) {
            renewal_with_fault(fixture, at, Fault::Drop);
        }
    }
}

fn reset_with_fault(fixture: &str, at: usize, fault: Fault) {
    let context = format!("reset on {fixture}: {fault:?} at APDU {at}");
    let mut bench = Bench::new(fixture);
    let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
    let first = run_wrapped(
        &mut bench,
        "reset",
        REFERENCE_DATE,
        |t| Box::new(Faulty::new(t, at, fault)),
        |r| reset::reset(r, PIN, &mut bo),
    );
    let first_done = matches!(first.as_ref().map(|r| &r.outcome), Some(Outcome::Done { .. }));
    if !first_done && !bench.client().certificates().unwrap().is_empty() {
        // Not erased yet: still a working card.
        usable_signing_key(&bench, &context);
    }
    counters_full(&bench, &context);
    // Run again with the holder's PIN, as the user does. If the erase had happened, the card
    // now has the default PIN: the flow says so (it never tries 12345 on its own), and the
    // user runs it again with --default-pin, whose success restores the counter.
    let mut again = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, PIN, &mut bo));
    if let Outcome::Refused { reason, message } = &again.outcome {
        assert_eq!(*reason, Reason::WrongPin, "{context}: {message}");
        assert!(message.contains("--default-pin") && message.contains("2 tries left"), "{context}: {message}");
        again = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, "12345", &mut bo));
    }
    assert_eq!(done(&again), "Reset", "{context}");
    let mut c = bench.client();
    assert!(c.certificates().unwrap().is_empty(), "{context}: blank");
    assert_eq!(c.verify_pin("12345").unwrap(), firmalab_harness::client::PinOutcome::Accepted, "{context}");
    assert!(bench.image.keys.iter().all(|k| k.material.is_none()), "{context}: no key left");
    counters_full(&bench, &context);
}

fn unblock_with_fault(fixture: &str, at: usize, fault: Fault) {
    let context = format!("unblock on {fixture}: {fault:?} at APDU {at}");
    let mut bench = Bench::new(fixture);
    for p in bench.image.pins.iter_mut().filter(|p| p.role == firmalab_emulator::security::PinRole::User) {
        p.tries_left = 0;
    }
    let _ = run_wrapped(
        &mut bench,
        "pin-unblock",
        REFERENCE_DATE,
        |t| Box::new(Faulty::new(t, at, fault)),
        |r| pin::unblock(r, "87654321", "13571357", "13571357"),
    );
    for p in bench.image.pins.iter().filter(|p| p.role == firmalab_emulator::security::PinRole::Puk) {
        assert_eq!(p.tries_left, p.max_tries, "{context}: {}", p.label);
    }
    let again = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, "87654321", "13571357", "13571357"));
    assert_eq!(done(&again), "PinUnblocked", "{context}");
    assert_eq!(
        bench.client().verify_pin("13571357").unwrap(),
        firmalab_harness::client::PinOutcome::Accepted,
        "{context}"
    );
    counters_full(&bench, &context);
}

fn flow_length(fixture: &str, flow: &str) -> usize {
    let mut bench = Bench::new(fixture);
    if flow == "pin-unblock" {
        for p in bench.image.pins.iter_mut().filter(|p| p.role == firmalab_emulator::security::PinRole::User) {
            p.tries_left = 0;
        }
    }
    let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
    let r = run(&mut bench, flow, REFERENCE_DATE, |r| match flow {
        "reset" => reset::reset(r, PIN, &mut bo),
        _ => pin::unblock(r, "87654321", "13571357", "13571357"),
    });
    done(&r);
    r.transcript.steps.iter().map(|s| s.exchanges.len()).sum()
}

#[test]
fn reset_and_unblock_survive_every_fault_at_every_apdu_on_both_profiles() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        for fault in [Fault::CutAfter, Fault::CutBefore, Fault::Corrupt, Fault::Drop] {
            for at in 0..flow_length(fixture, "reset") {
                reset_with_fault(fixture, at, fault);
            }
            for at in 0..flow_length(fixture, "pin-unblock") {
                unblock_with_fault(fixture, at, fault);
            }
        }
    }
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
