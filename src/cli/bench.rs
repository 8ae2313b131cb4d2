//! `firmalab bench`: signature throughput and per-APDU cost next to `openssl speed`.

use super::{CliResult, progress};
use clap::Args;
use firmalab_harness::bench::{self, TableOptions};

#[derive(Args)]
pub struct BenchArgs {
    /// Seconds per figure in each round.
    #[arg(long, default_value_t = 1)]
    seconds: u64,
    /// Rounds: every figure is measured once per round, interleaved with the others, and
    /// shown as its median and spread (min–max) over the rounds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Also N cards signing in parallel on N threads, next to `openssl speed -multi N`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,
    /// Also measure the PC/SC round trip to the card in this reader (without any PIN
    /// unless --virtual-card or --accept-secret-risk).
    #[arg(long)]
    reader: Option<String>,
    /// The zero-work card (`firmalab card --echo`) in this reader: the transport's floor,
    /// measured in the same rounds as --reader.
    #[arg(long, requires = "reader")]
    echo_reader: Option<String>,
    /// The card in the reader is a firmalab virtual card: time the signature sequence,
    /// which sends the PIN 12345678.
    #[arg(long, requires = "reader")]
    virtual_card: bool,
    /// Time the signature sequence on a card in a reader anyway.
    #[arg(long, requires = "reader")]
    accept_secret_risk: bool,
}

pub fn run(a: BenchArgs) -> CliResult {
    let o = TableOptions {
        seconds: a.seconds.max(1),
        rounds: usize::try_from(a.rounds).unwrap_or(5),
        threads: usize::try_from(a.threads).unwrap_or(1),
        reader: a.reader,
        echo_reader: a.echo_reader,
        secrets_allowed: a.virtual_card || a.accept_secret_risk,
    };
    if o.rounds < 5 {
        eprintln!("firmalab: {} rounds: fewer than 5 make a thin spread", o.rounds);
    }
    println!("firmalab bench on {}", bench::machine());
    let current: std::cell::RefCell<Option<progress::Step>> = std::cell::RefCell::new(None);
    let finish = || {
        if let Some(s) = current.borrow_mut().take() {
            s.done("measured");
        }
    };
    let result = bench::table(
        &o,
        &mut |what| {
            finish();
            *current.borrow_mut() = Some(progress::step(format!("bench {what}")));
        },
        &mut |line| {
            finish();
            println!("{line}")
        },
    );
    finish();
    result?;
    println!("load average after the run: {}", bench::load());
    Ok(0)
}
