//! The Incrypto34 profile driven by unmodified OpenSC 0.23 (the Debian binaries) through a
//! private pcscd + vpcd, with the `incrypto34` driver enabled in a test-local `opensc.conf`
//! (`OPENSC_CONF`; spec/cards.md §4.1, §7.3): `pkcs15-init` personalises a blank card,
//! `pkcs15-tool` reads back what it stored, `pkcs11-tool` signs and decrypts with the keys the
//! card generated (`openssl` verifies), PIN change and unblock; and the harness's own client
//! runs its diagnostic and PIN flows on the issued fixture through PC/SC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "pcsc"))]
#[test]
fn incrypto34_opensc_tests_need_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED incrypto34 opensc tests: {why}");
}

#[cfg(feature = "pcsc")]
mod support;

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::*;
    use firmalab_emulator::fs::{FileBody, lookup};
    use firmalab_emulator::keys::Algorithm;
    use firmalab_harness::stack::PrivateStack;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    const PIN: &str = "12345678";
    const PUK: &str = "87654321";
    const SO_PIN: &str = "11223344";

    /// An `opensc.conf` that enables the driver OpenSC 0.23 keeps among its "old" ones.
    fn conf(dir: &Path) -> PathBuf {
        let p = dir.join("opensc.conf");
        std::fs::write(&p, "app default {\n    card_drivers = incrypto34, internal;\n}\n").unwrap();
        p
    }

    /// An OpenSC tool against the private stack, with the test's `opensc.conf`.
    fn tool(stack: &PrivateStack, conf: &Path, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("PCSCLITE_CSOCK_NAME", stack.socket())
            .env("OPENSC_CONF", conf)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    fn ok(o: Output) -> String {
        let t = text(&o);
        assert!(o.status.success() && !t.contains("Failed") && !t.contains("failed"), "{t}");
        t
    }

    fn openssl(args: &[&str]) -> Output {
        Command::new("openssl").args(args).output().unwrap()
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// The pkcs11-tool signature of `msg` with key `id`, verified by openssl with `pubkey`.
    fn sign_and_verify(stack: &PrivateStack, conf: &Path, dir: &Path, id: &str, pubkey: &Path) {
        let (msg, sig) = (dir.join("msg"), dir.join("sig"));
        std::fs::write(&msg, b"Modulo firmato con la Incrypto34").unwrap();
        ok(tool(
            stack,
            conf,
            "pkcs11-tool",
            &[
                "--module",
                PKCS11,
                "--login",
                "--pin",
                PIN,
                "--sign",
                "--id",
                id,
                "-m",
                "SHA256-RSA-PKCS",
                "-i",
                s(&msg),
                "-o",
                s(&sig),
            ],
        ));
        let o = openssl(&["dgst", "-sha256", "-verify", s(pubkey), "-signature", s(&sig), s(&msg)]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "Verified OK", "{}", text(&o));
    }

    /// The `ID : …` lines of a pkcs15-tool listing, in order.
    fn ids(listing: &str) -> Vec<String> {
        listing
            .lines()
            .filter(|l| l.trim_start().starts_with("ID "))
            .map(|l| l.split(':').nth(1).unwrap().trim().to_owned())
            .collect()
    }

    #[test]
    fn incrypto34_is_named_by_its_driver_only_when_opensc_conf_enables_it() {
        let Some((stack, _turn)) = stack("incrypto34_is_named_by_its_driver_only_when_opensc_conf_enables_it") else {
            return;
        };
        let dir = scratch("inc-name");
        let conf = conf(&dir);
        let card = insert(stack, fixture("incrypto34-issued.json"));
        let r = card.slot.to_string();
        let o = tool(stack, &conf, "opensc-tool", &["-r", &r, "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "Incrypto34", "{}", text(&o));
        // Without the configuration no driver of 0.23's default list claims the card.
        let o = client(stack, "opensc-tool", &["-r", &r, "-n"]);
        assert!(text(&o).contains("Unsupported card"), "{}", text(&o));
        card.remove();
    }

    /// `pkcs15-init` erases a blank card, creates the PKCS#15 application, stores a PIN with its
    /// PUK, generates an RSA-1024 signature key, an RSA-768 decipher key and an RSA-512 key on
    /// the card, stores a certificate for the first; `pkcs15-tool --dump` shows all of it;
    /// `pkcs11-tool` signs (openssl verifies with the stored certificate) and decrypts.
    #[test]
    fn pkcs15_init_personalises_a_blank_card_that_pkcs11_then_signs_and_decrypts_with() {
        let Some((stack, _turn)) =
            stack("pkcs15_init_personalises_a_blank_card_that_pkcs11_then_signs_and_decrypts_with")
        else {
            return;
        };
        let dir = scratch("inc-perso");
        let conf = conf(&dir);
        let card = insert(stack, fixture("incrypto34-blank.json"));
        let r = card.slot.to_string();
        let init = |args: &[&str]| {
            let mut all = vec!["-r", r.as_str()];
            all.extend_from_slice(args);
            ok(tool(stack, &conf, "pkcs15-init", &all))
        };
        init(&["--erase-card"]);
        init(&[
            "--create-pkcs15",
            "--so-pin",
            SO_PIN,
            "--so-puk",
            "44332211",
            "--label",
            "ARUBA INCRYPTO34",
            "--serial",
            "3410000000000999",
        ]);
        init(&[
            "--store-pin",
            "--auth-id",
            "01",
            "--label",
            "User PIN",
            "--pin",
            PIN,
            "--puk",
            PUK,
            "--so-pin",
            SO_PIN,
        ]);
        let generate = |spec: &str, usage: &str, label: &str| {
            init(&[
                "--generate-key",
                spec,
                "--auth-id",
                "01",
                "--key-usage",
                usage,
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ])
        };
        generate("rsa/1024", "sign", "Firma");
        let listing = ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--list-keys"]));
        let key_ids = ids(&listing);
        assert_eq!(key_ids.len(), 1, "{listing}");
        // A certificate for the signature key, issued by the test CA over the key the card
        // generated (its public half as pkcs15-tool reads it back).
        let ca = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ca");
        let (public, cert) = (dir.join("pub.pem"), dir.join("cert.der"));
        ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--read-public-key", &key_ids[0], "-o", s(&public)]));
        let ext = dir.join("ext.cnf");
        std::fs::write(&ext, "keyUsage=critical,nonRepudiation\n").unwrap();
        let o = openssl(&[
            "x509",
            "-new",
            "-subj",
            "/CN=MARIO ROSSI",
            "-force_pubkey",
            s(&public),
            "-CA",
            s(&ca.join("issuing-ca.pem")),
            "-CAkey",
            s(&ca.join("issuing-ca.key.pem")),
            "-days",
            "365",
            "-extfile",
            s(&ext),
            "-outform",
            "DER",
            "-out",
            s(&cert),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        init(&[
            "--store-certificate",
            s(&cert),
            "--format",
            "der",
            "--id",
            &key_ids[0],
            "--label",
            "Firma",
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ]);
        // Two smaller keys. incrypto34.profile's PrKDF has 256 bytes: three key entries fit
        // with a short certificate subject (a longer one gets "File too small" from OpenSC).
        generate("rsa/768", "decrypt", "Cifratura");
        generate("rsa/512", "sign", "Piccola");
        let listing = ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--list-keys"]));
        let key_ids = ids(&listing);
        assert_eq!(key_ids.len(), 3, "{listing}");

        let dump = ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--dump"]));
        for want in [
            "PKCS#15 Card [ARUBA INCRYPTO34]",
            "Serial number  : 3410000000000999",
            "PIN [Security Officer PIN]",
            "PIN [User PIN]",
            "Reference      : 3 (0x03)",
            "Pad char       : 0x00",
            "Private RSA Key [Firma]",
            "Private RSA Key [Cifratura]",
            "Private RSA Key [Piccola]",
            "ModLength      : 1024",
            "ModLength      : 768",
            "ModLength      : 512",
            "Key ref        : 16 (0x10)",
            "X.509 Certificate [Firma]",
        ] {
            assert!(dump.contains(want), "missing {want:?}:\n{dump}");
        }
        // The certificate reads back byte for byte, and the signature key signs for it.
        let pem = dir.join("back.pem");
        ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--read-certificate", &key_ids[0], "-o", s(&pem)]));
        let back = openssl(&["x509", "-in", s(&pem), "-outform", "DER"]);
        assert_eq!(back.stdout, std::fs::read(&cert).unwrap(), "the stored certificate differs");
        let cert_pub = dir.join("cert-pub.pem");
        let o = openssl(&["x509", "-inform", "DER", "-in", s(&cert), "-pubkey", "-noout", "-out", s(&cert_pub)]);
        assert!(o.status.success(), "{}", text(&o));
        sign_and_verify(stack, &conf, &dir, &key_ids[0], &cert_pub);
        // RSA-512 signs too; RSA-768 decrypts what openssl encrypted for it.
        let small = dir.join("small.pem");
        ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--read-public-key", &key_ids[2], "-o", s(&small)]));
        sign_and_verify(stack, &conf, &dir, &key_ids[2], &small);
        let (k768, plain, ct, out) = (dir.join("k768.pem"), dir.join("plain"), dir.join("ct"), dir.join("out"));
        ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--read-public-key", &key_ids[1], "-o", s(&k768)]));
        std::fs::write(&plain, b"chiave di sessione").unwrap();
        let o = openssl(&["pkeyutl", "-encrypt", "-pubin", "-inkey", s(&k768), "-in", s(&plain), "-out", s(&ct)]);
        assert!(o.status.success(), "{}", text(&o));
        ok(tool(
            stack,
            &conf,
            "pkcs11-tool",
            &[
                "--module",
                PKCS11,
                "--login",
                "--pin",
                PIN,
                "--decrypt",
                "--id",
                &key_ids[1],
                "-m",
                "RSA-PKCS",
                "-i",
                s(&ct),
                "-o",
                s(&out),
            ],
        ));
        assert_eq!(std::fs::read(&out).unwrap(), b"chiave di sessione");

        // What the card now holds: BS objects SO PIN/PUK 1/2, PIN/PUK 3/4, security
        // environment 1, the three keys generated on the card.
        let card = card.remove();
        let image = card.image();
        let refs: Vec<u8> = image.pins.iter().map(|p| p.reference.0).collect();
        assert_eq!(refs, [0x02, 0x01, 0x04, 0x03], "PUK before its PIN, as pkcs15-init stores them");
        assert!(image.pins.iter().all(|p| p.pad_byte.0 == 0x00 && p.pad_len == 8));
        assert_eq!(image.pins[3].value, PIN);
        assert_eq!(image.pins[3].unblocked_by.map(|r| r.0), Some(0x04));
        let algs: Vec<Algorithm> = image.keys.iter().map(|k| k.algorithm).collect();
        assert_eq!(algs, [Algorithm::Rsa1024, Algorithm::Rsa768, Algorithm::Rsa512]);
        assert!(image.keys.iter().all(|k| k.material.is_some() && k.pin.0 == 0x03));
        assert_eq!(image.security_environments.len(), 1);
        // The temporary key-generation file is gone; the certificate is in 5015/3104.
        assert!(lookup(&image.mf, &[0x3F00, 0x5015, 0x7EAD]).is_none());
        let Some(FileBody::Transparent { data }) = lookup(&image.mf, &[0x3F00, 0x5015, 0x3104]).map(|n| &n.body) else {
            panic!("no certificate EF 3104")
        };
        assert_eq!(data.0, std::fs::read(&cert).unwrap());
    }

    #[test]
    fn pin_change_and_unblock_with_the_puk_through_pkcs15_tool() {
        let Some((stack, _turn)) = stack("pin_change_and_unblock_with_the_puk_through_pkcs15_tool") else {
            return;
        };
        let dir = scratch("inc-pin");
        let conf = conf(&dir);
        let card = insert(stack, fixture("incrypto34-issued.json"));
        let r = card.slot.to_string();
        let p15 = |args: &[&str]| {
            let mut all = vec!["-r", r.as_str()];
            all.extend_from_slice(args);
            tool(stack, &conf, "pkcs15-tool", &all)
        };
        ok(p15(&["--change-pin", "--auth-id", "01", "--pin", PIN, "--new-pin", "24682468"]));
        ok(p15(&["--verify-pin", "--auth-id", "01", "--pin", "24682468"]));
        // The driver's status-word table has no 63Cx: OpenSC reports a wrong PIN as a failed
        // command (spec/cards.md §4.3), and the blocked PIN as blocked (6983).
        for _ in 0..3 {
            let o = p15(&["--verify-pin", "--auth-id", "01", "--pin", "99999999"]);
            assert!(!o.status.success() && text(&o).contains("Card command failed"), "{}", text(&o));
        }
        let o = p15(&["--verify-pin", "--auth-id", "01", "--pin", "24682468"]);
        assert!(text(&o).contains("Authentication method blocked"), "{}", text(&o));
        ok(p15(&["--unblock-pin", "--auth-id", "01", "--puk", PUK, "--new-pin", "13571357"]));
        ok(p15(&["--verify-pin", "--auth-id", "01", "--pin", "13571357"]));
        let card = card.remove();
        let pin = card.image().pins.iter().find(|p| p.reference.0 == 0x03).unwrap();
        assert_eq!((pin.value.as_str(), pin.tries_left), ("13571357", 3));
    }

    /// The issued fixture: OpenSC reads its objects and signs with its qualified key; the
    /// harness's independent client runs the diagnostic (obsolete lot, every other check
    /// run) and the PIN change through PC/SC.
    #[test]
    fn issued_card_signs_for_opensc_and_runs_the_harness_diagnostic_and_pin_change() {
        let Some((stack, _turn)) = stack("issued_card_signs_for_opensc_and_runs_the_harness_diagnostic_and_pin_change")
        else {
            return;
        };
        let dir = scratch("inc-issued");
        let conf = conf(&dir);
        let image = fixture("incrypto34-issued.json");
        let card = insert(stack, image.clone());
        let r = card.slot.to_string();
        let certs = ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--list-certificates"]));
        assert!(certs.contains("X.509 Certificate [CNS1 qualified signature]"), "{certs}");
        let cert_ids = ids(&certs);
        let pem = dir.join("sign.pem");
        ok(tool(stack, &conf, "pkcs15-tool", &["-r", &r, "--read-certificate", &cert_ids[0], "-o", s(&pem)]));
        let Some(FileBody::Transparent { data }) = lookup(&image.mf, &[0x3F00, 0x5015, 0x3104]).map(|n| &n.body) else {
            panic!("fixture without 3104")
        };
        assert_eq!(openssl(&["x509", "-in", s(&pem), "-outform", "DER"]).stdout, data.0);
        let public = dir.join("pub.pem");
        let o = openssl(&["x509", "-in", s(&pem), "-pubkey", "-noout", "-out", s(&public)]);
        assert!(o.status.success(), "{}", text(&o));
        sign_and_verify(stack, &conf, &dir, &cert_ids[0], &public);

        let reader = format!("reader:{}", card.reader);
        let o = firmalab(
            stack,
            &[
                "flow",
                "diagnostic",
                "--card",
                &reader,
                "--pin",
                PIN,
                "--now",
                "2026-06-01",
                "--json",
                "--ra",
                s(&dir.join("ra.json")),
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        let checks = &v["details"]["checks"];
        assert_eq!(checks[0]["reason"], "ObsoleteCard", "{}", text(&o));
        assert_eq!(checks[1]["detail"], "3410000000000106");
        assert_eq!(checks[5]["status"], "pass", "the key check signed through PC/SC: {}", text(&o));
        let o = firmalab(
            stack,
            &[
                "flow",
                "pin-change",
                "--card",
                &reader,
                "--pin",
                PIN,
                "--new-pin",
                "24682468",
                "--confirm-serial",
                "3410000000000106",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let card = card.remove();
        assert_eq!(card.image().pins.iter().find(|p| p.reference.0 == 0x03).unwrap().value, "24682468");
    }
}
