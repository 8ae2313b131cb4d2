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
    /// A hostile card for middleware QA: faults injected at command APDU N, counted from 1
    /// since this card process started (every PC/SC connection and program adds to the same
    /// count; power and ATR requests are not counted; each card counts its own). KIND@N,
    /// comma-separated: cut-before@N (power cut, the command never executes), cut-after@N (it
    /// executes and is saved, then power is cut), drop@N (it executes and is saved, the answer
    /// is lost, the card stays powered): these three take the card out of the reader, back
    /// about a second later; corrupt@N (every byte of the answer XOR 5A), garbage@N (1-40
    /// random bytes instead of the answer), delay@N:MS (the answer MS milliseconds late). Each
    /// injected fault is logged on stderr with its APDU number. An image is saved before any
    /// fault: a fault never damages it.
    #[arg(long, value_name = "KIND@N[,KIND@N…]")]
    fault: Vec<String>,
    /// Mutate answers at random, reproducibly: the same SEED and the same commands give the
    /// same mutations (a bit flipped, the status word replaced, the answer truncated, bytes
    /// inserted). How many: --mutate-rate. Each mutation is logged with its APDU number.
    #[arg(long, value_name = "SEED")]
    mutate_answers: Option<u64>,
    /// Percent of answers --mutate-answers mutates, 1-100.
    #[arg(long, value_name = "PERCENT", default_value_t = firmalab_emulator::hostile::DEFAULT_MUTATE_RATE,
          value_parser = clap::value_parser!(u8).range(1..=100), requires = "mutate_answers")]
    mutate_rate: u8,
    /// Diagnostic: do not re-arm TCP_QUICKACK (shows Debian 12 vpcd's ~44 ms stall per
    /// APDU).
    #[arg(long, hide = true)]
    no_quickack: bool,
}

pub fn run(a: CardArgs) -> CliResult {
    let mut faults = Vec::new();
    for spec in &a.fault {
        match firmalab_emulator::hostile::parse_faults(spec) {
            Ok(f) => faults.extend(f),
            Err(e) => {
                eprintln!("firmalab: --fault: {e}");
                return Ok(2);
            }
        }
    }
    faults.sort_by_key(|f| f.at);
    if let Some(w) = faults.windows(2).find(|w| w[0].at == w[1].at) {
        eprintln!("firmalab: --fault: APDU {} has two faults ({} and {}); one fault per APDU", w[0].at, w[0], w[1]);
        return Ok(2);
    }
    let mutate = a.mutate_answers.map(|seed| firmalab_emulator::hostile::Mutator { seed, rate: a.mutate_rate });
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
        faults,
        mutate,
    };
    host::run(cards, stop, Arc::new(|line: String| eprintln!("{line}")))?;
    Ok(0)
}
