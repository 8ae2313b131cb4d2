//! `firmalab scenario FILE… --card X`: scenario files (raw APDUs and high-level steps) on a
//! card; exit 0 when every step of every file passes (or a dry run stopped before the first
//! change).

use super::CliResult;
use super::input::serial_confirmer;
use clap::Args;
use firmalab_harness::client::SecretPolicy;
use firmalab_harness::open::{CardSpec, OpenOptions};
use firmalab_harness::scenario::{self, Options, Scenario};
use std::path::PathBuf;

#[derive(Args)]
pub struct ScenarioArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// An image file or reader:NAME.
    #[arg(long)]
    card: String,
    #[arg(long)]
    seed: Option<u64>,
    /// The card is a firmalab virtual card: PIN steps may repeat refused PINs and block
    /// PINs on purpose; raw APDUs may carry PINs.
    #[arg(long)]
    virtual_card: bool,
    /// Raw APDUs carrying a PIN or PUK may go to a card in a reader.
    #[arg(long)]
    accept_secret_risk: bool,
    /// PIN steps may send a PIN whose object has 1 try left.
    #[arg(long)]
    allow_last_try: bool,
    /// Send only the commands that read; stop before the first one that would present a
    /// secret or change the card, and print the APDUs.
    #[arg(long)]
    dry_run: bool,
    /// Confirms scenario commands that write to a card in a reader, by its serial.
    #[arg(long, value_name = "SERIAL")]
    confirm_serial: Option<String>,
}

pub fn run(a: ScenarioArgs) -> CliResult {
    let spec = CardSpec::parse(&a.card);
    let reader = spec.place();
    let mut all = true;
    for f in &a.files {
        let s = Scenario::load(f)?;
        println!("scenario {} — {}", f.display(), s.name);
        let card = spec.open(&OpenOptions { seed: a.seed, dry_run: a.dry_run, ..OpenOptions::default() })?;
        let o = Options {
            policy: SecretPolicy { allow_last_try: a.allow_last_try, virtual_card: a.virtual_card },
            raw_secrets: !spec.in_reader() || a.virtual_card || a.accept_secret_risk,
            consent: card.consent.map(|c| (c, serial_confirmer(a.confirm_serial.clone(), &reader))),
        };
        let run = scenario::run_recorded(&s, card.transport, o)?;
        let (text, passed) = scenario::report(&s, &run);
        print!("{text}");
        all &= passed;
    }
    Ok(if all { 0 } else { 1 })
}
