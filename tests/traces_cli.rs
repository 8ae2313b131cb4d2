//! `firmalab trace import|show|replay` and `firmalab replay` of a trace, as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, firmalab, out, root, s};

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-trace-cli-{name}"))
}

#[test]
fn import_writes_a_trace_summarises_it_and_refuses_to_overwrite() {
    let dir = scratch("import");
    let trace = dir.join("verify.json");
    let log = root().join("fixtures/traces/raw/cns-verify-pin.pcsc-spy.log");
    let o = firmalab(&["trace", "import", s(&log), "--out", s(&trace)]);
    assert!(o.status.success(), "{}", out(&o));
    let t = out(&o);
    assert!(t.starts_with("pcsc-spy log cns-verify-pin.pcsc-spy.log ("), "{t}");
    assert!(t.contains("secret {secret1:8:FF} in VERIFY P2=90 (line "), "{t}");
    assert!(t.contains("give it to replay with --secret"), "{t}");
    let json = std::fs::read_to_string(&trace).unwrap();
    assert!(json.contains("\"schema\": \"firmalab-trace\"") && !json.contains("3132333435363738"));
    let o = firmalab(&["trace", "import", s(&log), "--out", s(&trace)]);
    assert!(!o.status.success() && out(&o).contains("exists; pass --force"), "{}", out(&o));
    // Without --out the trace goes to stdout; --format is checked against the file.
    let o = firmalab(&["trace", "import", s(&log), "--format", "pcscd", "--secret", "pin=12345678"]);
    assert!(!o.status.success(), "a pcsc-spy log read as pcscd's: {}", out(&o));
    assert!(out(&o).contains("no APDU found in this pcscd log"), "{}", out(&o));
    let o = firmalab(&["trace", "import", s(&log), "--secret", "pin=12345678"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0020009008{pin:8:FF}"));
    let o = firmalab(&["trace", "import", s(&log), "--format", "nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn show_lists_connections_transactions_and_what_each_command_does() {
    let o = firmalab(&["trace", "show", s(&root().join("fixtures/traces/cns-pin-change.json"))]);
    assert!(o.status.success(), "{}", out(&o));
    let t = out(&o);
    assert!(t.contains("connection 3 to Virtual PCD 00 0") || t.contains("connection 1 to Virtual PCD 00 0"), "{t}");
    assert!(t.contains("CHANGE REFERENCE DATA (sends a secret)\n    > 0024009A10{pin:8:FF}{new_pin:8:FF}"), "{t}");
    assert!(t.contains("SELECT (read-only)"));
}

#[test]
fn replay_of_a_trace_reports_equal_and_divergent_runs_with_exit_codes() {
    let trace = root().join("fixtures/traces/cns-pin-change.json");
    let cns = root().join("fixtures/cards/cns-renewable.json");
    let before = std::fs::read(&cns).unwrap();
    // `firmalab replay` hands a trace to the trace replay.
    let o =
        firmalab(&["replay", s(&trace), "--card", s(&cns), "--secret", "pin=12345678", "--secret", "new_pin=24682468"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    // Every command of the recording equal (the count is the recording's own).
    let text = out(&o);
    let summary = text.lines().find(|l| l.contains(" commands: ")).unwrap_or_default();
    let total = summary.split(" commands: ").next().unwrap_or_default().trim();
    assert!(
        !total.is_empty()
            && summary.ends_with(&format!(
                "{total} commands: {total} equal, 0 differ, 0 not comparable, 0 not sent (0 card resets replayed)"
            )),
        "{text}"
    );
    assert_eq!(std::fs::read(&cns).unwrap(), before, "the image is not saved without --save");
    let ob = root().join("fixtures/cards/oberthur-renewable.json");
    let o = firmalab(&["trace", "replay", s(&trace), "--card", s(&ob), "--secret", "pin=1", "--secret", "new_pin=2"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("ATR differs") && out(&o).contains("DIFFERS: status word"), "{}", out(&o));
    let o = firmalab(&["trace", "replay", s(&trace), "--card", s(&cns)]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("needs secrets that were not given: pin {pin:8:FF}"), "{}", out(&o));
    let o = firmalab(&["trace", "replay", s(&trace), "--card", s(&cns), "--secret", "pin"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    // The same secrets from files (a real token's PIN never on the command line), through
    // both `trace replay` and `replay`: every command equal again.
    let dir = scratch("secret-files");
    let (pin, new_pin) = (dir.join("pin"), dir.join("new-pin"));
    std::fs::write(&pin, "12345678\n").unwrap();
    std::fs::write(&new_pin, "24682468\n").unwrap();
    let (pin_arg, new_pin_arg) = (format!("pin={}", s(&pin)), format!("new_pin={}", s(&new_pin)));
    for cmd in [&["trace", "replay"][..], &["replay"][..]] {
        let mut args = cmd.to_vec();
        args.extend([s(&trace), "--card", s(&cns), "--secret-file", &pin_arg, "--secret-file", &new_pin_arg]);
        let o = firmalab(&args);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}: {}", out(&o));
        assert!(out(&o).contains(" 0 differ, 0 not comparable, 0 not sent"), "{cmd:?}: {}", out(&o));
    }
    let o = firmalab(&["trace", "replay", s(&trace), "--card", s(&cns), "--secret-file", "pin"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("expected NAME=FILE"), "{}", out(&o));
    // The whole report as JSON, one verdict per command.
    let o = firmalab(&[
        "trace",
        "replay",
        s(&trace),
        "--card",
        s(&cns),
        "--secret",
        "pin=12345678",
        "--secret",
        "new_pin=24682468",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Every command of the recording (61: two certificates read in 255-byte chunks) is equal.
    let n = v["results"].as_array().unwrap().len();
    assert!(n > 50, "{n} commands");
    assert_eq!(v["summary"]["equal"], n);
    assert_eq!(v["results"][0]["verdict"], "equal");
}

#[test]
fn dry_run_and_save_on_an_image() {
    let dir = scratch("save");
    let img = dir.join("card.json");
    std::fs::copy(root().join("fixtures/cards/cns-renewable.json"), &img).unwrap();
    let before = std::fs::read(&img).unwrap();
    let trace = root().join("fixtures/traces/cns-pin-change.json");
    let o = firmalab(&["trace", "replay", s(&trace), "--card", s(&img), "--dry-run", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let t = out(&o);
    assert!(t.contains("not sent: dry run: stops at the first command that sends a secret"), "{t}");
    assert!(t.contains("dry run: ") && t.contains(" equal\n"), "{t}");
    assert_eq!(std::fs::read(&img).unwrap(), before);
    let o = firmalab(&[
        "trace",
        "replay",
        s(&trace),
        "--card",
        s(&img),
        "--save",
        "--secret",
        "pin=12345678",
        "--secret",
        "new_pin=24682468",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let after = std::fs::read_to_string(&img).unwrap();
    assert!(after.contains("24682468"), "the changed PIN is saved with --save");
    std::fs::remove_dir_all(&dir).unwrap();
}
