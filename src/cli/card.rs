//! `firmalab card`: virtual cards in vpcd readers until Ctrl-C / SIGTERM.

use super::CliResult;
use clap::Args;
use firmalab_harness::host::{self, Cards};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Args)]
pub struct CardArgs {
    /// A card image; saved after every command that changes the card. Repeatable.
    #[arg(long)]
    image: Vec<PathBuf>,
    /// An ephemeral card from the built-in fixtures (cns-renewable, oberthur-renewable,
    /// incrypto34-issued, incrypto34-blank, cns-failed-issuance, cns-pin-blocked,
    /// cns-puk-blocked, cns-expired, aruba-key, or cns / oberthur / incrypto34); never
    /// saved. Repeatable.
    #[arg(long)]
    persona: Vec<String>,
    /// Also run a zero-work card, after the others: it answers 9000 to every APDU at once,
    /// without executing it; the round trip of pcscd + vpcd alone (the floor `firmalab bench
    /// --echo-reader` compares firmalab's round trip to).
    #[arg(long)]
    echo: bool,
    /// vpcd address per card, in order (default 127.0.0.1:35963, then :35964 …).
    #[arg(long)]
    vpcd: Vec<String>,
    /// Log every APDU (PINs and PUKs redacted) with the card's time.
    #[arg(long)]
    verbose: bool,
    /// INSECURE deterministic mode: the card's RNG is seeded (reproducible challenges), and
    /// RSA-2048 keys generated on the card are drawn from a public pool
    /// (fixtures/keys/rsa2048-pool.txt: anyone has their private keys).
    #[arg(long)]
    seed: Option<u64>,
    /// Answer with a physical token's latency: none (default), fast, typical, slow
    /// (RSA-2048 signature 60 / 250 / 680 ms, key generation 2 / 10 / 30 s).
    #[arg(long, default_value = "none")]
    timing: firmalab_emulator::timing::Timing,
    /// Diagnostic: do not re-arm TCP_QUICKACK (shows Debian 12 vpcd's ~44 ms stall per
    /// APDU).
    #[arg(long, hide = true)]
    no_quickack: bool,
}

pub fn run(a: CardArgs) -> CliResult {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    let cards = Cards {
        images: a.image,
        personas: a.persona,
        vpcd: a.vpcd,
        verbose: a.verbose,
        seed: a.seed,
        quickack: !a.no_quickack,
        timing: a.timing,
        echo: a.echo,
    };
    host::run(cards, stop, Arc::new(|line: String| eprintln!("{line}")))?;
    Ok(0)
}
