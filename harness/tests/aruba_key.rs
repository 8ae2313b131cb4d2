//! The Aruba Key's two-phase renewal (issue 14 item 7, spec/domain.md §2.2, §6.3 item 8):
//! phase 1, the order, authenticated by the card's CNS certificate, generates the new keys on
//! the card and has the CA issue their certificates; phase 2, the import (serial + PIN),
//! installs them. A renewal or a new order in between is refused `ImportRequired`.
//! In-process, on the `aruba-key.json` fixture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use der::Decode;
use der::referenced::OwnedToRef;
use firmalab_harness::backoffice::{CertStatus, OrderStatus, PracticeState, Store};
use firmalab_harness::ca::{ExpiryRule, serial_hex};
use firmalab_harness::client::{KeyRole, StagedKey};
use firmalab_harness::client_auth::{self, AuthRefusal, Challenge};
use firmalab_harness::cms::{self, Target};
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::Policy;
use firmalab_harness::flows::import::{self, ImportOptions};
use firmalab_harness::flows::order::{self, OrderOptions};
use firmalab_harness::flows::{FlowReport, renewal};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

const PIN: &str = "12345678";
const SERIAL: &str = "6010000000000106";

/// Order options writing into `out`, a folder removed when the test drops it.
fn order_options(out: &tempfile::TempDir) -> OrderOptions {
    OrderOptions {
        pin: PIN.into(),
        accept_contracts: true,
        expiry: ExpiryRule::FromIssuance,
        out_dir: out.path().join("out"),
        policy: Policy::default(),
        challenge: Challenge::insecure_from_seed(1),
    }
}

fn place_order(bench: &mut Bench, bo: &mut Store, name: &str) -> FlowReport {
    let ca = ca();
    let out = scratch(&format!("order-{name}"));
    let o = order_options(&out);
    run(bench, "order", REFERENCE_DATE, |r| order::run(r, &ca, bo, &o))
}

fn import_with(bench: &mut Bench, bo: &mut Store, serial: &str) -> FlowReport {
    let o = ImportOptions { serial: Some(serial.into()), pin: PIN.into() };
    run(bench, "import", REFERENCE_DATE.add_days(1), |r| import::run(r, bo, &o))
}

fn steps(r: &FlowReport) -> Vec<&str> {
    r.steps.iter().map(|s| s.name.as_str()).collect()
}

/// Commands that reached the card (a dry run's unsent ones aside).
fn commands(r: &FlowReport) -> Vec<String> {
    r.transcript.steps.iter().flat_map(|s| &s.exchanges).filter(|e| !e.not_sent).map(|e| e.command.clone()).collect()
}

fn on_card(bench: &Bench) -> Vec<(KeyRole, Vec<u8>)> {
    bench.client().certificates().unwrap().into_iter().map(|c| (c.role, c.der)).collect()
}

/// Signs with the card's current key of `role` and verifies with the certificate on the card.
fn signs_with_its_certificate(bench: &Bench, role: KeyRole) -> bool {
    let mut c = bench.client();
    let cert = c.certificates().unwrap().into_iter().find(|x| x.role == role).unwrap();
    let x = Certificate::from_der(&cert.der).unwrap();
    let key = rsa::RsaPublicKey::try_from(x.tbs_certificate().subject_public_key_info().owned_to_ref()).unwrap();
    let digest: [u8; 32] = Sha256::digest(b"a document").into();
    let sig = c.sign_sha256(role, None, &digest, PIN).unwrap();
    key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).is_ok()
}

#[test]
fn the_order_authenticates_with_the_cns_key_and_leaves_issued_certificates_waiting_for_the_import() {
    let mut bench = Bench::new("aruba-key.json");
    let mut bo = enrolled(&bench, "chiara@example.it", "+393330000009");
    let before = on_card(&bench);
    let r = place_order(&mut bench, &mut bo, "phase1");
    assert_eq!(done(&r), "AwaitingImport");
    assert_eq!(
        steps(&r),
        [
            "SecretsChecked",
            "Scanned",
            "PinStatus",
            "PinVerified",
            "ClientAuthenticated",
            "DiagnosticPassed",
            "ContractsAccepted",
            "KeysGenerated",
            "CsrSubmitted",
            "OrderPlaced"
        ]
    );
    assert!(r.steps[1].detail.contains("Aruba Key: token label CNS, manufacturer ST Incard, model T&S DS/2048 (LB)"));
    // The challenge was signed with the CNS0 key: MSE SET on key 01.
    let cmds = commands(&r);
    let auth = r.transcript.steps.iter().find(|s| s.name == "ClientAuthenticated").unwrap();
    assert!(auth.exchanges.iter().any(|e| e.command == "0022F1B6038301 01".replace(' ', "")), "{cmds:?}");
    // The card still holds and uses its current keys and certificates; the new keys wait.
    assert_eq!(on_card(&bench), before, "nothing installed yet");
    assert!(bench.image.keys.iter().all(|k| k.pending.is_some()), "both new keys on the card");
    assert!(signs_with_its_certificate(&bench, KeyRole::Signature));
    // The back office: a two-phase practice, a paid order with the certificates, suspended.
    let p = bo.data.pending_import(SERIAL).unwrap().clone();
    assert_eq!(p.state, PracticeState::AwaitingImport);
    let order = bo.data.order_of(&p.id).unwrap().clone();
    assert_eq!((order.status, order.certificates.len()), (OrderStatus::Paid, 2));
    for c in &order.certificates {
        assert_eq!(bo.data.cert(&c.serial).unwrap().status, CertStatus::Suspended, "on hold until imported");
        let x = Certificate::from_der(&firmalab_harness::wire::hex::decode(&c.der).unwrap()).unwrap();
        let v = x.tbs_certificate().validity();
        assert_eq!(v.not_after.to_date_time().year(), 2029, "3 years from the order (the Aruba Key rule)");
    }

    // Before the import: a renewal, another order and the diagnostic all say ImportRequired,
    // and the renewal sends no PIN.
    let ca = ca();
    let o = options("aruba-renewal");
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
    assert_eq!(refused(&r), "ImportRequired");
    assert!(commands(&r).iter().all(|c| !c.starts_with("0020") || c.len() == 8), "no PIN: {:?}", commands(&r));
    assert!(r.transcript.steps.iter().all(|s| s.exchanges.iter().all(|e| !e.command.starts_with("0046"))));
    let r = place_order(&mut bench, &mut bo, "again");
    assert_eq!(refused(&r), "ImportRequired");
    let r = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| {
        firmalab_harness::flows::diagnostic::run(r, &bo.data, &Policy::default(), Some(PIN))
    });
    assert_eq!(refused(&r), "ImportRequired");
    assert_eq!(r.details["checks"][9]["reason"], "ImportRequired");
}

#[test]
fn the_import_checks_the_serial_and_the_keys_then_installs_and_activates_the_certificates() {
    let mut bench = Bench::new("aruba-key.json");
    let mut bo = enrolled(&bench, "chiara@example.it", "+393330000009");
    let old: Vec<String> = bo.data.certificates.iter().map(|c| c.serial.clone()).collect();
    assert_eq!(done(&place_order(&mut bench, &mut bo, "phase2")), "AwaitingImport");
    let order = bo.data.orders.last().unwrap().clone();

    let r = import_with(&mut bench, &mut bo, "6010000000000101");
    assert_eq!(refused(&r), "WrongSerial");
    assert!(commands(&r).iter().all(|c| !c.starts_with("0020") && !c.starts_with("0046")), "{:?}", commands(&r));

    let r = import_with(&mut bench, &mut bo, SERIAL);
    assert_eq!(done(&r), "CertificatesImported");
    assert_eq!(
        steps(&r),
        [
            "SecretsChecked",
            "Scanned",
            "OrderFound",
            "PinStatus",
            "PinVerified",
            "KeysMatched",
            "CertificatesImported",
            "BackOfficeUpdated"
        ]
    );
    // The order's certificates are the card's now, and its keys sign for them.
    let now_on_card = on_card(&bench);
    for c in &order.certificates {
        let der = firmalab_harness::wire::hex::decode(&c.der).unwrap();
        assert!(now_on_card.contains(&(c.role, der)), "{:?} installed", c.role);
    }
    assert!(bench.image.keys.iter().all(|k| k.pending.is_none()), "the new keys are the slots' keys");
    assert!(signs_with_its_certificate(&bench, KeyRole::Signature));
    assert!(signs_with_its_certificate(&bench, KeyRole::Authentication));
    // Back office: new active, old superseded, one renewal, practice and order completed.
    for c in &order.certificates {
        assert_eq!(bo.data.cert(&c.serial).unwrap().status, CertStatus::Active);
    }
    for s in &old {
        assert_eq!(bo.data.cert(s).unwrap().status, CertStatus::Superseded, "{s}");
    }
    assert_eq!(bo.data.card(SERIAL).unwrap().renewal_count, 1);
    let p = bo.data.practice(&bo.data.orders.last().unwrap().practice).unwrap();
    assert_eq!(p.state, PracticeState::Completed);
    assert_eq!(bo.data.orders.last().unwrap().status, OrderStatus::Completed);
    // Nothing left: a second import says so, and the card's renewal is spent.
    let r = import_with(&mut bench, &mut bo, SERIAL);
    assert_eq!(refused(&r), "NothingToImport");
    let Some(firmalab_harness::flows::Outcome::Refused { message, .. }) = Some(r.outcome) else { unreachable!() };
    assert!(message.contains("already on card"), "{message}");
}

#[test]
fn an_import_whose_new_key_was_replaced_writes_nothing_and_an_interrupted_one_resumes() {
    let mut bench = Bench::new("aruba-key.json");
    let mut bo = enrolled(&bench, "chiara@example.it", "+393330000009");
    assert_eq!(done(&place_order(&mut bench, &mut bo, "replaced")), "AwaitingImport");
    let before = on_card(&bench);
    let after_order = bench.image.clone();
    let slot = |img: &firmalab_emulator::CardImage, r: u8| img.keys.iter().position(|k| k.reference.0 == r).unwrap();

    // Something replaced the signature slot's new key meanwhile (here: with the new
    // authentication key, so the card still holds a pending key, just not the ordered one).
    let mut replaced = Bench { image: after_order.clone() };
    let (sign, auth) = (slot(&replaced.image, 0x10), slot(&replaced.image, 0x01));
    replaced.image.keys[sign].pending = replaced.image.keys[auth].pending.clone();
    let mut bo_copy = Store::in_memory();
    bo_copy.data = bo.data.clone();
    let r = import_with(&mut replaced, &mut bo_copy, SERIAL);
    assert_eq!(refused(&r), "KeyNotOnCard");
    assert!(r.steps.last().unwrap().detail.contains("Signature key pair of order O-000001 is no longer on the card"));
    assert_eq!(on_card(&replaced), before, "nothing installed, not even the authentication certificate");
    assert!(bo_copy.data.pending_import(SERIAL).is_some(), "the order still waits");

    // Interrupted after the authentication certificate went on: the rerun finishes.
    let order = bo.data.orders.last().unwrap().clone();
    let ordered = order.certificates.iter().find(|c| c.role == KeyRole::Authentication).unwrap();
    let der = firmalab_harness::wire::hex::decode(&ordered.der).unwrap();
    let x = Certificate::from_der(&der).unwrap();
    let handle = bench.client().pending_handle(KeyRole::Authentication).unwrap();
    let mut cut = Bench { image: after_order };
    let r = run(&mut cut, "partial", REFERENCE_DATE, |mut r| {
        let staged = StagedKey {
            role: KeyRole::Authentication,
            public: rsa::RsaPublicKey::try_from(x.tbs_certificate().subject_public_key_info().owned_to_ref()).unwrap(),
            handle,
        };
        r.client.install(&staged, &der, PIN).unwrap();
        r.finish(
            "partial",
            String::new(),
            Err(firmalab_harness::flows::Stop::Failed("cut".into())),
            serde_json::Value::Null,
        )
    });
    assert_eq!(r.outcome.exit_code(), 3);
    assert!(on_card(&cut).contains(&(KeyRole::Authentication, der.clone())), "half imported");
    let r = import_with(&mut cut, &mut bo, SERIAL);
    assert_eq!(done(&r), "CertificatesImported");
    let matched = r.steps.iter().find(|s| s.name == "KeysMatched").unwrap();
    assert!(
        matched.detail.contains(&format!("Authentication {} already on the card", ordered.serial)),
        "{}",
        matched.detail
    );
    assert!(signs_with_its_certificate(&cut, KeyRole::Signature));
    assert!(signs_with_its_certificate(&cut, KeyRole::Authentication));
}

#[test]
fn the_back_office_verifies_the_client_authentication_against_the_enrolled_certificate() {
    let bench = Bench::new("aruba-key.json");
    let mut bo = enrolled(&bench, "chiara@example.it", "+393330000009");
    let ca = ca();
    let mut c = bench.client();
    let auth = c.certificates().unwrap().into_iter().find(|x| x.role == KeyRole::Authentication).unwrap();
    let challenge = Challenge::insecure_from_seed(7);
    let digest = client_auth::signed_digest(&challenge, &auth.der);
    let sig = c.sign_sha256(KeyRole::Authentication, None, &digest, PIN).unwrap();
    let ok = client_auth::verify(&ca, &bo.data, SERIAL, &auth.der, &challenge, &sig, REFERENCE_DATE).unwrap();
    assert_eq!(ok.codice_fiscale, "RSSCHR88D45L736P");
    assert_eq!(ok.certificate, serial_hex(&Certificate::from_der(&auth.der).unwrap()));
    // Another challenge, a changed signature, another card's certificate: refused.
    let other = Challenge::insecure_from_seed(8);
    assert!(matches!(
        client_auth::verify(&ca, &bo.data, SERIAL, &auth.der, &other, &sig, REFERENCE_DATE),
        Err(AuthRefusal::BadSignature { .. })
    ));
    let mut bad = sig.clone();
    bad[100] ^= 1;
    assert!(matches!(
        client_auth::verify(&ca, &bo.data, SERIAL, &auth.der, &challenge, &bad, REFERENCE_DATE),
        Err(AuthRefusal::BadSignature { .. })
    ));
    let stranger = Bench::new("cns-renewable.json");
    let their =
        stranger.client().certificates().unwrap().into_iter().find(|x| x.role == KeyRole::Authentication).unwrap();
    assert!(matches!(
        client_auth::verify(&ca, &bo.data, SERIAL, &their.der, &challenge, &sig, REFERENCE_DATE),
        Err(AuthRefusal::NotEnrolled { .. })
    ));
    assert!(matches!(
        client_auth::verify(
            &ca,
            &bo.data,
            SERIAL,
            &auth.der,
            &challenge,
            &sig,
            firmalab_harness::dates::Date::new(2027, 1, 1)
        ),
        Err(AuthRefusal::NotValid(_))
    ));
    // A suspended authentication certificate: the order is refused before any key is made.
    let serial = serial_hex(&Certificate::from_der(&auth.der).unwrap());
    cms::suspend(&mut bo, &Target::Certificate(serial.clone()), "CDRL-ROMA-01", REFERENCE_DATE).unwrap();
    assert!(matches!(
        client_auth::verify(&ca, &bo.data, SERIAL, &auth.der, &challenge, &sig, REFERENCE_DATE),
        Err(AuthRefusal::NotActive { .. })
    ));
    drop(c);
    let mut bench = bench;
    let r = place_order(&mut bench, &mut bo, "suspended");
    assert_eq!(refused(&r), "ClientAuthFailed");
    assert!(bench.image.keys.iter().all(|k| k.pending.is_none()), "no key generated");
    assert!(bo.data.orders.is_empty());
}

#[test]
fn the_order_refuses_cards_it_cannot_serve_before_any_key_is_generated() {
    // Oberthur keeps no key across sessions for a later import.
    let mut bench = Bench::new("oberthur-renewable.json");
    let mut bo = enrolled(&bench, "giulia@example.it", "+393330000008");
    let r = place_order(&mut bench, &mut bo, "oberthur");
    assert_eq!(refused(&r), "TwoPhaseNotSupported");
    assert!(commands(&r).iter().all(|c| !c.starts_with("0020") || c.len() <= 10), "no PIN: {:?}", commands(&r));
    // A card the back office does not know.
    let mut bench = Bench::new("aruba-key.json");
    let mut empty = Store::in_memory();
    let r = place_order(&mut bench, &mut empty, "unknown");
    assert_eq!(refused(&r), "NotInBackOffice");
    // Contracts not accepted: nothing generated, no order.
    let mut bo = enrolled(&bench, "chiara@example.it", "+393330000009");
    let ca = ca();
    let out = scratch("order-contracts");
    let o = OrderOptions { accept_contracts: false, ..order_options(&out) };
    let r = run(&mut bench, "order", REFERENCE_DATE, |r| order::run(r, &ca, &mut bo, &o));
    assert_eq!(refused(&r), "ContractsNotAccepted");
    assert!(bench.image.keys.iter().all(|k| k.pending.is_none()));
    assert!(bo.data.orders.is_empty());
}
