//! The `firmalab` command line as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, code as status, copy_fixture, firmalab, root, stdout, with_stdout_closed};

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-cli-{name}"))
}

#[test]
fn apdu_prints_one_line_per_response_with_sw_and_meaning() {
    let dir = scratch("apdu");
    let img = copy_fixture("cns-renewable.json", &dir);
    let before = std::fs::read(&img).unwrap();
    let o = firmalab(&[
        "apdu",
        "--image",
        img.to_str().unwrap(),
        "00A4080C0410001003",
        "00B0000010",
        "00A4040006A00000000101",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout(&o),
        "9000  success\n36303130303030303030303030313031 9000  success\n6A82  file or application not found\n"
    );
    assert_eq!(std::fs::read(&img).unwrap(), before, "nothing changed: the image is not rewritten");
}

#[test]
fn apdu_saves_the_image_when_a_counter_changes_and_raw_prints_bare_hex() {
    let dir = scratch("apdu-save");
    let img = copy_fixture("cns-renewable.json", &dir);
    let o = firmalab(&["apdu", "--raw", "--image", img.to_str().unwrap(), "00200090083131313131313131", "00200090"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "63C2\n63C2\n");
    let show = firmalab(&["image", "show", "--json", img.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["pins"][0]["tries_left"], 2);
}

#[test]
fn image_show_prints_profile_serial_tries_keys_and_certificates() {
    let o = firmalab(&["image", "show", "fixtures/cards/cns-pin-blocked.json"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for want in [
        "profile      cns",
        "serial       6010000000000103",
        "PIN CNS0   user BLOCKED",
        "PUK CNS0   puk  10/10 tries left",
        "3F00/1400/9010",
        "valid 2023-07-01 .. 2026-07-01",
        "LUCA VERDI",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    let o = firmalab(&["image", "show", "--json", "fixtures/cards/oberthur-renewable.json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["serial"], "1a2b3c4d");
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_input_gives_one_clear_line_and_a_failure_exit() {
    let dir = scratch("bad");
    let corrupt = dir.join("corrupt.json");
    std::fs::write(&corrupt, "{\"schema\": \"firmalab-card-image\", \"version\": 1").unwrap();
    for (args, want) in [
        (vec!["apdu", "--image", corrupt.to_str().unwrap(), "00A4000C023F00"], "card image"),
        (vec!["apdu", "--image", "fixtures/cards/cns-renewable.json", "00A4ZZ"], "not a hex digit"),
        (vec!["apdu", "--image", "fixtures/cards/cns-renewable.json", "00A4"], "shorter than the 4-byte header"),
        (vec!["image", "show", "/nonexistent.json"], "/nonexistent.json"),
    ] {
        let o = firmalab(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("firmalab: ") && err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(&corrupt).unwrap(),
        "{\"schema\": \"firmalab-card-image\", \"version\": 1",
        "left untouched"
    );
}

#[test]
fn image_new_issues_a_working_card_from_the_test_ca_and_refuses_to_overwrite() {
    let dir = scratch("new");
    let out = dir.join("new.json");
    let args = [
        "image",
        "new",
        "--profile",
        "oberthur",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "cli-test",
        "--now",
        "2026-06-01",
        "--first-name",
        "Chiara",
        "--last-name",
        "Esposito",
        "--cf",
        "SPSCHR92H41F839",
    ];
    let o = firmalab(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("CHIARA ESPOSITO"));
    // Renewable at the issue date by default: 30 days left, 3 years long.
    assert!(stdout(&o).contains("valid 2023-07-01 .. 2026-07-01"), "{}", stdout(&o));
    let again = firmalab(&args);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let o = firmalab(&[
        "apdu",
        "--image",
        out.to_str().unwrap(),
        "00A4040C10A000000077010303000000F100000002",
        "00A40000025011",
        "0020008100",
    ]);
    assert_eq!(stdout(&o).lines().last(), Some("63C3  verification failed, tries left (3)"));
}

#[test]
fn fixtures_regenerate_reproduces_the_committed_fixtures_byte_for_byte() {
    let dir = scratch("regen");
    let o = firmalab(&["fixtures", "regenerate", "--dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for sub in ["cards", "ca", "keys"] {
        for e in std::fs::read_dir(root().join("fixtures").join(sub)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap();
            assert_eq!(
                std::fs::read(&p).unwrap(),
                std::fs::read(dir.join(sub).join(name)).unwrap(),
                "{} differs",
                p.display()
            );
        }
    }
    assert_eq!(
        std::fs::read(root().join("fixtures/ra.json")).unwrap(),
        std::fs::read(dir.join("ra.json")).unwrap(),
        "fixtures/ra.json differs"
    );
}

#[test]
fn flow_diagnostic_json_transcript_junit_and_replay() {
    let dir = scratch("flow");
    let img = copy_fixture("cns-renewable.json", &dir);
    let ra = dir.join("ra.json");
    let (img_s, ra_s) = (img.to_str().unwrap(), ra.to_str().unwrap());
    let o = firmalab(&[
        "ra",
        "enroll",
        "--ra",
        ra_s,
        "--card",
        img_s,
        "--email",
        "m@example.it",
        "--mobile",
        "+393331112222",
        "--now",
        "2026-06-01",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = dir.join("t.json");
    let j = dir.join("junit.xml");
    let o = firmalab(&[
        "flow",
        "diagnostic",
        "--card",
        img_s,
        "--pin",
        "12345678",
        "--now",
        "2026-06-01",
        "--ra",
        ra_s,
        "--json",
        "--transcript",
        t.to_str().unwrap(),
        "--junit",
        j.to_str().unwrap(),
    ]);
    assert_eq!(status(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"]["outcome"], "done");
    assert_eq!(v["details"]["checks"].as_array().unwrap().len(), 10);
    let junit = std::fs::read_to_string(&j).unwrap();
    assert!(junit.contains("<testsuite name=\"firmalab.diagnostic\" tests=\"11\" failures=\"0\""), "{junit}");
    let transcript = std::fs::read_to_string(&t).unwrap();
    assert!(transcript.contains("{pin:8:FF}") && !transcript.contains("3132333435363738"));
    // Replay on a fresh copy of the same card: identical; without the PIN: a clear error.
    let fresh = dir.join("fresh.json");
    std::fs::copy(root().join("fixtures/cards/cns-renewable.json"), &fresh).unwrap();
    let o = firmalab(&["replay", t.to_str().unwrap(), "--card", fresh.to_str().unwrap(), "--secret", "pin=12345678"]);
    assert_eq!(status(&o), 0, "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("every response as recorded"));
    let other = copy_fixture("cns-expired.json", &dir);
    let o = firmalab(&["replay", t.to_str().unwrap(), "--card", other.to_str().unwrap(), "--secret", "pin=12345678"]);
    assert_eq!(status(&o), 1);
    assert!(stdout(&o).contains("first divergence in step Diagnostic"), "{}", stdout(&o));
}

#[test]
fn flow_exit_codes_say_done_refused_usage_and_card_failure() {
    let dir = scratch("codes");
    let img = copy_fixture("cns-renewable.json", &dir);
    let img_s = img.to_str().unwrap();
    let o = firmalab(&["flow", "pin-change", "--card", img_s, "--pin", "11111111", "--new-pin", "24682468"]);
    assert_eq!(status(&o), 1, "refused: wrong PIN");
    assert!(stdout(&o).contains("WrongPin") && stdout(&o).contains("2 tries left"), "{}", stdout(&o));
    let o = firmalab(&["flow", "pin-change", "--card", img_s, "--new-pin", "24682468"]);
    assert_eq!(status(&o), 2, "usage: no PIN and no terminal");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pin is required"));
    let o = firmalab(&["flow", "pin-change", "--card", "/nonexistent.json", "--pin", "1", "--new-pin", "24682468"]);
    assert_eq!(status(&o), 3, "card failure");
    let o = firmalab(&["flow", "pin-change", "--card", img_s, "--pin", "12345678", "--new-pin", "24682468"]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
    // The image was saved: the new PIN works in the next run.
    let o = firmalab(&["flow", "pin-change", "--card", img_s, "--pin", "24682468", "--new-pin", "12345678"]);
    assert_eq!(status(&o), 0, "{}", stdout(&o));
}

#[test]
fn flow_renewal_on_the_command_line_then_ra_authorize() {
    let dir = scratch("renewal");
    let img = copy_fixture("oberthur-renewable.json", &dir);
    let ra = dir.join("ra.json");
    let out = dir.join("out");
    let (img_s, ra_s) = (img.to_str().unwrap(), ra.to_str().unwrap());
    assert!(
        firmalab(&[
            "ra",
            "enroll",
            "--ra",
            ra_s,
            "--card",
            img_s,
            "--email",
            "g@example.it",
            "--mobile",
            "+393330000009",
            "--now",
            "2026-06-01"
        ])
        .status
        .success()
    );
    let args = [
        "flow",
        "renewal",
        "--card",
        img_s,
        "--pin",
        "12345678",
        "--email",
        "g@example.it",
        "--mobile",
        "+393330000009",
        "--now",
        "2026-06-01",
        "--ra",
        ra_s,
        "--out-dir",
        out.to_str().unwrap(),
    ];
    let o = firmalab(&args);
    assert_eq!(status(&o), 1, "without --yes the decryption-key warning stops it: {}", stdout(&o));
    assert!(stdout(&o).contains("DecryptionKeyWarningNotAccepted"));
    let mut with_yes = args.to_vec();
    with_yes.push("--yes");
    let o = firmalab(&with_yes);
    assert_eq!(status(&o), 0, "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("renewal: AwaitingCdrlAuthorization"), "{}", stdout(&o));
    let o = firmalab(&["ra", "show", "--ra", ra_s]);
    assert!(stdout(&o).contains("AwaitingCdrlAuthorization"), "{}", stdout(&o));
    let o = firmalab(&["ra", "authorize", "--ra", ra_s, "P-000002", "--now", "2026-06-02"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("2 certificate(s) active"));
    let o = firmalab(&["image", "show", img_s]);
    assert!(stdout(&o).contains("valid 2026-06-01 .. 2029-07-01"), "{}", stdout(&o));
}

#[test]
fn demo_runs_every_flow_on_fixture_copies() {
    let dir = scratch("demo");
    let o = firmalab(&["demo", "--dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = stdout(&o);
    for want in [
        "diagnostic: Renewable",
        "renewal: AwaitingCdrlAuthorization",
        "2 certificate(s) active",
        "pin-unblock: PinUnblocked",
        "reset: Reset",
    ] {
        assert!(s.contains(want), "missing {want:?}\n{s}");
    }
    assert!(dir.join("ra.json").exists());
}

#[test]
fn truncated_transcript_unknown_reader_and_no_pcscd_give_one_line_errors_and_touch_nothing() {
    let dir = scratch("bad-inputs");
    let img = copy_fixture("cns-renewable.json", &dir);
    let img_s = img.to_str().unwrap();
    let before = std::fs::read(&img).unwrap();
    let t = dir.join("t.json");
    let o = firmalab(&[
        "flow",
        "diagnostic",
        "--card",
        img_s,
        "--pin",
        "12345678",
        "--now",
        "2026-06-01",
        "--ra",
        dir.join("ra.json").to_str().unwrap(),
        "--transcript",
        t.to_str().unwrap(),
    ]);
    assert!(t.exists(), "{}", String::from_utf8_lossy(&o.stderr));
    let full = std::fs::read(&t).unwrap();
    std::fs::write(&t, &full[..full.len() / 2]).unwrap();
    let img_now = std::fs::read(&img).unwrap();
    let one_line_failure = |args: &[&str], want: &str| {
        let o = firmalab(args);
        assert_ne!(status(&o), 0, "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("firmalab: ") && err.lines().count() == 1 && err.contains(want), "{args:?}: {err}");
    };
    one_line_failure(
        &["replay", t.to_str().unwrap(), "--card", img_s, "--secret", "pin=12345678"],
        "EOF while parsing",
    );
    assert_eq!(std::fs::read(&img).unwrap(), img_now, "replay of a bad transcript sends nothing");
    // Cards in readers: without PC/SC support, or with no pcscd behind the socket.
    let o = Command::new(env!("CARGO_BIN_EXE_firmalab"))
        .args(["flow", "diagnostic", "--card", "reader:Nope", "--ra", dir.join("ra.json").to_str().unwrap()])
        .env("PCSCLITE_CSOCK_NAME", dir.join("no-pcscd.comm"))
        .output()
        .unwrap();
    assert_eq!(status(&o), 3);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().count() == 1 && (err.contains("no PC/SC service") || err.contains("--features pcsc")), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_firmalab"))
        .args(["readers"])
        .env("PCSCLITE_CSOCK_NAME", dir.join("no-pcscd.comm"))
        .output()
        .unwrap();
    assert_ne!(status(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().count() == 1 && (err.contains("no PC/SC service") || err.contains("--features pcsc")), "{err}");
    drop(before);
}

#[test]
fn output_piped_into_a_reader_that_quits_stops_quietly_without_a_panic() {
    // `firmalab image show … | head -0`: the reader is gone before firmalab writes.
    let fixture = root().join("fixtures/cards/cns-renewable.json");
    for args in [vec!["image", "show", "--json"], vec!["image", "show"]] {
        let o = with_stdout_closed(&[args.as_slice(), &[fixture.to_str().unwrap()]].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(matches!(o.status.code(), Some(0 | 141)), "{args:?}: {:?} {err}", o.status);
    }
}
