//! Day one with the installed binary: every command from any folder, cards for today, the
//! fixtures' back office, the hints a refused flow gives, shell completions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{Scratch, out as text, root, with_stdout_closed};

/// A fresh folder outside the checkout, as a user's home would be; removed with its contents
/// when dropped.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-newcomer-{name}"))
}

/// `firmalab ARGS` run in `cwd`, as a user types it: not the shared `cli_support::command`,
/// which sets the checkout as the working directory and turns the support bundle off.
fn firmalab_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firmalab")).args(args).current_dir(cwd).output().unwrap()
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

#[test]
fn the_demo_generates_real_keys_or_says_its_keys_come_from_the_public_pool() {
    let home = scratch("demo");
    let o = firmalab_in(&home, &["demo", "--dir", "real"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let keys: Vec<&str> = out.lines().filter(|l| l.starts_with("  ok  KeysGenerated")).collect();
    assert_eq!(keys.len(), 2, "{out}");
    for l in &keys {
        assert!(l.contains("generated on the card (RSA-2048)") && !l.contains("pool"), "{l}");
    }
    assert!(home.join("real/ra.json").is_file(), "--dir is relative to the working directory");
    let o = firmalab_in(&home, &["demo", "--dir", "pooled", "--seed", "7"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let keys: Vec<&str> = out.lines().filter(|l| l.starts_with("  ok  KeysGenerated")).collect();
    assert_eq!(keys.len(), 2, "{out}");
    for l in &keys {
        assert!(l.contains("drawn from the public pool") && !l.contains("generated on the card"), "{l}");
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef firmalab"), ("fish", "complete -c firmalab")] {
        let o = firmalab_in(&std::env::temp_dir(), &["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", text(&o));
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(script.contains("renewal") && script.contains("--expires-in"), "{shell}: subcommands and flags");
    }
}

#[test]
fn completions_into_a_reader_that_stops_early_end_quietly_without_a_panic() {
    // Closed before firmalab writes, as `firmalab completions bash | head -1` can be.
    let o = with_stdout_closed(&["completions", "bash"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(0), "{err}");
}

/// Says why a PC/SC test cannot run (stderr, uncaptured), or fails when the stack is required.
fn skip(test: &str, why: &str) {
    assert!(!firmalab_harness::lab::required(), "{test}: the PC/SC stack is required but {why}");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

#[test]
fn the_echo_card_answers_9000_at_once_and_bench_shows_firmalab_against_that_floor() {
    let name = "the_echo_card_answers_9000_at_once_and_bench_shows_firmalab_against_that_floor";
    if !cfg!(feature = "pcsc") {
        return skip(name, "built without --features pcsc");
    }
    let mut lab = match firmalab_harness::lab::PcscLab::start() {
        Ok(lab) => lab,
        Err(firmalab_harness::lab::LabError::Unavailable(why)) => return skip(name, &why),
        Err(e) => panic!("{e}"),
    };
    let card = lab.insert_persona("cns").unwrap();
    let echo = lab.insert_echo().unwrap();
    let bin = env!("CARGO_BIN_EXE_firmalab");
    // Anything, even what no card accepts, gets 9000 from the echo card; the real one refuses.
    let o = lab.command(bin).args(["apdu", "--reader", &echo, "00B0000010", "FFFFFFFF"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "9000  success\n9000  success\n", "{}", text(&o));
    let o = lab.command(bin).args(["apdu", "--reader", &card, "FFFFFFFF"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).starts_with("9000"), "{}", text(&o));
    // apdu --repeat and bench report the same measurement.
    let o = lab.command(bin).args(["apdu", "--reader", &echo, "--repeat", "50", "00A4000C023F00"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("50 round trips: median "), "{}", text(&o));
    let o = lab
        .command(bin)
        .args(["bench", "--rounds", "1", "--seconds", "1", "--reader", &card, "--echo-reader", &echo])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in ["echo card, SELECT (9000 at once", "firmalab card, SELECT", "firmalab SELECT / echo floor, same round"]
    {
        assert!(out.contains(want), "missing {want:?}:\n{out}");
    }
    assert!(out.contains("signature sequence not measured"), "no PIN without --virtual-card:\n{out}");
}

#[test]
fn image_new_derives_the_codice_fiscale_from_the_names_and_enroll_refuses_a_holder_known_by_other_names() {
    let home = scratch("holders");
    let show = |file: &str| text(&firmalab_in(&home, &["image", "show", file]));
    // Names given, no --cf: the code follows from them (born 1980-01-01 in Rome).
    let o = firmalab_in(
        &home,
        &["image", "new", "--profile", "cns", "--out", "luigi.json", "--first-name", "Luigi", "--last-name", "Bianco"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(show("luigi.json").contains("LUIGI BIANCO (BNCLGU80A01H501"), "{}", show("luigi.json"));
    // The defaults are Mario Rossi's, as before.
    let o = firmalab_in(
        &home,
        &["image", "new", "--profile", "cns", "--out", "mario.json", "--serial", "6010000000009901"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(show("mario.json").contains("MARIO ROSSI (RSSMRA80A01H501U)"), "{}", show("mario.json"));
    let enroll = |card: &str, email: &str, mobile: &str| {
        firmalab_in(&home, &["ra", "enroll", "--card", card, "--email", email, "--mobile", mobile])
    };
    let o = enroll("mario.json", "mario.rossi@example.it", "+393330000001");
    assert!(o.status.success(), "{}", text(&o));
    // Mario Rossi's code on a card that names someone else: refused, the back office unchanged.
    let o = firmalab_in(
        &home,
        &[
            "image",
            "new",
            "--profile",
            "cns",
            "--out",
            "other.json",
            "--first-name",
            "Luigi",
            "--last-name",
            "Bianco",
            "--cf",
            "RSSMRA80A01H501",
            "--serial",
            "6010000000009902",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::read(home.join("firmalab-ra.json")).unwrap();
    let o = enroll("other.json", "luigi@example.it", "+393330000009");
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("HolderMismatch") && t.contains("MARIO ROSSI") && t.contains("LUIGI BIANCO"), "{t}");
    assert_eq!(std::fs::read(home.join("firmalab-ra.json")).unwrap(), before, "nothing enrolled, no contact rebound");
}
