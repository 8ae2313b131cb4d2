//! `firmalab image capture` through the real PC/SC stack: a virtual card captured read-only
//! into a twin; the twin's public state is the card's, and unmodified OpenSC lists the same
//! objects on both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "pcsc"))]
#[test]
fn capture_pcsc_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED capture tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::*;
    use firmalab_emulator::CardImage;
    use firmalab_harness::stack::PrivateStack;
    use serde_json::Value;

    /// `image show --json` of a file, with what differs by design between a card and its
    /// twin blanked: the description (it names the capture) and which key each certificate
    /// certifies (the twin's keys are fresh stand-ins: none).
    fn public_state(stack: &PrivateStack, file: &std::path::Path) -> (Value, Vec<Value>) {
        let o = firmalab(stack, &["image", "show", "--json", file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let mut v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["description"] = Value::Null;
        let mut keys = vec![];
        for c in v["certificates"].as_array_mut().unwrap() {
            keys.push(c["key"].take());
        }
        (v, keys)
    }

    /// What OpenSC reads from the card in `reader`.
    fn opensc_view(stack: &PrivateStack, slot: u8) -> String {
        let r = slot.to_string();
        let o = client(stack, "pkcs15-tool", &["-r", &r, "-D"]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn round_trip(stack: &PrivateStack, name: &str, original: CardImage) {
        let dir = scratch(&format!("capture-{name}"));
        let (orig_file, twin_file) = (dir.join("original.json"), dir.join("twin.json"));
        original.save(&orig_file).unwrap();
        let card = insert(stack, original.clone());
        let before = opensc_view(stack, card.slot);
        let o = firmalab(
            stack,
            &["image", "capture", "--reader", &card.reader, "--out", twin_file.to_str().unwrap(), "--seed", name],
        );
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(out.contains("fresh RSA key pair(s) stand in"), "{out}");
        assert!(out.contains("NO KEY ON THE CARD MATCHES IT"), "image show says the keys do not match: {out}");
        // Read-only: the card is as it was.
        let after = card.remove();
        assert_eq!(after.image(), &original, "the capture changed the card");

        let (want, want_keys) = public_state(stack, &orig_file);
        let (got, got_keys) = public_state(stack, &twin_file);
        assert_eq!(got, want, "the twin's public state");
        assert!(want_keys.iter().all(|k| k.is_string()), "{want_keys:?}");
        assert!(got_keys.iter().all(Value::is_null), "no certificate matches a stand-in key: {got_keys:?}");

        let twin = CardImage::load(&twin_file).unwrap();
        let card = insert(stack, twin);
        let seen = opensc_view(stack, card.slot);
        card.remove();
        assert_eq!(seen, before, "OpenSC lists the same objects on the twin");
    }

    #[test]
    fn a_captured_cns_and_oberthur_twin_match_the_card_and_opensc_lists_the_same_objects() {
        let test = "a_captured_cns_and_oberthur_twin_match_the_card_and_opensc_lists_the_same_objects";
        let Some((stack, _turn)) = stack(test) else { return };
        // Another holder than the capture's template, a PIN try spent, a file missing.
        let mut cns = fixture("cns-pin-blocked.json");
        cns.pins.iter_mut().find(|p| p.reference.0 == 0x1A).unwrap().tries_left = 1;
        let df = cns.mf.children_mut().unwrap().iter_mut().find(|c| c.fid.0 == 0x1200).unwrap();
        df.children_mut().unwrap().retain(|c| c.fid.0 != 0x1203);
        cns.validate().unwrap();
        round_trip(stack, "cns", cns);
        let mut oberthur = fixture("oberthur-renewable.json");
        oberthur.pins.iter_mut().find(|p| p.reference.0 == 0x81).unwrap().tries_left = 2;
        round_trip(stack, "oberthur", oberthur);
    }
}
