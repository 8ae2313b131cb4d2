//! The scenario files under fixtures/scenarios run in-process on their fixture cards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::client::SecretPolicy;
use firmalab_harness::scenario::{self, Options, Scenario};
use firmalab_harness::transport::in_process::InProcess;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn card(name: &str) -> Box<InProcess> {
    let img = CardImage::load(&root().join("fixtures/cards").join(name)).unwrap();
    Box::new(InProcess::ephemeral(img, CardRng::insecure_deterministic(1), name))
}

/// The scenario files run on the virtual cards they were written for: the Oberthur one blocks
/// the PIN on purpose, so it declares the card virtual (as `--virtual-card` does).
#[test]
fn fixture_scenarios_pass_in_process() {
    for (file, fixture, virtual_card) in
        [("cns-basics.json", "cns-renewable.json", false), ("oberthur-basics.json", "oberthur-renewable.json", true)]
    {
        let s = Scenario::load(&root().join("fixtures/scenarios").join(file)).unwrap();
        let policy = SecretPolicy { virtual_card, ..SecretPolicy::default() };
        let results =
            scenario::run_with(&s, card(fixture), Options { policy, raw_secrets: true, ..Options::default() }).unwrap();
        assert_eq!(results.len(), s.steps.len(), "{file}: stopped early: {results:#?}");
        assert!(results.iter().all(|r| r.passed), "{file}: {results:#?}");
    }
}

/// Without `--virtual-card`, the same scenario is held to the rules of a real token: the
/// second attempt with a PIN the card refused is not sent, and the step says why.
#[test]
fn a_scenario_never_sends_a_refused_pin_twice_unless_the_card_is_declared_virtual() {
    let s = Scenario::load(&root().join("fixtures/scenarios/oberthur-basics.json")).unwrap();
    let t = card("oberthur-renewable.json");
    let results = scenario::run_with(&s, t, Options { raw_secrets: true, ..Options::default() }).unwrap();
    let last = results.last().unwrap();
    assert_eq!(last.name, "wrong PIN 2");
    assert!(!last.passed);
    assert!(last.detail.contains("PinAlreadyRejected"), "{}", last.detail);
}

/// Raw APDUs carrying a PIN are refused where a wrong value would cost a try of a real token.
#[test]
fn raw_secret_apdus_in_a_scenario_need_the_card_declared_virtual() {
    let base = r#"{"schema":"firmalab-scenario","version":1,"name":"x","steps":[STEP]}"#;
    let s = Scenario::parse(
        &base.replace("STEP", r#"{"step":"apdu","name":"verify","command":"00200090083132333435363738"}"#),
    )
    .unwrap();
    let e = scenario::run_with(&s, card("cns-renewable.json"), Options::default()).unwrap_err().to_string();
    assert!(e.contains("raw APDU") && e.contains("--virtual-card"), "{e}");
    let ok = scenario::run_with(&s, card("cns-renewable.json"), Options { raw_secrets: true, ..Options::default() });
    assert!(ok.unwrap()[0].passed);
}

#[test]
fn a_failing_step_stops_the_scenario_and_says_what_came_back() {
    let s = Scenario::load(&root().join("fixtures/scenarios/cns-basics.json")).unwrap();
    let results =
        scenario::run_with(&s, card("cns-expired.json"), Options { raw_secrets: true, ..Options::default() }).unwrap();
    let last = results.last().unwrap();
    assert!(!last.passed);
    assert_eq!(last.name, "read the serial");
    assert_eq!(last.detail, "< 363031303030303030303030303130359000");
    let e = scenario::run(&s, card("oberthur-renewable.json")).unwrap_err().to_string();
    assert!(e.contains("for cns cards"), "{e}");
}

#[test]
fn scenario_files_reject_unknown_fields_and_bad_apdus() {
    let base = r#"{"schema":"firmalab-scenario","version":1,"name":"x","steps":[STEP]}"#;
    let e = Scenario::parse(&base.replace("STEP", r#"{"step":"apdu","name":"a","command":"00A4","colour":"red"}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = Scenario::parse(&base.replace("STEP", r#"{"step":"teleport","name":"a"}"#)).unwrap_err().to_string();
    assert!(e.contains("unknown variant `teleport`"), "{e}");
    let e = Scenario::parse(&base.replace("STEP", r#"{"step":"apdu","name":"a","command":"00A4000003AA"}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a well-formed APDU"), "{e}");
    assert!(Scenario::parse(&base.replace("STEP", r#"{"step":"apdu","name":"a","command":"00A4000C023F00"}"#)).is_ok());
}

#[test]
fn a_scenario_or_transcript_with_a_key_twice_is_refused_naming_the_place() {
    // serde_json would keep the last `card`: which card the file means would be a guess.
    let text = std::fs::read_to_string(root().join("fixtures/scenarios/cns-basics.json")).unwrap();
    let twice = text.replacen('{', "{\"schema\": \"x\",", 1);
    let e = Scenario::parse(&twice).expect_err("a key twice is refused").to_string();
    assert!(e.contains("schema") && e.contains("twice"), "{e}");
    // Inside a step too: which command would the step send?
    let twice = text.replacen(
        "\"command\": \"00A4040006A00000000101\"",
        "\"command\": \"00A4040006A00000000101\", \"command\": \"00E4000000\"",
        1,
    );
    assert_ne!(twice, text);
    let e = Scenario::parse(&twice).expect_err("a step's key twice is refused").to_string();
    assert!(e.contains("steps[0]") && e.contains("command") && e.contains("twice"), "{e}");
    assert!(Scenario::parse(&text).is_ok(), "the file itself parses");

    let tmp = tempfile::Builder::new().prefix("firmalab-dup-").tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("t.json");
    let t = firmalab_harness::transcript::Transcript {
        schema: "firmalab-transcript".into(),
        version: 1,
        flow: "diagnostic".into(),
        profile: "cns".into(),
        atr: "3B".into(),
        steps: vec![],
    };
    let good = serde_json::to_string_pretty(&t).unwrap();
    std::fs::write(&file, &good).unwrap();
    assert!(firmalab_harness::transcript::Transcript::load(&file).is_ok(), "a well-formed transcript loads");
    std::fs::write(&file, good.replacen('{', "{\"flow\": \"reset\",", 1)).unwrap();
    let e = firmalab_harness::transcript::Transcript::load(&file).expect_err("refused").to_string();
    assert!(e.contains("flow") && e.contains("twice"), "{e}");
}
