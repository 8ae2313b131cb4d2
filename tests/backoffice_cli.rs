//! `firmalab ra …` as a CDRL operator runs it: reason codes on refusal (text and JSON), the
//! outbox files, the event log, renewal notices, and `flow renewal --cdrl`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, firmalab, out, root, s};

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-racli-{name}"))
}

#[test]
fn a_cdrl_operator_enrolls_resends_codes_and_is_refused_on_another_cdrls_card() {
    let dir = scratch("ops");
    let img = dir.join("card.json");
    std::fs::copy(root().join("fixtures/cards/cns-renewable.json"), &img).unwrap();
    let (ra, outbox) = (dir.join("ra.json"), dir.join("outbox"));
    let ra_cmd = |args: &[&str]| {
        let mut a = vec!["ra"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--ra", s(&ra)]);
        if !matches!(args[0], "events" | "show") {
            a.extend_from_slice(&["--now", "2026-06-01"]);
        }
        firmalab(&a)
    };
    let o = ra_cmd(&[
        "enroll",
        "--card",
        s(&img),
        "--cdrl",
        "CDRL-MILANO-02",
        "--email",
        "Mario.Rossi@Example.it",
        "--mobile",
        "333 000 0001",
        "--address",
        "Via Roma 1, Milano",
        "--pin",
        "12345678",
        "--puk",
        "87654321",
        "--outbox",
        s(&outbox),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("practice P-000001 (Attesa Originali)"), "{}", out(&o));
    let files: Vec<PathBuf> = std::fs::read_dir(&outbox).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2);
    for f in &files {
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    assert!(!out(&o).contains("5678"), "no code on the terminal");

    // Renewing as another CDRL is refused before any key is touched.
    let before = std::fs::read(&img).unwrap();
    let o = firmalab(&[
        "flow",
        "renewal",
        "--card",
        s(&img),
        "--pin",
        "12345678",
        "--email",
        "mario.rossi@example.it",
        "--mobile",
        "+393330000001",
        "--yes",
        "--cdrl",
        "CDRL-ROMA-01",
        "--ra",
        s(&ra),
        "--now",
        "2026-06-01",
        "--out-dir",
        s(&dir.join("out")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("IssuedByOtherCdrl"), "{}", out(&o));
    let after = std::fs::read(&img).unwrap();
    let keys = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap()["keys"].clone();
    assert_eq!(keys(&before), keys(&after), "keys untouched");

    // Revoking as another CDRL: refused with the FAQ's path; JSON carries the code.
    let o = ra_cmd(&["revoke", "--card", "6010000000000101", "--cdrl", "CDRL-ROMA-01", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "refused");
    assert_eq!(v["code"], "IssuedByOtherCdrl");
    assert!(v["message"].as_str().unwrap().contains("Revoca carta"), "{v}");
    let o = ra_cmd(&["revoke", "--cdrl", "CDRL-MILANO-02"]);
    assert_eq!(o.status.code(), Some(2), "--card or --cert is required: {}", out(&o));

    // The event log with types; the second half sent again from the form-creation event.
    let o = ra_cmd(&["events", "--practice", "P-000001"]);
    let t = out(&o);
    assert!(
        t.contains("creazione modulo") && t.contains("invio codici") && t.contains("ra resend-codes P-000001"),
        "{t}"
    );
    let o = ra_cmd(&["resend-codes", "P-000001", "--cdrl", "CDRL-MILANO-02", "--outbox", s(&outbox)]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 3);
    let o = ra_cmd(&["resend-codes", "P-000001", "--outbox", s(&outbox)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("refused, PracticeOfOtherCdrl"), "{}", out(&o));
    let o = ra_cmd(&["events", "--holder", "rssmra80a01h501u", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().last().unwrap()["kind"], "codes_resent");

    // Renewal notices: one message per holder.
    let notices = dir.join("notices");
    let o = ra_cmd(&["due", "--within", "60d", "--outbox", s(&notices)]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("2 certificate(s) of 1 holder(s) expire by 2026-07-31"), "{}", out(&o));
    let mail = std::fs::read_to_string(notices.join("renewal-notice-2026-06-01-RSSMRA80A01H501U.eml")).unwrap();
    assert!(
        mail.starts_with("Date: Mon, 01 Jun 2026 00:00:00 +0000\r\n") && mail.contains("To: mario.rossi@example.it")
    );

    // `ra show` never prints the kept half of the codes.
    let o = ra_cmd(&["show", "--json"]);
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(t.contains("\"second_half\"") && !t.contains("5678") && !t.contains("4321"), "{t}");
    assert!(t.contains("\"address\": \"Via Roma 1, Milano\""), "{t}");

    // A diagnostic told to ask an OCSP responder that does not answer stops (exit 3) and says so.
    let o = firmalab(&[
        "flow",
        "diagnostic",
        "--card",
        s(&img),
        "--pin",
        "12345678",
        "--now",
        "2026-06-01",
        "--ra",
        s(&ra),
        "--ocsp",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(out(&o).contains("OCSP responder http://127.0.0.1:1"), "{}", out(&o));
}
