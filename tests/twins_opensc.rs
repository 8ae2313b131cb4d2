//! Unmodified OpenSC through the real pcscd + vpcd stack on the strict twin of a genuine Aruba
//! Incard CNS 1.0 (issue 9 item 4): it names the card and lists and reads back its
//! certificates, as it does for a genuine token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "pcsc"))]
#[test]
fn twin_opensc_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED twin opensc tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::*;
    use firmalab_emulator::fs::{FileBody, lookup};

    #[test]
    fn opensc_lists_and_reads_the_genuine_cns_1_0_twins_certificates() {
        let Some((stack, _turn)) = stack("opensc_lists_and_reads_the_genuine_cns_1_0_twins_certificates") else {
            return;
        };
        let image = fixture("twin-cns-incard-1.0.json");
        assert!(image.extensions.is_empty());
        let card = insert(stack, image.clone());
        let r = card.slot.to_string();
        let o = client(stack, "opensc-tool", &["-r", &r, "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "CNS card", "{}", text(&o));
        let o = client(stack, "opensc-tool", &["-r", &r, "-a"]);
        assert!(
            text(&o)
                .to_uppercase()
                .contains("3B:FF:18:00:FF:81:31:FE:55:00:6B:02:09:13:03:01:01:01:43:4E:53:10:31:80:8D"),
            "{}",
            text(&o)
        );
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-certificates"]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains("X.509 Certificate [CNS0]") && t.contains("X.509 Certificate [CNS1]"), "{t}");
        assert!(t.contains("Path           : 3f0014009010"), "{t}");
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--read-certificate", "10"]);
        assert!(o.status.success(), "{}", text(&o));
        let FileBody::Transparent { data } = &lookup(&image.mf, &[0x3F00, 0x1400, 0x9010]).unwrap().body else {
            panic!("no signature certificate");
        };
        let dir = scratch("twin-pem");
        let pem = dir.join("c.pem");
        std::fs::write(&pem, &o.stdout).unwrap();
        let der = std::process::Command::new("openssl")
            .args(["x509", "-in", pem.to_str().unwrap(), "-outform", "DER"])
            .output()
            .unwrap();
        assert!(der.status.success(), "{}", text(&der));
        assert_eq!(der.stdout, data.0, "the signature certificate OpenSC read is the image's");
        let card = card.remove();
        assert_eq!(card.image().pins, image.pins, "listing sent no PIN");
    }
}
