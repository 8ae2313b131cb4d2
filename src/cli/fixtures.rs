//! `firmalab fixtures regenerate | fuzz-corpus`.

use super::CliResult;
use clap::Subcommand;
use firmalab_harness::{fixtures, fuzz_corpus};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FixturesCmd {
    /// Regenerate the test CA and every fixture card, deterministically.
    Regenerate {
        #[arg(long, default_value = "fixtures")]
        dir: PathBuf,
    },
    /// Write the fuzz targets' seed corpora, from the real flows' transcripts.
    FuzzCorpus {
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
            println!("{n} seed inputs under {}", out.display());
        }
    }
    Ok(0)
}
