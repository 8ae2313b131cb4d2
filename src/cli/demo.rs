//! `firmalab demo`: every flow on copies of the fixture cards, in-process.

use super::CliResult;
use clap::Args;
use firmalab_harness::demo;
use std::path::PathBuf;

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the cards, back office and signed forms in this folder (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// INSECURE deterministic mode: the cards' RNG is seeded and RSA-2048 keys generated on
    /// them are drawn from a public pool (fixtures/keys/rsa2048-pool.txt; anyone has their
    /// private keys): reproducible and fast. Default: real keys from the OS RNG.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(a: DemoArgs) -> CliResult {
    let dir = a.dir.unwrap_or_else(demo::default_dir);
    demo::run(&dir, a.seed, &mut |line| println!("{line}"))?;
    Ok(0)
}
