//! Strict real-card twins (card image `extensions` empty, `tries_query_counts`): what a
//! genuine mask lacks is refused as the real card refuses it, while firmalab's convenience
//! cards (every fixture of schema version 2 and before) keep their commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::image::Extension;
use firmalab_emulator::invariants::{Checked, Op};

const VERIFY_CNS1: &str = "0020009A08 3132333435363738";

#[test]
fn twin_genuine_cns_refuses_the_pending_key_commands_6a86_and_mse_tag_84_6a80() {
    let mut s = Session::new("twin-cns-incard-1.0.json");
    s.expect("00A4080C0414008110", "9000");
    s.expect(VERIFY_CNS1, "9000");
    // GENERATE P1 = 80 (pending key) and 81 (commit): wrong P1/P2 on a genuine mask.
    s.expect("0046809A020800", "6A86");
    s.expect("004680100208 00", "6A86");
    s.expect("0046811003 308201", "6A86");
    s.expect("0022F1B603840110", "6A80");
    // The capability probe is unknown to it, like any data object a card does not have.
    s.expect("00CA018800", "6A88");
    // Its own commands work: MSE with the key reference, GET DATA life-cycle.
    s.expect("0022F1B603830110", "9000");
    s.expect("00CA018300", "10 9000");
    assert!(s.card.image().keys.iter().all(|k| k.pending.is_none()), "nothing generated");
}

#[test]
fn convenience_cns_keeps_the_pending_key_and_answers_the_probe() {
    let mut s = Session::new("cns-renewable.json");
    s.expect("00CA018800", "464C41420107 9000");
    s.expect("00A4080C0414008110", "9000");
    s.expect(VERIFY_CNS1, "9000");
    // MSE tag 84 is understood: no pending key yet is referenced data not found.
    s.expect("0022F1B603840110", "6A88");
    s.expect("0046801002 0800 00", "7F49.. 610E");
    assert!(s.card.image().keys.iter().any(|k| k.pending.is_some()));
    s.expect("0022F1B603840110", "9000");
    let bits = s.card.image().extensions.iter().fold(0, |b, e| b | e.bit());
    assert_eq!(bits, 0x07);
}

#[test]
fn twin_oberthur_t0_only_refuses_extended_length_apdus_6700() {
    // SELECT MF with extended length fields (Lc 0002, Le 0000).
    let extended = "00A40000 000002 3F00 0000";
    let mut twin = Session::new("twin-oberthur.json");
    twin.expect(extended, "6700");
    twin.expect("00A40000023F00", "62.. 9000");
    let mut convenience = Session::new("oberthur-renewable.json");
    convenience.expect(extended, "62.. 9000");
    // The same image with the extension removed behaves as the twin.
    let mut image = image("oberthur-renewable.json");
    image.extensions.retain(|e| *e != Extension::ExtendedLengthOnT0);
    let mut c = firmalab_emulator::Card::new(image, firmalab_emulator::CardRng::insecure_deterministic(1));
    c.power_on();
    assert_eq!(c.transmit_vec(&h(extended)), h("6700"));
    // A T=1 card (the genuine CNS twin) takes extended APDUs: OpenSC sends them to CNS 1.1.
    let mut cns = Session::new("twin-cns-incard-1.0.json");
    cns.expect("00A40000 000002 3F00 0000", "62.. 9000");
}

#[test]
fn twin_idemia_tries_query_costs_a_try_and_the_convenience_card_query_is_free() {
    let mut s = Session::new("twin-cns-idemia-2021.json");
    let tries = |s: &Session| s.card.image().pins.iter().find(|p| p.reference.0 == 0x10).unwrap().tries_left;
    assert_eq!(tries(&s), 3);
    s.expect("0020001000", "63C2");
    assert_eq!(tries(&s), 2, "the query was counted as a failed VERIFY");
    assert!(s.card.take_changed(), "the counter was written");
    // Even right after a successful VERIFY: the query compares an empty PIN.
    s.expect("0020001008 3132333435363738", "9000");
    assert_eq!(tries(&s), 3);
    s.expect("0020001000", "63C2");
    s.expect("0020001000", "63C1");
    s.expect("0020001000", "63C0");
    s.expect("0020001000", "6983");
    assert_eq!(tries(&s), 0, "three queries blocked the PIN");
    // The PUK unblocks it as on any CNS.
    s.expect("002C001010 3837363534333231 3131313131FFFFFF", "9000");
    assert_eq!(tries(&s), 3);

    let mut free = Session::new("cns-renewable.json");
    free.expect("0020009000", "63C3");
    free.expect("0020009000", "63C3");
    assert!(!free.card.take_changed());
}

#[test]
fn twin_idemia_layout_one_pin_10_guards_both_keys_and_the_signature_certificate_is_in_9001_2002() {
    let mut s = Session::new("twin-cns-idemia-2021.json");
    s.expect("00A4080C06140090012002", "9000");
    s.expect("00A4080C0414009010", "6A82");
    s.expect("00A4080C0414009002", "9000");
    s.expect("0020001008 3132333435363738", "9000");
    s.expect("0022F30300", "9000");
    s.expect("0022F1B603830102", "9000");
    let (d, di) = sha256_digest_info(b"twin");
    let block = pkcs1_block(&d, 256);
    let mut first = h("102A9E9AFF");
    first.extend_from_slice(&block[..255]);
    assert_eq!(s.send(&first), h("9000"));
    let mut last = h("002A9E9A01");
    last.push(block[255]);
    last.push(0x00);
    let r = s.send(&last);
    assert_eq!(r.len(), 258, "{}", firmalab_emulator::hex::encode(&r));
    let key = public_key(s.card.image(), 0x02);
    key.verify(rsa::Pkcs1v15Sign::new_unprefixed(), &di, &r[..256]).unwrap();
    // No CNS1 PIN 1A on this mask.
    s.expect("0020009A08 3132333435363738", "6A88");
}

#[test]
fn twins_keep_every_invariant_under_their_own_refusals() {
    for (name, ops) in [
        ("twin-cns-idemia-2021.json", vec!["0020001000", "0020001000", "0020001008 3132333435363738", "00CA018800"]),
        ("twin-cns-incard-1.0.json", vec!["0020009A08 3132333435363738", "0046809A020800", "0022F1B603840110"]),
        ("twin-oberthur.json", vec!["00A40000 000002 3F00 0000", "0020008100"]),
    ] {
        let ops: Vec<Op> = ops.into_iter().map(|o| Op::Apdu(h(o))).collect();
        Checked::new(image(name), 1).run(&ops).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn an_atr_offers_t0_only_when_no_td_byte_names_another_protocol() {
    use firmalab_emulator::image::offers_only_t0;
    // Oberthur AuthentIC: no TD1 at all.
    assert!(offers_only_t0(&h("3B7D180000003180718E6477E30200829000")));
    // TD1 = 80 (T=0, TD2 follows), TD2 = 01 (T=1): both protocols.
    assert!(!offers_only_t0(&h("3B808001 01")));
    // TD1 = 80 (T=0) and nothing after: T=0 only.
    assert!(offers_only_t0(&h("3B8080")));
    // The CNS ATRs (TD1 = 81) and the ID-One Cosmo (TD1 = 81) are T=1.
    assert!(!offers_only_t0(&h("3BFF1800FF8131FE55006B02091303010101434E531031808D")));
    assert!(!offers_only_t0(&h("3BFB1100008131FE45003 1C06477E91000009000 6A".replace(' ', "").as_str())));
    // TA1 TB1 TC1 skipped before TD1 (T0 = F0): TD1 = 01 is T=1.
    assert!(!offers_only_t0(&h("3BF0 11 00 00 01")));
    assert!(offers_only_t0(&h("3BF0 11 00 00 00")));
}
