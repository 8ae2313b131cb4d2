//! The back office as the CMS runs it (spec/domain.md §0 FAQ CMS, §6.3 items 10-11, §6.4):
//! issuance with the PIN/PUK envelope, practice states, events, resend, revoke / suspend /
//! reactivate with their CDRL rule, contacts, renewal notices, and the CRL and OCSP index the
//! CA publishes. In-process; the OpenSSL oracles are in tests/revocation.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use der::{Decode, Encode};
use firmalab_harness::backoffice::{CertStatus, ContactKind, EventKind, PracticeState, RevocationReason, Store};
use firmalab_harness::cms::{self, CmsError, Enrollment, Target};
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::REFERENCE_DATE;
use firmalab_harness::flows::diagnostic::{self, Policy};
use firmalab_harness::flows::renewal;
use firmalab_harness::notices::{self, Within};
use firmalab_harness::outbox::Stamp;
use firmalab_harness::revocation;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

mod common;
use common::*;

/// An outbox path not yet created, in a folder removed when the returned guard is dropped.
fn outbox(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = scratch(&format!("bo-{name}"));
    let outbox = dir.path().join("outbox");
    (dir, outbox)
}

fn code(r: Result<cms::Done, CmsError>) -> String {
    match r {
        Err(CmsError::Refused(r)) => r.code().to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A card enrolled by `cdrl` with codes 12345678 / 87654321 sent into `outbox`.
fn issue(bench: &Bench, bo: &mut Store, cdrl: &str, outbox: &std::path::Path) -> cms::Done {
    let e = Enrollment {
        cdrl,
        email: " Mario.Rossi@Example.IT ",
        mobile: "+39 333 000 0001",
        address: Some("Via Roma 1,  00100 Roma"),
        codes: Some(("12345678", "87654321")),
        outbox,
    };
    cms::enroll(bench.client().as_mut(), bo, &e, REFERENCE_DATE).unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn issuance_sends_the_codes_in_two_halves_and_waits_for_the_originals() {
    let (_dir, outbox) = outbox("issue");
    let bench = Bench::new("cns-renewable.json");
    let mut bo = Store::in_memory();
    let done = issue(&bench, &mut bo, "CDRL-ROMA-01", &outbox);
    let id = done.practice.clone().unwrap();
    let p = bo.data.practice(&id).unwrap();
    assert_eq!(p.state, PracticeState::AttesaOriginali);
    let kinds: Vec<EventKind> = p.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::FormCreated, EventKind::CertificatesIssued, EventKind::CodesSent]);
    assert_eq!(p.events[0].kind.label(), "creazione modulo");
    // Contacts and address as normalised.
    let cf = p.codice_fiscale.clone();
    assert_eq!(bo.data.contact_of(ContactKind::Email, &cf), Some("mario.rossi@example.it"));
    assert_eq!(bo.data.contact_of(ContactKind::Mobile, &cf), Some("+393330000001"));
    assert_eq!(bo.data.holder(&cf).unwrap().address.as_deref(), Some("Via Roma 1, 00100 Roma"));
    // The first half by SMS, the second by email; neither file holds a whole code.
    assert_eq!(done.files.len(), 2, "{:?}", done.files);
    let sms = std::fs::read_to_string(&done.files[0]).unwrap();
    let mail = std::fs::read_to_string(&done.files[1]).unwrap();
    assert!(sms.starts_with("To: +393330000001\n") && sms.contains("PIN 1234**** PUK 8765****"), "{sms}");
    assert!(mail.contains("\r\nTo: mario.rossi@example.it\r\n") && mail.contains("PIN: ****5678\r\nPUK: ****4321\r\n"));
    for (f, text) in [(&done.files[0], &sms), (&done.files[1], &mail)] {
        assert!(!text.contains("12345678") && !text.contains("87654321"), "{f}");
        assert_eq!(mode(std::path::Path::new(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&outbox), 0o700);
    // The store keeps only the second half, and `ra show` masks it.
    let half = p.envelope.as_ref().unwrap().second_half.as_ref().unwrap();
    assert_eq!((half.pin.as_str(), half.puk.as_str()), ("5678", "4321"));
    let shown = serde_json::to_string(&bo.data.redacted()).unwrap();
    assert!(!shown.contains("5678") && !shown.contains("4321"), "{shown}");
    // Originals received: Completato; not twice.
    cms::receive_originals(&mut bo, &id, "CDRL-ROMA-01", REFERENCE_DATE).unwrap();
    assert_eq!(bo.data.practice(&id).unwrap().state, PracticeState::Completato);
    assert_eq!(code(cms::receive_originals(&mut bo, &id, "CDRL-ROMA-01", REFERENCE_DATE)), "WrongPracticeState");
}

#[test]
fn resend_codes_only_in_attesa_originali_or_completato_and_never_for_paper_codes() {
    let (_dir, outbox) = outbox("resend");
    let bench = Bench::new("cns-renewable.json");
    let mut bo = Store::in_memory();
    let id = issue(&bench, &mut bo, "CDRL-ROMA-01", &outbox).practice.unwrap();
    let now = Stamp::at(Some(REFERENCE_DATE));
    for state in [PracticeState::AttesaOriginali, PracticeState::Completato] {
        bo.data.practice_mut(&id).unwrap().state = state;
        let d = cms::resend_codes(&mut bo, &id, "CDRL-ROMA-01", &outbox, now).unwrap();
        let mail = std::fs::read_to_string(&d.files[0]).unwrap();
        assert!(mail.contains("PIN: ****5678\r\n") && mail.contains("To: mario.rossi@example.it"), "{mail}");
    }
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 4, "two resends, none overwritten");
    assert_eq!(bo.data.practice(&id).unwrap().events.last().unwrap().kind, EventKind::CodesResent);
    for state in [PracticeState::CreazioneModulo, PracticeState::Revocata, PracticeState::Invalidated] {
        bo.data.practice_mut(&id).unwrap().state = state;
        assert_eq!(code(cms::resend_codes(&mut bo, &id, "CDRL-ROMA-01", &outbox, now)), "WrongPracticeState");
    }
    bo.data.practice_mut(&id).unwrap().state = PracticeState::Completato;
    assert_eq!(code(cms::resend_codes(&mut bo, &id, "CDRL-MILANO-02", &outbox, now)), "PracticeOfOtherCdrl");
    assert_eq!(code(cms::resend_codes(&mut bo, "P-000099", "CDRL-ROMA-01", &outbox, now)), "NoSuchPractice");
    // Paper codes cannot be sent again.
    let other = Bench::new("oberthur-renewable.json");
    let mut paper = enrolled(&other, "g@example.it", "+393330000002");
    assert_eq!(code(cms::resend_codes(&mut paper, "P-000001", "CDRL-ROMA-01", &outbox, now)), "CodesOnPaper");
}

#[test]
fn revoke_only_by_the_issuing_cdrl_then_the_card_is_revocata_and_the_diagnostic_refuses() {
    let (_dir, outbox) = outbox("revoke");
    let mut bench = Bench::new("cns-renewable.json");
    let mut bo = Store::in_memory();
    let id = issue(&bench, &mut bo, "CDRL-MILANO-02", &outbox).practice.unwrap();
    let card = bo.data.cards[0].serial.clone();
    let r = cms::revoke(
        &mut bo,
        &Target::Card(card.clone()),
        "CDRL-ROMA-01",
        RevocationReason::KeyCompromise,
        REFERENCE_DATE,
    );
    match &r {
        Err(CmsError::Refused(x)) => {
            assert_eq!(x.code().as_str(), "IssuedByOtherCdrl");
            assert!(
                x.to_string().contains("issued by CDRL-MILANO-02") && x.to_string().contains("Revoca carta"),
                "{x}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(bo.data.certificates.iter().all(|c| c.status == CertStatus::Active), "nothing changed");
    let d = cms::revoke(
        &mut bo,
        &Target::Card(card.clone()),
        "CDRL-MILANO-02",
        RevocationReason::KeyCompromise,
        REFERENCE_DATE,
    )
    .unwrap();
    assert_eq!(d.certificates.len(), 2);
    assert!(bo.data.certificates.iter().all(|c| c.status == CertStatus::Revoked));
    assert_eq!(bo.data.practice(&id).unwrap().state, PracticeState::Revocata);
    assert_eq!(bo.data.practice(&id).unwrap().events.last().unwrap().kind, EventKind::Revoked);
    let serial = d.certificates[0].clone();
    assert_eq!(
        code(cms::revoke(
            &mut bo,
            &Target::Certificate(serial),
            "CDRL-MILANO-02",
            RevocationReason::Unspecified,
            REFERENCE_DATE
        )),
        "AlreadyRevoked"
    );
    assert_eq!(
        code(cms::revoke(
            &mut bo,
            &Target::Card(card),
            "CDRL-MILANO-02",
            RevocationReason::Unspecified,
            REFERENCE_DATE
        )),
        "NoCertificateToChange"
    );
    let policy = Policy { cdrl: Some("CDRL-MILANO-02".into()), ..Policy::default() };
    let r = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| diagnostic::run(r, &bo.data, &policy, Some("12345678")));
    assert_eq!(refused(&r), "CertRevoked");
}

#[test]
fn suspend_and_reactivate_move_between_active_and_hold_and_leave_renewals_to_authorize() {
    let mut bench = Bench::new("cns-renewable.json");
    let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
    let card = bo.data.cards[0].serial.clone();
    let sign = bo.data.certificates[1].serial.clone();
    let t = Target::Certificate(sign.clone());
    assert_eq!(code(cms::suspend(&mut bo, &t, "CDRL-MILANO-02", REFERENCE_DATE)), "IssuedByOtherCdrl");
    cms::suspend(&mut bo, &t, "CDRL-ROMA-01", REFERENCE_DATE).unwrap();
    let c = bo.data.cert(&sign).unwrap();
    assert_eq!(c.status, CertStatus::Suspended);
    assert!(c.held_by_cdrl());
    assert_eq!(code(cms::suspend(&mut bo, &t, "CDRL-ROMA-01", REFERENCE_DATE)), "NotActive");
    let r = run(&mut bench, "diagnostic", REFERENCE_DATE, |r| {
        diagnostic::run(r, &bo.data, &Policy::default(), Some("12345678"))
    });
    assert_eq!(refused(&r), "CertRevoked", "a suspended certificate cannot be renewed");
    cms::reactivate(&mut bo, &t, "CDRL-ROMA-01", REFERENCE_DATE).unwrap();
    assert_eq!(bo.data.cert(&sign).unwrap().status, CertStatus::Active);
    assert_eq!(code(cms::reactivate(&mut bo, &t, "CDRL-ROMA-01", REFERENCE_DATE)), "NotSuspended");
    // A renewal's new certificates wait for `authorize`, not `reactivate`.
    let o = options("suspend");
    let ca = ca();
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
    assert_eq!(done(&r), "AwaitingCdrlAuthorization");
    assert_eq!(
        code(cms::reactivate(&mut bo, &Target::Card(card), "CDRL-ROMA-01", REFERENCE_DATE)),
        "AwaitingAuthorization"
    );
    let events: Vec<EventKind> =
        cms::events(&bo.data, Some("P-000001"), None).unwrap().iter().map(|e| e.kind).collect();
    assert!(events.contains(&EventKind::Suspended) && events.contains(&EventKind::Reactivated), "{events:?}");
}

#[test]
fn a_card_of_another_cdrl_is_neither_renewed_nor_authorised() {
    let ca = ca();
    let (_dir, outbox) = outbox("cdrl");
    let mut bench = Bench::new("cns-renewable.json");
    let mut bo = Store::in_memory();
    issue(&bench, &mut bo, "CDRL-MILANO-02", &outbox);
    let before = bench.image.keys.clone();
    let mut o = options("other-cdrl");
    o.email = "mario.rossi@example.it".into();
    o.cdrl = "CDRL-ROMA-01".into();
    o.policy = Policy { cdrl: Some("CDRL-ROMA-01".into()), ..Policy::default() };
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
    assert_eq!(refused(&r), "IssuedByOtherCdrl");
    assert_eq!(bench.image.keys, before, "no key touched");
    // The issuing CDRL renews; another CDRL cannot authorise.
    o.cdrl = "CDRL-MILANO-02".into();
    o.policy.cdrl = Some("CDRL-MILANO-02".into());
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
    assert_eq!(done(&r), "AwaitingCdrlAuthorization");
    let p = r.details["practice"].as_str().unwrap().to_owned();
    assert_eq!(code(cms::authorize(&mut bo, &p, Some("CDRL-ROMA-01"), REFERENCE_DATE)), "IssuedByOtherCdrl");
    let d = cms::authorize(&mut bo, &p, Some("CDRL-MILANO-02"), REFERENCE_DATE).unwrap();
    assert!(d.message.contains("2 certificate(s) active"), "{}", d.message);
    assert_eq!(code(cms::authorize(&mut bo, &p, Some("CDRL-MILANO-02"), REFERENCE_DATE)), "WrongPracticeState");
}

#[test]
fn contacts_are_normalised_before_the_uniqueness_check_and_malformed_ones_refused() {
    let ca = ca();
    let a = Bench::new("cns-renewable.json");
    let mut bo = enrolled(&a, "a@example.it", "+393330000003");
    let b = Bench::new("oberthur-renewable.json");
    let (_dir, outbox) = outbox("contacts");
    let e =
        |email, mobile| Enrollment { cdrl: "CDRL-ROMA-01", email, mobile, address: None, codes: None, outbox: &outbox };
    for (email, mobile, want) in [
        ("b@example.it", "+39 333 0000003", "ContactNotUnique"),
        ("b@example.it", "0039 333 0000003", "ContactNotUnique"),
        ("b@example.it", "3330000003", "ContactNotUnique"),
        (" A@EXAMPLE.IT", "+393330000004", "ContactNotUnique"),
        ("", "+393330000004", "InvalidContact"),
        ("b@example", "+393330000004", "InvalidContact"),
        ("b@example.it", "06 1234567", "InvalidContact"),
    ] {
        let r = cms::enroll(b.client().as_mut(), &mut bo, &e(email, mobile), REFERENCE_DATE);
        assert_eq!(code(r), want, "{email:?} {mobile:?}");
    }
    assert_eq!(bo.data.cards.len(), 1, "nothing recorded");
    let r = cms::enroll(b.client().as_mut(), &mut bo, &e("b@example.it", "+39 333 0000003"), REFERENCE_DATE);
    match r {
        Err(CmsError::Refused(x)) => {
            assert!(x.to_string().contains("mobile") && x.to_string().contains("+393330000003"), "{x}")
        }
        other => panic!("{other:?}"),
    }
    // The renewal's holder-data step names the contact, normalised.
    let mut bench = Bench::new("cns-renewable.json");
    let mut bo2 = enrolled(&bench, "holder@example.it", "+393330000001");
    bo2.data.bind_contact(ContactKind::Mobile, "+393330000009", "ALTRO00A00A000A").unwrap();
    let mut o = options("contacts");
    o.mobile = "333 000 0009".into();
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo2, &o));
    assert_eq!(refused(&r), "ContactNotUnique");
    o.mobile = "+393330000001".into();
    o.email = "   ".into();
    let r = run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo2, &o));
    assert_eq!(refused(&r), "InvalidContact");
    // The address is a holder field the CMS edits; the email moves with its uniqueness rule.
    let cf = bo.data.cards[0].codice_fiscale.clone();
    cms::edit_holder(&mut bo, &cf, Some("Via Po 2, Torino"), Some("Nuovo@Example.it"), None, REFERENCE_DATE).unwrap();
    assert_eq!(bo.data.holder(&cf).unwrap().address.as_deref(), Some("Via Po 2, Torino"));
    assert_eq!(bo.data.contact_owner(ContactKind::Email, "a@example.it"), None, "the old email is released");
    assert_eq!(bo.data.contact_of(ContactKind::Email, &cf), Some("nuovo@example.it"));
    assert_eq!(code(cms::edit_holder(&mut bo, &cf, Some("  "), None, None, REFERENCE_DATE)), "InvalidAddress");
}

#[test]
fn events_filter_by_practice_and_holder_and_mark_where_codes_are_resent() {
    let (_dir, outbox) = outbox("events");
    let a = Bench::new("cns-renewable.json");
    let b = Bench::new("oberthur-renewable.json");
    let mut bo = Store::in_memory();
    issue(&a, &mut bo, "CDRL-ROMA-01", &outbox);
    let e = Enrollment {
        cdrl: "CDRL-ROMA-01",
        email: "g@example.it",
        mobile: "+393330000002",
        address: None,
        codes: None,
        outbox: &outbox,
    };
    cms::enroll(b.client().as_mut(), &mut bo, &e, REFERENCE_DATE).unwrap();
    let all = cms::events(&bo.data, None, None).unwrap();
    assert_eq!(all.len(), 6);
    let one = cms::events(&bo.data, Some("P-000002"), None).unwrap();
    assert!(one.iter().all(|r| r.practice == "P-000002") && one.len() == 3);
    let cf = bo.data.practice("P-000001").unwrap().codice_fiscale.to_lowercase();
    let by_holder = cms::events(&bo.data, None, Some(&cf)).unwrap();
    assert!(by_holder.iter().all(|r| r.practice == "P-000001") && by_holder.len() == 3);
    let form = &by_holder[0];
    assert_eq!((form.label, form.codes_resendable), ("creazione modulo", true));
    assert!(!one[0].codes_resendable, "paper codes: nothing to resend");
    assert!(cms::events(&bo.data, Some("P-000009"), None).is_err());
}

#[test]
fn renewal_notices_list_what_comes_due_per_holder_as_rfc5322_messages() {
    let (_dir, outbox) = outbox("notices");
    let (a, b, x) =
        (Bench::new("cns-renewable.json"), Bench::new("oberthur-renewable.json"), Bench::new("cns-expired.json"));
    let mut bo = Store::in_memory();
    for (bench, email, mobile) in [
        (&a, "a@example.it", "+393330000001"),
        (&b, "b@example.it", "+393330000002"),
        (&x, "x@example.it", "+393330000003"),
    ] {
        renewal::enroll(bench.client().as_mut(), &mut bo, "CDRL-ROMA-01", email, mobile, REFERENCE_DATE).unwrap();
    }
    let list = notices::due(&bo.data, REFERENCE_DATE, Within(60), 2, 1);
    assert_eq!(list.len(), 2, "the expired card is past renewal: {list:?}");
    assert!(list.iter().all(|n| n.certificates.len() == 2 && n.certificates[0].days_left == 30));
    assert_eq!(list[0].certificates[0].window_opens, "2026-05-01");
    assert!(notices::due(&bo.data, REFERENCE_DATE, Within(29), 2, 1).is_empty(), "nothing within 29 days");
    assert_eq!(notices::due(&bo.data, Date::new(2026, 5, 2), Within(60), 2, 1).len(), 2);
    bo.data.cards[1].renewal_count = 1;
    let mut list = notices::due(&bo.data, REFERENCE_DATE, Within(60), 2, 1);
    assert!(!list[1].certificates[0].renewable);
    let now = Stamp::at(Some(REFERENCE_DATE));
    assert_eq!(notices::send(&mut bo, &mut list, &outbox, now, Within(60)).unwrap(), 2);
    let mail = std::fs::read_to_string(list[0].file.as_ref().unwrap()).unwrap();
    let (head, body) = mail.split_once("\r\n\r\n").unwrap();
    for h in [
        "Date: Mon, 01 Jun 2026 00:00:00 +0000",
        "From: firmalab Test CA <noreply@ca.firmalab.test>",
        "To: a@example.it",
        "Subject: Firma digitale: certificati in scadenza entro il 2026-07-31",
        "Message-ID: <renewal-notice.RSSMRA80A01H501U.2026-06-01@ca.firmalab.test>",
    ] {
        assert!(head.split("\r\n").any(|l| l == h), "missing {h:?} in\n{head}");
    }
    assert!(!body.replace("\r\n", "").contains('\n'), "CRLF lines only");
    assert!(body.contains("Carta 6010000000000101") && body.contains("scade il 2026-07-01 (tra 30 giorni)"), "{body}");
    let other = std::fs::read_to_string(list[1].file.as_ref().unwrap()).unwrap();
    assert!(other.contains("già stata rinnovata"), "{other}");
    let events = cms::events(&bo.data, Some("P-000001"), None).unwrap();
    assert_eq!(events.last().unwrap().kind, EventKind::RenewalNotice);
}

#[test]
fn the_crl_lists_what_is_not_good_with_reasons_and_the_ca_signs_it() {
    use x509_cert::crl::CertificateList;
    let ca = ca();
    let bench = Bench::new("cns-renewable.json");
    let mut bo = enrolled(&bench, "a@example.it", "+393330000001");
    let (auth, sign) = (bo.data.certificates[0].serial.clone(), bo.data.certificates[1].serial.clone());
    let empty = revocation::crl_der(&ca, &bo.data, REFERENCE_DATE, 7, 1).unwrap();
    let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&empty).unwrap();
    assert!(crl.tbs_cert_list.revoked_certificates.is_none());
    cms::suspend(&mut bo, &Target::Certificate(sign.clone()), "CDRL-ROMA-01", REFERENCE_DATE).unwrap();
    cms::revoke(
        &mut bo,
        &Target::Certificate(auth.clone()),
        "CDRL-ROMA-01",
        RevocationReason::KeyCompromise,
        REFERENCE_DATE,
    )
    .unwrap();
    let der = revocation::crl_der(&ca, &bo.data, REFERENCE_DATE, 7, 2).unwrap();
    let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
    let entries = crl.tbs_cert_list.revoked_certificates.clone().unwrap();
    let reason_of = |serial: &str| {
        let e = entries
            .iter()
            .find(|e| firmalab_emulator::hex::encode(e.serial_number.as_bytes()) == serial)
            .unwrap_or_else(|| panic!("{serial} not listed"));
        e.crl_entry_extensions.as_ref().unwrap()[0].extn_value.as_bytes().to_vec()
    };
    assert_eq!(reason_of(&sign), [0x0A, 0x01, 0x06], "certificateHold");
    assert_eq!(reason_of(&auth), [0x0A, 0x01, 0x01], "keyCompromise");
    assert_eq!(&crl.tbs_cert_list.issuer, ca.issuing.tbs_certificate().subject());
    // Signed by the issuing CA's key.
    let key = rsa::RsaPublicKey::try_from(der::referenced::OwnedToRef::owned_to_ref(
        ca.issuing.tbs_certificate().subject_public_key_info(),
    ))
    .unwrap();
    let tbs = crl.tbs_cert_list.to_der().unwrap();
    let sig = rsa::pkcs1v15::Signature::try_from(crl.signature.raw_bytes()).unwrap();
    signature::Verifier::verify(&rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key), &tbs, &sig).unwrap();
    // The OCSP index says the same.
    let index = revocation::ocsp_index(&bo.data, REFERENCE_DATE);
    let line =
        |s: &str| index.lines().find(|l| l.contains(s)).unwrap().split('\t').map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(line(&sign)[..4], ["R", "260701000000Z", "260601000000Z,certificateHold", sign.as_str()]);
    assert_eq!(line(&auth)[2], "260601000000Z,keyCompromise");
    cms::reactivate(&mut bo, &Target::Certificate(sign.clone()), "CDRL-ROMA-01", REFERENCE_DATE).unwrap();
    assert_eq!(line_of(&revocation::ocsp_index(&bo.data, REFERENCE_DATE), &sign)[..3], ["V", "260701000000Z", ""]);
}

fn line_of(index: &str, serial: &str) -> Vec<String> {
    index.lines().find(|l| l.contains(serial)).unwrap().split('\t').map(str::to_owned).collect()
}
