//! `firmalab fixtures regenerate | fuzz-corpus`.

use super::CliResult;
use clap::Subcommand;
use firmalab_harness::{fixtures, fuzz_corpus};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FixturesCmd {
    /// Regenerate the test CA, the key pool, every fixture card and their back office
    /// (ra.json), deterministically (byte for byte the committed files).
    Regenerate {
        /// The fixtures folder (relative to the working directory).
        #[arg(long, default_value = "fixtures")]
        dir: PathBuf,
    },
    /// Write the fuzz targets' seed corpora, from the real flows' transcripts.
    FuzzCorpus {
        /// The corpus folder (relative to the working directory).
        #[arg(long, default_value = "fuzz/corpus")]
        out: PathBuf,
    },
}

pub fn run(cmd: FixturesCmd) -> CliResult {
    match cmd {
        FixturesCmd::Regenerate { dir } => {
            let written = fixtures::regenerate(&dir, &mut |what| eprintln!("generating {what}"))?;
            for p in written {
                println!("{}", p.display());
            }
        }
        FixturesCmd::FuzzCorpus { out } => {
            let n = fuzz_corpus::write(&out)?;
            println!("{n} seed inputs under {}", firmalab_harness::fixtures::absolute(&out).display());
        }
    }
    Ok(0)
}
