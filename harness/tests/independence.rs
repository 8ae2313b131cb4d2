//! The harness's card clients, flows, transcripts, scenarios, wire knowledge and PC/SC
//! transport own their constants, encoders and decoders: none of them may use the emulator
//! crate, so every harness test is an independent witness of the card (a wrong encoder in the
//! card cannot hide behind the same code on the host side). Only the in-process transport,
//! fixtures and personalisation, the fuzz corpus and image inspection may.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn sources(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            sources(&e.unwrap().path(), out);
        }
    } else if p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    }
}

#[test]
fn clients_flows_transcripts_scenarios_and_the_pcsc_transport_do_not_mention_the_emulator() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    for p in [
        "client",
        "flows",
        "wire",
        "transcript.rs",
        "scenario.rs",
        "transport/pcsc.rs",
        "transport/mod.rs",
        "transport/gate.rs",
        "transport/fault.rs",
    ] {
        let path = src.join(p);
        assert!(path.exists(), "{} is gone: update this test", path.display());
        sources(&path, &mut files);
    }
    assert!(files.len() >= 14, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            assert!(
                !line.contains("firmalab_emulator") && !line.contains("firmalab-emulator"),
                "{}:{}: {line}",
                f.display(),
                i + 1
            );
        }
    }
}
