//! The `firmalab` command line. Argument parsing and printing only; the work is in the
//! `firmalab-emulator` and `firmalab-harness` crates.

use clap::{Parser, Subcommand};
use firmalab_emulator::CardImage;
use firmalab_emulator::image::ProfileKind;
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::{self, CardRequest, KeySource, Person};
use firmalab_harness::{console, inspect, pki::TestCa};
use std::path::PathBuf;
use std::process::ExitCode;

mod flows_cli;
mod trace_cli;

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
    Apdu {
        /// The card image (JSON).
        #[arg(long, conflicts_with = "reader", required_unless_present = "reader")]
        image: Option<PathBuf>,
        /// A PC/SC reader: exact name or a unique part of it (build with --features pcsc).
        #[arg(long)]
        reader: Option<String>,
        /// Print each response as bare hex (data and SW), one line per APDU.
        #[arg(long)]
        raw: bool,
        /// INSECURE deterministic card RNG seed, for reproducible challenges and keys.
        #[arg(long)]
        seed: Option<u64>,
        /// With --reader: send the APDUs N times and print round-trip statistics instead.
        #[arg(long, requires = "reader")]
        repeat: Option<usize>,
        /// Command APDUs in hex, e.g. 00A4000C023F00.
        #[arg(required = true)]
        apdus: Vec<String>,
    },
    /// Run virtual cards in vpcd readers, so every PC/SC program (OpenSC, browsers, signing
    /// software) sees them. Stops on Ctrl-C / SIGTERM.
    Card {
        /// A card image; saved after every command that changes the card. Repeatable.
        #[arg(long)]
        image: Vec<PathBuf>,
        /// An ephemeral card from the built-in fixtures (cns-renewable, oberthur-renewable,
        /// cns-failed-issuance, cns-pin-blocked, cns-puk-blocked, cns-expired, or cns /
        /// oberthur); never saved. Repeatable.
        #[arg(long)]
        persona: Vec<String>,
        /// vpcd address per card, in order (default 127.0.0.1:35963, then :35964 …).
        #[arg(long)]
        vpcd: Vec<String>,
        /// Log every APDU (PINs and PUKs redacted) with the card's time.
        #[arg(long)]
        verbose: bool,
        /// INSECURE deterministic card RNG seed.
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
    },
    /// List PC/SC readers, the ATR of each card and the profile it means (build with
    /// --features pcsc).
    Readers {
        /// Wait until a card is present in this reader (exact name or unique part).
        #[arg(long)]
        wait: Option<String>,
        /// Seconds to wait with --wait.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Run a management flow: diagnostic, pin-change, pin-unblock, puk-change, reset, renewal.
    /// Exit codes: 0 done, 1 refused (wrong PIN, diagnostic failed, …), 2 bad usage,
    /// 3 card or transport failure.
    Flow(flows_cli::FlowArgs),
    /// The back office: show it, authorise a renewal (the CDRL, after payment), enroll a card.
    Ra {
        #[command(subcommand)]
        command: RaCmd,
        /// The back-office store.
        #[arg(long, global = true, default_value = firmalab_harness::backoffice::DEFAULT_PATH)]
        ra: PathBuf,
    },
    /// Replay a recorded transcript against a card and report the first divergence.
    Replay {
        file: PathBuf,
        /// An image file or reader:NAME.
        #[arg(long)]
        card: String,
        /// A secret the transcript needs, NAME=VALUE (pin, puk, new_pin, new_puk). Repeatable.
        #[arg(long = "secret")]
        secrets: Vec<String>,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Real PC/SC sessions: import pcsc-spy, pcscd and OpenSC logs; show and replay the traces.
    Trace {
        #[command(subcommand)]
        command: trace_cli::TraceCmd,
    },
    /// Signature throughput and per-APDU cost, each next to `openssl speed` measured in the
    /// same run (build with --features openssl for the OpenSSL backend, pcsc for --reader).
    Bench {
        /// Seconds per figure.
        #[arg(long, default_value_t = 2)]
        seconds: u64,
        /// Also measure the PC/SC round trip to the card in this reader.
        #[arg(long)]
        reader: Option<String>,
    },
    /// Run scenario files (raw APDUs and high-level steps) against a card.
    Scenario {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// An image file or reader:NAME.
        #[arg(long)]
        card: String,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Diagnostic, renewal, authorisation, PIN unblock and reset on copies of the fixture
    /// cards, in-process: the first command to run.
    Demo {
        /// Keep the cards, back office and signed forms in this folder (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Inspect or create card images.
    Image {
        #[command(subcommand)]
        command: ImageCmd,
    },
    /// The fixture set under fixtures/.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCmd,
    },
}

#[derive(Subcommand)]
enum RaCmd {
    /// Practices, cards, certificates, contacts and orders.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Complete a renewal waiting for the CDRL's authorisation.
    Authorize {
        practice: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Record an issued card (its certificates, holder and contacts), as its issuance would.
    Enroll {
        /// An image file or reader:NAME.
        #[arg(long)]
        card: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        mobile: String,
        #[arg(long, default_value = "CDRL-ROMA-01")]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Profile, ATR, serial, PIN/PUK tries, keys and certificates of an image.
    Show {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Issue a fresh card from the test CA (new RSA-2048 keys; takes a few seconds).
    New {
        #[arg(long)]
        profile: ProfileKind,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "Mario")]
        first_name: String,
        #[arg(long, default_value = "Rossi")]
        last_name: String,
        /// The first 15 characters of the codice fiscale (the check character is computed).
        #[arg(long, default_value = "RSSMRA80A01H501")]
        cf: String,
        /// CNS: 16 characters for EF_IDCarta; Oberthur: 8 hex digits. Default: from the clock.
        #[arg(long)]
        serial: Option<String>,
        #[arg(long, default_value = "12345678")]
        pin: String,
        #[arg(long, default_value = "87654321")]
        puk: String,
        /// Issue date (YYYY-MM-DD); the certificates are valid 3 years from it.
        #[arg(long)]
        now: Option<Date>,
        /// Derive the keys from this label instead of the OS RNG (INSECURE, reproducible).
        #[arg(long)]
        seed: Option<String>,
        /// Issue a blank card (failed issuance: no keys, default PIN 12345).
        #[arg(long)]
        blank: bool,
        /// The test CA folder.
        #[arg(long, default_value = "fixtures/ca")]
        ca: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum FixturesCmd {
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("firmalab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<u8, String> {
    let code = match cli.command {
        Cmd::Flow(args) => return flows_cli::flow(args),
        Cmd::Ra { command: RaCmd::Show { json }, ra } => flows_cli::ra_show(&ra, json),
        Cmd::Ra { command: RaCmd::Authorize { practice, now }, ra } => flows_cli::ra_authorize(&ra, &practice, now),
        Cmd::Ra { command: RaCmd::Enroll { card, email, mobile, cdrl, now }, ra } => {
            flows_cli::ra_enroll(&ra, &card, &cdrl, &email, &mobile, now)
        }
        Cmd::Replay { file, card, secrets, seed } if trace_cli::is_trace(&file) => {
            return trace_cli::replay_from_replay(&file, &card, &secrets, seed);
        }
        Cmd::Replay { file, card, secrets, seed } => return flows_cli::replay(&file, &card, &secrets, seed),
        Cmd::Trace { command } => return trace_cli::run(command),
        Cmd::Demo { dir } => flows_cli::demo(dir),
        Cmd::Bench { seconds, reader } => flows_cli::bench(seconds, reader),
        Cmd::Scenario { files, card, seed } => return flows_cli::scenario(&files, &card, seed),
        Cmd::Apdu { image, reader, raw, seed, repeat, apdus } => {
            let lines = match (image, reader) {
                (Some(image), _) => console::run(&image, &apdus, raw, seed)?,
                (None, Some(reader)) => apdu_over_pcsc(&reader, &apdus, raw, repeat)?,
                (None, None) => return Err("give --image FILE or --reader NAME".into()),
            };
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::Readers { wait, timeout } => readers(wait, timeout),
        Cmd::Card { image, persona, vpcd, verbose, seed, timing, no_quickack } => {
            run_cards(image, persona, vpcd, verbose, seed, !no_quickack, timing)
        }
        Cmd::Image { command: ImageCmd::Show { file, json } } => {
            let image = CardImage::load(&file).map_err(|e| e.to_string())?;
            let summary = inspect::summarize(&image);
            if json {
                println!("{}", serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?);
            } else {
                print!("{}", inspect::render(&summary));
            }
            Ok(())
        }
        Cmd::Image {
            command:
                ImageCmd::New { profile, out, first_name, last_name, cf, serial, pin, puk, now, seed, blank, ca, force },
        } => {
            if out.exists() && !force {
                return Err(format!("{} exists; pass --force to replace it", out.display()));
            }
            let ca = TestCa::load(&ca)?;
            let today = now.unwrap_or_else(Date::today);
            let stamp = today.days_since_epoch().unsigned_abs();
            let serial = serial.unwrap_or_else(|| match profile {
                ProfileKind::Cns => format!("60100{stamp:011}"),
                ProfileKind::Oberthur => format!("{:08x}", stamp as u32 ^ 0x5a5a_0000),
            });
            let person = if blank {
                None
            } else {
                Some(Person::new(&first_name, &last_name, &cf, Date::new(1980, 1, 1), 'M', "WSREF-000001")?)
            };
            let image = fixtures::issue_card(
                &ca,
                &CardRequest {
                    profile,
                    description: format!("issued by `firmalab image new` on {today}"),
                    serial,
                    person,
                    pin,
                    puk,
                    not_before: today,
                    not_after: today.add_years(3),
                    keys: match &seed {
                        Some(label) => KeySource::Seeded(label),
                        None => KeySource::Random,
                    },
                },
            )?;
            image.save(&out).map_err(|e| e.to_string())?;
            print!("{}", inspect::render(&inspect::summarize(&image)));
            Ok(())
        }
        Cmd::Fixtures { command: FixturesCmd::Regenerate { dir } } => {
            let written = fixtures::regenerate(&dir, &mut |what| eprintln!("generating {what}"))?;
            for p in written {
                println!("{}", p.display());
            }
            Ok(())
        }
        Cmd::Fixtures { command: FixturesCmd::FuzzCorpus { out } } => {
            let n = firmalab_harness::fuzz_corpus::write(&out)?;
            println!("{n} seed inputs under {}", out.display());
            Ok(())
        }
    };
    code.map(|()| 0)
}

fn run_cards(
    images: Vec<PathBuf>,
    personas: Vec<String>,
    vpcd: Vec<String>,
    verbose: bool,
    seed: Option<u64>,
    quickack: bool,
    timing: firmalab_emulator::timing::Timing,
) -> Result<(), String> {
    use firmalab_emulator::vpcd::{self, Event, HostedCard};
    use firmalab_emulator::{Card, CardRng};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut hosts: Vec<(String, HostedCard)> = Vec::new();
    for path in images {
        let image = CardImage::load(&path).map_err(|e| e.to_string())?;
        hosts.push((
            path.display().to_string(),
            HostedCard { card: Card::new(image, CardRng::from_os()?), image_path: Some(path), timing },
        ));
    }
    for name in personas {
        let image = fixtures::builtin(&name)?;
        hosts.push((
            format!("{name} (ephemeral)"),
            HostedCard { card: Card::new(image, CardRng::from_os()?), image_path: None, timing },
        ));
    }
    if hosts.is_empty() {
        return Err("give at least one --image FILE or --persona NAME".into());
    }
    if let Some(s) = seed {
        for (i, (_, h)) in hosts.iter_mut().enumerate() {
            let image = h.card.image().clone();
            h.card = Card::new(image, CardRng::insecure_deterministic(s.wrapping_add(i as u64)));
        }
    }
    let addrs: Vec<String> = if vpcd.is_empty() {
        (0..hosts.len()).map(|i| format!("127.0.0.1:{}", 35963 + i)).collect()
    } else if vpcd.len() == hosts.len() {
        vpcd
    } else {
        return Err(format!("{} cards but {} --vpcd addresses: give one per card, in order", hosts.len(), vpcd.len()));
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    let threads: Vec<_> = hosts
        .into_iter()
        .zip(addrs)
        .map(|((label, mut host), addr)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut log = |e: Event<'_>| match e {
                    Event::Apdu { command, response, micros } if verbose => {
                        eprintln!("[{label}] > {command}\n[{label}] < {response}  ({micros} us)")
                    }
                    Event::Apdu { .. } | Event::Atr => {}
                    Event::PowerOff | Event::PowerOn | Event::Reset if !verbose => {}
                    Event::Connecting(a) => {
                        eprintln!("[{label}] waiting for vpcd at {a} (is pcscd running with vsmartcard-vpcd?)")
                    }
                    Event::Connected(a) => {
                        eprintln!("[{label}] inserted in the vpcd reader at {a}")
                    }
                    other => eprintln!("[{label}] {other:?}"),
                };
                vpcd::serve_with(&mut host, &addr, vpcd::Options { quickack }, &stop, &mut log)
                    .map_err(|e| format!("{addr}: {e}"))
            })
        })
        .collect();
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err("a card thread failed".into()),
        }
    }
    eprintln!("cards removed");
    result
}

#[cfg(feature = "pcsc")]
fn apdu_over_pcsc(reader: &str, apdus: &[String], raw: bool, repeat: Option<usize>) -> Result<Vec<String>, String> {
    use firmalab_harness::transport::{Transport, pcsc::PcscTransport};
    let mut t = PcscTransport::connect(reader, std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
    match repeat {
        Some(n) => Ok(vec![format!("{} through {}", console::time_on(&mut t, apdus, n)?, t.name())]),
        None => console::run_on(&mut t, apdus, raw),
    }
}

#[cfg(not(feature = "pcsc"))]
fn apdu_over_pcsc(_reader: &str, _apdus: &[String], _raw: bool, _repeat: Option<usize>) -> Result<Vec<String>, String> {
    Err(NO_PCSC.into())
}

#[cfg(not(feature = "pcsc"))]
const NO_PCSC: &str = "this firmalab was built without PC/SC support: rebuild with `--features pcsc` (needs libpcsclite-dev and pkg-config)";

#[cfg(feature = "pcsc")]
fn readers(wait: Option<String>, timeout: u64) -> Result<(), String> {
    use firmalab_harness::transport::pcsc;
    if let Some(reader) = wait {
        // Connecting waits for the card with SCardGetStatusChange.
        pcsc::PcscTransport::connect(&reader, std::time::Duration::from_secs(timeout)).map_err(|e| e.to_string())?;
    }
    let readers = pcsc::list_readers().map_err(|e| e.to_string())?;
    if readers.is_empty() {
        println!("no readers");
    }
    for r in readers {
        match (&r.atr, &r.recognised) {
            (Some(atr), Some(what)) => println!("{}\t{}\t{}", r.name, firmalab_emulator::hex::encode(atr), what.label),
            _ => println!("{}\t(no card)", r.name),
        }
    }
    Ok(())
}

#[cfg(not(feature = "pcsc"))]
fn readers(_wait: Option<String>, _timeout: u64) -> Result<(), String> {
    Err(NO_PCSC.into())
}
