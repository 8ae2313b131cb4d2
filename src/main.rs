//! The `firmalab` command line. Argument parsing and printing only; the work is in the
//! `firmalab-emulator` and `firmalab-harness` crates.

use clap::{Parser, Subcommand};
use firmalab_emulator::CardImage;
use firmalab_emulator::image::{ImageFile, ProfileKind};
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::{self, CardRequest, KeySource, Person};
use firmalab_harness::{console, inspect, pki::TestCa};
use std::path::PathBuf;
use std::process::ExitCode;

mod flows_cli;
mod ra_cli;

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
    },
    /// Run virtual cards in vpcd readers, so every PC/SC program (OpenSC, browsers, signing
    /// software) sees them. Stops on Ctrl-C / SIGTERM.
    Card {
        /// A card image; saved after every command that changes the card. Repeatable.
        #[arg(long)]
        image: Vec<PathBuf>,
        /// An ephemeral card from the built-in fixtures (cns-renewable, oberthur-renewable,
        /// incrypto34-issued, incrypto34-blank, cns-failed-issuance, cns-pin-blocked,
        /// cns-puk-blocked, cns-expired, or cns / oberthur / incrypto34); never saved.
        /// Repeatable.
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
    Flow(Box<flows_cli::FlowArgs>),
    /// The back office (CMS): enroll, events, authorise, revoke/suspend, resend codes,
    /// renewal notices, CRL and OCSP index. Exit codes: 0 done, 1 refused (reason code
    /// printed), 3 the card could not be read.
    Ra {
        #[command(subcommand)]
        command: ra_cli::RaCmd,
        /// The back-office store.
        #[arg(long, global = true, default_value = firmalab_harness::backoffice::DEFAULT_PATH)]
        ra: PathBuf,
        /// Print the result as JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Replay a recorded transcript against a card and report the first divergence.
    Replay {
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
    },
    /// Signature throughput and per-APDU cost, each next to `openssl speed` measured in the
    /// same run (build with --features openssl for the OpenSSL backend, pcsc for --reader).
    Bench {
        /// Seconds per figure.
        #[arg(long, default_value_t = 2)]
        seconds: u64,
        /// Also measure the PC/SC round trip to the card in this reader (without any PIN
        /// unless --virtual-card or --accept-secret-risk).
        #[arg(long)]
        reader: Option<String>,
        /// The card in the reader is a firmalab virtual card: time the signature sequence,
        /// which sends the PIN 12345678.
        #[arg(long, requires = "reader")]
        virtual_card: bool,
        /// Time the signature sequence on a card in a reader anyway.
        #[arg(long, requires = "reader")]
        accept_secret_risk: bool,
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
#[allow(clippy::large_enum_variant)] // parsed once
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
        /// The OCSP URL written into the certificates (AIA; default FIRMALAB_OCSP_URL or
        /// http://127.0.0.1:2560).
        #[arg(long)]
        ocsp_url: Option<String>,
        /// The CRL distribution point written into the certificates (default FIRMALAB_CRL_URL
        /// or http://127.0.0.1:2561/firmalab-test-ca.crl).
        #[arg(long)]
        crl_url: Option<String>,
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
        Cmd::Flow(args) => return flows_cli::flow(*args),
        Cmd::Ra { command, ra, json } => return ra_cli::run(command, &ra, json),
        Cmd::Replay { file, card, secrets, secret_files, seed, dry_run, confirm_serial } => {
            return flows_cli::replay(flows_cli::ReplayArgs {
                file,
                card,
                secrets,
                secret_files,
                seed,
                dry_run,
                confirm_serial,
            });
        }
        Cmd::Demo { dir } => flows_cli::demo(dir),
        Cmd::Bench { seconds, reader, virtual_card, accept_secret_risk } => {
            flows_cli::bench(seconds, reader, virtual_card || accept_secret_risk)
        }
        Cmd::Scenario {
            files,
            card,
            seed,
            virtual_card,
            accept_secret_risk,
            allow_last_try,
            dry_run,
            confirm_serial,
        } => {
            return flows_cli::scenario(flows_cli::ScenarioArgs {
                files,
                card,
                seed,
                virtual_card,
                accept_secret_risk,
                allow_last_try,
                dry_run,
                confirm_serial,
            });
        }
        Cmd::Apdu { image, reader, raw, seed, repeat, virtual_card, accept_secret_risk, apdus } => {
            let (lines, failure) = match (image, reader) {
                (Some(image), _) => {
                    let session = console::run(&image, &apdus, raw, seed)?;
                    (session.lines, session.save_failure)
                }
                (None, Some(reader)) => {
                    if repeat.is_some() {
                        console::refuse_secrets(&apdus, virtual_card || accept_secret_risk)?;
                    }
                    (apdu_over_pcsc(&reader, &apdus, raw, repeat)?, None)
                }
                (None, None) => return Err("give --image FILE or --reader NAME".into()),
            };
            for line in lines {
                println!("{line}");
            }
            match failure {
                Some(e) => Err(e),
                None => Ok(()),
            }
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
                ImageCmd::New {
                    profile,
                    out,
                    first_name,
                    last_name,
                    cf,
                    serial,
                    pin,
                    puk,
                    now,
                    seed,
                    blank,
                    ca,
                    force,
                    ocsp_url,
                    crl_url,
                },
        } => {
            // Refuse secrets no card of this profile could hold before any work; lock the
            // output so no running card overwrites it (or is overwritten) meanwhile.
            issuer_secret_rule(profile, "--pin", &pin)?;
            issuer_secret_rule(profile, "--puk", &puk)?;
            for url in ocsp_url.iter().chain(&crl_url) {
                if !url.starts_with("http://") {
                    return Err(format!("{url}: revocation URLs are http:// (OCSP and CRLs are plain HTTP)"));
                }
            }
            let mut file = ImageFile::create(&out, force).map_err(|e| e.to_string())?;
            let mut ca = TestCa::load(&ca)?;
            if let Some(u) = ocsp_url {
                ca.urls.ocsp = u;
            }
            if let Some(u) = crl_url {
                ca.urls.crl = u;
            }
            let today = now.unwrap_or_else(Date::today);
            let stamp = today.days_since_epoch().unsigned_abs();
            let serial = serial.unwrap_or_else(|| match profile {
                ProfileKind::Cns => format!("60100{stamp:011}"),
                ProfileKind::Oberthur => format!("{:08x}", stamp as u32 ^ 0x5a5a_0000),
                ProfileKind::Incrypto34 => format!("3410{stamp:012x}"),
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
            image.validate().map_err(|e| format!("the issued card would be invalid: {e}"))?;
            file.save(&image).map_err(|e| e.to_string())?;
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

/// What `image new` accepts as a PIN or PUK: digits only (what Aruba's cards are issued and
/// managed with), within the length the profile's PIN objects allow.
fn issuer_secret_rule(profile: ProfileKind, flag: &str, value: &str) -> Result<(), String> {
    let rule = firmalab_emulator::image::PinRule {
        charset: firmalab_emulator::security::Charset::Digits,
        ..firmalab_emulator::image::pin_rule(profile)
    };
    rule.check(value).map_err(|why| format!("{flag}: {why} ({} card)", profile.name()))
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

    let cards = images.len() + personas.len();
    if cards == 0 {
        return Err("give at least one --image FILE or --persona NAME".into());
    }
    // Every address is checked before any card starts (or any image is locked).
    let addrs: Vec<String> = if vpcd.is_empty() {
        (0..cards).map(|i| format!("127.0.0.1:{}", 35963 + i)).collect()
    } else if vpcd.len() == cards {
        vpcd
    } else {
        return Err(format!("{cards} cards but {} --vpcd addresses: give one per card, in order", vpcd.len()));
    };
    let mut seen = Vec::new();
    for a in &addrs {
        for resolved in vpcd::check_address(a)? {
            if seen.contains(&resolved) {
                return Err(format!("vpcd address {a} is given to two cards: one reader holds one card"));
            }
            seen.push(resolved);
        }
    }
    let rng = |i: usize| match seed {
        Some(s) => Ok(CardRng::insecure_deterministic(s.wrapping_add(i as u64))),
        None => CardRng::from_os(),
    };
    let mut hosts: Vec<(String, HostedCard)> = Vec::new();
    for path in images {
        // Locked for as long as this process runs the card.
        let host = HostedCard::open(&path, rng(hosts.len())?).map_err(|e| e.to_string())?;
        hosts.push((path.display().to_string(), host.with_timing(timing)));
    }
    for name in personas {
        let image = fixtures::builtin(&name)?;
        let host = HostedCard::ephemeral(Card::new(image, rng(hosts.len())?)).with_timing(timing);
        hosts.push((format!("{name} (ephemeral)"), host));
    }
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
                let result = vpcd::serve_with(&mut host, &addr, vpcd::Options { quickack }, &stop, &mut log)
                    .map_err(|e| format!("[{label}] {addr}: {e}"));
                if result.is_err() {
                    // One card failing stops them all: no card keeps running unnoticed.
                    stop.store(true, Ordering::Relaxed);
                }
                result
            })
        })
        .collect();
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) if result.is_ok() => result = Err(e),
            Ok(Err(e)) => eprintln!("firmalab: {e}"),
            Err(_) => result = result.and(Err("a card thread failed".into())),
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
            (Some(atr), Some(what)) => {
                println!("{}\t{}\t{}", r.name, firmalab_harness::wire::hex::encode(atr), what.label)
            }
            _ => println!("{}\t(no card)", r.name),
        }
    }
    Ok(())
}

#[cfg(not(feature = "pcsc"))]
fn readers(_wait: Option<String>, _timeout: u64) -> Result<(), String> {
    Err(NO_PCSC.into())
}
