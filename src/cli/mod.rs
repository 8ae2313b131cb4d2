//! One module per command: its arguments (clap) in, what it prints out. The work is in the
//! `firmalab-harness` and `firmalab-emulator` crates; nothing here is logic a test would want
//! to call.

pub mod apdu;
pub mod bench;
pub mod card;
pub mod completions;
pub mod demo;
pub mod fixtures;
pub mod flow;
pub mod image;
pub mod input;
pub mod progress;
pub mod ra;
pub mod readers;
pub mod replay;
pub mod scenario;
pub mod trace;

/// A command's exit code, or the error `main` prints as one line (exit 1).
pub type CliResult = Result<u8, Box<dyn std::error::Error>>;
