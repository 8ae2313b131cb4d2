//! The scenario files under fixtures/scenarios run in-process on their fixture cards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_emulator::{CardImage, CardRng};
use firmalab_harness::scenario::{self, Scenario};
use firmalab_harness::transport::in_process::InProcess;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn card(name: &str) -> Box<InProcess> {
    let img = CardImage::load(&root().join("fixtures/cards").join(name)).unwrap();
    Box::new(InProcess::ephemeral(img, CardRng::insecure_deterministic(1), name))
}

#[test]
fn fixture_scenarios_pass_in_process() {
    for (file, fixture) in
        [("cns-basics.json", "cns-renewable.json"), ("oberthur-basics.json", "oberthur-renewable.json")]
    {
        let s = Scenario::load(&root().join("fixtures/scenarios").join(file)).unwrap();
        let results = scenario::run(&s, card(fixture)).unwrap();
        assert_eq!(results.len(), s.steps.len(), "{file}: stopped early: {results:#?}");
        assert!(results.iter().all(|r| r.passed), "{file}: {results:#?}");
    }
}

#[test]
fn a_failing_step_stops_the_scenario_and_says_what_came_back() {
    let s = Scenario::load(&root().join("fixtures/scenarios/cns-basics.json")).unwrap();
    let results = scenario::run(&s, card("cns-expired.json")).unwrap();
    let last = results.last().unwrap();
    assert!(!last.passed);
    assert_eq!(last.name, "read the serial");
    assert_eq!(last.detail, "< 363031303030303030303030303130359000");
    let e = scenario::run(&s, card("oberthur-renewable.json")).unwrap_err();
    assert!(e.contains("for cns cards"), "{e}");
}

#[test]
fn scenario_files_reject_unknown_fields_and_bad_apdus() {
    let base = r#"{"schema":"firmalab-scenario","version":1,"name":"x","steps":[STEP]}"#;
    let e = Scenario::parse(&base.replace("STEP", r#"{"step":"apdu","name":"a","command":"00A4","colour":"red"}"#))
        .unwrap_err();
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = Scenario::parse(&base.replace("STEP", r#"{"step":"teleport","name":"a"}"#)).unwrap_err();
    assert!(e.contains("unknown variant `teleport`"), "{e}");
    let e =
        Scenario::parse(&base.replace("STEP", r#"{"step":"apdu","name":"a","command":"00A4000003AA"}"#)).unwrap_err();
    assert!(e.contains("not a well-formed APDU"), "{e}");
    assert!(Scenario::parse(&base.replace("STEP", r#"{"step":"apdu","name":"a","command":"00A4000C023F00"}"#)).is_ok());
}
