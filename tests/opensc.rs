//! Unmodified OpenSC (the Debian binaries) driving the virtual cards through the real
//! pcscd + vpcd stack, in a private pcscd (spec/cards.md §7, §8; issue "Real PC/SC").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "pcsc"))]
#[test]
fn opensc_and_pcsc_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED opensc/pcsc tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::*;
    use firmalab_emulator::fs::{FileBody, lookup};
    use firmalab_emulator::security::PinObject;

    const PIN: &str = "12345678";

    fn file(card: &firmalab_emulator::CardImage, path: &[u16]) -> Vec<u8> {
        match &lookup(&card.mf, path).unwrap().body {
            FileBody::Transparent { data } => data.0.clone(),
            _ => panic!("not a transparent EF"),
        }
    }

    fn pem_to_der(pem: &[u8]) -> Vec<u8> {
        let dir = scratch("pem");
        let p = dir.join("c.pem");
        std::fs::write(&p, pem).unwrap();
        let o = std::process::Command::new("openssl")
            .args(["x509", "-in", p.to_str().unwrap(), "-outform", "DER"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    }

    fn pin(card: &firmalab_emulator::Card, reference: u8) -> PinObject {
        card.image().pins.iter().find(|p| p.reference.0 == reference).unwrap().clone()
    }

    #[test]
    fn cns_is_named_cns_card_and_its_certificates_read_back_identical() {
        let Some((stack, _turn)) = stack("cns_is_named_cns_card_and_its_certificates_read_back_identical") else {
            return;
        };
        let image = fixture("cns-renewable.json");
        let card = insert(stack, image.clone());
        let r = card.slot.to_string();
        let o = client(stack, "opensc-tool", &["-r", &r, "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "CNS card", "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-certificates"]);
        let t = text(&o);
        assert!(t.contains("X.509 Certificate [CNS0]") && t.contains("X.509 Certificate [CNS1]"), "{t}");
        assert!(t.contains("Path           : 3f0014009010"), "{t}");
        for (id, path) in [("01", [0x3F00, 0x1100, 0x1101]), ("10", [0x3F00, 0x1400, 0x9010])] {
            let o = client(stack, "pkcs15-tool", &["-r", &r, "--read-certificate", id]);
            assert!(o.status.success(), "{}", text(&o));
            assert_eq!(pem_to_der(&o.stdout), file(&image, &path), "certificate {id} differs from the image");
        }
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-pins"]);
        let t = text(&o);
        for label in ["PIN [PIN CNS0]", "PIN [PUK CNS0]", "PIN [PIN CNS1]", "PIN [PUK CNS1]"] {
            assert!(t.contains(label), "missing {label}: {t}");
        }
        assert!(t.contains("Path           : 3f0014008110"));
        card.remove();
    }

    #[test]
    fn cns_verify_pin_succeeds_and_a_wrong_one_costs_a_try() {
        let Some((stack, _turn)) = stack("cns_verify_pin_succeeds_and_a_wrong_one_costs_a_try") else {
            return;
        };
        let card = insert(stack, fixture("cns-renewable.json"));
        let r = card.slot.to_string();
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--verify-pin", "--pin", PIN]);
        assert!(o.status.success(), "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--verify-pin", "--pin", "11111111"]);
        assert!(!o.status.success());
        assert!(text(&o).contains("PIN code or key incorrect"), "{}", text(&o));
        let o = client(stack, "opensc-tool", &["-r", &r, "-s", "00200090"]);
        assert!(text(&o).contains("SW1=0x63, SW2=0xC2"), "tries left reported: {}", text(&o));
        let card = card.remove();
        assert_eq!(pin(&card, 0x10).tries_left, 2);
    }

    #[test]
    fn cns_change_pin_then_block_it_and_unblock_with_the_puk() {
        let Some((stack, _turn)) = stack("cns_change_pin_then_block_it_and_unblock_with_the_puk") else {
            return;
        };
        let card = insert(stack, fixture("cns-renewable.json"));
        let r = card.slot.to_string();
        let o = client(
            stack,
            "pkcs15-tool",
            &["-r", &r, "--change-pin", "--auth-id", "10", "--pin", PIN, "--new-pin", "24682468"],
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--verify-pin", "--auth-id", "10", "--pin", "24682468"]);
        assert!(o.status.success(), "{}", text(&o));
        for _ in 0..3 {
            let o = client(stack, "pkcs15-tool", &["-r", &r, "--verify-pin", "--auth-id", "10", "--pin", "99999999"]);
            assert!(text(&o).contains("PIN code or key incorrect"), "{}", text(&o));
        }
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--verify-pin", "--auth-id", "10", "--pin", "24682468"]);
        assert!(text(&o).contains("Authentication method blocked"), "OpenSC reports it blocked: {}", text(&o));
        let o = client(
            stack,
            "pkcs15-tool",
            &["-r", &r, "--unblock-pin", "--auth-id", "10", "--puk", "87654321", "--new-pin", "13571357"],
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--verify-pin", "--auth-id", "10", "--pin", "13571357"]);
        assert!(o.status.success(), "{}", text(&o));
        let card = card.remove();
        assert_eq!(pin(&card, 0x1A).value, "13571357");
        assert_eq!(pin(&card, 0x1A).tries_left, 3);
    }

    /// Signs `message` through OpenSC's PKCS#11 module with the CNS signature PIN and checks with
    /// `openssl dgst` that the signature verifies under the public key of `cert_der`.
    fn pkcs11_sign_and_verify(
        stack: &firmalab_harness::stack::PrivateStack,
        dir: &std::path::Path,
        cert_der: &[u8],
        message: &[u8],
    ) {
        let (msg, sig, cert, pubkey) = (dir.join("msg"), dir.join("sig"), dir.join("cert.der"), dir.join("pub.pem"));
        std::fs::write(&msg, message).unwrap();
        std::fs::write(&cert, cert_der).unwrap();
        let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
        let (msg_s, sig_s, cert_s, pub_s) = (path(&msg), path(&sig), path(&cert), path(&pubkey));
        let o = client(
            stack,
            "pkcs11-tool",
            &[
                "--module",
                PKCS11,
                "--token-label",
                "MARIO ROSSI (PIN CNS1)",
                "--login",
                "--pin",
                PIN,
                "--sign",
                "-m",
                "SHA256-RSA-PKCS",
                "-i",
                &msg_s,
                "-o",
                &sig_s,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let openssl = |args: &[&str]| std::process::Command::new("openssl").args(args).output().unwrap();
        let o = openssl(&["x509", "-inform", "DER", "-in", &cert_s, "-pubkey", "-noout", "-out", &pub_s]);
        assert!(o.status.success(), "{}", text(&o));
        let o = openssl(&["dgst", "-sha256", "-verify", &pub_s, "-signature", &sig_s, &msg_s]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "Verified OK", "{}", text(&o));
    }

    #[test]
    fn cns_pkcs11_sha256_signature_verifies_with_openssl() {
        let Some((stack, _turn)) = stack("cns_pkcs11_sha256_signature_verifies_with_openssl") else {
            return;
        };
        let image = fixture("cns-renewable.json");
        let card = insert(stack, image.clone());
        let dir = scratch("sign");
        let cert = file(&image, &[0x3F00, 0x1400, 0x9010]);
        pkcs11_sign_and_verify(stack, &dir, &cert, b"Modulo di rinnovo firmato con la chiave in scadenza");
        card.remove();
    }

    #[test]
    fn cns_pkcs11_decrypt_with_the_authentication_key_returns_the_plaintext() {
        let Some((stack, _turn)) = stack("cns_pkcs11_decrypt_with_the_authentication_key_returns_the_plaintext") else {
            return;
        };
        let image = fixture("cns-renewable.json");
        let card = insert(stack, image.clone());
        let dir = scratch("decrypt");
        decrypt_round_trip(
            stack,
            &dir,
            &file(&image, &[0x3F00, 0x1100, 0x1101]),
            &["--token-label", "MARIO ROSSI (PIN CNS0)"],
            PIN,
        );
        card.remove();
    }

    fn decrypt_round_trip(
        stack: &firmalab_harness::stack::PrivateStack,
        dir: &std::path::Path,
        cert_der: &[u8],
        token: &[&str],
        pin: &str,
    ) {
        let (cert, pubkey, plain, ct, out) =
            (dir.join("c.der"), dir.join("p.pem"), dir.join("plain"), dir.join("ct"), dir.join("out"));
        std::fs::write(&cert, cert_der).unwrap();
        std::fs::write(&plain, b"chiave di sessione").unwrap();
        let run = |args: &[&str]| {
            let o = std::process::Command::new("openssl").args(args).output().unwrap();
            assert!(o.status.success(), "{}", text(&o));
        };
        run(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            cert.to_str().unwrap(),
            "-pubkey",
            "-noout",
            "-out",
            pubkey.to_str().unwrap(),
        ]);
        run(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            pubkey.to_str().unwrap(),
            "-in",
            plain.to_str().unwrap(),
            "-out",
            ct.to_str().unwrap(),
        ]);
        let mut args = vec!["--module", PKCS11];
        args.extend_from_slice(token);
        args.extend_from_slice(&[
            "--login",
            "--pin",
            pin,
            "--decrypt",
            "-m",
            "RSA-PKCS",
            "-i",
            ct.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let o = client(stack, "pkcs11-tool", &args);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(std::fs::read(&out).unwrap(), b"chiave di sessione");
    }

    #[test]
    fn oberthur_is_named_authentic_and_lists_identical_certificates_and_pins() {
        let Some((stack, _turn)) = stack("oberthur_is_named_authentic_and_lists_identical_certificates_and_pins")
        else {
            return;
        };
        let image = fixture("oberthur-renewable.json");
        let card = insert(stack, image.clone());
        let r = card.slot.to_string();
        let o = client(stack, "opensc-tool", &["-r", &r, "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "AuthentIC v5", "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-certificates"]);
        let t = text(&o);
        assert!(
            t.contains("Path           : 3f00501190012001") && t.contains("Path           : 3f00501190012002"),
            "{t}"
        );
        let id =
            t.lines().find(|l| l.contains("ID             :")).unwrap().split(':').nth(1).unwrap().trim().to_owned();
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--read-certificate", &id]);
        assert_eq!(pem_to_der(&o.stdout), file(&image, &[0x3F00, 0x5011, 0x9001, 0x2001]));
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-pins"]);
        let t = text(&o);
        assert!(
            t.contains("PIN [SO PIN]") && t.contains("PIN [SCM]") && t.contains("Path           : 3f005011"),
            "{t}"
        );
        assert!(t.contains("Tries left     : 3"), "{t}");
        let o = client(stack, "opensc-tool", &["-r", &r, "--serial"]);
        assert!(text(&o).to_lowercase().contains("1a 2b 3c 4d") || text(&o).contains("1a2b3c4d"), "{}", text(&o));
        card.remove();
    }

    #[test]
    fn oberthur_verify_and_change_pin_then_decrypt() {
        let Some((stack, _turn)) = stack("oberthur_verify_and_change_pin_then_decrypt") else {
            return;
        };
        let image = fixture("oberthur-renewable.json");
        let card = insert(stack, image.clone());
        let r = card.slot.to_string();
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--verify-pin", "--auth-id", "53434d", "--pin", PIN]);
        assert!(o.status.success(), "{}", text(&o));
        // OpenSC hides an already-verified AWP user PIN (spec/cards.md §2.8 item 4): log out
        // first, as its PKCS#11 module does at the end of a session.
        client(stack, "opensc-tool", &["-r", &r, "-s", "802E002100"]);
        let o = client(
            stack,
            "pkcs15-tool",
            &["-r", &r, "--change-pin", "--auth-id", "53434d", "--pin", PIN, "--new-pin", "87878787"],
        );
        assert!(o.status.success(), "{}", text(&o));
        client(stack, "opensc-tool", &["-r", &r, "-s", "802E002100"]);
        let dir = scratch("ob-decrypt");
        decrypt_round_trip(
            stack,
            &dir,
            &file(&image, &[0x3F00, 0x5011, 0x9001, 0x2001]),
            &["--token-label", "GIULIA BIANCHI (SCM)"],
            "87878787",
        );
        let card = card.remove();
        assert_eq!(pin(&card, 0x81).value, "87878787");
    }

    #[test]
    fn firmalab_readers_and_apdu_work_through_pcsc_with_get_response() {
        let Some((stack, _turn)) = stack("firmalab_readers_and_apdu_work_through_pcsc_with_get_response") else {
            return;
        };
        let card = insert(stack, fixture("cns-renewable.json"));
        let o = firmalab(stack, &["readers"]);
        let t = text(&o);
        assert!(
            t.contains(&format!(
                "{}\t3BFF1800FF8131FE55006B02091303010101434E531131808C\tItalian CNS 1.1",
                card.reader
            )),
            "{t}"
        );
        let o = firmalab(
            stack,
            &[
                "apdu",
                "--reader",
                &card.reader,
                "00A4080C0410001003",
                "00B0000010",
                "00200090083132333435363738",
                "0046800102080000",
                "00C000000E",
            ],
        );
        let lines: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 5, "{}", text(&o));
        assert_eq!(lines[1], "36303130303030303030303030313031 9000  success");
        assert!(lines[3].ends_with("610E  more data available (GET RESPONSE) (14 bytes)"), "{}", lines[3]);
        assert!(lines[4].ends_with("8203010001 9000  success"), "{}", lines[4]);
        let o = firmalab(stack, &["apdu", "--reader", "No Such Reader", "00A4000C023F00"]);
        assert!(!o.status.success());
        assert!(
            text(&o).contains("no reader \"No Such Reader\"; readers: Virtual PCD 00 00, Virtual PCD 00 01"),
            "{}",
            text(&o)
        );
        card.remove();
    }

    #[test]
    fn card_process_saves_before_answering_survives_a_pcscd_restart_and_stops_on_sigterm() {
        let Some((_shared, _turn)) =
            stack("card_process_saves_before_answering_survives_a_pcscd_restart_and_stops_on_sigterm")
        else {
            return;
        };
        // Its own pcscd, so it can be restarted.
        let first = firmalab_harness::stack::PrivateStack::start().expect("private pcscd");
        let dir = scratch("process");
        let img = dir.join("card.json");
        std::fs::copy(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards/cns-renewable.json"),
            &img,
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_firmalab"))
            .args(["card", "--image", img.to_str().unwrap(), "--vpcd", &first.vpcd_addr(0)])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let reader = firmalab_harness::stack::PrivateStack::reader(0);
        let wait = |s: &firmalab_harness::stack::PrivateStack| {
            let o = firmalab(s, &["readers", "--wait", &reader, "--timeout", "15"]);
            assert!(o.status.success(), "{}", text(&o));
        };
        wait(&first);
        let o = client(&first, "opensc-tool", &["-r", "0", "-s", "00200090083131313131313131"]);
        assert!(text(&o).contains("SW1=0x63, SW2=0xC2"), "{}", text(&o));
        // The answered 63C2 is already on disk.
        let saved = firmalab_emulator::CardImage::load(&img).unwrap();
        assert_eq!(saved.pins[0].tries_left, 2);

        first.stop();
        let second =
            firmalab_harness::stack::PrivateStack::start_on(first.port).expect("pcscd restarted on the same port");
        wait(&second);
        let o = client(&second, "opensc-tool", &["-r", "0", "-s", "00200090"]);
        assert!(text(&o).contains("SW1=0x63, SW2=0xC2"), "the same card came back: {}", text(&o));

        std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?} {err}");
        assert!(err.contains("cards removed"), "{err}");
        assert!(err.contains("Disconnected"), "it saw pcscd go: {err}");
        second.stop();
    }

    fn status(o: &std::process::Output) -> i32 {
        o.status.code().unwrap_or(-1)
    }

    #[test]
    fn renewal_diagnostic_and_scenario_run_through_pcsc_and_opensc_signs_with_the_new_key() {
        let Some((stack, _turn)) =
            stack("renewal_diagnostic_and_scenario_run_through_pcsc_and_opensc_signs_with_the_new_key")
        else {
            return;
        };
        let card = insert(stack, fixture("cns-renewable.json"));
        let reader = format!("reader:{}", card.reader);
        let dir = scratch("pcsc-renewal");
        let ra = dir.join("ra.json");
        let ra_s = ra.to_str().unwrap();
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let o = firmalab(
            stack,
            &["scenario", root.join("fixtures/scenarios/cns-basics.json").to_str().unwrap(), "--card", &reader],
        );
        assert_eq!(status(&o), 0, "{}", text(&o));
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
                "m@example.it",
                "--mobile",
                "+393331110000",
                "--now",
                "2026-06-01",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = firmalab(
            stack,
            &["flow", "diagnostic", "--card", &reader, "--pin", PIN, "--now", "2026-06-01", "--ra", ra_s],
        );
        assert_eq!(status(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("diagnostic: Renewable"));
        let out = dir.join("out");
        let o = firmalab(
            stack,
            &[
                "flow",
                "renewal",
                "--card",
                &reader,
                "--pin",
                PIN,
                "--yes",
                "--email",
                "m@example.it",
                "--mobile",
                "+393331110000",
                "--now",
                "2026-06-01",
                "--ra",
                ra_s,
                "--out-dir",
                out.to_str().unwrap(),
                "--ca",
                root.join("fixtures/ca").to_str().unwrap(),
                // A renewal writes keys to a card in a reader: confirmed by its serial.
                "--confirm-serial",
                "6010000000000101",
            ],
        );
        assert_eq!(status(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("renewal: AwaitingCdrlAuthorization"), "{}", text(&o));
        // OpenSC sees the new signature certificate, and its key signs.
        let r = card.slot.to_string();
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--read-certificate", "10"]);
        let new_cert = pem_to_der(&o.stdout);
        assert_ne!(new_cert, file(&fixture("cns-renewable.json"), &[0x3F00, 0x1400, 0x9010]), "a new certificate");
        pkcs11_sign_and_verify(stack, &dir, &new_cert, b"firmato con la chiave rinnovata");
        card.remove();
    }

    #[test]
    fn oberthur_unblock_and_signature_through_pcsc_by_the_harness_client() {
        let Some((stack, _turn)) = stack("oberthur_unblock_and_signature_through_pcsc_by_the_harness_client") else {
            return;
        };
        let mut image = fixture("oberthur-renewable.json");
        image.pins[1].tries_left = 0;
        let card = insert(stack, image);
        let reader = format!("reader:{}", card.reader);
        let o =
            firmalab(stack, &["flow", "pin-unblock", "--card", &reader, "--puk", "87654321", "--new-pin", "24682468"]);
        assert_eq!(status(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("pin-unblock: PinUnblocked"));
        // The diagnostic's key check signs with the qualified key on the card (what OpenSC 0.23
        // cannot do on this driver) and verifies it with the certificate.
        let o = firmalab(
            stack,
            &[
                "flow",
                "diagnostic",
                "--card",
                &reader,
                "--pin",
                "24682468",
                "--now",
                "2026-06-01",
                "--json",
                "--ra",
                scratch("ob-ra").join("ra.json").to_str().unwrap(),
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        assert_eq!(v["details"]["checks"][5]["status"], "pass", "{}", text(&o));
        let card = card.remove();
        assert_eq!(card.image().pins[1].value, "24682468");
    }

    /// The harness's own Oberthur encoders (certificate and key info blobs, object lists,
    /// containers) are read back by OpenSC after a renewal through PC/SC: it lists the new
    /// certificates and decrypts with the new authentication key (the independent witness of
    /// issue 9 item 6).
    #[test]
    fn oberthur_renewal_through_pcsc_is_read_back_by_opensc_which_decrypts_with_the_new_key() {
        let Some((stack, _turn)) = stack("oberthur_renewal_through_pcsc_is_read_back_by_opensc") else {
            return;
        };
        let image = fixture("oberthur-renewable.json");
        let card = insert(stack, image.clone());
        let reader = format!("reader:{}", card.reader);
        let dir = scratch("ob-renewal");
        let ra = dir.join("ra.json");
        let ra_s = ra.to_str().unwrap();
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
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
                "g@example.it",
                "--mobile",
                "+393331110009",
                "--now",
                "2026-06-01",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = firmalab(
            stack,
            &[
                "flow",
                "renewal",
                "--card",
                &reader,
                "--pin",
                PIN,
                "--yes",
                "--email",
                "g@example.it",
                "--mobile",
                "+393331110009",
                "--now",
                "2026-06-01",
                "--ra",
                ra_s,
                "--out-dir",
                dir.join("out").to_str().unwrap(),
                "--ca",
                root.join("fixtures/ca").to_str().unwrap(),
                "--confirm-serial",
                "1a2b3c4d",
            ],
        );
        assert_eq!(status(&o), 0, "{}", text(&o));
        let r = card.slot.to_string();
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-certificates"]);
        let t = text(&o);
        let ids: Vec<String> = t
            .lines()
            .filter(|l| l.contains("ID             :"))
            .map(|l| l.split(':').nth(1).unwrap().trim().to_owned())
            .collect();
        assert_eq!(ids.len(), 2, "{t}");
        let old = [file(&image, &[0x3F00, 0x5011, 0x9001, 0x2001]), file(&image, &[0x3F00, 0x5011, 0x9001, 0x2002])];
        let mut auth = None;
        for id in &ids {
            let o = client(stack, "pkcs15-tool", &["-r", &r, "--read-certificate", id]);
            let der = pem_to_der(&o.stdout);
            assert!(!old.contains(&der), "certificate {id} is an old one");
            let info = std::process::Command::new("openssl")
                .args(["x509", "-inform", "DER", "-noout", "-ext", "extendedKeyUsage"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(&der)?;
                    c.wait_with_output()
                })
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains("Client Authentication") {
                auth = Some(der);
            }
        }
        let o = client(stack, "pkcs15-tool", &["-r", &r, "--list-keys"]);
        for id in &ids {
            assert!(text(&o).contains(&format!("ID             : {id}")), "a private key linked to {id}: {}", text(&o));
        }
        let auth = auth.unwrap_or_else(|| panic!("no authentication certificate among {ids:?}"));
        decrypt_round_trip(
            stack,
            &scratch("ob-renewal-decrypt"),
            &auth,
            &["--token-label", "GIULIA BIANCHI (SCM)"],
            PIN,
        );
        card.remove();
    }
}
