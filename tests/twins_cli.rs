//! Strict real-card twins from the command line (issue 9 items 4-5): `image new --twin`, the
//! diagnostic on the genuine CNS 1.0 twin, and the renewal refused on it with the image and
//! the back office byte-identical.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, code, firmalab, out, root, s};

/// This test's own folder in the temporary folder, removed with its contents when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-twins-{name}"))
}

#[test]
fn image_new_twin_issues_each_twin_with_its_genuine_atr_and_no_extensions() {
    let dir = scratch("new");
    let help = out(&firmalab(&["image", "new", "--help"]));
    for (twin, atr, counts) in [
        ("cns-incard-1.0", "3BFF1800FF8131FE55006B02091303010101434E531031808D", false),
        ("cns-idemia-2021", "3BFF1800008131FE45006B05052000012101434E5310318079", true),
        ("oberthur-authentic", "3B7D180000003180718E6477E30200829000", false),
    ] {
        assert!(help.contains(twin), "--help names {twin}: {help}");
        let file = dir.join(format!("{twin}.json"));
        let o = firmalab(&["image", "new", "--twin", twin, "--out", s(&file), "--now", "2026-06-01", "--seed", twin]);
        assert_eq!(code(&o), 0, "{twin}: {}", out(&o));
        assert!(out(&o).contains("extensions   none: a strict twin of the genuine card"), "{}", out(&o));
        assert_eq!(out(&o).contains("status query counts as a failed attempt"), counts, "{}", out(&o));
        let image: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(image["atr"], atr, "{twin}");
        assert_eq!(image["extensions"], serde_json::json!([]), "{twin}");
        assert_eq!(image["tries_query_counts"].as_bool().unwrap_or(false), counts, "{twin}");
        assert!(image["description"].as_str().unwrap().starts_with("strict twin"), "{twin}");
    }
    // The twin decides the profile; a contradicting one is refused, nothing written.
    let other = dir.join("other.json");
    let o = firmalab(&["image", "new", "--twin", "oberthur-authentic", "--profile", "cns", "--out", s(&other)]);
    assert_ne!(code(&o), 0);
    assert!(
        out(&o).contains("--twin oberthur-authentic is personalised on --profile oberthur, not cns"),
        "{}",
        out(&o)
    );
    let o = firmalab(&["image", "new", "--twin", "incard", "--out", s(&other)]);
    assert_ne!(code(&o), 0);
    assert!(out(&o).contains("cns-incard-1.0, cns-idemia-2021, oberthur-authentic"), "{}", out(&o));
    assert!(!other.exists());
}

#[test]
fn on_the_genuine_cns_1_0_twin_the_diagnostic_passes_check_1_and_the_renewal_refuses_with_the_image_byte_identical() {
    let dir = scratch("renewal");
    let card = dir.join("card.json");
    std::fs::copy(root().join("fixtures/cards/twin-cns-incard-1.0.json"), &card).unwrap();
    let ra = dir.join("ra.json");
    std::fs::copy(root().join("fixtures/ra.json"), &ra).unwrap();
    let pin = dir.join("pin");
    std::fs::write(&pin, "12345678\n").unwrap();
    let card_before = std::fs::read(&card).unwrap();
    let ra_before = std::fs::read(&ra).unwrap();

    let o = firmalab(&["flow", "diagnostic", "--card", s(&card), "--now", "2026-06-01", "--ra", s(&ra), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
    let check1 = &report["details"]["checks"][0];
    assert_eq!(check1["status"], "pass", "{check1}");
    assert!(check1["detail"].as_str().unwrap().contains("ST Incard CNS 1.0, Aruba Digital Signature"), "{check1}");
    assert!(check1["detail"].as_str().unwrap().contains("RSA-2048"), "{check1}");

    let out_dir = dir.join("out");
    let o = firmalab(&[
        "flow",
        "renewal",
        "--ra",
        s(&ra),
        "--card",
        s(&card),
        "--pin-file",
        s(&pin),
        "--yes",
        "--email",
        "holder@example.it",
        "--mobile",
        "+393330000042",
        "--now",
        "2026-06-01",
        "--out-dir",
        s(&out_dir),
    ]);
    assert_eq!(code(&o), 1, "{}", out(&o));
    let text = out(&o);
    assert!(text.contains("renewal: refused, OnCardRenewalUnavailable"), "{text}");
    assert!(text.contains("vendor middleware") && text.contains("not public"), "{text}");
    assert_eq!(std::fs::read(&card).unwrap(), card_before, "the card image is byte-identical");
    assert_eq!(std::fs::read(&ra).unwrap(), ra_before, "the back office is byte-identical");
    assert!(!out_dir.exists(), "nothing written for the renewal");
}
