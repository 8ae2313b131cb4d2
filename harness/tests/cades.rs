//! CAdES-BES forms signed on the card verify with OpenSSL against the test CA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use der::Decode;
use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::cades;
use firmalab_harness::client::{self, KeyRole};
use firmalab_harness::dates::Date;
use firmalab_harness::signer::CardSigner;
use firmalab_harness::transport::in_process::InProcess;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

use common::tools;

#[test]
fn a_form_signed_on_either_card_is_cades_bes_that_openssl_accepts() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let image = CardImage::load(&root().join("fixtures/cards").join(fixture)).unwrap();
        let t = InProcess::ephemeral(image, CardRng::insecure_deterministic(1), fixture);
        let mut c = client::open(Box::new(t)).unwrap();
        let cert_der = c.certificates().unwrap().into_iter().find(|c| c.role == KeyRole::Signature).unwrap().der;
        let cert = x509_cert::Certificate::from_der(&cert_der).unwrap();
        let public =
            rsa::RsaPublicKey::try_from(cert.tbs_certificate().subject_public_key_info().owned_to_ref()).unwrap();
        let signer = CardSigner::new(c.as_mut(), KeyRole::Signature, None, public, "12345678");
        let form = b"Modulo di Rinnovo\nTitolare: test\n";
        let p7m = cades::sign_attached(form, &cert, &signer, Date::new(2026, 6, 1)).unwrap();
        let v = cades::verify(&p7m).unwrap();
        assert_eq!(v.content, form);
        assert_eq!(v.signing_certificate_v2_hash.as_deref(), Some(sha256(&cert_der).as_slice()));
        if !tools::openssl("a_form_signed_on_either_card_is_cades_bes_that_openssl_accepts") {
            continue;
        }
        let tmp = tempfile::Builder::new().prefix("firmalab-cades-").tempdir().unwrap();
        let dir = tmp.path();
        let f = dir.join(format!("{fixture}.p7m"));
        std::fs::write(&f, &p7m).unwrap();
        // 2026-06-01T00:00:00Z: the fixtures' reference date, inside the certificates' validity.
        let at = (Date::new(2026, 6, 1).days_since_epoch() * 86_400).to_string();
        let o = std::process::Command::new("openssl")
            .args(["cms", "-verify", "-cades", "-inform", "DER", "-in", f.to_str().unwrap(), "-CAfile"])
            .arg(root().join("fixtures/ca/chain.pem"))
            .args(["-attime", &at, "-out", "/dev/null"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{fixture}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("CAdES Verification successful"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

use der::referenced::OwnedToRef;
