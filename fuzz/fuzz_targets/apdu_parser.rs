//! The APDU parser on raw bytes: never panics, and what it accepts re-encodes byte for byte;
//! log redaction never panics either.
#![no_main]

use firmalab_emulator::apdu::{Apdu, redacted_hex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(apdu) = Apdu::parse(data) {
        let mut back = Vec::new();
        apdu.encode(&mut back);
        assert_eq!(back, data, "parse → encode must give the input back");
        assert_eq!(Apdu::parse(&back), Ok(apdu));
    }
    let _ = redacted_hex(data);
});
