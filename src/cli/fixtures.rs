//! `firmalab fixtures regenerate | fuzz-corpus`.

use super::{CliResult, progress};
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
            let mut current: Option<progress::Step> = None;
            let written = fixtures::regenerate(&dir, &mut |what| {
                if let Some(s) = current.take() {
                    s.done("done");
                }
                current = Some(progress::step(format!("generating {what}")));
            });
            if let Some(s) = current.take() {
                s.done("done");
            }
            for p in written? {
                println!("{}", p.display());
            }
            println!("fixtures written under {}", fixtures::absolute(&dir).display());
        }
        FixturesCmd::FuzzCorpus { out } => {
            let step = progress::step("running every flow on both profiles for the seed corpora");
            let n = fuzz_corpus::write(&out);
            step.done(if n.is_ok() { "done" } else { "failed" });
            let n = n?;
            println!("{n} seed inputs under {}", firmalab_harness::fixtures::absolute(&out).display());
        }
    }
    Ok(0)
}
