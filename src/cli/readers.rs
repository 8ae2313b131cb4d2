//! `firmalab readers`: PC/SC readers, the ATR of each card and what it is.

use super::CliResult;
use clap::Args;
use firmalab_harness::{console, wire::hex};
use std::time::Duration;

#[derive(Args)]
pub struct ReadersArgs {
    /// Wait until a card is present in this reader (exact name or unique part).
    #[arg(long)]
    wait: Option<String>,
    /// Seconds to wait with --wait.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

pub fn run(a: ReadersArgs) -> CliResult {
    let readers = console::readers(a.wait.as_deref(), Duration::from_secs(a.timeout))?;
    if readers.is_empty() {
        println!("no readers");
    }
    for r in readers {
        match r.card {
            Some((atr, label)) => println!("{}\t{}\t{label}", r.name, hex::encode(&atr)),
            None => println!("{}\t(no card)", r.name),
        }
    }
    Ok(0)
}
