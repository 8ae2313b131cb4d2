//! The transcript and scenario parsers on arbitrary bytes: never panic; placeholders of an
//! accepted transcript fill or fail with a message.
#![no_main]

use firmalab_harness::scenario::Scenario;
use firmalab_harness::transcript::{Transcript, fill};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = serde_json::from_slice::<Transcript>(data) {
        let _ = t.render();
        let secrets = vec![("pin".to_owned(), "12345678".to_owned()), ("puk".to_owned(), "87654321".to_owned())];
        for step in &t.steps {
            for e in &step.exchanges {
                let _ = fill(&e.command, &secrets);
                let _ = fill(&e.response, &secrets);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Scenario::parse(text);
    }
});
