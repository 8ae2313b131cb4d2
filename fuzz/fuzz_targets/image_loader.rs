//! The card-image loader on arbitrary bytes: never panics; an image it accepts is valid,
//! survives a save/load round trip, and a card built on it answers without panicking.
#![no_main]

use firmalab_emulator::{Card, CardImage, CardRng};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(image) = CardImage::from_json(text) else { return };
    assert!(image.validate().is_ok());
    let back = CardImage::from_json(&image.to_json()).expect("a loaded image saves and loads");
    assert_eq!(back, image);
    let mut card = Card::new(image, CardRng::insecure_deterministic(0));
    card.power_on();
    for apdu in [&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00][..], &[0x00, 0xA4, 0x08, 0x00, 0x04, 0x10, 0x00, 0x10, 0x03, 0x00], &[0x00, 0xB0, 0x00, 0x00, 0x00], &[0x00, 0x20, 0x00, 0x90], &[0x00, 0xCA, 0x01, 0x83, 0x00]] {
        let r = card.transmit(apdu);
        assert!(r.len() >= 2);
    }
});
