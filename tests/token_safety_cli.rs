//! The command line on the rules that keep a real token safe (issue 9 items 1 and 3, issue 10
//! items 9 and 10): dry runs leave the image byte-identical, secrets come from files or
//! standard input, the default PIN only when asked, the last try only when allowed, PIN
//! APDUs never repeated against a reader without the flag, no secret in JSON or JUnit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, code as status, command, copy_fixture, no_pcscd, out as text, root, s};

fn firmalab(args: &[&str]) -> Output {
    firmalab_with_stdin(args, "")
}

/// Every run here gets `stdin` on its standard input (secrets are read from it) and never
/// reaches a pcscd this test did not start.
fn firmalab_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = no_pcscd(&mut command(args))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-safety-cli-{name}"))
}

/// A copy of a fixture with the tries of one PIN object set.
fn with_tries(name: &str, dir: &Path, reference: &str, tries: u8) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("fixtures/cards").join(name)).unwrap()).unwrap();
    for p in v["pins"].as_array_mut().unwrap() {
        if p["reference"] == reference {
            p["tries_left"] = tries.into();
        }
    }
    let dst = dir.join(format!("{reference}-{tries}-{name}"));
    std::fs::write(&dst, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    dst
}

#[test]
fn dry_runs_of_renewal_reset_pin_change_and_diagnostic_leave_the_image_byte_identical() {
    let dir = scratch("dry-run");
    for fixture in ["cns-renewable.json", "oberthur-renewable.json"] {
        let img = copy_fixture(fixture, &dir);
        let before = std::fs::read(&img).unwrap();
        let (ra, out) = (dir.join("ra.json"), dir.join("out"));
        let common = ["--card", s(&img), "--now", "2026-06-01", "--ra", s(&ra), "--dry-run"];
        for flow in [
            vec!["flow", "renewal", "--out-dir", s(&out), "--email", "m@example.it", "--mobile", "+393330000001"],
            vec!["flow", "reset"],
            vec!["flow", "pin-change"],
            vec!["flow", "diagnostic", "--pin", "12345678"],
        ] {
            let mut args = flow.clone();
            args.extend_from_slice(&common);
            let o = firmalab(&args);
            let t = text(&o);
            assert_eq!(status(&o), 0, "{fixture} {flow:?}: {t}");
            assert!(t.contains("dry run") && t.contains("(not sent: dry run)"), "{fixture} {flow:?}: {t}");
            assert!(t.contains("{pin:"), "the PIN as a placeholder: {t}");
            assert!(!t.contains("3132333435363738"), "{t}");
            assert_eq!(std::fs::read(&img).unwrap(), before, "{fixture} {flow:?}: the image changed");
            assert!(!ra.exists() && !out.exists(), "{fixture} {flow:?}: nothing written");
        }
    }
}

#[test]
fn dry_runs_of_a_scenario_and_a_replay_leave_the_image_byte_identical() {
    let dir = scratch("dry-run-scenario");
    let img = copy_fixture("cns-renewable.json", &dir);
    let before = std::fs::read(&img).unwrap();
    let o = firmalab(&["scenario", "fixtures/scenarios/cns-basics.json", "--card", s(&img), "--dry-run"]);
    let t = text(&o);
    assert_eq!(status(&o), 0, "{t}");
    assert!(t.contains("-- ") && t.contains("wrong PIN costs a try") && t.contains("stopped before VERIFY"), "{t}");
    assert!(t.contains("{pin:8:FF}") && t.contains("(not sent: dry run)"), "{t}");
    assert_eq!(std::fs::read(&img).unwrap(), before, "scenario dry run changed the image");

    // A transcript of a reset, replayed dry on a fresh copy: reads replayed, then it stops.
    let recorded = copy_fixture("oberthur-renewable.json", &dir);
    let transcript = dir.join("reset.json");
    let o = firmalab(&[
        "flow",
        "reset",
        "--card",
        s(&recorded),
        "--pin",
        "12345678",
        "--ra",
        s(&dir.join("ra.json")),
        "--transcript",
        s(&transcript),
    ]);
    assert_eq!(status(&o), 0, "{}", text(&o));
    let fresh_dir = scratch("dry-run-replay");
    let fresh = copy_fixture("oberthur-renewable.json", &fresh_dir);
    let before = std::fs::read(&fresh).unwrap();
    let o = firmalab(&["replay", s(&transcript), "--card", s(&fresh), "--dry-run"]);
    let t = text(&o);
    assert_eq!(status(&o), 0, "{t}");
    assert!(t.contains("read-only exchanges replayed; stopped before VERIFY"), "{t}");
    assert_eq!(std::fs::read(&fresh).unwrap(), before, "replay dry run changed the image");
}

#[test]
fn secrets_come_from_files_or_standard_input_never_only_the_command_line() {
    let dir = scratch("pin-files");
    let img = copy_fixture("cns-renewable.json", &dir);
    let (pin, new) = (dir.join("pin"), dir.join("new"));
    std::fs::write(&pin, "12345678\n").unwrap();
    std::fs::write(&new, "24682468\n").unwrap();
    #[cfg(unix)]
    for f in [&pin, &new] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = firmalab(&["flow", "pin-change", "--card", s(&img), "--pin-file", s(&pin), "--new-pin-file", s(&new)]);
    assert_eq!(status(&o), 0, "{}", text(&o));
    assert!(!text(&o).contains("readable by other users"), "{}", text(&o));
    // The new PIN from standard input, the current one from a file.
    std::fs::write(&pin, "24682468\n").unwrap();
    let o = firmalab_with_stdin(
        &["flow", "pin-change", "--card", s(&img), "--pin-file", s(&pin), "--new-pin-file", "-"],
        "13571357\n",
    );
    assert_eq!(status(&o), 0, "{}", text(&o));
    let o = firmalab(&["apdu", "--image", s(&img), "00A4080C0414008110", "0020009A083133353731333537"]);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("9000  success\n"), "{}", text(&o));
    // Usage errors: two secrets on standard input, a missing file, a world-readable one.
    let o = firmalab(&["flow", "pin-change", "--card", s(&img), "--pin-file", "-", "--new-pin-file", "-"]);
    assert_eq!(status(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("only one secret can come from standard input"), "{}", text(&o));
    let o = firmalab(&["flow", "pin-change", "--card", s(&img), "--pin-file", "/nonexistent", "--new-pin", "24682468"]);
    assert_eq!(status(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("--pin-file /nonexistent"), "{}", text(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&pin, "13571357\n").unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = firmalab(&["flow", "pin-change", "--card", s(&img), "--pin-file", s(&pin), "--new-pin", "12345678"]);
        assert_eq!(status(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("readable by other users"), "{}", text(&o));
    }
    let o = firmalab(&["flow", "pin-change", "--card", s(&img), "--new-pin", "24682468"]);
    assert_eq!(status(&o), 2);
    assert!(text(&o).contains("--pin is required (or --pin-file FILE"), "{}", text(&o));
}

#[test]
fn reset_sends_the_default_pin_only_with_default_pin_and_the_last_try_only_when_allowed() {
    let dir = scratch("default-pin");
    let blank = copy_fixture("cns-failed-issuance.json", &dir);
    let ra = dir.join("ra.json");
    let o = firmalab(&["flow", "reset", "--card", s(&blank), "--default-pin", "--ra", s(&ra)]);
    assert_eq!(status(&o), 0, "{}", text(&o));
    let o = firmalab(&["flow", "reset", "--card", s(&blank), "--default-pin", "--pin", "1", "--ra", s(&ra)]);
    assert_eq!(status(&o), 2, "--default-pin and --pin conflict: {}", text(&o));

    let last = with_tries("cns-renewable.json", &dir, "1A", 1);
    let args = ["flow", "pin-change", "--card", s(&last), "--pin", "12345678", "--new-pin", "24682468"];
    let o = firmalab(&args);
    assert_eq!(status(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("LastTry") && text(&o).contains("PIN CNS1 has 1 try left"), "{}", text(&o));
    let mut allowed = args.to_vec();
    allowed.push("--allow-last-try");
    let o = firmalab(&allowed);
    assert_eq!(status(&o), 0, "{}", text(&o));
}

#[test]
fn apdu_repeat_refuses_pin_apdus_without_the_virtual_card_flag() {
    let o = firmalab(&[
        "apdu",
        "--reader",
        "Virtual PCD 00 00",
        "--repeat",
        "50",
        "00A4080C0414008110",
        "0020009A083132333435363738",
    ]);
    assert_ne!(status(&o), 0);
    let t = text(&o);
    assert!(t.contains("VERIFY 0020009A") && t.contains("--virtual-card"), "{t}");
    assert!(!t.contains("PC/SC"), "refused before any PC/SC call: {t}");
    // With the flag the APDUs would go to the reader (here: no pcscd).
    let o = firmalab(&[
        "apdu",
        "--reader",
        "Virtual PCD 00 00",
        "--repeat",
        "50",
        "--virtual-card",
        "0020009A083132333435363738",
    ]);
    assert_ne!(status(&o), 0);
    assert!(!text(&o).contains("--virtual-card"), "{}", text(&o));
}

#[test]
fn json_junit_and_transcript_of_a_flow_hold_no_pin_or_puk() {
    let dir = scratch("no-secrets");
    let img = copy_fixture("oberthur-renewable.json", &dir);
    let (t, j) = (dir.join("t.json"), dir.join("j.xml"));
    let o = firmalab(&[
        "flow",
        "puk-change",
        "--card",
        s(&img),
        "--puk",
        "87654321",
        "--new-puk",
        "11112222",
        "--json",
        "--transcript",
        s(&t),
        "--junit",
        s(&j),
    ]);
    assert_eq!(status(&o), 0, "{}", text(&o));
    let outputs = [
        String::from_utf8_lossy(&o.stdout).into_owned(),
        std::fs::read_to_string(&t).unwrap(),
        std::fs::read_to_string(&j).unwrap(),
    ];
    for out in &outputs {
        for secret in ["87654321", "11112222", "3837363534333231", "3131313132323232"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
    }
}
