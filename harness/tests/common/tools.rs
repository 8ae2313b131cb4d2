//! External programs the tests use as independent oracles (`openssl`). Without one, a test
//! prints `SKIPPED <test>: <why>` and passes, locally; in CI (`CI=true`) a missing oracle is a
//! failure, as a missing PC/SC stack is (`FIRMALAB_PCSC_REQUIRED=1`).

use std::io::Write;
use std::process::{Command, Stdio};

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `tool` runs and succeeds with the `probe` arguments.
pub fn available(tool: &str, probe: &[&str]) -> bool {
    Command::new(tool).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// `true` when `tool` is here; otherwise `false` after a visible `SKIPPED` line, or a panic
/// when `required` (CI).
pub fn require(test: &str, tool: &str, probe: &[&str], install: &str, required: bool) -> bool {
    if available(tool, probe) {
        return true;
    }
    let why = format!("{tool} not installed ({install})");
    if required {
        panic!("{test}: {why}, and CI (CI=true) requires it");
    }
    // Straight to stderr: libtest captures `eprintln!` of passing tests, not this.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    false
}

/// `true` when `openssl` is here (see [`require`]; required when `CI=true`).
pub fn openssl(test: &str) -> bool {
    require(test, "openssl", &["version"], "apt-get install openssl", ci())
}
