//! Every flow on both profiles, in-process: the happy paths and every refusal reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_harness::backoffice::{CertStatus, PracticeState, Store};
use firmalab_harness::client::{KeyRole, PinOutcome};
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::{self, Policy};
use firmalab_harness::flows::renewal::{self, RenewalOptions};
use firmalab_harness::flows::{Outcome, pin, reset};

mod common;
use common::*;

#[test]
fn diagnostic_passes_all_ten_checks_on_renewable_cards_of_both_profiles() {
    for card in ["cns-renewable.json", "oberthur-renewable.json"] {
        let mut bench = Bench::new(card);
        let bo = enrolled(&bench, "holder@example.it", "+393330000001");
        let r = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| {
            diagnostic::run(r, &bo.data, &Policy::default(), Some("12345678"))
        });
        assert_eq!(done(&r), "Renewable", "{card}");
        let checks = r.details["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 10);
        assert_eq!(checks[5]["status"], "pass", "{card}: key ↔ certificate: {:?}", checks[5]);
        assert!(r.transcript.render().contains("{pin:"), "the PIN is a placeholder in the transcript");
        assert!(!r.transcript.render().contains("3132333435363738"), "no PIN in clear");
    }
}

fn diagnose(card: &str, now: Date, tweak: impl FnOnce(&mut Bench, &mut Store), pin: Option<&str>) -> String {
    let mut bench = Bench::new(card);
    let mut bo = if image(card).keys.iter().any(|k| k.material.is_some()) {
        enrolled(&bench, "a@example.it", "+390000000001")
    } else {
        Store::in_memory()
    };
    tweak(&mut bench, &mut bo);
    let r = run(&mut bench, "diagnostic", now, |r| diagnostic::run(r, &bo.data, &Policy::default(), pin));
    refused(&r).to_owned()
}

#[test]
fn diagnostic_refuses_with_the_right_reason_code() {
    let pin = Some("12345678");
    assert_eq!(diagnose("cns-expired.json", REFERENCE_DATE, |_, _| {}, pin), "CertExpired");
    assert_eq!(diagnose("cns-pin-blocked.json", REFERENCE_DATE, |_, _| {}, pin), "PinBlocked");
    assert_eq!(diagnose("cns-puk-blocked.json", REFERENCE_DATE, |_, _| {}, pin), "PukBlocked");
    assert_eq!(diagnose("cns-failed-issuance.json", REFERENCE_DATE, |_, _| {}, pin), "NotOperational");
    assert_eq!(diagnose("cns-renewable.json", Date::new(2026, 1, 1), |_, _| {}, pin), "NotInRenewalWindow");
    assert_eq!(diagnose("cns-renewable.json", REFERENCE_DATE, |_, bo| bo.data.cards.clear(), pin), "NotInBackOffice");
    assert_eq!(
        diagnose("cns-renewable.json", REFERENCE_DATE, |_, bo| bo.data.cards[0].renewal_count = 1, pin),
        "AlreadyRenewed"
    );
    assert_eq!(
        diagnose(
            "cns-renewable.json",
            REFERENCE_DATE,
            |_, bo| bo.data.cards[0].first_issuance = "2020-01-01".into(),
            pin
        ),
        "DeviceTooOld"
    );
    assert_eq!(
        diagnose(
            "cns-renewable.json",
            REFERENCE_DATE,
            |_, bo| bo.data.certificates.iter_mut().for_each(|c| c.status = CertStatus::Revoked),
            pin
        ),
        "CertRevoked"
    );
    // A CNS lot not in the table (ST Incard firmware 05.03) is obsolete; the genuine Aruba
    // CNS 1.0 lots are not (harness/tests/token_safety.rs).
    assert_eq!(
        diagnose(
            "cns-renewable.json",
            REFERENCE_DATE,
            |b, _| {
                b.image.atr.0 =
                    firmalab_harness::wire::hex::decode("3BFF1800FF8131FE55006B02090503010101434E531131808A").unwrap()
            },
            pin
        ),
        "ObsoleteCard"
    );
    assert_eq!(
        diagnose("cns-renewable.json", REFERENCE_DATE, |b, _| b.image.capacity = b.image.eeprom_used() + 100, pin),
        "InsufficientMemory"
    );
    assert_eq!(
        diagnose(
            "cns-renewable.json",
            REFERENCE_DATE,
            |b, _| {
                // The signature key of another card: the certificate no longer matches.
                let other = image("cns-expired.json");
                b.image.keys[1].material = other.keys[1].material.clone();
            },
            pin
        ),
        "CertKeyMismatch"
    );
    let mut bench = Bench::new("cns-renewable.json");
    let bo = enrolled(&bench, "a@example.it", "+390000000001");
    let policy = Policy { cdrl: Some("CDRL-MILANO-02".into()), ..Policy::default() };
    let r = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| diagnostic::run(r, &bo.data, &policy, pin));
    assert_eq!(refused(&r), "IssuedByOtherCdrl");
}

#[test]
fn pin_change_checks_before_touching_the_card_then_changes_every_pin_object() {
    for card in ["cns-renewable.json", "oberthur-renewable.json"] {
        let mut bench = Bench::new(card);
        let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, "12345678", "24682468", "24682460"));
        assert_eq!(refused(&r), "Mismatch");
        assert!(
            r.transcript.steps.iter().all(|s| s.exchanges.iter().all(|e| !e.command.starts_with("0024"))),
            "nothing sent"
        );
        let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, "12345678", "2468a", "2468a"));
        assert_eq!(refused(&r), "NotDigits");
        let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, "12345678", "123", "123"));
        assert_eq!(refused(&r), "BadLength");
        let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, "11111111", "24682468", "24682468"));
        assert_eq!(refused(&r), "WrongPin");
        let r = run(&mut bench, "pin-change", REFERENCE_DATE, |r| pin::change(r, "12345678", "24682468", "24682468"));
        assert_eq!(done(&r), "PinChanged", "{card}");
        let mut c = bench.client();
        assert_eq!(c.verify_pin("24682468").unwrap(), PinOutcome::Accepted);
        assert!(
            bench
                .image
                .pins
                .iter()
                .filter(|p| p.role == firmalab_emulator::security::PinRole::User)
                .all(|p| p.value == "24682468")
        );
    }
}

#[test]
fn pin_unblock_restores_a_blocked_pin_and_a_blocked_puk_ends_in_a_new_card() {
    let mut bench = Bench::new("cns-pin-blocked.json");
    let r = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, "11111111", "13571357", "13571357"));
    assert_eq!(refused(&r), "WrongPuk");
    assert!(r.steps.last().unwrap().detail.contains("9 tries left"), "{:?}", r.steps);
    let r = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, "87654321", "13571357", "13571357"));
    assert_eq!(done(&r), "PinUnblocked");
    assert_eq!(bench.client().verify_pin("13571357").unwrap(), PinOutcome::Accepted);

    let mut bench = Bench::new("cns-puk-blocked.json");
    let r = run(&mut bench, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, "87654321", "13571357", "13571357"));
    assert_eq!(refused(&r), "PukBlocked");
    let Outcome::Refused { message, .. } = &r.outcome else { unreachable!() };
    assert!(message.contains("revoke") && message.contains("new card"));

    // Oberthur: the AWP unblock through the PUK file.
    let mut blocked = Bench::new("oberthur-renewable.json");
    blocked.image.pins[1].tries_left = 0;
    let r = run(&mut blocked, "pin-unblock", REFERENCE_DATE, |r| pin::unblock(r, "87654321", "11223355", "11223355"));
    assert_eq!(done(&r), "PinUnblocked");
    assert_eq!(blocked.client().verify_pin("11223355").unwrap(), PinOutcome::Accepted);
}

#[test]
fn puk_change_needs_eight_digits_and_the_current_puk() {
    for card in ["cns-renewable.json", "oberthur-renewable.json"] {
        let mut bench = Bench::new(card);
        let r = run(&mut bench, "puk-change", REFERENCE_DATE, |r| pin::change_puk(r, "87654321", "1234567", "1234567"));
        assert_eq!(refused(&r), "BadLength");
        let r =
            run(&mut bench, "puk-change", REFERENCE_DATE, |r| pin::change_puk(r, "87654321", "11112222", "11112222"));
        assert_eq!(done(&r), "PukChanged", "{card}");
        assert!(
            bench
                .image
                .pins
                .iter()
                .filter(|p| p.role == firmalab_emulator::security::PinRole::Puk)
                .all(|p| p.value == "11112222")
        );
    }
}

#[test]
fn reset_needs_the_pin_and_leaves_a_blank_card_with_pin_12345() {
    for card in ["cns-renewable.json", "oberthur-renewable.json"] {
        let mut bench = Bench::new(card);
        let mut bo = enrolled(&bench, "a@example.it", "+390000000001");
        let r = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, "11111111", &mut bo));
        assert_eq!(refused(&r), "WrongPin");
        let r = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, "12345678", &mut bo));
        assert_eq!(done(&r), "Reset", "{card}");
        let mut c = bench.client();
        assert!(c.certificates().unwrap().is_empty(), "{card}: certificates gone");
        assert_eq!(c.verify_pin("12345").unwrap(), PinOutcome::Accepted, "{card}: default PIN");
        assert!(bench.image.keys.iter().all(|k| k.material.is_none()), "{card}: keys gone");
        assert!(bo.data.practices.iter().all(|p| p.state == PracticeState::Invalidated));
        assert!(bo.data.certificates.iter().all(|c| c.status == CertStatus::Revoked));
    }
    // After a failed issuance the PIN is the default one.
    let mut bench = Bench::new("cns-failed-issuance.json");
    let mut bo = Store::in_memory();
    let r = run(&mut bench, "reset", REFERENCE_DATE, |r| reset::reset(r, "12345", &mut bo));
    assert_eq!(done(&r), "Reset");
}

#[test]
fn renewal_installs_new_keys_and_certificates_and_waits_for_the_cdrl() {
    let ca = ca();
    for card in ["cns-renewable.json", "oberthur-renewable.json"] {
        let mut bench = Bench::new(card);
        let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
        let old_certs = bench.client().certificates().unwrap();
        let o = options(card);
        let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
        assert_eq!(done(&r), "AwaitingCdrlAuthorization", "{card}");
        let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SecretsChecked",
                "Scanned",
                "CertSelected",
                "EncryptionWarningAcknowledged",
                "PinStatus",
                "PinVerified",
                "DiagnosticPassed",
                "HolderDataConfirmed",
                "ContractsAccepted",
                "FormSigned",
                "KeysGenerated",
                "CsrSubmitted",
                "CertificateInstalled"
            ]
        );
        // The card now holds new certificates whose keys it has.
        let mut c = bench.client();
        let new_certs = c.certificates().unwrap();
        assert_eq!(new_certs.len(), 2, "{card}");
        for role in [KeyRole::Signature, KeyRole::Authentication] {
            let old = old_certs.iter().find(|x| x.role == role).unwrap();
            let new = new_certs.iter().find(|x| x.role == role).unwrap();
            assert_ne!(old.der, new.der, "{card} {role:?}");
        }
        let practice = r.details["practice"].as_str().unwrap().to_owned();
        let p = bo.data.practices.iter().find(|p| p.id == practice).unwrap();
        assert_eq!(p.state, PracticeState::AwaitingCdrlAuthorization);
        assert!(bo.data.certificates.iter().filter(|c| c.status == CertStatus::Suspended).count() == 2);
        assert_eq!(bo.data.cards[0].renewal_count, 1);
        // The key ↔ certificate check passes on the renewed card; renewing again is refused.
        let r2 = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| {
            diagnostic::run(r, &bo.data, &Policy::default(), Some("12345678"))
        });
        assert_eq!(r2.details["checks"][5]["status"], "pass", "{card}: {:?}", r2.details["checks"][5]);
        let r3 = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
        assert_eq!(refused(&r3), "AlreadyAwaitingAuthorization");
        // The reseller authorises after payment.
        let msg = renewal::authorize(&mut bo, &practice, REFERENCE_DATE).unwrap();
        assert!(msg.contains("2 certificate(s) active"), "{msg}");
        assert!(renewal::authorize(&mut bo, &practice, REFERENCE_DATE).is_err());
        // Files: the signed form, two requests, two authorisations, two certificates.
        let files: Vec<String> =
            r.details["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
        assert_eq!(files.len(), 7, "{files:?}");
        openssl_checks(&files);
    }
}

/// The independent oracle: OpenSSL accepts the form, the requests and the new certificates.
fn openssl_checks(files: &[String]) {
    if !tools::openssl("openssl checks of the renewal outputs") {
        return;
    }
    let at = (REFERENCE_DATE.days_since_epoch() * 86_400).to_string();
    let chain = root().join("fixtures/ca/chain.pem");
    let ok = |args: &[&str]| {
        let o = std::process::Command::new("openssl").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    for f in files {
        if f.ends_with("modulo-rinnovo.txt.p7m") {
            let out = ok(&[
                "cms",
                "-verify",
                "-cades",
                "-inform",
                "DER",
                "-in",
                f,
                "-CAfile",
                chain.to_str().unwrap(),
                "-attime",
                &at,
                "-out",
                "/dev/null",
            ]);
            assert!(out.contains("CAdES Verification successful"), "{out}");
        } else if f.ends_with(".csr") {
            assert!(ok(&["req", "-inform", "DER", "-in", f, "-verify", "-noout"]).contains("verify OK"));
        } else if f.ends_with(".cer") {
            let pem = format!("{f}.pem");
            ok(&["x509", "-inform", "DER", "-in", f, "-out", &pem]);
            let out = ok(&[
                "verify",
                "-CAfile",
                root().join("fixtures/ca/root.pem").to_str().unwrap(),
                "-untrusted",
                root().join("fixtures/ca/issuing-ca.pem").to_str().unwrap(),
                "-attime",
                &at,
                &pem,
            ]);
            assert!(out.contains(": OK"), "{out}");
        } else if f.ends_with("-authorized.p7m") {
            // Signed by the expiring qualified key, over the request.
            ok(&[
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                f,
                "-CAfile",
                chain.to_str().unwrap(),
                "-attime",
                &at,
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ]);
        }
    }
}

#[test]
fn renewal_refusals_stop_before_any_key_is_touched() {
    let ca = ca();
    type Tweak = Box<dyn Fn(&mut RenewalOptions, &mut Store)>;
    let cases: Vec<(&str, Tweak, &str)> = vec![
        ("no-ack", Box::new(|o, _| o.acknowledge_key_loss = false), "DecryptionKeyWarningNotAccepted"),
        ("wrong-pin", Box::new(|o, _| o.pin = "11111111".into()), "WrongPin"),
        ("contracts", Box::new(|o, _| o.accept_contracts = false), "ContractsNotAccepted"),
        ("holder", Box::new(|o, _| o.holder_data_correct = false), "NewPurchaseRequired"),
        (
            "email",
            Box::new(|o, bo| {
                bo.data
                    .bind_contact(
                        firmalab_harness::backoffice::ContactKind::Email,
                        "taken@example.it",
                        "ALTRO00A00A000A",
                    )
                    .unwrap();
                o.email = "taken@example.it".into();
            }),
            "ContactNotUnique",
        ),
        ("renewed", Box::new(|_, bo| bo.data.cards[0].renewal_count = 1), "AlreadyRenewed"),
    ];
    for (name, tweak, code) in cases {
        let mut bench = Bench::new("cns-renewable.json");
        let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
        let mut o = options(name);
        tweak(&mut o, &mut bo);
        let before = bench.image.keys.clone();
        let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
        assert_eq!(refused(&r), code, "{name}");
        assert_eq!(bench.image.keys, before, "{name}: keys untouched");
    }
    let mut bench = Bench::new("cns-expired.json");
    let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &options("expired")));
    assert_eq!(refused(&r), "CertExpired");
}

#[test]
fn a_missing_oracle_is_skipped_visibly_locally_and_fails_in_ci() {
    let absent = "firmalab-no-such-oracle";
    assert!(!tools::require("probe", absent, &["version"], "nowhere", false));
    let in_ci = std::panic::catch_unwind(|| tools::require("probe", absent, &["version"], "nowhere", true));
    assert!(in_ci.is_err(), "a missing oracle must fail in CI");
    assert_eq!(tools::require("probe", "openssl", &["version"], "-", false), tools::available("openssl", &["version"]));
}
