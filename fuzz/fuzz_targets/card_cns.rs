//! The whole cns card: framed APDUs and power events on the renewable fixture, every
//! invariant of `firmalab_emulator::invariants` checked after every step.
#![no_main]

use firmalab_emulator::CardImage;
use firmalab_emulator::invariants::{Checked, decode};
use firmalab_emulator::keys::Backend;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static IMAGE: OnceLock<CardImage> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let image = IMAGE.get_or_init(|| {
        CardImage::from_json(include_str!("../../fixtures/cards/cns-renewable.json")).expect("fixture loads")
    });
    let mut checked = Checked::new(image.clone(), 1);
    // Private-key operations in OpenSSL: uninstrumented, ~3x faster than RustCrypto; the
    // invariants are the same (the regression replay in `cargo test` uses RustCrypto).
    checked.card.set_backend(Backend::OpenSsl);
    if let Err(violation) = checked.run(&decode(data)) {
        panic!("invariant broken: {violation}");
    }
});
