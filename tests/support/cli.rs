//! What the tests that run the `firmalab` binary share: the checkout's root, the command as a
//! test runs it, the text of its output, and a scratch folder. Needs no feature: a CLI test
//! includes it alone by `#[path = "support/cli.rs"] mod cli_support;`; a test that also needs
//! the PC/SC helpers has it as `support::cli` (one copy of `scratch.rs` per test binary).
//! Each test binary uses only some of these.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "scratch.rs"]
mod scratch;
#[allow(unused_imports)] // a binary that makes no scratch folder
pub use scratch::Scratch;

/// The checkout (where `fixtures/` is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `firmalab ARGS` as the tests run it, not started yet: in the checkout's root, no support
/// bundle on a refusal (it would land in the checkout), and nothing on standard input (a
/// prompt fails at once instead of waiting for the terminal). A test that needs otherwise
/// changes the returned command where it is visible.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firmalab"));
    c.args(args).current_dir(root()).env("FIRMALAB_SUPPORT_BUNDLE", "off").stdin(Stdio::null());
    c
}

/// Runs [`command`] to the end.
pub fn firmalab(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

/// `firmalab ARGS` whose standard output is closed before it writes, as `firmalab … | head -1`
/// can close it; standard error kept.
pub fn with_stdout_closed(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firmalab"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// Points the PC/SC client at a socket no pcscd listens on: never reach a pcscd this test did
/// not start.
pub fn no_pcscd(c: &mut Command) -> &mut Command {
    c.env("PCSCLITE_CSOCK_NAME", std::env::temp_dir().join("firmalab-no-pcscd.comm"))
}

/// Standard output then standard error, as one text.
pub fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code; -1 when a signal ended the process.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of `fixtures/cards/NAME` in `dir`.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(root().join("fixtures/cards").join(name), &dst).unwrap();
    dst
}
