//! The renewal's domain oracles (spec/domain.md §3, §6.5), with `openssl` as the independent
//! verifier where it helps:
//! * a renewal form without signingCertificateV2 (or naming another certificate) is refused
//!   by the harness's CAdES verifier and by `openssl cms -verify -cades`;
//! * after a renewal both keys are new: the public keys differ, not only the certificates, and
//!   the requests, their authorisations and the form are the evidence §6.5 lists;
//! * the CA refuses a request whose authorisation is made with another card's qualified key,
//!   and a renewal whose authorisation the wrong card signed installs nothing.
//!
//! Checks that need `openssl` report SKIPPED where it is not installed, and fail under CI
//! (`CI=true`), where a missing oracle must not pass silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{Bench, ca, done, enrolled, image, options, refused, root};
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use firmalab_emulator::CardRng;
use firmalab_emulator::image::{CardImage, History, LifeCycle, ProfileKind};
use firmalab_emulator::keys::{Algorithm, KeyMaterial};
use firmalab_emulator::perso::{self, KeySet, Personalization};
use firmalab_harness::backoffice::{CertStatus, PracticeState, Store};
use firmalab_harness::ca::{ExpiryRule, Refusal, issue_renewal, serial_hex};
use firmalab_harness::cades;
use firmalab_harness::client::{self, CardClient, KeyRole};
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::{CAPACITY, Person, REFERENCE_DATE, object_info};
use firmalab_harness::flows::{Event, Runner, renewal};
use firmalab_harness::pki::{self, CertKind, Issue, TestCa};
use firmalab_harness::signer::CardSigner;
use firmalab_harness::transport::in_process::InProcess;
use firmalab_harness::transport::{Transport, TransportError};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use x509_cert::Certificate;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::request::CertReq;

const PIN: &str = "12345678";
const FIXTURES: [&str; 2] = ["cns-renewable.json", "oberthur-renewable.json"];

/// `openssl`, or `None` where it is not installed ([`common::tools::openssl`]: a visible
/// SKIPPED, or a failure under CI).
fn openssl() -> Option<&'static str> {
    common::tools::openssl("openssl checks").then_some("openssl")
}

/// A folder for one test's files, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("firmalab-oracles-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `openssl cms -verify` of a DER SignedData against the test CA at the fixtures' date, with
/// `-cades` or without; the exit status and what it printed.
fn openssl_verify(openssl: &str, p7m: &[u8], file: &Path, cades: bool) -> (bool, String) {
    std::fs::write(file, p7m).unwrap();
    let at = (REFERENCE_DATE.days_since_epoch() * 86_400).to_string();
    let mut cmd = Command::new(openssl);
    cmd.args(["cms", "-verify", "-inform", "DER", "-in"]).arg(file).arg("-CAfile");
    cmd.arg(root().join("fixtures/ca/chain.pem")).args(["-attime", &at, "-out", "/dev/null"]);
    if cades {
        cmd.arg("-cades");
    }
    let o = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

fn public_key(cert: &Certificate) -> RsaPublicKey {
    RsaPublicKey::try_from(cert.tbs_certificate().subject_public_key_info().owned_to_ref()).unwrap()
}

/// The card's certificates, by role.
fn certs_of(c: &mut dyn CardClient) -> Vec<(KeyRole, Certificate)> {
    c.certificates().unwrap().into_iter().map(|x| (x.role, Certificate::from_der(&x.der).unwrap())).collect()
}

fn cert_of(certs: &[(KeyRole, Certificate)], role: KeyRole) -> Certificate {
    certs.iter().find(|(r, _)| *r == role).map(|(_, c)| c.clone()).unwrap()
}

fn in_process(image: CardImage, label: &str) -> Box<dyn CardClient> {
    client::open(Box::new(InProcess::ephemeral(image, CardRng::insecure_deterministic(7), label))).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The form must be CAdES: signingCertificateV2 naming the signer's certificate.

#[test]
fn a_renewal_form_without_signing_certificate_v2_fails_the_harness_verifier_and_openssl_cades() {
    let openssl = openssl();
    let scratch = Scratch::new("forms");
    for fixture in FIXTURES {
        let mut c = in_process(image(fixture), fixture);
        let certs = certs_of(c.as_mut());
        let (sign, auth) = (cert_of(&certs, KeyRole::Signature), cert_of(&certs, KeyRole::Authentication));
        let signer = CardSigner::new(c.as_mut(), KeyRole::Signature, None, public_key(&sign), PIN);
        let form = b"MODULO DI RINNOVO DEL CERTIFICATO DI FIRMA DIGITALE\nTitolare: test\n";
        let when = Some(REFERENCE_DATE);
        let with = cades::sign_attached(form, &sign, &signer, REFERENCE_DATE).unwrap();
        let without = cades::signed_data(cades::ID_DATA, form, &sign, &signer, when, false).unwrap();
        let other = signed_naming(form, &sign, &auth, &signer);

        // The harness's verifier: only the real CAdES form passes. The two others are sound
        // CMS signatures (the plain verifier accepts them): what they lack is the binding.
        assert_eq!(cades::verify_cades(&with).unwrap().content, form, "{fixture}");
        for (name, p7m) in [("without signingCertificateV2", &without), ("naming another certificate", &other)] {
            assert!(cades::verify(p7m).is_ok(), "{fixture}: the form {name} is otherwise a valid signature");
            let e = cades::verify_cades(p7m).err().unwrap_or_else(|| panic!("{fixture}: form {name} accepted"));
            eprintln!("{fixture}: form {name}: {e}");
        }
        assert!(
            cades::verify_cades(&without).err().unwrap().to_string().contains("missing signing certificate attribute")
        );
        assert!(cades::verify_cades(&other).err().unwrap().to_string().contains("another certificate"));

        // openssl, the independent verifier: the same verdicts.
        let Some(openssl) = openssl else { continue };
        let file = scratch.0.join(format!("{fixture}.p7m"));
        let (ok, text) = openssl_verify(openssl, &with, &file, true);
        assert!(ok && text.contains("CAdES Verification successful"), "{fixture}: {text}");
        let (ok, text) = openssl_verify(openssl, &without, &file, false);
        assert!(ok, "{fixture}: without -cades the form without the attribute verifies: {text}");
        let (ok, text) = openssl_verify(openssl, &without, &file, true);
        assert!(!ok && text.contains("missing signing certificate attribute"), "{fixture}: {text}");
        let (ok, text) = openssl_verify(openssl, &other, &file, true);
        assert!(!ok, "{fixture}: openssl -cades accepted a form naming another certificate: {text}");
    }
}

/// A CAdES form signed with `signer` (certificate `cert`) whose signingCertificateV2 names
/// `named` instead.
fn signed_naming(content: &[u8], cert: &Certificate, named: &Certificate, signer: &CardSigner<'_>) -> Vec<u8> {
    use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
    let econtent = der::asn1::Any::new(der::Tag::OctetString, content).unwrap();
    let eci = EncapsulatedContentInfo { econtent_type: cades::ID_DATA, econtent: Some(econtent) };
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: cert.tbs_certificate().issuer().clone(),
        serial_number: cert.tbs_certificate().serial_number().clone(),
    });
    let mut si = SignerInfoBuilder::new(sid, cades::sha256_algorithm(), &eci, None).unwrap();
    si.add_signed_attribute(cades::signing_certificate_v2(named).unwrap()).unwrap();
    let mut builder = SignedDataBuilder::new(&eci);
    builder
        .add_digest_algorithm(cades::sha256_algorithm())
        .unwrap()
        .add_certificate(CertificateChoices::Certificate(cert.clone()))
        .unwrap()
        .add_signer_info::<_, rsa::pkcs1v15::Signature>(si, signer)
        .unwrap();
    builder.build().unwrap().to_der().unwrap()
}

// ---------------------------------------------------------------------------------------------
// After a renewal both keys are new.

#[test]
fn after_a_renewal_both_keys_are_new_and_the_evidence_holds_on_both_profiles() {
    for fixture in FIXTURES {
        let scratch = Scratch::new(&format!("renewal-{fixture}"));
        let mut bench = Bench::new(fixture);
        let old = certs_of(bench.client().as_mut());
        let mut bo = enrolled(&bench, "holder@example.it", "+393330000001");
        let mut o = options("oracles");
        o.out_dir = scratch.0.clone();
        let ca = ca();
        let r = common::run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
        assert_eq!(done(&r), "AwaitingCdrlAuthorization", "{fixture}");
        let practice = r.details["practice"].as_str().unwrap().to_owned();
        let mut c = bench.client();
        let new = certs_of(c.as_mut());
        assert_eq!(new.len(), 2, "{fixture}: one certificate per role");
        let old_sign = cert_of(&old, KeyRole::Signature);
        let mut moduli = vec![];
        for role in [KeyRole::Signature, KeyRole::Authentication] {
            let context = format!("{fixture} {role:?}");
            let (before, after) = (public_key(&cert_of(&old, role)), public_key(&cert_of(&new, role)));
            // The key itself, not only the certificate.
            assert_ne!(after.n(), before.n(), "{context}: the renewed certificate certifies the old modulus");
            // The card signs with the new key, and no longer with the old one.
            let digest: [u8; 32] = Sha256::digest(context.as_bytes()).into();
            let sig = c.sign_sha256(role, None, &digest, PIN).unwrap();
            assert!(after.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).is_ok(), "{context}: new key");
            assert!(before.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).is_err(), "{context}: old key");
            moduli.push(after.n().clone());
            // The request: signed by the new key; its authorisation: by the old qualified key,
            // over exactly that request.
            let name = format!("{role:?}").to_lowercase();
            let csr = std::fs::read(scratch.0.join(format!("{practice}-{name}.csr"))).unwrap();
            let req = CertReq::from_der(&csr).unwrap();
            assert_eq!(&req.info.public_key, cert_of(&new, role).tbs_certificate().subject_public_key_info());
            let info = req.info.to_der().unwrap();
            let req_key = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(after.clone());
            let req_sig = rsa::pkcs1v15::Signature::try_from(req.signature.raw_bytes()).unwrap();
            signature::Verifier::verify(&req_key, &info, &req_sig).expect("the request verifies with the new key");
            let auth = std::fs::read(scratch.0.join(format!("{practice}-{name}-authorized.p7m"))).unwrap();
            let v = cades::verify(&auth).unwrap();
            assert_eq!((v.signer.clone(), v.content), (old_sign.clone(), csr), "{context}: authorisation");
        }
        assert_ne!(moduli[0], moduli[1], "{fixture}: the two new keys are one");
        // The form: CAdES by the expiring certificate, ESSCertIDv2 = its SHA-256, signed before
        // the new certificate's notBefore.
        let form = std::fs::read(scratch.0.join(format!("{practice}-modulo-rinnovo.txt.p7m"))).unwrap();
        let v = cades::verify_cades(&form).unwrap();
        assert_eq!(v.signer, old_sign, "{fixture}: the form is signed with the expiring certificate");
        let hash = Sha256::digest(old_sign.to_der().unwrap()).to_vec();
        assert_eq!(v.signing_certificate_v2_hash, Some(hash), "{fixture}");
        let nb = cert_of(&new, KeyRole::Signature).tbs_certificate().validity().not_before.to_date_time();
        assert!(Date::from_der(&nb) >= REFERENCE_DATE, "{fixture}: new certificate before the form");
    }
}

// ---------------------------------------------------------------------------------------------
// Authorised by another card.

/// Another card of the holder of `cns-renewable.json` (Mario Rossi, same subject): its own
/// serial and keys (the last two of the emulator's pool of pre-generated keys), certificates
/// from the same CA.
fn second_card(ca: &TestCa) -> CardImage {
    let pool = std::fs::read_to_string(root().join("fixtures/keys/rsa2048-pool.txt")).unwrap();
    let keys: Vec<RsaPrivateKey> = pool
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(2)
        .map(|l| RsaPrivateKey::from_pkcs1_der(&firmalab_emulator::hex::decode(l.trim()).unwrap()).unwrap())
        .collect();
    let person = Person::new("Mario", "Rossi", "RSSMRA80A01H501", Date::new(1980, 1, 1), 'M', "WSREF-000101").unwrap();
    let holder = person.holder();
    let (from, until) = (Date::new(2023, 7, 1), Date::new(2026, 7, 1));
    let set = |key: &RsaPrivateKey, kind: CertKind, serial: u64| {
        let cert = ca
            .issue(&Issue {
                kind,
                holder: &holder,
                public_key: pki::rsa_spki(key).unwrap(),
                serial,
                not_before: from,
                not_after: until,
            })
            .unwrap();
        let (modulus, exponent) = pki::rsa_public_numbers(key);
        KeySet {
            info: object_info(&cert, kind, modulus, exponent).unwrap(),
            algorithm: Algorithm::Rsa2048,
            material: KeyMaterial::from_rsa(key).unwrap(),
            certificate: pki::der_of(&cert).unwrap(),
        }
    };
    Personalization {
        profile: ProfileKind::Cns,
        description: "a second CNS of the holder of cns-renewable.json".into(),
        atr: None,
        serial: "6010000000000199".into(),
        pin: PIN.into(),
        puk: "87654321".into(),
        so_pin: "11223344".into(),
        pin_tries: 3,
        puk_tries: 10,
        holder: perso::Holder {
            issuer_code: "FIRMALAB".into(),
            issue_date: from.ddmmyyyy(),
            expiry_date: until.ddmmyyyy(),
            last_name: person.last_name.clone(),
            first_name: person.first_name.clone(),
            birth_date: person.birth_date.ddmmyyyy(),
            sex: "M".into(),
            codice_fiscale: person.codice_fiscale.clone(),
        },
        auth: Some(set(&keys[0], CertKind::Authentication, 0x0199_0001)),
        sign: Some(set(&keys[1], CertKind::QualifiedSignature, 0x0199_0002)),
        life_cycle: LifeCycle::User,
        capacity: CAPACITY,
        history: History { first_issuance: from.to_string(), renewal_count: 0 },
        p256: false,
    }
    .build()
    .unwrap()
}

/// Both cards of Mario Rossi in one back office.
fn two_cards(ca: &TestCa) -> (CardImage, CardImage, Store) {
    let a = image("cns-renewable.json");
    let b = second_card(ca);
    let mut bo = enrolled(&Bench { image: a.clone() }, "holder@example.it", "+393330000001");
    renewal::enroll(
        in_process(b.clone(), "B").as_mut(),
        &mut bo,
        "CDRL-ROMA-01",
        "holder@example.it",
        "+393330000001",
        REFERENCE_DATE,
    )
    .unwrap();
    (a, b, bo)
}

#[test]
fn the_ca_refuses_a_renewal_request_authorised_with_another_cards_qualified_key() {
    let ca = ca();
    let (a, b, bo) = two_cards(&ca);
    let (mut card_a, mut card_b) = (in_process(a, "A"), in_process(b, "B"));
    let serial_a = card_a.serial().unwrap();
    let serial_b = card_b.serial().unwrap();
    let sign_a = cert_of(&certs_of(card_a.as_mut()), KeyRole::Signature);
    let sign_b = cert_of(&certs_of(card_b.as_mut()), KeyRole::Signature);
    // Same holder, same subject: only the card tells the two authorisations apart.
    assert_eq!(sign_a.tbs_certificate().subject(), sign_b.tbs_certificate().subject());
    assert_eq!(bo.data.cert(&serial_hex(&sign_b)).map(|c| c.status), Some(CertStatus::Active));

    // Card A's renewal request: a new key generated on A, the PKCS#10 signed by it.
    let staged = card_a.stage_key(KeyRole::Signature, PIN).unwrap();
    assert_ne!(staged.public, public_key(&sign_b), "the pool gave card B's key to A");
    let csr = {
        let signer =
            CardSigner::new(card_a.as_mut(), KeyRole::Signature, Some(staged.clone()), staged.public.clone(), PIN);
        let req = RequestBuilder::new(sign_a.tbs_certificate().subject().clone()).unwrap();
        req.build::<_, rsa::pkcs1v15::Signature>(&signer).unwrap().to_der().unwrap()
    };
    let authorise = |c: &mut dyn CardClient, cert: &Certificate, key: RsaPublicKey| {
        let signer = CardSigner::new(c, KeyRole::Signature, None, key, PIN);
        cades::signed_data(cades::ID_DATA, &csr, cert, &signer, Some(REFERENCE_DATE), false).unwrap()
    };
    let issue = |authorized: &[u8]| {
        issue_renewal(
            &ca,
            &bo.data,
            &serial_a,
            authorized,
            CertKind::QualifiedSignature,
            REFERENCE_DATE,
            ExpiryRule::FromOldExpiry,
        )
    };

    // Authorised with card B's qualified key and certificate: a valid signature of the same
    // holder, but not of the card being renewed.
    let by_b = authorise(card_b.as_mut(), &sign_b, public_key(&sign_b));
    let refusal = issue(&by_b).expect_err("the CA issued a certificate authorised by another card");
    assert_eq!(refusal, Refusal::OtherCard { signer_card: serial_b.clone(), card: serial_a.clone() });
    let text = refusal.to_string();
    assert!(text.contains(&format!("card {serial_b}, not of card {serial_a}")), "{text}");

    // Card B's key signing over card A's certificate: the signature does not verify.
    let swapped = authorise(card_b.as_mut(), &sign_a, public_key(&sign_a));
    match issue(&swapped) {
        Err(Refusal::BadAuthorization(why)) => assert!(why.contains("signature does not verify"), "{why}"),
        other => panic!("authorisation signed by card B over card A's certificate: {other:?}"),
    }

    // The same request authorised by card A itself is issued: the refusals were the key's.
    let by_a = authorise(card_a.as_mut(), &sign_a, public_key(&sign_a));
    let issued = issue(&by_a).unwrap();
    assert_eq!(public_key(&issued), staged.public);
}

/// Card A's transport with card B beside it, both receiving every command: card B's answers
/// replace A's for the signatures made with the current qualified key once the renewal has
/// generated its new keys (the requests' authorisations), as a middleware that signs on the
/// wrong token. Card A's image is handed back at the end.
struct WrongTokenSigns {
    a: InProcess,
    b: InProcess,
    generated: bool,
    current_key: bool,
    from_b: bool,
    out: Rc<RefCell<Option<CardImage>>>,
}

impl Transport for WrongTokenSigns {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let from_a = self.a.transmit_raw(command)?;
        let from_b = self.b.transmit_raw(command)?;
        let (ins, p1p2) = (command[1], [command[2], command[3]]);
        match (ins, p1p2) {
            (0x46, _) => self.generated = true,
            // MSE SET for a signature: tag 83 the key in use, 84 a renewal key.
            (0x22, [0xF1, 0xB6]) => self.current_key = command.get(5) == Some(&0x83),
            _ => {}
        }
        self.from_b = match (ins, p1p2) {
            (0x2A, [0x9E, 0x9A]) => self.generated && self.current_key,
            (0xC0, _) => self.from_b,
            _ => false,
        };
        Ok(if self.from_b { from_b } else { from_a })
    }
    fn atr(&self) -> Vec<u8> {
        self.a.atr()
    }
    fn name(&self) -> String {
        "card A, card B signing".into()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        self.a.reset()?;
        self.b.reset()
    }
}

impl Drop for WrongTokenSigns {
    fn drop(&mut self) {
        *self.out.borrow_mut() = Some(self.a.card().image().clone());
    }
}

#[test]
fn a_renewal_whose_authorisation_another_card_signed_is_refused_and_installs_nothing() {
    let ca = ca();
    let (a, b, mut bo) = two_cards(&ca);
    let before = certs_of(in_process(a.clone(), "A").as_mut());
    let scratch = Scratch::new("wrong-token");
    let mut o = options("wrong-token");
    o.out_dir = scratch.0.clone();
    let out = Rc::new(RefCell::new(None));
    let t = WrongTokenSigns {
        a: InProcess::ephemeral(a.clone(), CardRng::insecure_deterministic(3), "A"),
        b: InProcess::ephemeral(b, CardRng::insecure_deterministic(4), "B"),
        generated: false,
        current_key: false,
        from_b: false,
        out: out.clone(),
    };
    let mut sink = |_: Event<'_>| {};
    let r = renewal::run(Runner::open(Box::new(t), "renewal", REFERENCE_DATE, &mut sink).unwrap(), &ca, &mut bo, &o);
    assert_eq!(refused(&r), "CaRefused");
    let message = match &r.outcome {
        firmalab_harness::flows::Outcome::Refused { message, .. } => message.clone(),
        _ => unreachable!(),
    };
    assert!(message.contains("authorisation rejected") && message.contains("signature does not verify"), "{message}");

    // Nothing installed on card A: its certificates, and keys that still match them.
    let mut bench = Bench { image: out.borrow_mut().take().unwrap() };
    let mut c = bench.client();
    let after = certs_of(c.as_mut());
    assert_eq!(after, before, "card A's certificates changed");
    for (role, cert) in &after {
        let digest: [u8; 32] = Sha256::digest(format!("{role:?}")).into();
        let sig = c.sign_sha256(*role, None, &digest, PIN).unwrap();
        public_key(cert).verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).expect("card A's key still matches");
    }
    assert_eq!(
        bench.image.keys.iter().map(|k| k.material.clone()).collect::<Vec<_>>(),
        a.keys.iter().map(|k| k.material.clone()).collect::<Vec<_>>(),
        "card A's keys in use changed"
    );
    // Nor in the registry: no certificate issued, the old ones active, the practice open.
    assert_eq!(bo.data.certificates.len(), 4, "certificates: {:?}", bo.data.certificates);
    assert!(bo.data.certificates.iter().all(|c| c.status == CertStatus::Active));
    let serial_a = bench.client().serial().unwrap();
    assert_eq!(bo.data.open_renewal(&serial_a).map(|p| p.state), Some(PracticeState::RenewalInProgress));
    // And card A renews once its own key signs.
    let again = common::run(&mut bench, "renewal", REFERENCE_DATE, |r| renewal::run(r, &ca, &mut bo, &o));
    assert_eq!(done(&again), "AwaitingCdrlAuthorization");
}
