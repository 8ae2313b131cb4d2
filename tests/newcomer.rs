//! Day one with the installed binary: every command from any folder, cards for today, the
//! fixtures' back office, the hints a refused flow gives, shell completions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh folder outside the checkout, as a user's home would be.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("firmalab-newcomer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `firmalab ARGS` run in `cwd`.
fn firmalab_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firmalab")).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_card_issued_today_is_enrolled_and_renewed_from_a_folder_without_fixtures_and_without_now() {
    let home = scratch("home");
    let o = firmalab_in(&home, &["image", "new", "--profile", "cns", "--out", "c.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains(&format!("written to {}", home.join("c.json").display())), "{shown}");
    assert!(home.join("c.json").is_file());
    let o = firmalab_in(
        &home,
        &["ra", "enroll", "--card", "c.json", "--email", "mario.rossi@example.it", "--mobile", "+393330000001"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&home.join("firmalab-ra.json").display().to_string()));
    let o = firmalab_in(
        &home,
        &[
            "flow",
            "renewal",
            "--card",
            "c.json",
            "--pin",
            "12345678",
            "--email",
            "mario.rossi@example.it",
            "--mobile",
            "+393330000001",
            "--yes",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("renewal: AwaitingCdrlAuthorization"), "{}", text(&o));
    let out = home.join("firmalab-out");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&out.display().to_string()), "{}", text(&o));
    assert!(std::fs::read_dir(&out).unwrap().count() > 0, "the renewal's files are in the working directory");
}

#[test]
fn image_new_expires_in_sets_the_certificates_end_and_refuses_what_cannot_be_valid() {
    let home = scratch("expires");
    let o = firmalab_in(
        &home,
        &["image", "new", "--profile", "oberthur", "--out", "o.json", "--now", "2026-06-01", "--seed", "x"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("2023-07-01 .. 2026-07-01"), "30 days by default, 3 years long: {shown}");
    let o = firmalab_in(
        &home,
        &["image", "new", "--profile", "cns", "--out", "f.json", "--now", "2026-06-01", "--expires-in", "3y"],
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("2026-06-01 .. 2029-06-01"), "{}", text(&o));
    for bad in ["0d", "-5d", "4y", "30x"] {
        let o = firmalab_in(&home, &["image", "new", "--profile", "cns", "--out", "bad.json", "--expires-in", bad]);
        assert!(!o.status.success(), "--expires-in {bad} accepted");
        assert!(!home.join("bad.json").exists(), "nothing written for --expires-in {bad}");
    }
}

#[test]
fn a_fixture_past_its_dates_says_to_use_its_reference_date_or_image_new_and_how_to_enrol_it() {
    let home = scratch("hints");
    std::fs::copy(root().join("fixtures/cards/cns-expired.json"), home.join("card.json")).unwrap();
    let o = firmalab_in(&home, &["flow", "diagnostic", "--card", "card.json", "--pin", "12345678"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is the fixture cns-expired.json, built around the reference date 2026-06-01"), "{err}");
    assert!(err.contains("add --now 2026-06-01"), "{err}");
    assert!(err.contains("firmalab image new --profile cns --out card.json"), "{err}");
    assert!(
        err.contains("firmalab ra enroll --card card.json --email paolo.gialli@example.it --mobile +393330000005"),
        "the exact command: {err}"
    );
}

#[test]
fn the_shipped_back_office_has_the_fixture_cards_enrolled() {
    let home = scratch("fixture-ra");
    std::fs::copy(root().join("fixtures/cards/cns-renewable.json"), home.join("card.json")).unwrap();
    let ra = root().join("fixtures/ra.json");
    let o = firmalab_in(
        &home,
        &[
            "flow",
            "diagnostic",
            "--card",
            "card.json",
            "--pin",
            "12345678",
            "--now",
            "2026-06-01",
            "--ra",
            ra.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("10. back-office record"), "{}", text(&o));
    assert!(!text(&o).contains("ra enroll"), "{}", text(&o));
}
