//! `firmalab replay`: a recorded transcript against a card; the first divergence reported.

use super::CliResult;
use super::input::{read_secret_file, serial_confirmer};
use clap::Args;
use firmalab_harness::open::{CardSpec, OpenOptions};
use firmalab_harness::transcript::{self, Transcript};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ReplayArgs {
    file: PathBuf,
    /// An image file or reader:NAME.
    #[arg(long)]
    card: String,
    /// A secret the transcript needs, NAME=VALUE (pin, puk, new_pin, new_puk). Repeatable.
    /// Visible in /proc/PID/cmdline: scripts use --secret-file.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// A secret from the first line of a file (`-`: standard input), NAME=PATH. Repeatable.
    #[arg(long = "secret-file")]
    secret_files: Vec<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Replay only the commands that read; stop before the first one that would present
    /// a secret or change the card.
    #[arg(long)]
    dry_run: bool,
    /// Confirms replaying commands that write to a card in a reader, by its serial.
    #[arg(long, value_name = "SERIAL")]
    confirm_serial: Option<String>,
}

fn name_value(s: &str, flag: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{flag} {s:?}: expected NAME=VALUE"))
}

pub fn run(a: ReplayArgs) -> CliResult {
    if super::trace::is_trace(&a.file) {
        // A PC/SC trace (`firmalab trace import`): its own replay, with its own consent rule.
        if a.confirm_serial.is_some() {
            return Err(format!(
                "{} is a PC/SC trace: replay it with `firmalab trace replay` (--secret, --secret-file, --yes); --confirm-serial is for transcripts",
                a.file.display()
            )
            .into());
        }
        return Ok(super::trace::replay_from_replay(&a.file, &a.card, &a.secrets, &a.secret_files, a.seed, a.dry_run)?);
    }
    let t = Transcript::load(&a.file)?;
    let mut secrets: Vec<(String, String)> =
        a.secrets.iter().map(|s| name_value(s, "--secret")).collect::<Result<_, _>>()?;
    for s in &a.secret_files {
        let (name, path) = name_value(s, "--secret-file")?;
        let value = read_secret_file(Path::new(&path), &name)?;
        secrets.push((name, value));
    }
    if a.dry_run {
        transcript::add_dry_run_secrets(&t, &mut secrets);
    }
    let spec = CardSpec::parse(&a.card);
    let card = spec.open(&OpenOptions { seed: a.seed, dry_run: a.dry_run, ..OpenOptions::default() })?;
    let reader = spec.place();
    let mut confirm = serial_confirmer(a.confirm_serial.clone(), &reader);
    let what = a.file.display().to_string();
    let replayed =
        transcript::replay_guarded(&t, card.transport, card.consent.as_ref(), &secrets, &what, &mut *confirm)?;
    let (text, code) = transcript::replay_report(&t, &a.file, &replayed);
    print!("{text}");
    Ok(code)
}
