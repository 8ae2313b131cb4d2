//! The `firmalab` command line: argument parsing and printing only, one module per command
//! under `cli/`; the work is in the `firmalab-emulator` and `firmalab-harness` crates.

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(
    name = "firmalab",
    version,
    about = "Virtual Italian qualified-signature smart cards (CNS/Incard, Oberthur) and their management flows"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send APDUs (hex) to a card: in an image file (saved back if it changed), or in a PC/SC
    /// reader.
    Apdu(cli::apdu::ApduArgs),
    /// Run virtual cards in vpcd readers, so every PC/SC program (OpenSC, browsers, signing
    /// software) sees them. Stops on Ctrl-C / SIGTERM.
    Card(cli::card::CardArgs),
    /// List PC/SC readers, the ATR of each card and the profile it means (build with
    /// --features pcsc).
    Readers(cli::readers::ReadersArgs),
    /// Run a management flow: diagnostic, pin-change, pin-unblock, puk-change, reset, renewal.
    /// Exit codes: 0 done, 1 refused (wrong PIN, diagnostic failed, …), 2 bad usage,
    /// 3 card or transport failure.
    Flow(Box<cli::flow::FlowArgs>),
    /// The back office (CMS): enroll, events, authorise, revoke/suspend, resend codes,
    /// renewal notices, CRL and OCSP index. Exit codes: 0 done, 1 refused (reason code
    /// printed), 3 the card could not be read.
    Ra(cli::ra::RaArgs),
    /// Replay a recorded transcript against a card and report the first divergence.
    Replay(cli::replay::ReplayArgs),
    /// Real PC/SC sessions: import pcsc-spy, pcscd and OpenSC logs; show and replay the traces.
    Trace {
        #[command(subcommand)]
        command: cli::trace::TraceCmd,
    },
    /// Signature throughput and per-APDU cost, each next to `openssl speed` measured in the
    /// same run (build with --features openssl for the OpenSSL backend, pcsc for --reader).
    Bench(cli::bench::BenchArgs),
    /// Run scenario files (raw APDUs and high-level steps) against a card.
    Scenario(cli::scenario::ScenarioArgs),
    /// Diagnostic, renewal, authorisation, PIN unblock and reset on copies of the fixture
    /// cards, in-process: the first command to run.
    Demo(cli::demo::DemoArgs),
    /// Inspect or create card images.
    Image {
        #[command(subcommand)]
        command: cli::image::ImageCmd,
    },
    /// The fixture set under fixtures/.
    Fixtures {
        #[command(subcommand)]
        command: cli::fixtures::FixturesCmd,
    },
    /// Print the shell completion script: firmalab completions bash > ~/.local/share/bash-completion/completions/firmalab
    Completions(cli::completions::CompletionsArgs),
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let result = match Cli::parse().command {
        Cmd::Apdu(a) => cli::apdu::run(a),
        Cmd::Card(a) => cli::card::run(a),
        Cmd::Readers(a) => cli::readers::run(a),
        Cmd::Flow(a) => cli::flow::run(*a),
        Cmd::Ra(a) => cli::ra::run(a),
        Cmd::Replay(a) => cli::replay::run(a),
        Cmd::Trace { command } => cli::trace::run(command).map_err(Into::into),
        Cmd::Bench(a) => cli::bench::run(a),
        Cmd::Scenario(a) => cli::scenario::run(a),
        Cmd::Demo(a) => cli::demo::run(a),
        Cmd::Image { command } => cli::image::run(command),
        Cmd::Fixtures { command } => cli::fixtures::run(command),
        Cmd::Completions(a) => cli::completions::run(a, &mut Cli::command()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("firmalab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `firmalab … | head`: when the reader of standard output goes away, `println!` panics
/// ("failed printing to stdout: Broken pipe"). A command-line tool then stops quietly, as if
/// killed by SIGPIPE (exit 141, what shells expect), instead of printing a panic. Every other
/// panic keeps the default report. Card images are safe either way: each one is replaced
/// atomically after the command that changed it, and the image lock is released by the OS.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
