//! The conformance corpus (`fixtures/traces/`): real sessions of OpenSC's tools (and of
//! firmalab's own PC/SC client) against each fixture card through pcscd + vpcd, imported as
//! traces. `corpus.json` says how each one is recorded; `cargo test` replays every trace against
//! a fresh in-process copy of its card and expects no divergence; the PC/SC test
//! `tests/traces_pcsc.rs` records them (and rewrites the files with
//! `FIRMALAB_RECORD_TRACES=1`, which `fixtures/traces/record.sh` sets).

use super::Secrets;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a session was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The client runs with pcsc-lite's logging shim; the trace is imported from pcsc-spy's text.
    PcscSpy,
    /// The slice of the private pcscd's `--apdu --debug` log written during the run (for
    /// clients libpcscspy 1.9.9 crashes: it dereferences a NULL `pioRecvPci`, which the Rust
    /// `pcsc` crate passes).
    Pcscd,
}

/// One recorded session.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// File name without `.json`.
    pub name: String,
    pub about: String,
    /// Fixture card (`fixtures/cards/…`).
    pub image: String,
    /// Seed of the card's deterministic RNG during the recording.
    pub seed: u64,
    pub method: Method,
    /// The command line; `{slot}` is the reader's index (for `-r`), `{reader}` its name,
    /// `{pkcs11}` OpenSC's PKCS#11 module, `{dir}` a scratch folder, `{firmalab}` this build.
    pub run: Vec<String>,
    /// The program's exit code (OpenSC 0.23 cannot sign or unblock on Oberthur: the corpus
    /// keeps those sessions as they are).
    #[serde(default)]
    pub exit: i32,
    /// Files written into `{dir}` before the run: name → text.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// The fixture's test secrets the session uses: they name the placeholders at import and
    /// fill them at replay.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl Entry {
    pub fn secrets(&self) -> Secrets {
        Secrets(self.secrets.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect())
    }

    pub fn trace_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.name))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corpus {
    pub about: String,
    pub traces: Vec<Entry>,
}

impl Corpus {
    /// Reads `corpus.json` from the corpus folder.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("corpus.json");
        let bytes = super::read_bounded(&path)?;
        let c: Corpus = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, e) in c.traces.iter().enumerate() {
            if c.traces[..i].iter().any(|o| o.name == e.name) {
                return Err(format!("{}: {} appears twice", path.display(), e.name));
            }
            if e.name.is_empty() || !e.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(format!("{}: bad trace name {:?}", path.display(), e.name));
            }
        }
        Ok(c)
    }
}
