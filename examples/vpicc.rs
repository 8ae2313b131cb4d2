//! A firmalab card in a vpcd reader through the `vpicc` crate instead of `firmalab card`'s own
//! loop: the way Rust virtual cards such as Nitrokey's opcard-rs are run.
//!
//! ```sh
//! cargo run --release --features vpicc --example vpicc -- --persona cns [--vpcd 127.0.0.1:35963]
//! cargo run --release --features vpicc --example vpicc -- --image my-card.json --verbose
//! cargo run --release --features vpicc --example vpicc -- --persona cns --stock
//! ```
//!
//! By default it runs `firmalab_emulator::vpicc_card::serve`: `vpicc::Connection::poll` in a
//! loop with TCP_QUICKACK re-armed before each message, reconnecting when pcscd restarts,
//! stopping within a second on Ctrl-C or SIGTERM. `--stock` runs exactly
//! `vpicc::connect_socket(addr)?.run(&mut card)`, the crate as it comes (no QUICKACK, no
//! reconnect; Ctrl-C kills it), to measure what the crate alone gives.
//!
//! With `--image` the image is locked and saved after every command that changed it, before
//! the answer goes out, in both modes.

use clap::Parser;
use firmalab_emulator::vpcd::{self, Event, HostedCard};
use firmalab_emulator::{Card, CardRng};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Parser)]
#[command(about = "Run a firmalab card in a vpcd reader through the vpicc crate")]
struct Args {
    /// A card image, saved as it changes.
    #[arg(long, conflicts_with = "persona", required_unless_present = "persona")]
    image: Option<PathBuf>,
    /// A built-in card (cns, oberthur, or a fixture name), never saved.
    #[arg(long)]
    persona: Option<String>,
    /// vpcd's address (a reader of pcscd's vpcd driver).
    #[arg(long, default_value = vpcd::DEFAULT_ADDR)]
    vpcd: String,
    /// `vpicc::connect_socket(addr)?.run(&mut card)`, nothing else.
    #[arg(long)]
    stock: bool,
    /// Do not re-arm TCP_QUICKACK (to measure the stall it removes).
    #[arg(long, conflicts_with = "stock")]
    no_quickack: bool,
    /// Log each APDU (PINs and PUKs shown as `**`).
    #[arg(long, conflicts_with = "stock")]
    verbose: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpicc example: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    vpcd::check_address(&args.vpcd)?;
    let rng = CardRng::from_os()?;
    let mut host = match (&args.image, &args.persona) {
        (Some(path), _) => HostedCard::open(path, rng).map_err(|e| e.to_string())?,
        (None, Some(name)) => {
            HostedCard::ephemeral(Card::new(firmalab_harness::fixtures::builtin(name).map_err(|e| e.to_string())?, rng))
        }
        (None, None) => return Err("give --image FILE or --persona NAME".into()),
    };
    if args.stock {
        eprintln!("stock vpicc: connecting to {}", args.vpcd);
        let connection = vpicc::connect_socket(&args.vpcd).map_err(|e| format!("{}: {e}", args.vpcd))?;
        return connection.run(&mut host).map_err(|e| format!("vpcd connection ended: {e}"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    let verbose = args.verbose;
    let mut log = |e: Event<'_>| match e {
        Event::Apdu { command, response, micros } if verbose => eprintln!("> {command}\n< {response}  ({micros} us)"),
        Event::Apdu { .. } | Event::Atr => {}
        Event::PowerOff | Event::PowerOn | Event::Reset if !verbose => {}
        Event::Connecting(a) => eprintln!("waiting for vpcd at {a} (is pcscd running with vsmartcard-vpcd?)"),
        Event::Connected(a) => eprintln!("inserted in the vpcd reader at {a} (through vpicc::Connection)"),
        other => eprintln!("{other:?}"),
    };
    let options = vpcd::Options { quickack: !args.no_quickack };
    firmalab_emulator::vpicc_card::serve(&mut host, &args.vpcd, options, &stop, &mut log)
        .map_err(|e| format!("{}: {e}", args.vpcd))?;
    eprintln!("card removed");
    Ok(())
}
