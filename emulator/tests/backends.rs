//! The OpenSSL backend computes what the RustCrypto backend computes (feature `openssl`).
#![cfg(feature = "openssl")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::keys::Backend;
use rsa::traits::PublicKeyParts;

fn sign_cns(backend: Backend) -> Vec<u8> {
    let mut s = Session::new("cns-renewable.json");
    s.card.set_backend(backend);
    let (digest, _) = sha256_digest_info(b"backend");
    let block = firmalab_emulator::hex::encode(&pkcs1_block(&digest, 256));
    s.expect("00200090083132333435363738", "9000");
    s.expect("0022F1B603830101", "9000");
    s.expect(&format!("002A9E9A000100{block}0000"), "#256 9000")
}

#[test]
fn openssl_and_rustcrypto_give_the_same_rsa_signatures_on_both_profiles() {
    assert_eq!(sign_cns(Backend::RustCrypto), sign_cns(Backend::OpenSsl));
    let ober = |backend| {
        let mut s = Session::new("oberthur-renewable.json");
        s.card.set_backend(backend);
        let (_, di) = sha256_digest_info(b"oberthur");
        s.expect("00A4040C10A000000077010303000000F100000002", "9000");
        s.expect("00A40000025011", "* 9000");
        s.expect(&format!("0020008140{}", padded("12345678", 64, 0xFF)), "9000");
        s.expect("00A40000029002", "* 9000");
        s.expect("00A40000023002", "* 9000");
        s.expect("002241B603800111", "9000");
        s.expect(&format!("002A9E9A33{}", firmalab_emulator::hex::encode(&di)), "#256 9000")
    };
    assert_eq!(ober(Backend::RustCrypto), ober(Backend::OpenSsl));
}

#[test]
fn both_backends_read_the_same_public_key() {
    let public = |backend, component: &str| {
        let mut s = Session::new("oberthur-renewable.json");
        s.card.set_backend(backend);
        s.expect("00A4040C10A000000077010303000000F100000002", "9000");
        s.expect("00A40000025011", "* 9000");
        s.expect("00A40000029001", "* 9000");
        s.expect("00A40000021002", "* 9000");
        s.expect(&format!("80B4{component}0000"), "* 9000")
    };
    for component in ["01", "02"] {
        let (rust, ossl) = (public(Backend::RustCrypto, component), public(Backend::OpenSsl, component));
        assert!(!rust.is_empty());
        assert_eq!(rust, ossl, "component {component}");
    }
    let modulus = public(Backend::OpenSsl, "01");
    let image = image("oberthur-renewable.json");
    assert_eq!(rsa::BoxedUint::from_be_slice_vartime(&modulus), *public_key(&image, 0x02).n().as_ref());
}

#[test]
fn openssl_ecdsa_p256_signatures_verify() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let mut img = without_certificates(image("cns-renewable.json"));
    img.capabilities.p256 = true;
    let mut s = Session::with(firmalab_emulator::Card::new(img, firmalab_emulator::CardRng::insecure_deterministic(2)));
    s.card.set_backend(Backend::OpenSsl);
    s.expect("00200090083132333435363738", "9000");
    let tpl = s.expect("004600010A06082A8648CE3D03010700", "7F49438641.. 9000");
    s.expect("0022F1B603830101", "9000");
    let hash = [0x42u8; 32];
    let sig = s.expect(&format!("002A9E9A20{}00", firmalab_emulator::hex::encode(&hash)), "#64 9000");
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&tpl[5..]).unwrap();
    vk.verify_prehash(&hash, &p256::ecdsa::Signature::from_slice(&sig).unwrap()).expect("verifies");
}
