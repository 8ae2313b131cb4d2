//! Issue 14 items 5 and 6 on the command line: the support bundle a refused or failed flow
//! leaves (one tar, 0600, no PIN, PUK or private key, personal data replaced consistently),
//! secrets refused before any APDU (exit 2), and a wrong PIN at the diagnostic reported as
//! `WrongPin`, never `PinBlocked` until the PIN really is blocked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::cli::{code as status, copy_fixture, no_pcscd, out as text, root, s};

/// firmalab run in `cwd` (where a default bundle lands), never near a pcscd. Not the shared
/// `cli_support::command`: these tests are about the support bundle, so it is left on (unless
/// `env` turns it off) and lands in `cwd`, not in the checkout.
fn firmalab_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firmalab"));
    no_pcscd(c.args(args).current_dir(cwd));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> support::Scratch {
    support::Scratch::new(&format!("firmalab-support-cli-{name}"))
}

fn ca() -> String {
    root().join("fixtures/ca").display().to_string()
}

/// Unpacks a bundle with the system's tar; every file's path and text.
fn unpack(bundle: &Path, into: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(into).unwrap();
    let o = Command::new("tar").arg("-xf").arg(bundle).arg("-C").arg(into).output().unwrap();
    assert!(o.status.success(), "tar -xf: {}", text(&o));
    let dir = into.join("firmalab-support");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} unpacked with mode {mode:o}", p.display());
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The INTEGERs of a DER SEQUENCE (a PKCS#1 RSAPrivateKey), leading zeros dropped.
fn der_integers(der: &[u8]) -> Vec<Vec<u8>> {
    fn len(b: &[u8], i: &mut usize) -> usize {
        let first = b[*i];
        *i += 1;
        if first < 0x80 {
            return usize::from(first);
        }
        let n = usize::from(first & 0x7F);
        let v = b[*i..*i + n].iter().fold(0usize, |a, x| a << 8 | usize::from(*x));
        *i += n;
        v
    }
    let mut i = 1;
    let _ = len(der, &mut i);
    let mut out = vec![];
    while i < der.len() {
        assert_eq!(der[i], 0x02, "INTEGER");
        i += 1;
        let n = len(der, &mut i);
        let v = &der[i..i + n];
        out.push(v.iter().skip_while(|b| **b == 0).copied().collect());
        i += n;
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Every private component (d, p, q, dP, dQ, qInv) and the whole PKCS#1 encoding of every key
/// of the image file, in hex.
fn private_components(image: &Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(image).unwrap()).unwrap();
    let mut out = vec![];
    for k in v["keys"].as_array().unwrap() {
        for field in ["material", "pending"] {
            let Some(pkcs1) = k[field]["pkcs1"].as_str() else { continue };
            let der: Vec<u8> =
                (0..pkcs1.len()).step_by(2).map(|i| u8::from_str_radix(&pkcs1[i..i + 2], 16).unwrap()).collect();
            out.push(hex(&der));
            let ints = der_integers(&der);
            assert_eq!(ints.len(), 9, "version, n, e, d, p, q, dP, dQ, qInv");
            out.extend(ints[3..].iter().map(|c| hex(c)));
        }
    }
    assert!(out.len() >= 14, "two keys' components: {}", out.len());
    out
}

/// The forms a PIN or PUK could leak in: as typed, and its ASCII padded as cards pad it.
fn secret_forms(secret: &str) -> Vec<String> {
    let mut v = vec![secret.to_owned(), hex(secret.as_bytes())];
    for (len, pad) in [(8usize, 0xFFu8), (16, 0x00), (64, 0xFF)] {
        let mut p = secret.as_bytes().to_vec();
        p.resize(len, pad);
        v.push(hex(&p));
    }
    v
}

fn find_bundle(dir: &Path, flow: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("firmalab-support-{flow}-")) && n.ends_with(".tar")
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn a_refused_renewal_leaves_one_private_bundle_in_the_working_directory_without_secrets_or_personal_data() {
    let dir = scratch("renewal");
    let card = copy_fixture("cns-renewable.json", &dir);
    let other = copy_fixture("oberthur-renewable.json", &dir);
    let ra = dir.join("ra.json");
    let enroll = |card: &Path, email: &str, mobile: &str| {
        let o = firmalab_in(
            &dir,
            &[
                "ra",
                "enroll",
                "--ra",
                s(&ra),
                "--card",
                s(card),
                "--email",
                email,
                "--mobile",
                mobile,
                "--address",
                "Via Appia Nuova 1234, Roma",
                "--now",
                "2026-06-01",
            ],
            &[],
        );
        assert_eq!(status(&o), 0, "{}", text(&o));
    };
    enroll(&card, "mario.rossi@example.it", "+393330000001");
    enroll(&other, "giulia.bianchi@example.it", "+393330000002");
    // The renewal gets as far as the holder data (serial, certificates, PIN, diagnostic with a
    // test signature) and is refused there: Giulia's mobile typed for Mario.
    let o = firmalab_in(
        &dir,
        &[
            "flow",
            "renewal",
            "--card",
            s(&card),
            "--pin",
            "12345678",
            "--email",
            "mario.rossi@example.it",
            "--mobile",
            "+39 333 0000002",
            "--yes",
            "--now",
            "2026-06-01",
            "--ra",
            s(&ra),
            "--ca",
            &ca(),
            "--out-dir",
            s(&dir.join("out")),
            "--seed",
            "5",
        ],
        &[],
    );
    let t = text(&o);
    assert_eq!(status(&o), 1, "{t}");
    assert!(t.contains("refused, ContactNotUnique"), "{t}");
    let bundle = find_bundle(&dir, "renewal");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("support bundle written to {}", bundle.file_name().unwrap().to_string_lossy())),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o600);

    let files = unpack(&bundle, &dir.join("x"));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["README.txt", "card.json", "environment.json", "report.json", "transcript.json", "transcript.txt"]
    );
    let file = |n: &str| files.iter().find(|(f, _)| f == n).map(|(_, t)| t.clone()).unwrap();
    let json = |n: &str| serde_json::from_str::<serde_json::Value>(&file(n)).unwrap();

    // No PIN, PUK or private key, in any form.
    let mut forbidden: Vec<String> = ["12345678", "87654321"].iter().flat_map(|x| secret_forms(x)).collect();
    forbidden.extend(private_components(&card));
    for (name, body) in &files {
        let upper = body.to_uppercase();
        for f in &forbidden {
            assert!(!upper.contains(f.as_str()), "{name} holds {f}");
        }
    }
    // No personal data: names, codice fiscale, serial, its reference, contacts, address, in
    // text and as the card's bytes.
    let personal = [
        "MARIO",
        "ROSSI",
        "RSSMRA80A01H501U",
        "6010000000000101",
        "WSREF-000101",
        "mario.rossi@example.it",
        "+393330000001",
        "3330000001",
        "Via Appia Nuova",
        "01011980",
        "+39 333 0000002",
        "+393330000002",
    ];
    for (name, body) in &files {
        let upper = body.to_uppercase();
        for p in personal {
            assert!(!upper.contains(&p.to_uppercase()), "{name} holds {p}");
            assert!(!upper.contains(&hex(p.as_bytes())), "{name} holds {p} as bytes");
        }
    }
    // What support needs is there, consistently pseudonymised.
    let report = json("report.json");
    assert_eq!(report["outcome"]["code"], "ContactNotUnique");
    let card_json = json("card.json");
    let serial = card_json["serial"].as_str().unwrap();
    assert_eq!(serial.len(), 16);
    assert!(serial.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(report["card"], serial, "the same serial, the same pseudonym");
    let scanned = report["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Scanned").unwrap();
    assert!(scanned["detail"].as_str().unwrap().contains(serial), "{scanned}");
    let holder = card_json["holder"].as_str().unwrap();
    let (name, cf) = holder.split_once(" (").unwrap();
    let subject = card_json["certificates"][1]["subject"].as_str().unwrap();
    assert!(subject.contains(&format!("CN={name}")) && subject.contains(&format!("TINIT-{}", &cf[..16])), "{subject}");
    let transcript = json("transcript.json");
    let serial_read = transcript["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["exchanges"].as_array().unwrap())
        .any(|e| e["response"].as_str().unwrap() == format!("{}9000", hex(serial.as_bytes())));
    assert!(serial_read, "EF_IDCarta in the transcript reads the pseudonym");
    assert!(file("transcript.json").contains("{pin:8:FF}"));
    let env = json("environment.json");
    assert_eq!(env["firmalab"], env!("CARGO_PKG_VERSION"));
    assert_eq!(env["atr"], "3BFF1800FF8131FE55006B02091303010101434E531131808C");
    assert_eq!(env["card"]["image"], "cns-renewable.json");
    assert!(card_json["description"].as_str().unwrap().contains("PIN ********"), "the fixture's own note masked");
}

#[test]
fn an_asked_bundle_is_written_on_success_and_no_bundle_when_turned_off() {
    let dir = scratch("asked");
    let card = copy_fixture("oberthur-renewable.json", &dir);
    let ra = dir.join("ra.json");
    let bundle = dir.join("asked.tar");
    let o = firmalab_in(
        &dir,
        &[
            "flow",
            "pin-change",
            "--card",
            s(&card),
            "--pin",
            "12345678",
            "--new-pin",
            "24682468",
            "--support-bundle",
            s(&bundle),
        ],
        &[],
    );
    assert_eq!(status(&o), 0, "{}", text(&o));
    let files = unpack(&bundle, &dir.join("x"));
    for (name, body) in &files {
        for f in ["12345678", "24682468", "11223344"].iter().flat_map(|x| secret_forms(x)) {
            assert!(!body.to_uppercase().contains(&f), "{name} holds {f}");
        }
        for p in ["GIULIA", "BIANCHI", "1a2b3c4d", "1A2B3C4D", "BNCGLI85M41F205"] {
            assert!(!body.to_uppercase().contains(&p.to_uppercase()), "{name} holds {p}");
        }
    }
    let report: serde_json::Value =
        serde_json::from_str(&files.iter().find(|(n, _)| n == "report.json").unwrap().1).unwrap();
    assert_eq!(report["outcome"]["state"], "PinChanged");
    let serial = report["card"].as_str().unwrap();
    assert!(serial.len() == 8 && serial.bytes().all(|b| b.is_ascii_hexdigit()), "hex stays hex: {serial}");
    // Refused with the bundle turned off, by flag or environment: nothing written.
    for (flag, env) in [(Some("--no-support-bundle"), None), (None, Some(("FIRMALAB_SUPPORT_BUNDLE", "off")))] {
        let mut args = vec!["flow", "diagnostic", "--card", s(&card), "--ra", s(&ra), "--now", "2026-06-01"];
        args.extend(flag);
        let o = firmalab_in(&dir, &args, &env.into_iter().collect::<Vec<_>>());
        assert_eq!(status(&o), 1, "{}", text(&o));
        assert!(!text(&o).contains("support bundle"), "{}", text(&o));
    }
    let tars =
        std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "tar"));
    assert_eq!(tars.count(), 1, "only the asked one");
}

#[test]
fn a_secret_no_card_of_the_profile_could_hold_is_refused_with_exit_2_before_the_card_is_touched() {
    let dir = scratch("precheck");
    let card = copy_fixture("cns-renewable.json", &dir);
    let before = std::fs::read(&card).unwrap();
    let ra = dir.join("ra.json");
    let thirteen = "1234567890123";
    let transcript = dir.join("t.json");
    for flow in [
        vec!["diagnostic", "--pin", thirteen],
        vec!["pin-change", "--pin", thirteen, "--new-pin", "24682468"],
        vec!["pin-change", "--pin", "12345678", "--new-pin", "2468a468"],
        vec!["pin-unblock", "--puk", thirteen, "--new-pin", "24682468"],
        vec!["puk-change", "--puk", "87654321", "--new-puk", "1234567"],
        vec!["reset", "--pin", thirteen],
        vec!["renewal", "--pin", thirteen, "--email", "m@example.it", "--mobile", "+393330000001", "--yes"],
    ] {
        let mut args = vec!["flow"];
        args.extend(&flow);
        args.extend(["--card", s(&card), "--ra", s(&ra), "--ca", "fixtures/ca", "--transcript", s(&transcript)]);
        let o = firmalab_in(&root(), &args, &[("FIRMALAB_SUPPORT_BUNDLE", "on")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(status(&o), 2, "{flow:?}: {}", text(&o));
        assert!(err.contains("nothing was sent to the card"), "{flow:?}: {err}");
        assert!(err.contains("BadLength") || err.contains("NotDigits"), "{flow:?}: {err}");
        assert!(!err.contains(thirteen) && !err.contains("2468a468"), "no secret echoed: {err}");
        assert!(!err.contains("support bundle"), "bad usage is not a failed flow: {err}");
        assert!(!transcript.exists() && !ra.exists(), "{flow:?}: nothing recorded or written");
        assert_eq!(std::fs::read(&card).unwrap(), before, "{flow:?}: the card changed");
    }
    let o = firmalab_in(&root(), &["flow", "diagnostic", "--card", s(&card), "--pin", thirteen, "--ra", s(&ra)], &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("the PIN has 13 digits; a CNS card takes 5 to 8 digits"));
}

#[test]
fn a_wrong_pin_at_the_diagnostic_is_wrong_pin_until_the_pin_is_really_blocked() {
    let dir = scratch("wrong-pin");
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let card = copy_fixture(fixture, &dir);
        let ra = dir.join("ra.json");
        let diagnostic = |extra: &[&str]| {
            let mut args = vec!["flow", "diagnostic", "--card", s(&card), "--pin", "11111111", "--now", "2026-06-01"];
            args.extend(["--ra", s(&ra), "--json", "--no-support-bundle"]);
            args.extend(extra);
            let o = firmalab_in(&dir, &args, &[]);
            assert_eq!(status(&o), 1, "{}", text(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let check6 = v["details"]["checks"].as_array().unwrap().iter().find(|c| c["id"] == 6).unwrap().clone();
            (v["outcome"]["code"].as_str().unwrap().to_owned(), check6)
        };
        let (code, check6) = diagnostic(&[]);
        assert_eq!((code.as_str(), check6["reason"].as_str()), ("WrongPin", Some("WrongPin")), "{fixture}");
        assert!(check6["detail"].as_str().unwrap().contains("2 tries left"), "{fixture}: {check6}");
        let (code, check6) = diagnostic(&[]);
        assert_eq!(code, "WrongPin", "{fixture}: {check6}");
        assert!(check6["detail"].as_str().unwrap().contains("1 tries left"), "{fixture}: {check6}");
        // At the last try the PIN is not sent unless allowed; a wrong one then blocks it.
        let (_, check6) = diagnostic(&["--allow-last-try"]);
        assert_eq!(check6["reason"], "PinBlocked", "{fixture}: {check6}");
        let _ = std::fs::remove_file(&card);
    }
}

#[cfg(feature = "pcsc")]
mod with_stack {
    use super::support::{fixture, insert_logged, stack};
    use super::*;
    use firmalab_emulator::timing::Timing;

    fn firmalab(stack: &firmalab_harness::stack::PrivateStack, cwd: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_firmalab"))
            .args(args)
            .current_dir(cwd)
            .env("PCSCLITE_CSOCK_NAME", stack.socket())
            .output()
            .unwrap()
    }

    #[test]
    fn on_a_reader_a_13_digit_pin_reaches_no_apdu_and_a_refused_flow_bundles_the_reader_and_atr() {
        let Some((stack, _turn)) = stack("on_a_reader_a_13_digit_pin_reaches_no_apdu") else { return };
        let (card, log) = insert_logged(stack, fixture("cns-renewable.json"), Timing::None);
        let reader = format!("reader:{}", card.reader);
        let dir = scratch("reader");
        let ra = dir.join("ra.json");
        let apdus = || log.lock().unwrap().iter().filter(|l| l.starts_with("> ")).count();
        let before = apdus();
        let o = firmalab(
            stack,
            &dir,
            &["flow", "pin-change", "--card", &reader, "--pin", "1234567890123", "--new-pin", "24682468"],
        );
        assert_eq!(status(&o), 2, "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("nothing was sent to the card"), "{}", text(&o));
        assert_eq!(apdus(), before, "the card saw an APDU: {:?}", log.lock().unwrap());

        // A diagnostic refused on the reader card: the bundle names the reader and the ATR.
        let o = firmalab(stack, &dir, &["flow", "diagnostic", "--card", &reader, "--pin", "11111111", "--ra", s(&ra)]);
        assert_eq!(status(&o), 1, "{}", text(&o));
        assert!(apdus() > before);
        let bundle = find_bundle(&dir, "diagnostic");
        let files = unpack(&bundle, &dir.join("x"));
        let get = |n: &str| files.iter().find(|(f, _)| f == n).unwrap().1.clone();
        let env: serde_json::Value = serde_json::from_str(&get("environment.json")).unwrap();
        assert_eq!(env["card"]["reader"], card.reader.as_str());
        assert_eq!(env["atr"], "3BFF1800FF8131FE55006B02091303010101434E531131808C");
        let card_json: serde_json::Value = serde_json::from_str(&get("card.json")).unwrap();
        assert_eq!(card_json["reader"], card.reader.as_str());
        for (name, body) in &files {
            for f in ["11111111", "MARIO", "ROSSI", "RSSMRA80A01H501U", "6010000000000101"]
                .iter()
                .flat_map(|x| [x.to_string(), hex(x.as_bytes())])
            {
                assert!(!body.to_uppercase().contains(&f), "{name} holds {f}");
            }
        }
        drop(card);
    }
}
