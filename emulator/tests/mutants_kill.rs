//! Behaviour of the PIN, access-condition and key paths that `cargo mutants` showed no other
//! test pinned down (README "Mutation testing"): each test names the rule it holds, and the
//! comment above it the mutants it kills.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::security::{MAX_PINS, Verified};
use firmalab_emulator::{Card, CardRng};
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::Sha256;

const PIN: &str = "3132333435363738"; // "12345678"

fn hex(b: &[u8]) -> String {
    firmalab_emulator::hex::encode(b)
}

/// A PSO COMPUTE DIGITAL SIGNATURE (extended length) of SHA-256(`msg`) with the key the SE
/// names; the signature.
fn sign(s: &mut Session, msg: &[u8]) -> Vec<u8> {
    let (digest, _) = sha256_digest_info(msg);
    s.expect(&format!("002A9E9A000100{}0000", hex(&pkcs1_block(&digest, 256))), "#256 9000")
}

fn signed_by(key: &RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
    let (digest, _) = sha256_digest_info(msg);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, sig).is_ok()
}

fn pending_public_key(card: &Card, reference: u8) -> RsaPublicKey {
    let k = card.image().keys.iter().find(|k| k.reference.0 == reference).unwrap();
    match k.pending.as_ref().unwrap().load().unwrap() {
        firmalab_emulator::keys::LoadedKey::Rsa(k) => k.to_public_key(),
        firmalab_emulator::keys::LoadedKey::EcP256(_) => panic!("not RSA"),
    }
}

// security.rs `Verified::{set, clear, get}`: `<` → `<=` (an index of MAX_PINS would shift
// a u16 by 16 and panic); `Verified::clear_all` → `()`.
#[test]
fn verified_pins_are_one_bit_per_index_and_indexes_beyond_max_pins_are_ignored() {
    let mut v = Verified::default();
    for i in [0, 1, MAX_PINS - 1] {
        v.set(i);
        assert!(v.get(i), "index {i} set");
    }
    assert!(!v.get(2));
    v.clear(1);
    assert!(!v.get(1) && v.get(0) && v.get(MAX_PINS - 1), "clear takes one bit only");
    v.set(MAX_PINS);
    v.clear(MAX_PINS);
    assert!(!v.get(MAX_PINS), "no PIN object has index {MAX_PINS}");
    assert!(v.get(0) && v.get(MAX_PINS - 1), "an index out of range changes nothing");
    v.clear_all();
    assert_eq!(v, Verified::default());
    assert!((0..MAX_PINS).all(|i| !v.get(i)));
}

// card/keys.rs `KeyCache::get`: `*r == reference` → `!=` (a PSO used another key the
// session had already used).
#[test]
fn each_key_signs_with_its_own_private_key_in_one_session() {
    let mut s = Session::new("cns-renewable.json");
    let (auth, sign_key) = (public_key(s.card.image(), 0x01), public_key(s.card.image(), 0x10));
    s.expect(&format!("0020009008{PIN}"), "9000");
    s.expect("0022F1B603830101", "9000");
    let sig = sign(&mut s, b"autenticazione");
    assert!(signed_by(&auth, b"autenticazione", &sig));
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("0022F1B603830110", "9000");
    let sig = sign(&mut s, b"firma");
    assert!(signed_by(&sign_key, b"firma", &sig), "the signature key signs, not the key used before");
    assert!(!signed_by(&auth, b"firma", &sig));
}

// card/keys.rs `KeyCache::forget` → `()` (after GENERATE in place the card kept signing with
// the key it replaced, once that key had signed in the session).
#[test]
fn a_key_generated_in_place_signs_at_once_even_when_the_old_key_signed_in_the_session() {
    let mut s =
        Session::with(Card::new(without_certificates(image("cns-renewable.json")), CardRng::insecure_deterministic(7)));
    let old = public_key(s.card.image(), 0x01);
    s.expect(&format!("0020009008{PIN}"), "9000");
    s.expect("0022F1B603830101", "9000");
    let sig = sign(&mut s, b"prima");
    assert!(signed_by(&old, b"prima", &sig));
    s.expect("0046000102080000", "#256 610E");
    s.expect("00C000000E", "#14 9000");
    let new = public_key(s.card.image(), 0x01);
    assert_ne!(new, old);
    s.expect("0022F1B603830101", "9000");
    let sig = sign(&mut s, b"dopo");
    assert!(signed_by(&new, b"dopo", &sig), "the generated key signs");
    assert!(!signed_by(&old, b"dopo", &sig), "the replaced key is gone");
}

// card/keys.rs `KeyCache::forget` → `()` (after the renewal commit the card kept signing with
// the old key, once it had signed in the session).
#[test]
fn after_the_renewal_commit_the_new_key_signs_even_when_the_old_key_signed_in_the_session() {
    let mut s = Session::new("cns-renewable.json");
    let old = public_key(s.card.image(), 0x10);
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("0022F1B603830110", "9000");
    let sig = sign(&mut s, b"autorizzazione");
    assert!(signed_by(&old, b"autorizzazione", &sig));
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("00468010020800", "#256 610E");
    s.expect("00C000000E", "#14 9000");
    let new = pending_public_key(&s.card, 0x10);
    s.expect(&format!("0046811010{}", hex(&[0x30; 16])), "9000");
    assert_eq!(public_key(s.card.image(), 0x10), new);
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("0022F1B603830110", "9000");
    let sig = sign(&mut s, b"rinnovata");
    assert!(signed_by(&new, b"rinnovata", &sig), "the committed key signs");
    assert!(!signed_by(&old, b"rinnovata", &sig), "the old key is gone");
}

// card/keys.rs `Card::generate_key_pair`: the match guard `key == pk` → `true` (an Oberthur
// GENERATE naming the public file of another key pair replaced the private key anyway).
#[test]
fn oberthur_generate_refuses_a_public_file_of_another_key_pair_and_keeps_the_key() {
    let mut s = Session::new("oberthur-renewable.json");
    s.expect("00A4040C10A000000077010303000000F100000002", "9000");
    s.expect("00A40000025011", "62.. 9000");
    s.expect("00A40000029001", "62.. 9000");
    s.expect(&format!("0020008140{}", padded("12345678", 64, 0xFF)), "9000");
    s.card.take_changed(); // the VERIFY's counter write
    let (k1, k2) = (public_key(s.card.image(), 0x01), public_key(s.card.image(), 0x02));
    s.expect("00460000041001300200", "6A80"); // public 1001 (key 01), private 3002 (key 02)
    s.expect("00460000041002300100", "6A80");
    assert_eq!(public_key(s.card.image(), 0x01), k1);
    assert_eq!(public_key(s.card.image(), 0x02), k2);
    assert!(!s.card.take_changed(), "a refused GENERATE writes nothing");
    s.expect("00460000041002300200", "#256 9000");
    assert_ne!(public_key(s.card.image(), 0x02), k2, "the matching pair generates");
}

/// A CNS card on `img` whose EEPROM has exactly `free` bytes left.
fn cns_with_free(mut img: firmalab_emulator::CardImage, free: u32) -> Session {
    img.capacity = img.eeprom_used() + free;
    let mut c = Card::new(img, CardRng::insecure_deterministic(7));
    c.power_on();
    let s = Session::with(c);
    assert_eq!(s.card.image().eeprom_free(), free);
    s
}

fn rsa2048_bytes() -> u32 {
    firmalab_emulator::keys::Algorithm::Rsa2048.eeprom_bytes()
}

// card/keys.rs `Card::generate_into`: deleting the arm that counts the space of the key being
// replaced (a full card could no longer regenerate a key in place, nor a pending one).
#[test]
fn a_full_eeprom_still_regenerates_a_key_in_place_but_has_no_room_for_a_second_one() {
    let mut s = cns_with_free(without_certificates(image("cns-renewable.json")), 0);
    let old = public_key(s.card.image(), 0x01);
    s.expect(&format!("0020009008{PIN}"), "9000");
    s.expect("0046000102080000", "#256 610E"); // the new key takes the old one's place
    s.expect("00C000000E", "#14 9000");
    assert_ne!(public_key(s.card.image(), 0x01), old);
    assert_eq!(s.card.image().eeprom_free(), 0);
    s.expect("0046800102080000", "6A84"); // a pending key next to it needs room of its own
    assert!(s.card.image().keys.iter().all(|k| k.pending.is_none()));
}

// card/keys.rs `Card::generate_into`: `>` → `==` and `>=` at the EEPROM boundary.
#[test]
fn generating_into_an_empty_slot_needs_exactly_the_keys_eeprom_bytes() {
    let empty_slot = || {
        let mut img = without_certificates(image("cns-renewable.json"));
        img.keys.iter_mut().find(|k| k.reference.0 == 0x01).unwrap().material = None;
        img
    };
    let mut s = cns_with_free(empty_slot(), rsa2048_bytes() - 1);
    s.expect(&format!("0020009008{PIN}"), "9000");
    s.expect("0046000102080000", "6A84");
    assert!(s.card.image().keys.iter().find(|k| k.reference.0 == 0x01).unwrap().material.is_none());

    let mut s = cns_with_free(empty_slot(), rsa2048_bytes());
    s.expect(&format!("0020009008{PIN}"), "9000");
    s.expect("0046000102080000", "#256 610E");
    assert_eq!(s.card.image().eeprom_free(), 0);
}

/// The renewal up to the commit on a CNS card whose EEPROM has `free` bytes left once the
/// pending key is in: the commit's status word, and whether the key was swapped.
fn commit_with_free(free: u32, cert_len: usize) -> (String, bool) {
    let mut s = cns_with_free(image("cns-renewable.json"), rsa2048_bytes() + free);
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("00468010020800", "#256 610E");
    s.expect("00C000000E", "#14 9000");
    assert_eq!(s.card.image().eeprom_free(), free);
    let new = pending_public_key(&s.card, 0x10);
    let cert = vec![0x30u8; cert_len];
    let r = s.sendh(&format!("00468110{}{}", hex(&[0, (cert_len >> 8) as u8, cert_len as u8]), hex(&cert)));
    let sw = hex(&r[r.len() - 2..]);
    (sw, public_key(s.card.image(), 0x10) == new)
}

// card/keys.rs `Card::commit_key`: `>` → `==` and `>=` at the EEPROM boundary (the new
// certificate may grow its EF by exactly the free bytes, not one more).
#[test]
fn the_renewal_commit_may_grow_the_certificate_by_exactly_the_free_eeprom() {
    let img = image("cns-renewable.json");
    let old_len = firmalab_emulator::fs::lookup(&img.mf, &[0x3F00, 0x1400, 0x9010]).unwrap().size();
    assert_eq!(commit_with_free(40, old_len + 40), ("9000".into(), true));
    assert_eq!(commit_with_free(40, old_len + 41), ("6A84".into(), false));
}

// card/keys.rs `Card::commit_key`: the match guard `!parent.is_empty()` → `true` (a slot whose
// certificate path names the MF itself).
#[test]
fn a_commit_refuses_a_certificate_path_that_names_no_ef_with_6a88() {
    let mut img = image("cns-renewable.json");
    img.keys.iter_mut().find(|k| k.reference.0 == 0x10).unwrap().certificate =
        Some(vec![firmalab_emulator::hex::Hex16(0x3F00)]);
    let mut s = Session::with(Card::new(img, CardRng::insecure_deterministic(7)));
    s.card.power_on();
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("00468010020800", "#256 610E");
    s.expect("00C000000E", "#14 9000");
    let old = public_key(s.card.image(), 0x10);
    s.expect("00468110023082", "6A88");
    assert_eq!(public_key(s.card.image(), 0x10), old, "nothing committed");
    assert!(s.card.image().keys.iter().any(|k| k.pending.is_some()));
}

/// A powered CNS card on `img`, which must be a valid image.
fn cns_on(img: firmalab_emulator::CardImage) -> Session {
    img.validate().expect("a valid image");
    let mut c = Card::new(img, CardRng::insecure_deterministic(7));
    c.power_on();
    Session::with(c)
}

fn tries_left(s: &Session, reference: u8, df: &[u16]) -> u8 {
    let p = s.card.image().pins.iter().find(|p| p.reference.0 == reference && p.home().eq(df.iter().copied()));
    p.unwrap().tries_left
}

// card/pins.rs `Card::reset_retry_counter`: `q.df == target.df` → `!=` (with a PUK of the same
// reference in the MF and in the PIN's DF, the one in the PIN's DF unblocks it).
#[test]
fn the_puk_in_the_pins_own_df_unblocks_it_when_another_df_has_a_puk_of_that_reference() {
    let mut img = image("cns-pin-blocked.json");
    for p in img.pins.iter_mut() {
        match p.reference.0 {
            0x1A => p.unblocked_by = Some(firmalab_emulator::hex::Hex8(0x11)),
            0x1B => (p.reference.0, p.value) = (0x11, "11223344".into()), // PUK 11 of DF 1400
            _ => {}
        }
    }
    let local_puk = padded("11223344", 8, 0xFF);
    let mf_puk = padded("87654321", 8, 0xFF);
    let mut s = cns_on(img);
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("002C019A08{mf_puk}"), "63C9"); // the MF's PUK is not PIN 1A's
    assert_eq!((tries_left(&s, 0x11, &[0x3F00, 0x1400]), tries_left(&s, 0x11, &[0x3F00])), (9, 10));
    s.expect(&format!("002C019A08{local_puk}"), "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    assert_eq!(tries_left(&s, 0x11, &[0x3F00, 0x1400]), 10);
    // PIN 10 of the MF: the MF's PUK 11.
    s.expect(&format!("002C019008{local_puk}"), "63C9");
    s.expect(&format!("002C019008{mf_puk}"), "9000");
    s.expect(&format!("0020009008{PIN}"), "9000");
}

// card/pins.rs `Card::reset_retry_counter`: `q.reference == puk_ref` → `!=` in the fallback
// (a PIN whose PUK lives in another DF than the PIN).
#[test]
fn a_pin_whose_puk_lives_in_the_mf_is_unblocked_by_that_puk_and_no_other_secret() {
    let mut img = image("cns-pin-blocked.json");
    img.pins.retain(|p| p.reference.0 != 0x1B);
    img.pins.iter_mut().find(|p| p.reference.0 == 0x1A).unwrap().unblocked_by =
        Some(firmalab_emulator::hex::Hex8(0x11));
    let mut s = cns_on(img);
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("002C019A08{PIN}"), "63C9"); // PIN 10's value is not a PUK
    assert_eq!(tries_left(&s, 0x11, &[0x3F00]), 9);
    assert_eq!(tries_left(&s, 0x10, &[0x3F00]), 0, "the wrong code counts against the PUK only");
    s.expect(&format!("002C019A08{}", padded("87654321", 8, 0xFF)), "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    assert_eq!(tries_left(&s, 0x11, &[0x3F00]), 10);
}

fn pool(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/keys").join(name);
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()).map(str::to_uppercase).collect()
}

// keys.rs `KeyMaterial::generate`: deleting the RSA-2048 or RSA-1024 arm of either pool
// match, or the `!` of `!pool.is_empty()` (deterministic mode generated real keys: slow, and
// not the public pool keys the docs promise).
#[test]
fn deterministic_mode_draws_rsa_2048_and_1024_keys_from_the_public_pools_never_twice() {
    use firmalab_emulator::keys::{Algorithm, KeyMaterial};
    for (alg, file) in [(Algorithm::Rsa2048, "rsa2048-pool.txt"), (Algorithm::Rsa1024, "rsa1024-pool.txt")] {
        let pool = pool(file);
        let mut rng = CardRng::insecure_deterministic(3);
        let mut drawn = Vec::new();
        for _ in 0..pool.len() {
            let Ok(KeyMaterial::Rsa { pkcs1 }) = KeyMaterial::generate(alg, &mut rng) else { panic!("{alg:?}: RSA") };
            let der = hex(&pkcs1.0);
            assert!(pool.contains(&der), "{alg:?}: a key of {file}");
            assert!(!drawn.contains(&der), "{alg:?}: no key twice for one card");
            drawn.push(der);
        }
    }
}

// keys.rs `Algorithm::eeprom_bytes`: every arithmetic mutant of the RSA formula and of the
// P-256 size (the free memory the card reports, EF 1202 on the CNS, moved by another amount).
#[test]
fn a_generated_key_takes_its_crt_halves_modulus_and_exponent_of_the_free_eeprom() {
    let free = |s: &mut Session| {
        s.expect("00A4080C0412001202", "9000");
        u32::from_be_bytes(s.expect("00B0000004", "#4 9000").try_into().unwrap())
    };
    let mut img = without_certificates(image("cns-renewable.json"));
    img.capabilities.p256 = true;
    for k in img.keys.iter_mut() {
        k.material = None;
    }
    let mut s = cns_on(img);
    s.expect(&format!("0020009008{PIN}"), "9000");
    let empty = free(&mut s);
    s.expect("0046000102080000", "#256 610E");
    s.expect("00C000000E", "#14 9000");
    // RSA-2048: p, q, dP, dQ, qInv of 128 bytes, the 256-byte modulus, a 4-byte exponent.
    assert_eq!(empty - free(&mut s), 5 * 128 + 256 + 4);
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("004600100A06082A8648CE3D03010700", "7F49438641.. 9000");
    // P-256: the 32-byte scalar and the 65-byte uncompressed point.
    assert_eq!(empty - free(&mut s), 900 + 32 + 65);
}

// keys.rs `<KeyMaterial as Debug>::fmt` → `Ok(())`: a key in a log or a panic message says
// what it is and never shows its bytes.
#[test]
fn key_material_debug_names_the_key_type_and_shows_no_key_bytes() {
    let img = image("cns-renewable.json");
    let k = img.keys.iter().find(|k| k.reference.0 == 0x10).unwrap();
    let material = k.material.as_ref().unwrap();
    assert_eq!(format!("{material:?}"), "Rsa(<private>)");
    let firmalab_emulator::keys::KeyMaterial::Rsa { pkcs1 } = material else { panic!() };
    let shown = format!("{k:?}");
    assert!(shown.contains("Rsa(<private>)"), "{shown}");
    assert!(!shown.to_uppercase().contains(&hex(&pkcs1.0[..16])), "no DER in {shown}");
    let ec = firmalab_emulator::keys::KeyMaterial::EcP256 { scalar: firmalab_emulator::hex::Bytes(vec![0x42; 32]) };
    assert_eq!(format!("{ec:?}"), "EcP256(<private>)");
}

// keys.rs `LoadedKey::size` → 0 and 1 (the public API's modulus length, which the card's own
// paths do not call).
#[test]
fn a_loaded_key_reports_its_modulus_length_or_32_for_p256() {
    use firmalab_emulator::keys::KeyMaterial;
    let img = image("cns-renewable.json");
    let rsa = img.keys.iter().find(|k| k.reference.0 == 0x10).unwrap().material.as_ref().unwrap().load().unwrap();
    assert_eq!(rsa.size(), 256);
    let ec = KeyMaterial::generate(firmalab_emulator::keys::Algorithm::EcP256, &mut CardRng::insecure_deterministic(5));
    assert_eq!(ec.unwrap().load().unwrap().size(), 32);
    let pool1024 = pool("rsa1024-pool.txt");
    let der = firmalab_emulator::hex::decode(&pool1024[0]).unwrap();
    let k = KeyMaterial::Rsa { pkcs1: firmalab_emulator::hex::Bytes(der) };
    assert_eq!(k.load().unwrap().size(), 128);
}

// keys.rs `LoadedKey::rsa_sign_digest_info`: `len + 11 > k` → `>=` (PKCS#1 v1.5 type 01 takes
// a DigestInfo up to the modulus length minus 11: 00 01, eight FF at least, 00).
#[test]
fn oberthur_pads_a_digest_info_up_to_the_modulus_length_minus_11_and_refuses_one_byte_more() {
    let mut s = Session::new("oberthur-renewable.json");
    s.expect("00A4040C10A000000077010303000000F100000002", "9000");
    s.expect("00A40000025011", "62.. 9000");
    s.expect("00A40000029002", "62.. 9000");
    s.expect("00A40000023002", "62.. 9000");
    s.expect("002241B603800111", "9000");
    let verify = format!("0020008140{}", padded("12345678", 64, 0xFF));
    let longest: Vec<u8> = (0..245u32).map(|i| (i * 7) as u8).collect();
    s.expect(&verify, "9000");
    let sig = s.expect(&format!("002A9E9AF5{}", hex(&longest)), "#256 9000");
    public_key(s.card.image(), 0x02)
        .verify(Pkcs1v15Sign::new_unprefixed(), &longest, &sig)
        .expect("00 01 FF*8 00 || input, signed");
    s.expect(&verify, "9000");
    s.expect(&format!("002A9E9AF6{}00", hex(&[0x30; 246])), "6700");
}

/// A CNS card with PIN 1A verified, DF 1400 current and a new transparent EF `fid` of `size`
/// bytes created in it (and selected).
fn cns_with_new_ef(fid: &str, size: u16) -> Session {
    let mut s = Session::new("cns-renewable.json");
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("00A4080C021400", "9000");
    s.expect(&format!("00E000001862168002{size:04X}8201018302{fid}8609000000000000000000"), "9000");
    s
}

// card/files.rs `Card::update_binary`: `offset > len` → `==` and `>=`.
#[test]
fn update_binary_writes_up_to_the_last_byte_and_refuses_beyond_with_6700_or_6b00() {
    let mut s = cns_with_new_ef("9011", 5);
    s.expect("00D600040109", "9000"); // the last byte
    s.expect("00D600050109", "6700"); // starts at the end: the data would run past it
    s.expect("00D600060109", "6B00"); // starts beyond the end
    s.expect("00B0000005", "0000000009 9000");
}

// card/files.rs `Card::read_binary`: `offset > len` → `>=` (an empty EF reads as end of file).
#[test]
fn an_empty_ef_reads_as_end_of_file_and_offset_1_is_outside_it() {
    let mut s = cns_with_new_ef("9012", 0);
    s.expect("00B0000010", "6282");
    s.expect("00B0000110", "6B00");
}

// card/files.rs `Card::select_fid`: `cur.len() > 1` → `<`, `parent.last() == fid` → `!=`
// (ISO 7816-4 §7.1.1: P1 = 00 also selects the parent DF and the parent's children).
#[test]
fn select_by_fid_reaches_a_sibling_df_and_the_parent_df() {
    let mut s = Session::new("oberthur-renewable.json");
    s.expect("00A4040C10A000000077010303000000F100000002", "9000");
    s.expect("00A40000025011", "62.. 9000");
    s.expect("00A40000029001", "62.. 9000");
    s.expect("00A40000023002", "6A82"); // 3002 is in 9002, not in 9001
    s.expect("00A40000029002", "62.. 9000"); // the sibling DF
    s.expect("00A40000023002", "62.. 9000");
    s.expect("00A40000025011", "62.. 9000"); // the parent, from its child 9002's EF 3002
    s.expect("00A40000021000", "62.. 9000"); // a child of 5011: 5011 is current
    s.expect("00A40000029001", "62.. 9000");
    s.expect("00A40000025011", "62.. 9000"); // the parent DF itself
    s.expect("00A40000029002", "62.. 9000");
    s.expect("00A4000002ABCD", "6A82");
}

// card/files.rs `Card::find_df_by_name` → `None`, `go` → `false`, `aid == name` → `!=` (a DF
// of the image with an AID is selected by name).
#[test]
fn select_by_df_name_finds_a_df_of_the_image_by_its_aid() {
    let aid = "A000000063504B43532D3135";
    let mut img = image("cns-renewable.json");
    let df = firmalab_emulator::fs::lookup_mut(&mut img.mf, &[0x3F00, 0x1400]).unwrap();
    let firmalab_emulator::fs::FileBody::Df { aid: a, .. } = &mut df.body else { panic!("1400 is a DF") };
    *a = Some(firmalab_emulator::hex::Bytes(h(aid)));
    let mut s = cns_on(img);
    s.expect(&format!("0020009A08{PIN}"), "6A88"); // MF current: no PIN 1A up from here
    s.expect("00A4040C0CA000000063504B43532D3136", "6A82");
    s.expect(&format!("00A4040C0C{aid}"), "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000"); // DF 1400 current
    s.expect("00A4000C029010", "9000"); // its certificate EF, by FID
}

// card/files.rs `Card::current_ef_secret` → `true`, `&&` → `||`: only the PUK file's data is
// reported secret (hosts mask it in logs), not every EF of its DF.
#[test]
fn only_the_puk_files_data_is_reported_secret() {
    let mut s = Session::new("oberthur-renewable.json");
    s.expect("00A4040C10A000000077010303000000F100000002", "9000");
    s.expect("00A40000025011", "62.. 9000");
    s.expect("00A40000021000", "62.. 9000");
    s.expect("00B0000010", "#16 9000");
    assert!(!s.card.last_reply_secret(), "token info, in the PUK file's DF, is not secret");
    s.expect(&format!("0020008440{}", padded("87654321", 64, 0xFF)), "9000");
    s.expect("00A40000022000", "62.. 9000");
    s.expect("00B0000010", "#16 9000");
    assert!(s.card.last_reply_secret(), "the PUK file is");
    s.expect("00A40000021000", "62.. 9000");
    s.expect("00B0000010", "#16 9000");
    assert!(!s.card.last_reply_secret());
}

// card/files.rs `Card::write_record`: `len > record_len` → `==` and `>=` (a record of exactly
// the record length fits; one byte more is 6700).
#[test]
fn a_record_of_exactly_the_record_length_is_written_and_one_byte_more_refused() {
    let mut s = Session::new("oberthur-renewable.json");
    s.expect("00A4040C10A000000077010303000000F100000002", "9000");
    s.expect("00A40000025011", "62.. 9000");
    let fcp = s.expect("00A40000023000", "621882050401008D04.. 9000");
    assert_eq!(fcp[7], 141, "record length");
    s.expect(&format!("0020008140{}", padded("12345678", 64, 0xFF)), "9000");
    let full = hex(&[0xA5; 141]);
    s.expect(&format!("00DC01048D{full}"), "9000");
    s.expect("00B2010400", &format!("{full} 9000"));
    s.expect(&format!("00DC01048E{}", hex(&[0x5A; 142])), "6700");
    s.expect(&format!("00E200008E{}", hex(&[0x5A; 142])), "6700");
    s.expect("00B2010400", &format!("{full} 9000"));
}

// card/files.rs `Card::create_file`: `used > free` → `>=` (a file that takes exactly the free
// EEPROM is created).
#[test]
fn create_file_may_take_exactly_the_free_eeprom_and_not_one_byte_more() {
    let created = cns_with_new_ef("9011", 5);
    let cost = image("cns-renewable.json").eeprom_free() - created.card.image().eeprom_free();
    for (free, sw) in [(cost, "9000"), (cost - 1, "6A84")] {
        let mut s = cns_with_free(image("cns-renewable.json"), free);
        s.expect("00A4080C0414008110", "9000");
        s.expect(&format!("0020009A08{PIN}"), "9000");
        s.expect("00A4080C021400", "9000");
        s.expect("00E000001862168002000582010183029011860900000000000000000000", sw);
    }
}

// card/files.rs `Card::delete_file`: `vol.ef == Some(fid)` → `!=` (deleting another EF of the
// DF deselected the current EF).
#[test]
fn deleting_another_ef_keeps_the_current_ef_selected() {
    let mut s = cns_with_new_ef("9011", 5);
    s.expect("00D60000050102030405", "9000");
    s.expect("00E000001862168002000582010183029012860900000000000000000000", "9000");
    s.expect("00A4000C029011", "9000");
    s.expect("00E40000029012", "9000");
    s.expect("00B0000005", "0102030405 9000");
    s.expect("00E40000029011", "9000");
    s.expect("00B0000005", "6986"); // the current EF itself is gone
}

// fs.rs `FileNode::size` (`bits / 8` → `%`, `*`) and `FileNode::eeprom_used` (deleting the
// key-file arm): a key EF's size is its modulus length, and its EEPROM is the file's overhead
// only (the key store counts the key material).
#[test]
fn a_key_file_has_its_modulus_length_as_size_and_costs_only_the_file_overhead() {
    use firmalab_emulator::fs::{Acl, FILE_OVERHEAD, FileBody, FileNode};
    use firmalab_emulator::hex::Hex8;
    for body in [FileBody::PrivateKey { key: Hex8(2), bits: 2048 }, FileBody::PublicKey { key: Hex8(2), bits: 2048 }] {
        let node = FileNode::new(0x3002, None, Acl::open_read_only(), body);
        assert_eq!(node.size(), 256);
        assert_eq!(node.eeprom_used(), FILE_OVERHEAD);
    }
    let ef = FileNode::new(0x9011, None, Acl::open_read_only(), FileBody::Transparent { data: Default::default() });
    assert_eq!(ef.eeprom_used(), FILE_OVERHEAD);
}

// fs.rs `FileNode::walk` → `()`: every node of the tree is visited, the MF first.
#[test]
fn walk_visits_every_file_of_the_tree_depth_first() {
    fn count(n: &firmalab_emulator::fs::FileNode) -> usize {
        1 + n.children().iter().map(count).sum::<usize>()
    }
    let img = image("oberthur-renewable.json");
    let mut seen = Vec::new();
    img.mf.walk(&mut |n| seen.push(n.fid.0));
    assert_eq!(seen.len(), count(&img.mf));
    assert_eq!(&seen[..3], &[0x3F00, 0x5011, 0x1000]);
}

// fs.rs `parse_path` → `Ok(vec![])`, `Ok(vec![0])`, `Ok(vec![1])`: the paths the CLI reads.
#[test]
fn paths_parse_with_or_without_slashes_and_refuse_odd_lengths() {
    use firmalab_emulator::fs::{display_path, parse_path};
    assert_eq!(parse_path("3F00/1400/9010"), Ok(vec![0x3F00, 0x1400, 0x9010]));
    assert_eq!(parse_path("3F0014009010"), Ok(vec![0x3F00, 0x1400, 0x9010]));
    assert!(parse_path("3F00/14").is_err());
    assert!(parse_path("").is_err());
    assert_eq!(display_path(&parse_path("3f00/5011").unwrap()), "3F00/5011");
}
