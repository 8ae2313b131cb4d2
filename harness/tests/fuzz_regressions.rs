//! Transcript and scenario inputs the fuzz target once found problems with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_harness::scenario::Scenario;
use firmalab_harness::transcript::{Transcript, fill};
use std::path::PathBuf;

#[test]
fn transcript_and_scenario_regressions_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/transcript_scenario");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        if let Ok(t) = serde_json::from_slice::<Transcript>(&data) {
            let _ = t.render();
            for step in &t.steps {
                for x in &step.exchanges {
                    let _ = fill(&x.command, &[("pin".into(), "12345678".into())]);
                }
            }
        }
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = Scenario::parse(text);
        }
        n += 1;
    }
    assert!(n > 0);
}
