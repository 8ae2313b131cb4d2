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
    /// Send APDUs (hex) to the card in an image file; the image is saved back if it changed.
    Apdu {
        /// The card image (JSON).
        #[arg(long)]
        image: PathBuf,
        /// Print each response as bare hex (data and SW), one line per APDU.
        #[arg(long)]
        raw: bool,
        /// INSECURE deterministic card RNG seed, for reproducible challenges and keys.
        #[arg(long)]
        seed: Option<u64>,
        /// Command APDUs in hex, e.g. 00A4000C023F00.
        #[arg(required = true)]
        apdus: Vec<String>,
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
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firmalab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Cmd::Apdu {
            image,
            raw,
            seed,
            apdus,
        } => {
            for line in console::run(&image, &apdus, raw, seed)? {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::Image {
            command: ImageCmd::Show { file, json },
        } => {
            let image = CardImage::load(&file).map_err(|e| e.to_string())?;
            let summary = inspect::summarize(&image);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
                );
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
                },
        } => {
            if out.exists() && !force {
                return Err(format!(
                    "{} exists; pass --force to replace it",
                    out.display()
                ));
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
                Some(Person::new(
                    &first_name,
                    &last_name,
                    &cf,
                    Date::new(1980, 1, 1),
                    'M',
                    "WSREF-000001",
                )?)
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
        Cmd::Fixtures {
            command: FixturesCmd::Regenerate { dir },
        } => {
            let written = fixtures::regenerate(&dir, &mut |what| eprintln!("generating {what}"))?;
            for p in written {
                println!("{}", p.display());
            }
            Ok(())
        }
    }
}
