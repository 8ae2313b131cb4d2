//! `firmalab bench`: signature throughput and per-APDU cost next to `openssl speed`.

use super::CliResult;
use clap::Args;
use firmalab_harness::bench::{self, TableOptions};

#[derive(Args)]
pub struct BenchArgs {
    /// Seconds per figure.
    #[arg(long, default_value_t = 2)]
    seconds: u64,
    /// Also measure the PC/SC round trip to the card in this reader (without any PIN
    /// unless --virtual-card or --accept-secret-risk).
    #[arg(long)]
    reader: Option<String>,
    /// The card in the reader is a firmalab virtual card: time the signature sequence,
    /// which sends the PIN 12345678.
    #[arg(long, requires = "reader")]
    virtual_card: bool,
    /// Time the signature sequence on a card in a reader anyway.
    #[arg(long, requires = "reader")]
    accept_secret_risk: bool,
}

pub fn run(a: BenchArgs) -> CliResult {
    eprintln!("measuring ({}s per figure)…", a.seconds.max(1));
    let o =
        TableOptions { seconds: a.seconds, reader: a.reader, secrets_allowed: a.virtual_card || a.accept_secret_risk };
    bench::table(&o, &mut |line| println!("{line}"))?;
    Ok(0)
}
