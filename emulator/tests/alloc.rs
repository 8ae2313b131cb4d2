//! The non-crypto APDU path allocates nothing: SELECT, READ BINARY, READ RECORD, VERIFY (with
//! and without data), GET DATA, GET CHALLENGE, MSE, LOGOUT, errors, chaining, GET RESPONSE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

fn assert_no_alloc(name: &str, apdus: &[&str]) {
    let mut card = card(name);
    let cmds: Vec<Vec<u8>> = apdus.iter().map(|a| h(a)).collect();
    // Warm-up: the first run may populate nothing, but keep the measurement honest.
    for c in &cmds {
        card.transmit(c);
    }
    card.power_on();
    let mut sws = Vec::with_capacity(cmds.len());
    let info = allocation_counter::measure(|| {
        for c in &cmds {
            let r = card.transmit(c);
            sws.push([r[r.len() - 2], r[r.len() - 1]]);
        }
    });
    assert_eq!(info.count_total, 0, "{name}: {} allocations on the non-crypto path", info.count_total);
    assert!(sws.contains(&[0x90, 0x00]), "the sequence did real work");
}

#[test]
fn cns_non_crypto_apdus_allocate_nothing() {
    assert_no_alloc(
        "cns-renewable.json",
        &[
            "00A4040007627601FF000000",
            "00CADF3005",
            "00CB3FFF035C017E08",
            "00A40800022F0000",
            "00A4080C0410001003",
            "00B0000010",
            "00A40800041100110100",
            "00B00000FF",
            "00B000FF01",
            "00A4000C023F00",
            "0020009008FFFFFFFFFFFFFFFF",
            "00200090",
            "00200090083132333435363738",
            "00A4080C0414008110",
            "0020009A083132333435363738",
            "0022F30300",
            "0022F1B603830110",
            "00CA018300",
            "0084000020",
            "102A9E9A02AABB",
            "00A4000C023F00",
            "00A408000410001003",
            "00A40800041000100305",
            "00FF0000",
            "80CA9F7F2D",
        ],
    );
}

#[test]
fn oberthur_connect_and_bind_allocate_nothing() {
    assert_no_alloc(
        "oberthur-renewable.json",
        &[
            "00A4040C07A0000000030000",
            "80CA9F7F2D",
            "00A4040C10A000000077010303000000F100000002",
            "00A40000023F00",
            "00A40000022F00",
            "00A40000025011",
            "0020000400",
            "0020008100",
            "00A40000021000",
            "00B0000024",
            "00A40000023000",
            "00B201048D",
            "00B203048D",
            "00A40000029001",
            "00A40000022001",
            "00B0000000",
            "00A4030000",
            "8034000040",
            "802E002100",
        ],
    );
}
