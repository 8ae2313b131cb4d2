//! `firmalab apdu`: APDUs (hex) to a card image or a card in a PC/SC reader.

use super::CliResult;
use clap::Args;
use firmalab_harness::console;
use std::path::PathBuf;

#[derive(Args)]
pub struct ApduArgs {
    /// The card image (JSON).
    #[arg(long, conflicts_with = "reader", required_unless_present = "reader")]
    image: Option<PathBuf>,
    /// A PC/SC reader: exact name or a unique part of it (build with --features pcsc).
    #[arg(long)]
    reader: Option<String>,
    /// Print each response as bare hex (data and SW), one line per APDU.
    #[arg(long)]
    raw: bool,
    /// INSECURE deterministic mode: the card's RNG is seeded (reproducible challenges), and
    /// RSA-2048 keys generated on the card are drawn from a public pool
    /// (fixtures/keys/rsa2048-pool.txt: anyone has their private keys).
    #[arg(long)]
    seed: Option<u64>,
    /// With --reader: send the APDUs N times and print round-trip statistics instead (the
    /// same measurement as `firmalab bench --reader`).
    /// APDUs carrying a PIN or PUK are refused unless --virtual-card or
    /// --accept-secret-risk.
    #[arg(long, requires = "reader")]
    repeat: Option<usize>,
    /// The card in the reader is a firmalab virtual card: --repeat may send PINs.
    #[arg(long, requires = "reader")]
    virtual_card: bool,
    /// Send PIN-carrying APDUs repeatedly anyway (a wrong PIN blocks a real token).
    #[arg(long, requires = "reader")]
    accept_secret_risk: bool,
    /// Command APDUs in hex, e.g. 00A4000C023F00.
    #[arg(required = true)]
    apdus: Vec<String>,
}

pub fn run(a: ApduArgs) -> CliResult {
    let (lines, failure) = match (a.image, a.reader) {
        (Some(image), _) => {
            let session = console::run(&image, &a.apdus, a.raw, a.seed)?;
            (session.lines, session.save_failure)
        }
        (None, Some(reader)) => match a.repeat {
            Some(n) => {
                console::refuse_secrets(&a.apdus, a.virtual_card || a.accept_secret_risk)?;
                (vec![firmalab_harness::bench::repeat_on_reader(&reader, &a.apdus, n)?], None)
            }
            None => (console::run_reader(&reader, &a.apdus, a.raw)?, None),
        },
        (None, None) => return Err("give --image FILE or --reader NAME".into()),
    };
    for line in lines {
        println!("{line}");
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}
