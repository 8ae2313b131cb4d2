//! The Aruba Key from the command line (issue 14 item 7): `image new --variant aruba-key`,
//! `ra order` (phase 1) and `flow import --serial` (phase 2), with `flow renewal` refused
//! `ImportRequired` in between, as a holder or a support engineer types them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, code, firmalab, out, root, s};

const SERIAL: &str = "6010000000000106";

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-arubakey-{name}"))
}

#[test]
fn image_new_issues_an_aruba_key_with_the_incard_token_atr_and_only_on_the_cns_profile() {
    let dir = scratch("image");
    let key = dir.join("key.json");
    let o = firmalab(&[
        "image",
        "new",
        "--profile",
        "cns",
        "--variant",
        "aruba-key",
        "--out",
        s(&key),
        "--now",
        "2026-06-01",
    ]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    let image: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    assert_eq!(image["atr"], "3BFF1800FF8131FE55006B02090200011101434E531131808E");
    assert!(image["description"].as_str().unwrap().contains("model T&S DS/2048 (LB)"), "{}", image["description"]);
    // The host recognises it from the ATR alone: the Aruba token lot, and the Bit4id identity.
    let o =
        firmalab(&["flow", "diagnostic", "--card", s(&key), "--now", "2026-06-01", "--ra", s(&dir.join("ra.json"))]);
    assert!(out(&o).contains("ST Incard CNS 1.1, Aruba token"), "{}", out(&o));
    // The variant is a CNS product: on another profile it is refused and nothing is written.
    let other = dir.join("oberthur.json");
    let o = firmalab(&["image", "new", "--profile", "oberthur", "--variant", "aruba-key", "--out", s(&other)]);
    assert_ne!(code(&o), 0);
    assert!(out(&o).contains("--variant aruba-key is personalised on --profile cns"), "{}", out(&o));
    assert!(!other.exists());
    let o = firmalab(&["image", "new", "--profile", "cns", "--variant", "aruba", "--out", s(&other)]);
    assert_ne!(code(&o), 0);
    assert!(out(&o).contains("aruba-key"), "the known variants are named: {}", out(&o));
}

#[test]
fn ra_order_then_flow_import_renews_an_aruba_key_and_a_renewal_in_between_is_refused_import_required() {
    let dir = scratch("two-phase");
    let key = dir.join("key.json");
    std::fs::copy(root().join("fixtures/cards/aruba-key.json"), &key).unwrap();
    let pin = dir.join("pin");
    std::fs::write(&pin, "12345678\n").unwrap();
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ra, ca, out_dir) = (dir.join("ra.json"), root().join("fixtures/ca"), dir.join("out"));
    let o = firmalab(&[
        "ra",
        "enroll",
        "--ra",
        s(&ra),
        "--card",
        s(&key),
        "--email",
        "chiara.russo@example.it",
        "--mobile",
        "+393330000009",
        "--now",
        "2026-06-01",
    ]);
    assert_eq!(code(&o), 0, "{}", out(&o));

    // Phase 1: the order, as JSON.
    let o = firmalab(&[
        "ra",
        "order",
        "--ra",
        s(&ra),
        "--card",
        s(&key),
        "--pin-file",
        s(&pin),
        "--yes",
        "--now",
        "2026-06-01",
        "--ca",
        s(&ca),
        "--out-dir",
        s(&out_dir),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["outcome"]["state"], "AwaitingImport", "{report}");
    let scanned = report["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Scanned").unwrap();
    assert!(
        scanned["detail"]
            .as_str()
            .unwrap()
            .contains("Aruba Key: token label CNS, manufacturer ST Incard, model T&S DS/2048 (LB)"),
        "{scanned}"
    );
    let issued: Vec<String> = report["details"]["new_certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(issued.len(), 2);
    for f in ["O-000001-signature.cer", "O-000001-authentication.cer", "O-000001-signature.csr"] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    let after_order = std::fs::read(&key).unwrap();
    let shown = out(&firmalab(&["image", "show", s(&key)]));
    let colons =
        |hex: &str| hex.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
    assert!(issued.iter().all(|c| !shown.contains(&colons(c))), "not on the key before the import: {shown}");

    // In between: the Enroll renewal is refused before the PIN, the card untouched.
    let o = firmalab(&[
        "flow",
        "renewal",
        "--ra",
        s(&ra),
        "--card",
        s(&key),
        "--pin-file",
        s(&pin),
        "--yes",
        "--email",
        "chiara.russo@example.it",
        "--mobile",
        "+393330000009",
        "--now",
        "2026-06-02",
        "--ca",
        s(&ca),
        "--out-dir",
        s(&out_dir),
    ]);
    assert_eq!(code(&o), 1, "{}", out(&o));
    assert!(out(&o).contains("renewal: refused, ImportRequired"), "{}", out(&o));
    assert!(out(&o).contains(&format!("firmalab flow import --card … --serial {SERIAL}")), "{}", out(&o));
    assert_eq!(std::fs::read(&key).unwrap(), after_order, "a refused renewal changes nothing on the key");

    // Phase 2: the serial is asked for (no terminal: a usage error), must be the key's.
    let import = |serial: Option<&str>| {
        let mut a =
            vec!["flow", "import", "--ra", s(&ra), "--card", s(&key), "--pin-file", s(&pin), "--now", "2026-06-03"];
        if let Some(serial) = serial {
            a.extend(["--serial", serial]);
        }
        firmalab(&a)
    };
    let o = import(None);
    assert_eq!(code(&o), 2, "{}", out(&o));
    assert!(out(&o).contains("--serial"), "{}", out(&o));
    let o = import(Some("6010000000000101"));
    assert_eq!(code(&o), 1, "{}", out(&o));
    assert!(out(&o).contains("import: refused, WrongSerial"), "{}", out(&o));
    assert_eq!(std::fs::read(&key).unwrap(), after_order);
    let o = import(Some(SERIAL));
    assert_eq!(code(&o), 0, "{}", out(&o));
    assert!(out(&o).contains("import: CertificatesImported"), "{}", out(&o));
    let shown = out(&firmalab(&["image", "show", s(&key)]));
    for c in &issued {
        assert!(shown.contains(&colons(c)), "{c} on the key: {shown}");
    }
    let o = firmalab(&["ra", "events", "--ra", s(&ra), "--practice", "P-000002"]);
    assert!(out(&o).contains("ordine di rinnovo") && out(&o).contains("importazione certificati"), "{}", out(&o));
    assert!(out(&o).contains("Rinnovo completato"), "{}", out(&o));
    // Nothing more to import.
    let o = import(Some(SERIAL));
    assert_eq!(code(&o), 1, "{}", out(&o));
    assert!(out(&o).contains("NothingToImport"), "{}", out(&o));
}
