//! Oberthur AuthentIC v2 / AWP (OpenSC `oberthur`) profile: APDU tables per spec/cards.md §2
//! and §7.1, T=0 encodings as the card receives them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::hex;
use rsa::{Pkcs1v15Encrypt, Pkcs1v15Sign};
use sha2::Sha256;

const CARD: &str = "oberthur-renewable.json";

fn pin64(p: &str) -> String {
    padded(p, 64, 0xFF)
}

fn connect(s: &mut Session) {
    s.expect("00A4040C07A0000000030000", "9000");
    let cplc = s.expect("80CA9F7F2D", "9F7F2A.. 9000");
    assert_eq!(cplc.len(), 45);
    assert_eq!(&cplc[15..19], &h("1A2B3C4D")[..], "serial at response bytes 15..18");
    s.expect("00A4040C10A000000077010303000000F100000002", "9000");
    s.expect("00A40000023F00", "62158202380083023F00.. 9000");
}

#[test]
fn connect_sequence_of_spec_7_1_selects_card_manager_reads_cplc_and_mf_fcp() {
    let mut s = Session::new(CARD);
    s.expect("00A4040C07A0000000030000", "9000");
    s.expect("80CA9F7F2D", "9F7F2A.. 9000");
    s.expect("00CA9F7F2D", "6A88");
    s.expect("00A4040C10A000000077010303000000F100000002", "9000");
    let fcp = s.expect("00A40000023F00", "62.. 9000");
    assert_eq!(fcp.len(), 0x17);
    assert_eq!(&fcp[..10], &h("62158202380083023F00")[..]);
    assert_eq!(&fcp[fcp.len() - 10..], &h("8608240000FF242424FF")[..]);
    s.expect("00A4040C07A0000000039999", "6A82");
}

#[test]
fn bind_sequence_of_spec_7_1_reads_token_info_lists_containers_and_objects() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.table(&[
        ("00A40000022F00", "6A82"),
        ("00A40000025015", "6A82"),
        ("00A40000025031", "6A82"),
        ("00A40000025011", "62.. 9000"),
        ("0020000400", "63C3"),
        ("0020008100", "63C3"),
        ("0020008200", "6A88"),
    ]);
    let fcp = s.expect("00A40000021000", "62.. 9000");
    assert_eq!(&fcp[..12], &h("62168002002482020101830210")[..12]);
    let info = s.expect("00B0000024", "#36 9000");
    assert!(info.starts_with(b"GIULIA BIANCHI"));
    let fcp = s.expect("00A40000023000", "621882050401008D04.. 9000");
    assert_eq!(fcp[2], 0x82);
    let c1 = s.expect("00B201048D", "#141 9000");
    assert_eq!(&c1[..6], &h("100130012001")[..]);
    assert_eq!(c1[12], 0x26);
    s.expect("00B202048D", "#141 9000");
    s.expect("00B203048D", "6A83");
    s.expect("00A40000024000", "62.. 9000");
    let public = s.expect("00B00000FA", "#250 9000");
    assert_eq!(&public[..3], &h("FF2001")[..]);
    s.expect("00A40000029001", "62.. 9000");
    s.expect("00A40000022101", "62.. 9000");
    s.expect("00B0000000", "* 9000");
    let fcp = s.expect("00A40000022001", "62.. 9000");
    let size = usize::from(u16::from_be_bytes([fcp[4], fcp[5]]));
    let mut cert = Vec::new();
    for off in (0..size).step_by(256) {
        let n = (size - off).min(256);
        cert.extend(s.expect(&format!("00B0{off:04X}{:02X}", n as u8), "* 9000"));
    }
    assert_eq!(cert.len(), size);
    assert_eq!(cert[0], 0x30);
    let parent = s.expect("00A4030000", "62.. 9000");
    assert_eq!(&parent[6..10], &h("83025011")[..]);
    s.expect("00A40000025000", "62.. 9000");
    let private = s.expect("00B000007D", "#125 9000");
    assert_eq!(&private[..10], &h("FF30010800FF30020800")[..]);
    s.expect("00A40000029002", "62.. 9000");
    let key_fcp = s.expect("00A40000023001", "62.. 9000");
    assert_eq!(hex::encode(&key_fcp), "621682021400830230018502080086082121FF21FF21FFFF");
    s.expect("00A40000023101", "62.. 9000");
    s.expect("00B0000000", "* 9000");
}

#[test]
fn verify_and_change_the_user_pin_with_64_byte_padding() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.table(&[
        ("00A40000025011", "62.. 9000"),
        ("0020008100", "63C3"),
        (&format!("0020008140{}", pin64("11111111")), "63C2"),
        (&format!("0020008140{}", pin64("12345678")), "9000"),
        ("0020008100", "9000"),
        ("00200081083132333435363738", "6700"),
        (&format!("0024000180{}{}", pin64("12345678"), pin64("87878787")), "9000"),
        ("802E002100", "9000"),
        ("802E002200", "9000"),
        ("802E002300", "6A86"),
        ("0020008100", "63C3"),
        (&format!("0020008140{}", pin64("87878787")), "9000"),
        (&format!("0024000480{}{}", pin64("11223344"), pin64("44332211")), "9000"), // SO PIN
        (&format!("0020000440{}", pin64("44332211")), "9000"),
    ]);
}

#[test]
fn decipher_with_the_8_plus_248_chained_split_returns_the_unpadded_plaintext() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    let public = public_key(s.card.image(), 0x01);
    let mut rng = firmalab_emulator::CardRng::insecure_deterministic(3);
    let cryptogram = public.encrypt(&mut rng, Pkcs1v15Encrypt, b"segreto di Giulia").unwrap();
    s.table(&[
        ("00A40000025011", "62.. 9000"),
        (&format!("0020008140{}", pin64("12345678")), "9000"),
        ("00A40000029002", "62.. 9000"),
        ("00A40000023001", "62.. 9000"),
        ("002241B803800111", "9000"),
        (&format!("102A808608{}", hex::encode(&cryptogram[..8])), "9000"),
    ]);
    let plain = s.expect(&format!("002A8086F8{}", hex::encode(&cryptogram[8..])), "* 9000");
    assert_eq!(plain, b"segreto di Giulia");
    // The signature key has no decipher usage.
    s.expect("00A40000023002", "62.. 9000");
    s.expect("002241B803800111", "9000");
    s.expect(&format!("102A808608{}", hex::encode(&cryptogram[..8])), "9000");
    s.expect(&format!("002A8086F8{}", hex::encode(&cryptogram[8..])), "6985");
}

#[test]
fn the_card_pads_a_digest_info_for_pso_cds_on_the_selected_key_ef() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    let (digest, di) = sha256_digest_info(b"modulo di rinnovo");
    s.table(&[
        ("00A40000025011", "62.. 9000"),
        (&format!("0020008140{}", pin64("12345678")), "9000"),
        ("00A40000029002", "62.. 9000"),
        ("00A40000023002", "62.. 9000"),
        ("002241B603800111", "9000"),
        ("002241B603800101", "6A80"),
        ("002241B603800111", "9000"),
    ]);
    let sig = s.expect(&format!("002A9E9A33{}", hex::encode(&di)), "#256 9000");
    public_key(s.card.image(), 0x02).verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).expect("verifies");
    // The qualified key is always-authenticate: one signature per VERIFY.
    s.expect(&format!("002A9E9A33{}", hex::encode(&di)), "6982");
    s.expect(&format!("0020008140{}", pin64("12345678")), "9000");
    // MSE binds to the key EF selected now: another EF selected → 6985.
    s.expect("00A40000023102", "62.. 9000");
    s.expect(&format!("002A9E9A33{}", hex::encode(&di)), "6985");
}

#[test]
fn unblock_reads_the_puk_file_after_verify_84_and_resets_the_pin() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.expect("00A40000025011", "62.. 9000");
    for left in ["63C2", "63C1", "63C0"] {
        s.expect(&format!("0020008140{}", pin64("99999999")), left);
    }
    s.expect(&format!("0020008140{}", pin64("12345678")), "6983");
    s.expect("00A40000022000", "62.. 9000");
    s.expect("00B0000010", "6982"); // the PUK file needs the PUK
    s.expect(&format!("0020008440{}", pin64("87654321")), "9000");
    let code = s.expect("00B0000010", "#16 9000");
    s.expect(&format!("002C000150{}{}", "00".repeat(16), pin64("24682468")), "63C9");
    s.expect(&format!("002C000150{}{}", hex::encode(&code), pin64("24682468")), "9000");
    s.expect(&format!("0020008140{}", pin64("24682468")), "9000");
    s.expect(&format!("002C00014F{}{}", hex::encode(&code), &pin64("1")[..126]), "6700");
}

#[test]
fn key_management_generate_read_public_component_delete_list_create() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.table(&[
        ("00A40000025011", "62.. 9000"),
        ("00A40000029001", "62.. 9000"),
        ("8034000040", "100120012101100220022102 9000"),
        ("00E40200022001", "6982"),
        ("00460000041002300200", "6982"),
        (&format!("0020008140{}", pin64("12345678")), "9000"),
    ]);
    let old = public_key(s.card.image(), 0x02);
    let modulus = s.expect("00460000041002300200", "#256 9000");
    assert_ne!(public_key(s.card.image(), 0x02), old);
    s.expect("00A40000021002", "6216820212008302100285020800.. 9000");
    assert_eq!(s.expect("80B4010000", "#256 9000"), modulus);
    s.expect("80B4020000", "010001 9000");
    s.expect("00B0000000", "6981");
    s.expect("00460000041002399900", "6A82");
    // Delete the authentication key: its file and slot go.
    s.expect("00A4030000", "62.. 9000");
    s.expect("00A40000029002", "62.. 9000");
    s.expect("00E40100023001", "6A82"); // P1 = 01 expects a DF
    s.expect("00E40200023001", "9000");
    assert!(s.card.image().keys.iter().all(|k| k.reference.0 != 0x01));
    s.expect("8034000040", "310130023102 9000");
    // Create a new private key file and generate into it.
    let create = "00E0000018621682021400830230038502080086082121FF21FF21FFFF";
    s.expect(create, "9000");
    s.expect(create, "6A89");
    s.expect("00A4030000", "62.. 9000");
    s.expect("00A40000029001", "62.. 9000");
    s.expect("00E000001862168202120083021003850208008608210000FF00FF00FF", "9000");
    s.expect("00460000041003300300", "#256 9000");
    // A DF can only go when empty.
    s.expect("00A4030000", "62.. 9000");
    s.expect("00E40100029001", "6985");
}

#[test]
fn create_pin_needs_the_so_pin_and_sets_a_new_pin_and_counter() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.expect("00A40000025011", "62.. 9000");
    s.expect(&format!("00240101420340{}", pin64("12345")), "6982");
    // The holder's own PIN does not let anyone redefine PINs: that is the security officer's.
    s.expect(&format!("0020008140{}", pin64("12345678")), "9000");
    s.expect(&format!("00240101420340{}", pin64("12345")), "6982");
    s.expect(&format!("0020008140{}", pin64("12345")), "63C2");
    s.expect(&format!("0020000440{}", pin64("11223344")), "9000");
    s.expect(&format!("00240101420340{}", pin64("12345")), "9000");
    s.expect("0020008100", "63C3");
    s.expect(&format!("0020008140{}", pin64("12345")), "9000");
    s.expect(&format!("00240101420040{}", pin64("12345")), "6A80");
}

/// The 16-byte unblock code of `5011/2000` for a PUK (the PUK's ASCII, zero-padded).
fn puk_code(puk: &str) -> String {
    let mut v = puk.as_bytes().to_vec();
    v.resize(16, 0);
    hex::encode(&v)
}

/// Reads `5011/2000` after presenting `puk`.
fn read_puk_file(s: &mut Session, puk: &str) -> Vec<u8> {
    s.expect("00A40000023F00", "62.. 9000");
    s.expect("00A40000025011", "62.. 9000");
    s.expect(&format!("0020008440{}", pin64(puk)), "9000");
    s.expect("00A40000022000", "62.. 9000");
    let code = s.expect("00B0000010", "#16 9000");
    assert!(s.card.last_reply_secret(), "the PUK file's content is reported secret");
    s.expect("00A4030000", "62.. 9000");
    code
}

#[test]
fn a_puk_change_rewrites_the_puk_file_and_only_the_current_puk_unblocks() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.expect("00A40000025011", "62.. 9000");
    s.expect(&format!("0024008480{}{}", pin64("87654321"), pin64("11112222")), "9000");
    assert_eq!(hex::encode(&read_puk_file(&mut s, "11112222")), puk_code("11112222"));
    // The old PUK's code is refused and counts against the PUK; the new one unblocks.
    s.expect(&format!("002C000150{}{}", puk_code("87654321"), pin64("24682468")), "63C9");
    s.expect(&format!("0020008140{}", pin64("24682468")), "63C2");
    s.expect(&format!("002C000150{}{}", puk_code("11112222"), pin64("24682468")), "9000");
    s.expect(&format!("0020008140{}", pin64("24682468")), "9000");
    let puk = s.card.image().pins.iter().find(|p| p.reference.0 == 0x84).unwrap();
    assert_eq!((puk.value.as_str(), puk.tries_left), ("11112222", 10), "the right code restored the PUK's tries");
    // The old PUK itself is no longer the PUK.
    s.expect(&format!("0020008440{}", pin64("87654321")), "63C9");
}

#[test]
fn a_blocked_puk_stays_blocked_whoever_redefines_it() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.expect("00A40000025011", "62.. 9000");
    for left in 0..10u8 {
        s.expect(&format!("0020008440{}", pin64("99999999")), &format!("63C{:X}", 9 - left));
    }
    s.expect("0020008400", "6983");
    let file_before = s.card.image().clone();
    // With the user PIN (the reproduction of issue 10 item 7) and with the SO PIN: 6982, 6983.
    s.expect(&format!("0020008140{}", pin64("12345678")), "9000");
    s.expect(&format!("0024010442{}40{}", "0A", pin64("55556666")), "6982");
    s.expect(&format!("0020000440{}", pin64("11223344")), "9000");
    s.expect(&format!("0024010442{}40{}", "0A", pin64("55556666")), "6983");
    s.expect("0020008400", "6983");
    s.expect(&format!("002C000150{}{}", puk_code("55556666"), pin64("24682468")), "6983");
    s.expect(&format!("002C000150{}{}", puk_code("87654321"), pin64("24682468")), "6983");
    assert_eq!(s.card.image().pins, file_before.pins, "no PIN object changed");
    assert_eq!(s.card.image().mf, file_before.mf, "the PUK file did not change");
}

#[test]
fn the_so_redefines_an_unblocked_puk_and_the_puk_file_follows() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.expect("00A40000025011", "62.. 9000");
    s.expect(&format!("0020008440{}", pin64("99999999")), "63C9");
    s.expect(&format!("0020000440{}", pin64("11223344")), "9000");
    s.expect(&format!("0024010442{}40{}", "05", pin64("55556666")), "9000");
    s.expect("0020008400", "63C5");
    assert_eq!(hex::encode(&read_puk_file(&mut s, "55556666")), puk_code("55556666"));
    s.expect(&format!("002C000150{}{}", puk_code("55556666"), pin64("24682468")), "9000");
}

#[test]
fn a_refused_create_pin_leaves_no_pin_object_behind() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.expect("00A40000025011", "62.. 9000");
    s.expect(&format!("0020000440{}", pin64("11223344")), "9000");
    let before = s.card.image().pins.len();
    // PIN 82 does not exist; "12" is shorter than the AWP minimum of 4.
    s.expect(&format!("00240102420340{}", pin64("12")), "6A80");
    assert_eq!(s.card.image().pins.len(), before);
    s.expect(&format!("0020008240{}", "FF".repeat(64)), "6A88"); // no PIN 82 with an empty value
    s.expect(&format!("00240102420340{}", pin64("2468")), "9000");
    assert_eq!(s.card.image().pins.len(), before + 1);
    s.expect(&format!("0020008240{}", pin64("2468")), "9000");
    s.expect(&format!("00240102421040{}", pin64("2468")), "6A80"); // 16 tries: more than 63Cx reports
}

#[test]
fn records_update_append_delete() {
    let mut s = Session::new(CARD);
    connect(&mut s);
    s.table(&[
        ("00A40000025011", "62.. 9000"),
        ("00A40000023000", "62.. 9000"),
        ("00DC010403AABBCC", "6982"),
        (&format!("0020008140{}", pin64("12345678")), "9000"),
        ("00DC010403AABBCC", "9000"),
        ("00B2010400", "AABBCC 9000"),
        ("00E2000002DDEE", "9000"),
        ("00B2030402", "DDEE 9000"),
        ("80320304", "9000"),
        ("00B2030400", "6A83"),
        ("00DC090402AABB", "6A83"),
        ("00B2000400", "6A86"),
    ]);
}

#[test]
fn oberthur_class_rules() {
    let mut s = Session::new(CARD);
    s.table(&[("B0F50000", "6E00"), ("80A4000C023F00", "6D00"), ("00F50000", "6D00"), ("8446000000", "6E00")]);
}
