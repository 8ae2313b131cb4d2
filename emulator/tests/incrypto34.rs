//! The Incrypto34 profile at the APDU level (spec/cards.md §4, §7.3; OpenSC
//! `card-incrypto34.c`, `pkcs15-incrypto34.c`): the bind and signature sequences OpenSC
//! sends, PINs padded with `00`, BS objects by PUT DATA OCI/SECI with `6A89` for an existing
//! one, CHANGE KEY DATA in class `90`, GENERATE KEY into the record EF `7EAD`, SCAN DF,
//! ERASE under the MF's delete condition, and only status words of the driver's table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::fs::{FileBody, lookup};
use firmalab_emulator::hex;
use firmalab_emulator::keys::Algorithm;
use firmalab_emulator::security::PinRole;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::Sha256;

const ISSUED: &str = "incrypto34-issued.json";
const BLANK: &str = "incrypto34-blank.json";

fn pin(value: &str) -> String {
    padded(value, 8, 0x00)
}

/// `00 20 00 (80|ref) 08 value` after selecting the PKCS#15 DF.
fn verify(s: &mut Session, reference: u8, value: &str) -> Vec<u8> {
    s.expect("00A4080C025015", "9000");
    s.sendh(&format!("002000{:02X}08{}", 0x80 | reference, pin(value)))
}

fn h8(b: u8) -> String {
    format!("{b:02X}")
}

/// A PIN BS object as `incrypto34_store_pin` builds it.
fn oci_pin(reference: u8, tries: u8, min_len: u8, unblock: u8, value: &str) -> String {
    let body = format!(
        "8302{}{}850802{}87{}FF0000{}860A00{}{}FFFFFFFFFFFFFF8F08{}",
        "00",
        h8(reference),
        h8(tries),
        h8(tries),
        h8(min_len),
        h8(reference),
        h8(unblock),
        pin(value)
    );
    format!("00DA016E{}{body}", h8((body.len() / 2) as u8))
}

/// A key component BS object as `incrypto34_store_key_component` builds it (`FF` values, as
/// `pkcs15-init --generate-key` sends them).
fn oci_key(component: u8, key: u8, algorithm: u8, pin_ref: u8, bytes: usize) -> String {
    let options = if component == 0 { "22" } else { "02" };
    let value = "FF".repeat(bytes);
    let body = format!(
        "8302{}{}8508{options}00{}0FFFFF0000860A{}{}FFFFFFFF00FFFFFF8B10{}8F{}{}00{value}",
        h8(0x20 | component),
        h8(key),
        h8(algorithm),
        h8(pin_ref),
        h8(pin_ref),
        "FF".repeat(16),
        h8((bytes + 2) as u8),
        h8((bytes + 1) as u8),
    );
    format!("00DA016E{}{body}", h8((body.len() / 2) as u8))
}

/// CREATE FILE of the key-generation file as `pkcs15-init` sends it (`iso7816_construct_fci`).
const CREATE_7EAD: &str = "00E000001F6F1D81020200820305FF0083027EAD85030100008609000000000000000000";

fn verify_sig(public: &RsaPublicKey, msg: &[u8], sig: &[u8]) {
    let (digest, _) = sha256_digest_info(msg);
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, sig).expect("signature verifies");
}

#[test]
fn opensc_binds_the_on_card_pkcs15_application_as_observed() {
    let mut s = Session::new(ISSUED);
    s.table(&[
        // sc_pkcs15_bind_internal: EF.DIR, the application DF, its ODF and TokenInfo.
        ("00A40800022F0000", "62.. 9000"),
        ("00B0000080", "61264F0CA000000063504B43532D31355010415255424120494E43525950544F333451043F005015.. 9000"),
        ("00A4080C025015", "9000"),
        ("00A40800045015503100", "62.. 9000"),
        ("00B0000000", "A80A300804063F0050154401A00A300804063F0050154402.. 9000"),
        ("00A40800045015503200", "62.. 9000"),
        ("00CA018300", "10 9000"),
    ]);
    // The FCP: size, descriptor, FID, the 9 access bytes (EF: read always, update and erase
    // with the SO PIN 01).
    s.expect("00A40800045015440100", "621680020100820101830244018609000101FFFF01FFFFFF 9000");
    // A DF: descriptor 38, update objects never, create always, delete always.
    s.expect("00A4080002501500", "621282013883025015860900FF00FFFF00FF00FF 9000");
}

#[test]
fn pins_are_padded_with_00_found_from_the_application_df_and_counted_down() {
    let mut s = Session::new(ISSUED);
    // From the MF, neither 03 nor 83 finds the PIN: it lives in 5015 (OpenSC selects it first).
    s.table(&[
        (&format!("0020008308{}", pin("12345678")), "6A88"),
        (&format!("0020000308{}", pin("12345678")), "6A88"),
    ]);
    assert_eq!(verify(&mut s, 0x03, "12345678"), [0x90, 0x00]);
    // Without bit 7 only the current DF is searched: 5015 is current, so it is found.
    s.expect(&format!("0020000308{}", pin("12345678")), "9000");
    // FF padding is another value.
    s.expect(&format!("0020008308{}", padded("1234", 8, 0xFF)), "63C2");
    s.expect("00200083", "63C2");
    s.expect(&format!("0020008304{}", hex::encode(b"1234")), "6700");
    assert_eq!(verify(&mut s, 0x03, "12345678"), [0x90, 0x00]);
    s.expect("00200083", "9000");
    // CHANGE and RESET RETRY COUNTER name the PIN; the PUK 04 unblocks it.
    s.expect(&format!("0024008310{}{}", pin("12345678"), pin("2468")), "9000");
    for left in ["63C2", "63C1", "63C0"] {
        s.expect(&format!("0020008308{}", pin("0000")), left);
    }
    s.expect(&format!("0020008308{}", pin("2468")), "6983");
    s.expect(&format!("002C008310{}{}", pin("11111111"), pin("1357")), "63C9");
    s.expect(&format!("002C008310{}{}", pin("87654321"), pin("1357")), "9000");
    s.expect(&format!("0020008308{}", pin("1357")), "9000");
    let image = s.card.image();
    let user = image.pins.iter().find(|p| p.reference.0 == 0x03).unwrap();
    assert_eq!((user.value.as_str(), user.tries_left), ("1357", 3));
    assert_eq!(image.pins.iter().find(|p| p.reference.0 == 0x04).unwrap().tries_left, 10);
}

#[test]
fn the_signature_sequence_of_spec_7_3_the_card_pads_the_digest_info() {
    let mut s = Session::new(ISSUED);
    let public = public_key(s.card.image(), 0x10);
    let (digest, di) = sha256_digest_info(b"modulo");
    let block = pkcs1_block(&digest, 128);
    // No PIN yet: the key refuses.
    s.table(&[("00A4080C025015", "9000"), ("0022F301", "9000"), ("0022F1B603830110", "9000")]);
    s.expect(&format!("002A9E9A33{}80", hex::encode(&di)), "6982");
    assert_eq!(verify(&mut s, 0x03, "12345678"), [0x90, 0x00]);
    s.table(&[("0022F301", "9000"), ("0022F1B603830110", "9000")]);
    // OpenSC's first try, the padded block: a RSA_SIG key (algorithm 88) wants the
    // DigestInfo, 6700; its second try signs.
    s.expect(&format!("002A9E9A80{}80", hex::encode(&block)), "6700");
    let sig = s.expect(&format!("002A9E9A33{}80", hex::encode(&di)), "#128 9000");
    verify_sig(&public, b"modulo", &sig);
    // The signature keys do not decipher; environments not stored on the card are not found.
    s.expect("0022F1B803830110", "6A80");
    s.expect("0022F302", "6A88");
    s.expect("00A4000C023F00", "9000");
    s.expect("0022F301", "6A88");
}

#[test]
fn put_data_oci_creates_pins_once_and_names_their_puk() {
    let mut s = Session::new(ISSUED);
    s.expect("00A4080C025015", "9000");
    s.expect(&oci_pin(0x06, 10, 4, 0xFF, "55556666"), "9000");
    s.expect(&oci_pin(0x05, 3, 6, 0x06, "123456"), "9000");
    s.expect(&oci_pin(0x05, 3, 6, 0x06, "654321"), "6A89");
    let image = s.card.image();
    let puk = image.pins.iter().find(|p| p.reference.0 == 0x06).unwrap();
    assert_eq!(puk.role, PinRole::Puk);
    let new = image.pins.iter().find(|p| p.reference.0 == 0x05).unwrap();
    assert_eq!((new.min_len, new.max_tries, new.unblocked_by.map(|r| r.0)), (6, 3, Some(0x06)));
    assert_eq!(new.df.iter().map(|f| f.0).collect::<Vec<_>>(), [0x3F00, 0x5015]);
    s.expect(&format!("0020008508{}", pin("123456")), "9000");
    // A value shorter than the object's minimum, bad TLVs, no tries, another algorithm.
    s.table(&[
        (&oci_pin(0x07, 3, 6, 0xFF, "1234"), "6A80"),
        (&oci_pin(0x07, 0, 4, 0xFF, "1234"), "6A80"),
        ("00DA016E0483020007", "6A80"),
        ("00DA016E058302000700", "6A80"),
        ("00DA016E00", "6700"),
        ("00DA016C0483020007", "6A81"),
        ("00DA026E0483020007", "6A86"),
    ]);
    // In the MF, creating objects needs the SO PIN (its create condition).
    s.expect("00A4000C023F00", "9000");
    s.expect(&oci_pin(0x09, 3, 4, 0xFF, "1234"), "6982");
    assert_eq!(verify(&mut s, 0x01, "11223344"), [0x90, 0x00]);
    s.expect("00A4000C023F00", "9000");
    s.expect(&oci_pin(0x09, 3, 4, 0xFF, "1234"), "9000");
    assert!(s.card.image().pins.iter().any(|p| p.reference.0 == 0x09 && p.df.len() == 1));
}

#[test]
fn pkcs15_init_key_generation_writes_the_public_key_to_7ead_and_the_key_deciphers() {
    let mut s = Session::new(ISSUED);
    s.expect("00A4080C025015", "9000");
    // pkcs15-incrypto34.c: two components of FF, CHANGE KEY DATA with them, GENERATE KEY.
    s.expect(CREATE_7EAD, "9000");
    s.expect("00A4080C025015", "9000");
    s.expect(&oci_key(0, 0x12, 0x0C, 0x03, 128), "9000");
    s.expect(&oci_key(1, 0x12, 0x0C, 0x03, 128), "9000");
    s.expect(&format!("9024209280{}", "FF".repeat(128)), "9000");
    s.expect(&format!("9024219280{}", "FF".repeat(128)), "9000");
    // No PIN needed before the key exists.
    s.expect("004600120820127EAD00100020", "9000");
    s.expect("00A4080C0450157EAD", "9000");
    let modulus = s.expect("00B2010400", "10828100.. 9000");
    assert_eq!(modulus.len(), 132);
    s.expect("00B2020400", "11050400010001 9000");
    s.expect("00B2030400", "6A83");
    let n = BoxedUint::from_be_slice_vartime(&modulus[4..]);
    let public = RsaPublicKey::new(n, BoxedUint::from(65_537u32)).unwrap();
    assert_eq!(public.size(), 128);
    // The key is the one generated: a cryptogram for that public key deciphers on the card.
    let plain = b"chiave di sessione";
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([7; 32]);
    let ct = public.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, plain).unwrap();
    assert_eq!(verify(&mut s, 0x03, "12345678"), [0x90, 0x00]);
    s.table(&[("0022F301", "9000"), ("0022F1B803830112", "9000")]);
    // PSO DECIPHER with the ISO padding indicator 00; the raw block comes back.
    let raw = s.expect(&format!("002A80868100{}00", hex::encode(&ct)), "#128 9000");
    assert!(raw.ends_with(plain) && raw.starts_with(&[0x00, 0x02]), "raw PKCS#1 type-02 block");
    s.expect("0022F1B603830112", "6A80");
    // The temporary file goes as pkcs15-init removes it.
    s.expect("00A4080C025015", "9000");
    s.expect("00E40000027EAD", "9000");
    let key = s.card.image().keys.iter().find(|k| k.reference.0 == 0x12).unwrap();
    assert_eq!((key.algorithm, key.usage.decipher, key.usage.sign), (Algorithm::Rsa1024, true, false));
}

#[test]
fn a_live_key_changes_only_under_its_pin_and_generation_errors_are_precise() {
    let mut s = Session::new(ISSUED);
    let old = public_key(s.card.image(), 0x10);
    s.expect("00A4080C025015", "9000");
    s.expect(CREATE_7EAD, "9000");
    s.expect("00A4080C025015", "9000");
    s.table(&[
        // The key object exists: OCI answers 6A89, which put_key takes as "go on".
        (&oci_key(0, 0x10, 0x88, 0x03, 128), "6A89"),
        (&oci_key(1, 0x10, 0x88, 0x03, 128), "6A89"),
        (&format!("9024209080{}", "FF".repeat(128)), "6982"),
        ("004600100820107EAD00100020", "6982"),
        // Other errors.
        ("004600130820137EAD00100020", "6A88"),
        ("004600100820117EAD00100020", "6A80"),
        ("004600100420107EAD", "6700"),
        (&format!("9024201080{}", "FF".repeat(128)), "6A86"),
        (&format!("9024229080{}", "FF".repeat(128)), "6A86"),
    ]);
    assert_eq!(verify(&mut s, 0x03, "12345678"), [0x90, 0x00]);
    s.table(&[
        ("004600100820104401 00100020".replace(' ', "").as_str(), "6981"),
        ("004600100820100001 00100020".replace(' ', "").as_str(), "6A82"),
        (&format!("9024209080{}", "FF".repeat(64)), "6700"),
    ]);
    // A real key from outside (store-private-key) is not modelled.
    s.expect(&format!("9024209080{}", "AB".repeat(128)), "6A81");
    s.expect(&format!("9024209080{}", "FF".repeat(128)), "9000");
    assert!(s.card.image().keys.iter().find(|k| k.reference.0 == 0x10).unwrap().material.is_none());
    s.expect("004600100820107EAD00100020", "9000");
    let new = public_key(s.card.image(), 0x10);
    assert_ne!(new, old, "a new key pair");
}

#[test]
fn rsa_512_and_768_key_objects_generate_and_sign() {
    let mut s = Session::new(ISSUED);
    s.expect("00A4080C025015", "9000");
    s.expect(CREATE_7EAD, "9000");
    s.expect("00A4080C025015", "9000");
    for (key, bytes, alg) in [(0x14u8, 64usize, Algorithm::Rsa512), (0x15, 96, Algorithm::Rsa768)] {
        s.expect(&oci_key(0, key, 0x88, 0x03, bytes), "9000");
        s.expect(&oci_key(1, key, 0x88, 0x03, bytes), "9000");
        s.expect(&format!("004600{}0820{}7EAD00100020", h8(key), h8(key)), "9000");
        assert_eq!(s.card.image().keys.iter().find(|k| k.reference.0 == key).unwrap().algorithm, alg);
        assert_eq!(verify(&mut s, 0x03, "12345678"), [0x90, 0x00]);
        s.table(&[("0022F301", "9000"), (&format!("0022F1B6038301{}", h8(key)), "9000")]);
        let (_, di) = sha256_digest_info(b"piccola");
        let sig = s.expect(&format!("002A9E9A33{}{}", hex::encode(&di), h8(bytes as u8)), "* 9000");
        assert_eq!(sig.len(), bytes);
        verify_sig(&public_key(s.card.image(), key), b"piccola", &sig);
    }
    // 2048 bits is more than the chip holds.
    s.expect(&oci_key(0, 0x16, 0x88, 0x03, 200), "6A80");
}

#[test]
fn put_data_seci_stores_a_security_environment_that_mse_restore_then_finds() {
    let mut s = Session::new(BLANK);
    s.table(&[
        ("00A4000C023F00", "9000"),
        ("0022F301", "6A88"),
        ("00DA016D0F830101860200008F06000000000000", "9000"),
        ("00DA016D0F830101860200008F06000000000000", "6A89"),
        ("0022F301", "9000"),
        ("00DA016D03830201", "6A80"),
    ]);
    let image = s.card.image();
    assert_eq!(image.security_environments.len(), 1);
    assert_eq!(hex::encode(&image.security_environments[0].data.0), "830101860200008F06000000000000");
    // It persists: a power cycle forgets the session, not the environment.
    s.card.power_off();
    s.card.power_on();
    s.expect("0022F301", "9000");
}

#[test]
fn scan_df_lists_the_current_df_one_entry_at_a_time_and_forgets_on_power_off() {
    let mut s = Session::new(ISSUED);
    s.expect("B0FC000003", "012F00 9000");
    s.expect("B0FC000103", "385015 9000");
    s.expect("B0FC000103", "6A82");
    s.expect("00A4080C025015", "9000");
    let mut seen = vec![s.expect("B0FC000003", "* 9000")];
    loop {
        let r = s.sendh("B0FC000103");
        if r == [0x6A, 0x82] {
            break;
        }
        assert_eq!(&r[3..], [0x90, 0x00]);
        seen.push(r[..3].to_vec());
    }
    let fids: Vec<String> = seen.iter().map(|e| hex::encode(&e[1..])).collect();
    assert_eq!(fids, ["5031", "5032", "4946", "4401", "4402", "4403", "4404", "3003", "3104", "3004", "3105"]);
    assert!(seen.iter().all(|e| e[0] == 0x01), "transparent EFs");
    s.table(&[("B0FC000203", "6A86"), ("B0FC010003", "6A86"), ("B0FC00000100", "6700")]);
    s.expect("B0FC000003", "015031 9000");
    s.card.power_off();
    s.card.power_on();
    // A fresh session starts at the first entry again (of the MF, now current).
    s.expect("B0FC000103", "012F00 9000");
}

#[test]
fn erase_needs_the_so_pin_and_leaves_an_open_mf_the_driver_refills() {
    let mut s = Session::new(ISSUED);
    s.expect("B0F50000", "6982");
    assert_eq!(verify(&mut s, 0x03, "12345678"), [0x90, 0x00]);
    s.expect("B0F50000", "6982");
    assert_eq!(verify(&mut s, 0x01, "11223344"), [0x90, 0x00]);
    s.expect("B0F50000", "9000");
    assert_eq!(s.card.last_effect(), firmalab_emulator::Effect::CredentialsReset);
    let image = s.card.image();
    assert!(image.pins.is_empty() && image.keys.is_empty() && image.security_environments.is_empty());
    // incrypto34_erase_files: the ATR file and the DIR-ADO file, in the open MF.
    s.table(&[
        ("00A4080C025015", "6A82"),
        ("00E000001D621B8002001E820301FFFF83022F018501018609000000000000000000", "9000"),
        ("00D600001A193BFF1800FF8131FE55006B02090200010101434E531031809F", "9000"),
        ("00E000001F6F1D8302FD01850301FFFF81020064820305FFFF860900FFFFFFFFFFFFFFFF", "9000"),
        ("00E000001F6F1D8302FD01850301FFFF81020064820305FFFF860900FFFFFFFFFFFFFFFF", "6A89"),
        ("00CA018300", "20 9000"),
    ]);
    let image = s.card.image();
    let Some(FileBody::Transparent { data }) = lookup(&image.mf, &[0x3F00, 0x2F01]).map(|n| &n.body) else {
        panic!("no 2F01")
    };
    assert_eq!(data.0.len(), 30);
    assert!(matches!(lookup(&image.mf, &[0x3F00, 0xFD01]).map(|n| &n.body), Some(FileBody::Records { .. })));
    // The card keeps its own ATR whatever the ATR file says.
    assert_eq!(s.card.atr(), firmalab_emulator::profile::incrypto34::ATR);
}

#[test]
fn create_file_takes_both_templates_and_refuses_what_the_chip_lacks() {
    let mut s = Session::new(BLANK);
    s.table(&[
        // A DF with its size in 81 and status bytes in 85 (what pkcs15-init creates 5015 with).
        ("00E000001F6F1D810208008203380000830250158503010800860900FF00000000000000", "9000"),
        ("00A4000C023F00", "9000"),
        ("00A4080002501500", "621282013883025015860900FF00FFFF00FF00FF 9000"),
        // A cyclic EF, no FID, the MF's FID, a tag the card does not know, another template.
        ("00E000000D6F0B810200108201068302AAAA", "6A80"),
        ("00E00000096F0781020010820101", "6A80"),
        ("00E000000D6F0B8102001082010183023F00", "6A80"),
        ("00E00000106F0E81020010820101830210018A0101", "6A80"),
        ("00E000000D630B81020010820101830210 01".replace(' ', "").as_str(), "6A80"),
        ("00E000010D6F0B81020010820101830210 01".replace(' ', "").as_str(), "6A86"),
    ]);
}

/// Every status word the Incrypto34's own commands answer is one of the driver's table
/// (`incrypto34_errors`), so OpenSC reads it as the driver's authors meant.
#[test]
fn the_own_commands_answer_status_words_of_the_driver_s_table() {
    const TABLE: [u16; 36] = [
        0x6581, 0x6FFF, 0x6700, 0x6985, 0x6F81, 0x6F82, 0x6F84, 0x6881, 0x6A86, 0x6D00, 0x6E00, 0x6981, 0x6A80, 0x6A81,
        0x6A85, 0x6986, 0x6A87, 0x6C00, 0x6F83, 0x6987, 0x6F86, 0x6A82, 0x6A83, 0x6A88, 0x6A89, 0x6884, 0x6984, 0x6988,
        0x6283, 0x6983, 0x6300, 0x6982, 0x6A84, 0x6F00, 0x9000, 0x9001,
    ];
    let commands = [
        "00DA016E00",
        "00DA016E0483020010",
        "00DA016D0483020010",
        "00DA016C0483020010",
        "00DA006E0483020010",
        "9024209080FF",
        "9024209000FF",
        "9024239080FF",
        "0046001008201023AA00100020",
        "0046001000",
        "0046011008201023AA00100020",
        "B0FC000003",
        "B0FC000103",
        "B0FC000203",
        "B0FC010003",
        "B0F50000",
        "B0F5000100",
        "0022F301",
        "0022F3FF",
        "002A9E9A0401020304",
        "00E000000100",
        "00E40000024444",
    ];
    for fixture in [ISSUED, BLANK] {
        let mut s = Session::new(fixture);
        for selection in ["00A4000C023F00", "00A4080C025015"] {
            for c in commands {
                s.sendh(selection);
                let r = s.sendh(c);
                let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
                assert!(TABLE.contains(&sw), "{fixture}: {c} answered {sw:04X}\n{}", s.trace.join("\n"));
            }
        }
    }
}

/// A session on the issued card with only `free` bytes of EEPROM left.
fn nearly_full(free: u32) -> Session {
    let mut img = image(ISSUED);
    img.capacity = img.eeprom_used() + free;
    let mut card = firmalab_emulator::Card::new(img, firmalab_emulator::CardRng::insecure_deterministic(7));
    card.power_on();
    Session::with(card)
}

#[test]
fn pin_objects_refuse_bad_templates_name_their_puk_either_way_and_need_room() {
    let mut s = Session::new(ISSUED);
    s.expect("00A4080C025015", "9000");
    let body = |alg: &str, reference: &str| {
        format!("830200{reference}850802038{alg}03FF000004860A00{reference}FFFFFFFFFFFFFFFF8F08{}", pin("1234"))
    };
    let b = body("7", "06");
    assert_eq!(b, oci_pin(0x06, 3, 4, 0xFF, "1234")[10..], "the template is a good one but for its bytes below");
    for (alg, reference) in [("8", "07"), ("7", "00"), ("7", "80")] {
        let b = body(alg, reference);
        s.expect(&format!("00DA016E{:02X}{b}", b.len() / 2), "6A80");
    }
    // An object of neither class (PIN 00, key component 2n).
    s.expect("00DA016E0E83021012850802038703FF000004", "6A80");
    // A PIN naming itself or 00 as its unblocker has none; a PUK created after the PIN that
    // names it becomes a PUK.
    s.expect(&oci_pin(0x07, 3, 4, 0x07, "1234"), "9000");
    s.expect(&oci_pin(0x09, 3, 4, 0x00, "1234"), "9000");
    s.expect(&oci_pin(0x0A, 3, 4, 0x0B, "1234"), "9000");
    s.expect(&oci_pin(0x0B, 10, 4, 0xFF, "99998888"), "9000");
    let pins = &s.card.image().pins;
    let get = |r: u8| pins.iter().find(|p| p.reference.0 == r).unwrap();
    assert_eq!((get(0x07).unblocked_by, get(0x09).unblocked_by), (None, None));
    assert_eq!((get(0x0B).role, get(0x0B).label.as_str()), (PinRole::Puk, "PUK 0B"));
    assert_eq!((get(0x0A).role, get(0x0A).label.as_str()), (PinRole::User, "PIN 0A"));
    // No room: 16 PIN objects at most, and EEPROM.
    let mut r = 0x0C;
    while s.card.image().pins.len() < 16 {
        s.expect(&oci_pin(r, 3, 4, 0xFF, "1234"), "9000");
        r += 1;
    }
    s.expect(&oci_pin(r, 3, 4, 0xFF, "1234"), "6A84");
    let mut s = nearly_full(31);
    s.expect("00A4080C025015", "9000");
    s.expect(&oci_pin(0x05, 3, 4, 0xFF, "1234"), "6A84");
    let mut s = nearly_full(32);
    s.expect("00A4080C025015", "9000");
    s.expect(&oci_pin(0x05, 3, 4, 0xFF, "1234"), "9000");
}

#[test]
fn pins_are_named_80_ref_from_below_or_ref_in_the_current_df() {
    let mut s = Session::new(ISSUED);
    assert_eq!(verify(&mut s, 0x01, "11223344"), [0x90, 0x00]);
    s.expect("00A4000C023F00", "9000");
    s.expect(&oci_pin(0x09, 3, 4, 0xFF, "2222"), "9000");
    s.expect("00A4080C025015", "9000");
    // 89 searches 5015 then the MF; 09 only 5015.
    s.expect(&format!("0020008908{}", pin("2222")), "9000");
    s.expect(&format!("0020000908{}", pin("2222")), "6A88");
    s.table(&[("00200080", "6A86"), ("00200000", "6A86"), (&format!("0020008008{}", pin("2222")), "6A86")]);
}

#[test]
fn key_components_refuse_bad_templates_and_need_room() {
    let mut s = Session::new(ISSUED);
    s.expect("00A4080C025015", "9000");
    // The component's own length byte must agree with its value.
    let bad_len = oci_key(0, 0x12, 0x88, 0x03, 128).replacen("8F828100", "8F828000", 1);
    s.expect(&bad_len, "6A80");
    // The private exponent of a key whose modulus never came; of another size; another usage.
    s.expect(&oci_key(1, 0x12, 0x88, 0x03, 128), "6A88");
    s.expect(&oci_key(0, 0x12, 0x88, 0x03, 128), "9000");
    s.expect(&oci_key(1, 0x12, 0x88, 0x03, 96), "6A80");
    s.expect(&oci_key(1, 0x12, 0x0C, 0x03, 128), "6A80");
    s.expect(&oci_key(1, 0x12, 0x88, 0x03, 128), "9000");
    // A key no PIN of the card guards; an algorithm byte the chip does not have.
    s.expect(&oci_key(0, 0x13, 0x88, 0x07, 128), "6A88");
    s.expect(&oci_key(0, 0x13, 0x99, 0x03, 128), "6A80");
    // The EEPROM a 1024-bit key takes.
    let need = Algorithm::Rsa1024.eeprom_bytes();
    let mut s = nearly_full(need - 1);
    s.expect("00A4080C025015", "9000");
    s.expect(&oci_key(0, 0x12, 0x88, 0x03, 128), "6A84");
    let mut s = nearly_full(need);
    s.expect("00A4080C025015", "9000");
    s.expect(&oci_key(0, 0x12, 0x88, 0x03, 128), "9000");
    // CHANGE KEY DATA with no data.
    s.expect("9024209000", "6700");
}

#[test]
fn security_environments_are_per_df_one_apdu_long_and_need_room() {
    let mut s = Session::new(ISSUED);
    // 5015 has environment 1; the MF may have its own.
    assert_eq!(verify(&mut s, 0x01, "11223344"), [0x90, 0x00]);
    s.expect("00A4000C023F00", "9000");
    s.expect("00DA016D0F830101860200008F06000000000000", "9000");
    assert_eq!(s.card.image().security_environments.len(), 2);
    // 255 bytes is the longest template; a chained 256 is refused.
    let long = |n: usize| format!("8301028F{:02X}{}", n - 5, "00".repeat(n - 5));
    s.expect(&format!("00DA016DFF{}", long(255)), "9000");
    let t = long(256);
    s.expect(&format!("10DA016DFF{}", &t[..510]), "9000");
    s.expect(&format!("00DA016D01{}", &t[510..]), "6700");
    let mut s = nearly_full(8 + 14);
    s.expect("00A4080C025015", "9000");
    s.expect("00DA016D0F830102860200008F06000000000000", "6A84");
    let mut s = nearly_full(8 + 15);
    s.expect("00A4080C025015", "9000");
    s.expect("00DA016D0F830102860200008F06000000000000", "9000");
}

#[test]
fn key_generation_needs_a_record_file_that_holds_the_public_key() {
    let mut s = Session::new(ISSUED);
    s.expect("00A4080C025015", "9000");
    s.expect(&oci_key(0, 0x12, 0x88, 0x03, 128), "9000");
    s.expect(&oci_key(1, 0x12, 0x88, 0x03, 128), "9000");
    // A public-key file needs two records of at least modulus + 4 bytes: 100 bytes make one
    // record of 100, 300 bytes one record of 255 (CREATE FILE makes records of up to 255);
    // both refused. (The record-length limit alone: mutants_kill_profiles.rs, 131 vs 132.)
    for (fid, size) in [("7E01", "0064"), ("7E02", "012C")] {
        s.expect(&format!("00E000001F6F1D8102{size}820305FF008302{fid}85030100008609000000000000000000"), "9000");
        s.expect("00A4080C025015", "9000");
        s.expect(&format!("004600120820{}{}00100020", "12", fid), "6A84");
    }
    // 600 bytes: two records of 255.
    s.expect("00E000001F6F1D81020258820305FF0083027E0385030100008609000000000000000000", "9000");
    s.expect("00A4080C025015", "9000");
    s.expect("004600120820127E0300100020", "9000");
    assert!(s.card.image().keys.iter().any(|k| k.reference.0 == 0x12 && k.material.is_some()));
}

#[test]
fn create_file_maps_access_bytes_and_sizes_records_files() {
    let mut s = Session::new(BLANK);
    s.table(&[
        // READ always, UPDATE and WRITE with PIN 03, ERASE with PIN 05.
        ("00E000001F6F1D810200108203010000830210018503010000860900030300000500000000", "9000"),
        ("00A40000021001", "621680020010820101830210018609000303FFFF05FFFFFF 9000"),
        // A records file of 1000 bytes: 3 records of 255.
        ("00E000001F6F1D810203E8820305FF0083021002850301000086090000000000000000 00".replace(' ', "").as_str(), "9000"),
        ("00A40000021002", "6216800202FD820105830210028609000000FFFF00FFFFFF 9000"),
        // FIDs the card keeps for itself.
        ("00E000000D6F0B810200108201018302FFFF", "6A80"),
        ("00E000000D6F0B8102001082010183023FFF", "6A80"),
    ]);
}

#[test]
fn the_image_knows_the_serial_and_refuses_keys_the_chip_cannot_hold() {
    assert_eq!(image(ISSUED).serial().as_deref(), Some("3410000000000106"));
    assert_eq!(image(BLANK).serial(), None);
    let mut img = image(ISSUED);
    let cns = image("cns-renewable.json");
    img.keys[0].algorithm = Algorithm::Rsa2048;
    img.keys[0].material = cns.keys[0].material.clone();
    let e = img.validate().unwrap_err();
    assert!(e.contains("an incrypto34 holds RSA keys of 512 to 1024 bits"), "{e}");
}
