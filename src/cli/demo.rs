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
}

pub fn run(a: DemoArgs) -> CliResult {
    let dir = a.dir.unwrap_or_else(demo::default_dir);
    demo::run(&dir, &mut |line| println!("{line}"))?;
    Ok(0)
}
