//! CNS (Incard, OpenSC `itacns`) profile: APDU tables per spec/cards.md §1.2, §3, §7.2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::{Card, CardRng};
use rsa::Pkcs1v15Sign;
use sha2::Sha256;

const PIN: &str = "3132333435363738"; // "12345678"
const PUK: &str = "3837363534333231"; // "87654321"
const WRONG: &str = "3131313131313131";

#[test]
fn every_foreign_probe_of_opensc_is_rejected_as_spec_1_2_requires() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("00A4040007627601FF000000", "6A82"),                 // coolkey
        ("00A4040006A00000000101", "6A82"),                   // muscle
        ("00A404000BE82B0601040181C31F0201", "6A82"),         // sc-hsm
        ("00A4040C0FD23300000045737445494420763335", "6A82"), // mcrd
        ("00CADF3005", "6A88"),                               // setcos GET DATA
        ("00CB3FFF035C017E08", "6D00"),                       // PIV discovery
        ("00A4040009A00000030800001000", "6A82"),             // PIV
        ("00A4040C07A000000116DB00", "6A82"),                 // CAC (CCC)
        ("00A4040C07A000000079100000", "6A82"),
    ]);
    // cac: A0 00 00 00 79 01 xx for xx = 00..0F, each sent (7 data bytes, no Le).
    for xx in 0..16u8 {
        let probe = format!("00A4040C07A00000007901{xx:02X}");
        assert_eq!(probe.len(), 24, "{probe}");
        s.expect(&probe, "6A82");
    }
    assert_eq!(s.trace.iter().filter(|l| l.starts_with(">> 00A4040C07A00000007901")).count(), 16);
    let sent: std::collections::BTreeSet<&str> =
        s.trace.iter().filter_map(|l| l.strip_prefix(">> 00A4040C07A00000007901")).collect();
    assert_eq!(sent.len(), 16, "sixteen different probes: {sent:?}");
}

#[test]
fn opensc_bind_sequence_of_spec_7_2_reads_serial_personal_data_and_certificates() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("00A40800022F0000", "6A82"),
        ("00A4080C025015", "6A82"),
        ("00A4080002503100", "6A82"),
        ("00A4080C0410001003", "9000"),
    ]);
    let serial = s.expect("00B0000010", "#16 9000");
    assert_eq!(serial, b"6010000000000101");
    let fcp = s.expect("00A40800041100110200", "62.. 9000");
    assert_eq!(&fcp[..6], &h("621680020053")[..]);
    s.expect("00B0000053", "#83 9000");
    s.expect("00A4080C0411001101", "9000");
    let fcp = s.expect("00A40800041100110100", "62.. 9000");
    // FCP: tag 80 with the certificate's size (read below), EF transparent, FID 1101, ACs.
    assert_eq!(&fcp[..4], &h("62168002")[..]);
    assert_eq!(&fcp[6..15], &h("820101830211018609")[..]);
    let size = usize::from(u16::from_be_bytes([fcp[4], fcp[5]]));
    // OpenSC's 255 + 1 chunking.
    let mut cert = Vec::new();
    let mut off = 0;
    while off < size {
        let n = (size - off).min(255);
        let r = s.expect(&format!("00B0{off:04X}{n:02X}"), "* 9000");
        cert.extend(r);
        off += n;
    }
    let img = image("cns-renewable.json");
    let on_card = firmalab_emulator::fs::lookup(&img.mf, &[0x3F00, 0x1100, 0x1101]).unwrap();
    let firmalab_emulator::fs::FileBody::Transparent { data } = &on_card.body else { panic!() };
    assert_eq!(cert, data.0);
    s.table(&[
        ("00A4080C042FFF8228", "6A82"),
        ("00A4080C0414009010", "9000"),
        ("00A40800041400901000", "62.. 9000"),
        ("00A4000C023F00", "9000"),
        ("00A40800023F0100", "6A82"), // CNS0 public key: absent, as observed
        ("00A408000614008110801000", "6A82"),
    ]);
}

#[test]
fn verify_cns0_pin_counts_down_blocks_and_reports_status_queries() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("00200090", "63C3"), // status query (case 1)
        (&format!("0020009008{WRONG}"), "63C2"),
        ("0020009000", "63C2"), // T=0-style case 1 with P3 = 00
        (&format!("0020009008{PIN}"), "9000"),
        ("00200090", "9000"),
        (&format!("0020009008{WRONG}"), "63C2"),
        ("00200090", "63C2"), // a failed attempt drops the verified state
        (&format!("0020009008{WRONG}"), "63C1"),
        (&format!("0020009008{WRONG}"), "63C0"),
        (&format!("0020009008{PIN}"), "6983"),
        ("00200090", "6983"),
        ("002000900731323334353637", "6983"),
    ]);
    assert!(s.card.take_changed(), "counter changes are persistent");
    assert_eq!(s.card.image().pins[0].tries_left, 0);
}

#[test]
fn a_right_pin_resets_the_counter_and_wrong_lengths_answer_6700() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        (&format!("0020009008{WRONG}"), "63C2"),
        (&format!("0020009008{PIN}"), "9000"),
        ("00200090", "9000"),
        ("002000900731323334353637", "6700"),
        ("00200010", "9000"), // without bit 7: global search, the MF's PIN 10
        ("0020008000", "6A86"),
        ("0021009000", "6D00"),
    ]);
    assert_eq!(s.card.image().pins[0].tries_left, 3);
}

#[test]
fn cns1_pin_is_found_from_its_key_container_df_only() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        (&format!("0020009A08{PIN}"), "6A88"), // current DF = MF: no PIN 1A up from here
        ("00A4080C0414008110", "9000"),
        (&format!("0020009A08{PIN}"), "9000"),
        (&format!("0020001A08{PIN}"), "6A88"), // without bit 7: MF only
    ]);
}

#[test]
fn change_pin_then_verify_with_the_new_one_and_reject_bad_new_pins() {
    let mut s = Session::new("cns-renewable.json");
    let new = padded("24680", 8, 0xFF);
    s.table(&[
        ("00A4080C0414008110", "9000"),
        (&format!("0024009A10{PIN}{}", padded("1234", 8, 0xFF)), "6A80"), // 4 digits: too short
        (&format!("0024009A10{PIN}{}", padded("12a45", 8, 0xFF)), "6A80"), // not digits
        (&format!("0024009A10{WRONG}{new}"), "63C2"),
        (&format!("0024009A10{PIN}{new}"), "9000"),
        ("0020009A", "9000"),
        (&format!("0020009A08{PIN}"), "63C2"),
        (&format!("0020009A08{new}"), "9000"),
        ("0024009A0F3132333435363738313233343536FF", "6700"),
    ]);
}

#[test]
fn unblock_with_puk_restores_a_blocked_pin_and_wrong_puks_count_down() {
    let mut s = Session::new("cns-pin-blocked.json");
    let new = padded("13579", 8, 0xFF);
    s.table(&[
        (&format!("0020009008{PIN}"), "6983"),
        (&format!("002C009010{WRONG}{new}"), "63C9"),
        (&format!("002C009010{PUK}{}", padded("1", 8, 0xFF)), "6A80"),
        (&format!("002C009010{PUK}{new}"), "9000"),
        ("00200090", "63C3"),
        (&format!("0020009008{new}"), "9000"),
        ("00A4080C0414008110", "9000"),
        (&format!("002C019A08{PUK}"), "9000"), // P1 = 01: PUK only, PIN kept
        (&format!("0020009A08{PIN}"), "9000"),
    ]);
    let puk = s.card.image().pins.iter().find(|p| p.reference.0 == 0x11).unwrap();
    assert_eq!(puk.tries_left, 10, "a right PUK restores its own counter too");
}

#[test]
fn a_blocked_puk_is_final() {
    let mut s = Session::new("cns-puk-blocked.json");
    s.table(&[
        (&format!("002C009010{PUK}{PIN}"), "6983"),
        (&format!("0020009108{PUK}"), "6983"),
        (&format!("0020009008{PIN}"), "6983"),
    ]);
    assert!(!s.card.take_changed());
}

fn verify_signature(card: &Card, key: u8, msg: &[u8], sig: &[u8]) {
    let (digest, _) = sha256_digest_info(msg);
    public_key(card.image(), key).verify(Pkcs1v15Sign::new::<Sha256>(), &digest, sig).expect("signature verifies");
}

#[test]
fn opensc_2048_bit_signature_with_chained_pso_cds_verifies_and_needs_the_pin_again() {
    let mut s = Session::new("cns-renewable.json");
    let (digest, _) = sha256_digest_info(b"modulo di rinnovo");
    let block = pkcs1_block(&digest, 256);
    s.table(&[
        ("00A4080C0414008110", "9000"),
        (&format!("0020009A08{PIN}"), "9000"),
        ("00A4080C0414008110", "9000"),
        ("0022F30300", "9000"),
        ("0022F1B603830110", "9000"),
        (&format!("102A9E9AFF{}", hex(&block[..255])), "9000"),
    ]);
    let sig = s.expect(&format!("002A9E9A01{}00", hex(&block[255..])), "#256 9000");
    verify_signature(&s.card, 0x10, b"modulo di rinnovo", &sig);
    // Always-authenticate: the second signature needs a new VERIFY.
    s.expect(&format!("102A9E9AFF{}", hex(&block[..255])), "9000");
    s.expect(&format!("002A9E9A01{}00", hex(&block[255..])), "6982");
    s.expect("0020009A", "63C3");
}

#[test]
fn opensc_signature_through_pso_decipher_on_the_signature_key_is_raw_rsa() {
    let mut s = Session::new("cns-renewable.json");
    let (digest, _) = sha256_digest_info(b"hello");
    let block = pkcs1_block(&digest, 256);
    s.table(&[
        ("00A4080C0414008110", "9000"),
        (&format!("0020009A08{PIN}"), "9000"),
        ("0022F30300", "9000"),
        ("0022F1B803830110", "9000"),
        (&format!("102A8086FF00{}", hex(&block[..254])), "9000"),
    ]);
    let sig = s.expect(&format!("002A808602{}00", hex(&block[254..])), "#256 9000");
    verify_signature(&s.card, 0x10, b"hello", &sig);
}

#[test]
fn extended_length_pso_gives_the_same_signature_as_chaining() {
    let (digest, _) = sha256_digest_info(b"x");
    let block = pkcs1_block(&digest, 256);
    let mut sigs = Vec::new();
    for chained in [false, true] {
        let mut s = Session::new("cns-renewable.json");
        s.table(&[("00200090", "63C3"), (&format!("0020009008{PIN}"), "9000"), ("0022F1B603830101", "9000")]);
        let sig = if chained {
            s.expect(&format!("102A9E9AFF{}", hex(&block[..255])), "9000");
            s.expect(&format!("002A9E9A01{}00", hex(&block[255..])), "#256 9000")
        } else {
            s.expect(&format!("002A9E9A000100{}0000", hex(&block)), "#256 9000")
        };
        verify_signature(&s.card, 0x01, b"x", &sig);
        sigs.push(sig);
    }
    assert_eq!(sigs[0], sigs[1]);
}

#[test]
fn crypto_refusals_name_the_missing_condition() {
    let mut s = Session::new("cns-renewable.json");
    let block = hex(&pkcs1_block(&[0u8; 32], 256));
    s.table(&[
        (&format!("002A9E9A000100{block}0000"), "6985"), // no MSE
        ("0022F1B603830105", "6A88"),                    // no key 05
        ("0022F1B603830101", "9000"),
        (&format!("002A9E9A000100{block}0000"), "6982"), // PIN not verified
        (&format!("0020009008{PIN}"), "9000"),
        ("002A9E9A0401020304", "6700"),                    // not a modulus-size block
        (&format!("002A808600010100{block}0000"), "6985"), // SE is for signing
        ("0022F3FF00", "6A88"),
        ("0022F1B603820101", "6A80"),
        ("0022F1B6038201", "6700"),
        ("0022F1B703830101", "6A86"),
    ]);
}

#[test]
fn get_data_life_cycle_and_get_challenge() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("00CA018300", "10 9000"),
        ("00CA018400", "6A88"),
        ("0084000008", "#8 9000"),
        ("0084000000", "#256 9000"),
    ]);
    let mut f = Session::new("cns-failed-issuance.json");
    f.expect("00CA018300", "20 9000");
}

#[test]
fn deterministic_mode_replays_challenges_byte_for_byte() {
    let run = || {
        let mut s = Session::new("cns-renewable.json");
        s.expect("0084000020", "#32 9000")
    };
    assert_eq!(run(), run());
    let mut other = Session::with(Card::new(image("cns-renewable.json"), CardRng::insecure_deterministic(8)));
    assert_ne!(other.expect("0084000020", "#32 9000"), run());
}

#[test]
fn read_binary_edges_and_file_errors() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("00A4080C0410001003", "9000"),
        ("00B0000020", "#16 6282"), // fewer bytes than Le: what exists + 6282
        ("00B0000808", "3030303030313031 9000"),
        ("00B0001000", "6B00"),   // offset at the end
        ("00B0800000", "6A86"),   // short EF identifiers unsupported
        ("00D600000131", "6982"), // EF_IDCarta is never writable
        ("00A4080C021000", "9000"),
        ("00B0000010", "6986"), // a DF is selected: no current EF
        ("00A4080C04100010FF", "6A82"),
        ("00A4080C03100010", "6700"),
        ("00A40A0C021000", "6A86"),
        ("00A4080102100010", "6A86"),
        ("00A4030C", "9000"), // parent of DF 1000: the MF
        ("00A4030C", "6A82"), // the MF has no parent
        ("00A4080C0410001002", "9000"),
        ("00A4000C021003", "9000"), // sibling of the current EF, by FID
        ("00B0000010", "36303130303030303030303030313031 9000"),
    ]);
}

#[test]
fn le_too_short_answers_6cxx_and_long_answers_use_get_response() {
    let mut s = Session::new("cns-renewable.json");
    s.expect("00A408000410001003", "62.. 9000"); // T=0 style: no Le, FCP anyway
    s.expect("00A40800041000100305", "6C18");
    s.expect("00A40800041000100318", "62.. 9000");
    s.expect("00C0000010", "6985"); // nothing pending
    s.expect(&format!("0020009008{PIN}"), "9000");
    // A 2048-bit public key template is longer than 256 bytes.
    // 7F49 82 0109 { 81 82 0100 <256> 82 03 010001 }: 270 bytes, 256 now and 14 pending.
    let first = s.expect("0046800102080000", "#256 610E");
    assert_eq!(&first[..5], &h("7F49820109")[..]);
    s.expect("00C0000004", "#4 610A");
    let rest = s.expect("00C0000000", "#10 9000");
    assert_eq!(&rest[rest.len() - 5..], &h("8203010001")[..]);
}

#[test]
fn chaining_rules_are_enforced() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("102A9E9A02AABB", "9000"),
        ("00A4000C023F00", "6883"), // a different command ends the chain
        ("102A9E9A02AABB", "9000"),
        ("102A9E9A02AABB00", "6700"), // a non-final block carries no Le
        ("002A9E9A02AABB00", "6985"), // chain discarded: plain command, no SE
    ]);
}

#[test]
fn class_and_instruction_errors() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("80CA9F7F2D", "6E00"),
        ("0CA4000C023F00", "6882"),
        ("01A4000C023F00", "6881"),
        ("FFA40000", "6E00"),
        ("00A400", "6700"),
        ("00A4000C033F00", "6700"),
        ("00FF0000", "6D00"),
        ("B0FC000003", "6D00"),
    ]);
}

#[test]
fn power_events_clear_pins_current_df_and_security_environment() {
    for event in [Card::power_off, Card::power_on, Card::reset] {
        let mut s = Session::new("cns-renewable.json");
        s.table(&[
            ("00A4080C0414008110", "9000"),
            (&format!("0020009A08{PIN}"), "9000"),
            ("0022F1B603830110", "9000"),
            ("102A9E9A02AABB", "9000"),
        ]);
        event(&mut s.card);
        s.card.power_on();
        s.table(&[
            ("002A9E9A02AABB00", "6985"), // SE and chain gone
            ("0020009A", "6A88"),         // current DF back to the MF
            ("00A4080C0414008110", "9000"),
            ("0020009A", "63C3"), // PIN no longer verified
        ]);
        assert_eq!(s.card.image().pins[2].tries_left, 3, "persistent state survives");
    }
}

#[test]
fn create_update_delete_file_under_acl_and_capacity() {
    let mut s = Session::new("cns-renewable.json");
    let fcp = |fid: &str, size: &str| format!("00E000001862168002{size}8201018302{fid}8609000000000000000000");
    s.table(&[
        ("00A4080C021400", "9000"),
        (&fcp("9011", "0005"), "6982"),
        ("00A4080C0414008110", "9000"),
        (&format!("0020009A08{PIN}"), "9000"),
        ("00A4080C021400", "9000"),
        (&fcp("9010", "0005"), "6A89"),
        (&fcp("9011", "FFFF"), "6A84"), // more than the EEPROM has
        (&fcp("9011", "0005"), "9000"), // created and selected
        ("00D60000060102030405FF", "6700"),
        ("00D60000050102030405", "9000"),
        ("00B0000005", "0102030405 9000"),
        ("00A4080C0414009011", "9000"),
        ("00E40000029011", "9000"),
        ("00A4080C0414009011", "6A82"),
        ("00E40000029011", "6A82"),
        ("00E0000005620380020001", "6A80"),
    ]);
    assert!(s.card.take_changed());
}

#[test]
fn the_card_reports_what_each_command_did_for_latency_models_and_invariants() {
    use firmalab_emulator::Effect;
    let mut s = Session::new("cns-renewable.json");
    let block = hex(&pkcs1_block(&[0u8; 32], 256));
    let effect = |s: &mut Session, cmd: &str, want: &str| {
        s.expect(cmd, want);
        s.card.last_effect()
    };
    assert_eq!(effect(&mut s, &format!("0020009008{PIN}"), "9000"), Effect::None);
    assert_eq!(effect(&mut s, "0022F1B603830101", "9000"), Effect::None);
    assert_eq!(effect(&mut s, &format!("102A9E9AFF{}", &block[..510]), "9000"), Effect::None); // a block
    assert_eq!(effect(&mut s, &format!("002A9E9A01{}00", &block[510..]), "#256 9000"), Effect::PrivateKeyOperation);
    assert_eq!(effect(&mut s, "0022F1B603830110", "9000"), Effect::None);
    assert_eq!(effect(&mut s, &format!("002A9E9A000100{block}0000"), "6982"), Effect::None); // refused
    assert_eq!(effect(&mut s, &format!("0020009008{PIN}"), "9000"), Effect::None);
    assert_eq!(effect(&mut s, "0046800102080000", "#256 610E"), Effect::KeyGeneration);
    assert_eq!(effect(&mut s, "00C0000000", "#14 9000"), Effect::None);
    assert_eq!(effect(&mut s, "B0F50000", "9000"), Effect::CredentialsReset);
    assert_eq!(effect(&mut s, "B0F50000", "6982"), Effect::None);
}

#[test]
fn eeprom_free_memory_file_tracks_usage() {
    let mut s = Session::new("cns-renewable.json");
    s.expect("00A4080C0412001202", "9000");
    let free = s.expect("00B0000004", "#4 9000");
    let free = u32::from_be_bytes(free.try_into().unwrap());
    assert_eq!(free, s.card.image().capacity - s.card.image().eeprom_used());
    assert!(free > 50_000 && free < 65_536);
}

#[test]
fn erase_needs_the_pin_and_leaves_a_blank_card_with_default_pin_12345() {
    let mut s = Session::new("cns-renewable.json");
    s.table(&[
        ("B0F50000", "6982"),
        (&format!("0020009008{PIN}"), "9000"),
        ("B0F50000", "9000"),
        ("00A4080C0411001101", "6A82"),
        ("00A4080C0414009010", "6A82"),
        ("00A4080C0411001102", "6A82"),
        ("00A4080C0410001003", "9000"), // the serial stays
        ("00CA018300", "20 9000"),
        (&format!("0020009008{PIN}"), "63C2"),
        (&format!("0020009008{}", padded("12345", 8, 0xFF)), "9000"),
        ("0022F1B603830101", "9000"),
        (&format!("002A9E9A000100{}0000", hex(&pkcs1_block(&[0; 32], 256))), "6A88"), // empty slot
    ]);
    assert!(s.card.image().keys.iter().all(|k| k.material.is_none()));
}

#[test]
fn generate_key_pair_replaces_an_uncertified_slot_and_signs_with_the_new_key() {
    let mut s =
        Session::with(Card::new(without_certificates(image("cns-renewable.json")), CardRng::insecure_deterministic(7)));
    let old = public_key(s.card.image(), 0x10);
    s.expect("0046001002080000", "6982");
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("00460010020800", "#256 610E");
    s.expect("00C0000000", "#14 9000");
    assert_ne!(public_key(s.card.image(), 0x10), old);
    s.expect("0046001002FFFF00", "6A80");
    s.expect("0046001002080000", "#256 610E");
    s.expect("0046001102080000", "6A88");
    // The new key signs, and its public key is what GENERATE answered.
    let new = public_key(s.card.image(), 0x10);
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("0022F1B603830110", "9000");
    let (digest, _) = sha256_digest_info(b"chiave nuova");
    let block = hex(&pkcs1_block(&digest, 256));
    s.expect(&format!("102A9E9AFF{}", &block[..510]), "9000");
    let sig = s.expect(&format!("002A9E9A01{}00", &block[510..]), "#256 9000");
    new.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).expect("the new key signs");
}

#[test]
fn generate_key_pair_never_replaces_a_key_whose_certificate_is_installed() {
    let mut s = Session::new("cns-renewable.json");
    let (old_sign, old_auth) = (public_key(s.card.image(), 0x10), public_key(s.card.image(), 0x01));
    s.expect("00A4080C0414008110", "9000");
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect(&format!("0020009008{PIN}"), "9000");
    // In place: refused while 1400/9010 and 1100/1101 hold the certificates (6985), for RSA
    // and for a P-256 key alike, and nothing changes.
    s.expect("0046001002080000", "6985");
    s.expect("0046000102080000", "6985");
    s.expect("0046000102040000", "6985");
    assert_eq!(public_key(s.card.image(), 0x10), old_sign);
    assert_eq!(public_key(s.card.image(), 0x01), old_auth);
    assert!(s.card.image().keys.iter().all(|k| k.pending.is_none()));
    // The renewal form is allowed: a pending key next to the certified one.
    s.expect("0046801002080000", "#256 610E");
    s.expect("00C0000000", "#14 9000");
    assert_eq!(public_key(s.card.image(), 0x10), old_sign);
    // After the reset (ERASE) no certificate is left: the slots may be generated again.
    s.expect("B0F50000", "9000");
    s.expect(&format!("0020009008{}", padded("12345", 8, 0xFF)), "9000");
    s.expect("0046000102080000", "#256 610E");
}

#[test]
fn p256_is_a_capability_an_image_enables() {
    let oid = "06082A8648CE3D030107";
    let uncertified = without_certificates(image("cns-renewable.json"));
    let mut s = Session::with(Card::new(uncertified, CardRng::insecure_deterministic(1)));
    s.expect(&format!("0020009008{PIN}"), "9000");
    s.expect(&format!("004600010A{oid}00"), "6A80");

    let mut img = without_certificates(image("cns-renewable.json"));
    img.capabilities.p256 = true;
    let mut s = Session::with(Card::new(img, CardRng::insecure_deterministic(1)));
    s.expect(&format!("0020009008{PIN}"), "9000");
    let tpl = s.expect(&format!("004600010A{oid}00"), "7F49438641.. 9000");
    let point = &tpl[5..];
    s.expect("0022F1B603830101", "9000");
    let hash = [0x11u8; 32];
    let sig = s.expect(&format!("002A9E9A20{}00", hex(&hash)), "#64 9000");
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
    vk.verify_prehash(&hash, &sig).expect("ECDSA verifies");
}

fn hex(b: &[u8]) -> String {
    firmalab_emulator::hex::encode(b)
}

#[test]
fn atrs_are_recognised_as_opensc_would() {
    use firmalab_emulator::ProfileKind;
    use firmalab_emulator::profile::{cns, oberthur, recognise};
    let r = recognise(&cns::ATR_CNS_1_1);
    assert_eq!(r.profile, Some(ProfileKind::Cns));
    assert!(r.label.contains("CNS 1.1") && r.label.contains("STIncard"), "{}", r.label);
    assert!(recognise(&cns::ATR_CNS_1_0).label.contains("RSA-1024 only"));
    // The second real Aruba ATR (pcsc-tools list) and the IDEMIA 2021 one.
    assert_eq!(
        recognise(&h("3BFF960000 8131FE55006B02090403010101434E53103180EB".replace(' ', "").as_str())).profile,
        Some(ProfileKind::Cns)
    );
    assert_eq!(recognise(&h("3BFF1800008131FE45006B05052000012101434E5310318079")).profile, Some(ProfileKind::Cns));
    assert_eq!(recognise(&oberthur::ATR).profile, Some(ProfileKind::Oberthur));
    // The Incrypto34 "DSD" ATR has the CNS shape but not "CNS": its own profile claims it.
    assert_eq!(
        recognise(&h("3BFF1800FF8131FE55006B02090200010101445344103180 92".replace(' ', "").as_str())).profile,
        Some(ProfileKind::Incrypto34)
    );
    assert_eq!(recognise(&h("3B8A80017670696363 2D746F79210A".replace(' ', "").as_str())).profile, None);
}

#[test]
fn renewal_pending_key_coexists_with_the_old_one_and_commit_swaps_key_and_certificate_together() {
    let mut s = Session::new("cns-renewable.json");
    let old = public_key(s.card.image(), 0x10);
    let (digest, _) = sha256_digest_info(b"csr");
    let block = hex(&pkcs1_block(&digest, 256));
    s.table(&[
        ("00A4080C0414008110", "9000"),
        ("0022F1B603840110", "6A88"), // nothing pending yet
        (&format!("0020009A08{PIN}"), "9000"),
        ("00468210020800", "6A86"),
    ]);
    s.expect("00468010020800", "#256 610E");
    s.expect("00C000000E", "#14 9000");
    let pending = {
        let k = s.card.image().keys.iter().find(|k| k.reference.0 == 0x10).unwrap();
        match k.pending.as_ref().unwrap().load().unwrap() {
            firmalab_emulator::keys::LoadedKey::Rsa(k) => k.to_public_key(),
            _ => unreachable!(),
        }
    };
    assert_eq!(public_key(s.card.image(), 0x10), old, "the active key is untouched");
    // The pending key signs (the PKCS#10 of the renewal) ...
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("0022F1B603840110", "9000");
    let sig = s.expect(&format!("002A9E9A000100{block}0000"), "#256 9000");
    pending.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).expect("signed by the pending key");
    // ... and the old key still signs (the authorisation).
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("0022F1B603830110", "9000");
    let sig = s.expect(&format!("002A9E9A000100{block}0000"), "#256 9000");
    old.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).expect("signed by the old key");
    // Commit with the new certificate, chained.
    let cert: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
    s.expect(&format!("00468110FF{}", hex(&cert[..255])), "6982"); // PIN consumed by the last signature
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect(&format!("10468110FF{}", hex(&cert[..255])), "9000");
    s.expect(&format!("10468110FF{}", hex(&cert[255..510])), "9000");
    s.expect(&format!("004681105A{}", hex(&cert[510..])), "9000");
    assert_eq!(public_key(s.card.image(), 0x10), pending);
    assert!(s.card.image().keys.iter().all(|k| k.pending.is_none()));
    s.expect("00A4080C0414009010", "9000");
    let mut back = s.expect("00B00000FF", "#255 9000");
    back.extend(s.expect("00B000FFFF", "#255 9000"));
    back.extend(s.expect("00B001FE00", "#90 6282"));
    assert_eq!(back, cert);
    s.expect(&format!("0020009A08{PIN}"), "9000");
    s.expect("004681100130", "6985"); // nothing pending any more
}
