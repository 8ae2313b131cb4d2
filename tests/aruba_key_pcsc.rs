//! The Aruba Key in a PC/SC reader (issue 14 item 7): unmodified OpenSC drives the variant as
//! the CNS card it is (its ATR is the Aruba Incard token's, firmware 02.00), and the two-phase
//! renewal runs through pcscd + vpcd: `ra order` confirmed by the serial, `flow import` whose
//! typed serial is the confirmation; OpenSC then reads the imported certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "pcsc"))]
#[test]
fn aruba_key_pcsc_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED aruba key pcsc tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::*;

    const SERIAL: &str = "6010000000000106";

    fn pem_to_der(pem: &[u8]) -> Vec<u8> {
        let dir = scratch("aruba-pem");
        let p = dir.join("c.pem");
        std::fs::write(&p, pem).unwrap();
        let o = std::process::Command::new("openssl")
            .args(["x509", "-in", p.to_str().unwrap(), "-outform", "DER"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    }

    fn code(o: &std::process::Output) -> i32 {
        o.status.code().unwrap_or(-1)
    }

    #[test]
    fn opensc_drives_the_aruba_key_and_the_order_and_import_run_through_pcsc() {
        let Some((stack, _turn)) = stack("opensc_drives_the_aruba_key_and_the_order_and_import_run_through_pcsc")
        else {
            return;
        };
        let card = insert(stack, fixture("aruba-key.json"));
        let r = card.slot.to_string();
        let reader = format!("reader:{}", card.reader);
        let o = client(stack, "opensc-tool", &["-r", &r, "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "CNS card", "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-certificates"]);
        assert!(text(&o).contains("X.509 Certificate [CNS1]"), "{}", text(&o));

        let dir = scratch("aruba-pcsc");
        let (ra, out) = (dir.join("ra.json"), dir.join("out"));
        let pin = dir.join("pin");
        std::fs::write(&pin, "12345678\n").unwrap();
        std::fs::set_permissions(&pin, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let ca = root.join("fixtures/ca");
        let (ra_s, out_s, pin_s, ca_s) =
            (ra.to_str().unwrap(), out.to_str().unwrap(), pin.to_str().unwrap(), ca.to_str().unwrap());
        let o = firmalab(
            stack,
            &[
                "ra",
                "enroll",
                "--ra",
                ra_s,
                "--card",
                &reader,
                "--email",
                "chiara.russo@example.it",
                "--mobile",
                "+393330000009",
                "--now",
                "2026-06-01",
            ],
        );
        assert_eq!(code(&o), 0, "{}", text(&o));
        let order = |confirm: Option<&str>| {
            let mut a = vec![
                "ra",
                "order",
                "--ra",
                ra_s,
                "--card",
                &reader,
                "--pin-file",
                pin_s,
                "--yes",
                "--now",
                "2026-06-01",
                "--ca",
                ca_s,
                "--out-dir",
                out_s,
            ];
            if let Some(s) = confirm {
                a.extend(["--confirm-serial", s]);
            }
            firmalab(stack, &a)
        };
        // A card in a reader: key generation only when its serial confirms it.
        let o = order(None);
        assert_ne!(code(&o), 0, "{}", text(&o));
        assert!(!text(&o).contains("KeysGenerated"), "{}", text(&o));
        let o = order(Some(SERIAL));
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("order: AwaitingImport"), "{}", text(&o));

        let o = firmalab(
            stack,
            &[
                "flow",
                "import",
                "--ra",
                ra_s,
                "--card",
                &reader,
                "--pin-file",
                pin_s,
                "--serial",
                SERIAL,
                "--now",
                "2026-06-02",
            ],
        );
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("import: CertificatesImported"), "{}", text(&o));
        // OpenSC reads the certificate the CA issued for the order from the key.
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--read-certificate", "10"]);
        assert!(o.status.success(), "{}", text(&o));
        let issued = std::fs::read(out.join("O-000001-signature.cer")).unwrap();
        assert_eq!(pem_to_der(&o.stdout), issued, "the imported signature certificate");
        card.remove();
    }
}
