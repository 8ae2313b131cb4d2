//! The whole Incrypto34 card: framed APDUs and power events on the issued fixture, every
//! invariant of `firmalab_emulator::invariants` checked after every step.
#![no_main]

use firmalab_emulator::CardImage;
use firmalab_emulator::invariants::{Checked, decode};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static IMAGE: OnceLock<CardImage> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let image = IMAGE.get_or_init(|| {
        CardImage::from_json(include_str!("../../fixtures/cards/incrypto34-issued.json")).expect("fixture loads")
    });
    if let Err(violation) = Checked::new(image.clone(), 1).run(&decode(data)) {
        panic!("invariant broken: {violation}");
    }
});
