//! Inputs the fuzz targets once found problems with (fuzz/regressions/<target>/) replayed
//! through the same checks as the targets, on every `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use firmalab_emulator::apdu::{Apdu, redacted_hex};
use firmalab_emulator::invariants::{Checked, decode};
use firmalab_emulator::{Card, CardImage, CardRng};
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn apdu_parser_regressions() {
    for (name, data) in inputs("apdu_parser") {
        if let Ok(a) = Apdu::parse(&data) {
            let mut back = vec![];
            a.encode(&mut back);
            assert_eq!(back, data, "{name}");
        }
        let _ = redacted_hex(&data);
    }
}

#[test]
fn card_regressions_keep_every_invariant() {
    for (target, fixture) in [
        ("card_cns", "cns-renewable.json"),
        ("card_oberthur", "oberthur-renewable.json"),
        ("card_incrypto34", "incrypto34-issued.json"),
    ] {
        let cases = inputs(target);
        assert!(!cases.is_empty(), "{target}: no regression inputs");
        for (name, data) in cases {
            Checked::new(common::image(fixture), 1).run(&decode(&data)).unwrap_or_else(|v| panic!("{name}: {v}"));
        }
    }
}

#[test]
fn image_loader_regressions() {
    for (name, data) in inputs("image_loader") {
        let Ok(text) = std::str::from_utf8(&data) else { continue };
        if let Ok(image) = CardImage::from_json(text) {
            assert_eq!(CardImage::from_json(&image.to_json()).unwrap(), image, "{name}");
            let mut card = Card::new(image, CardRng::insecure_deterministic(0));
            card.power_on();
            assert!(card.transmit(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]).len() >= 2);
        }
    }
}
