//! `firmalab image show | new`: inspect a card image, or issue one from the test CA.

use super::CliResult;
use clap::Subcommand;
use firmalab_emulator::CardImage;
use firmalab_emulator::image::ProfileKind;
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::{self, NewImage};
use firmalab_harness::inspect;
use firmalab_harness::variant::Variant;
use std::path::PathBuf;

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum ImageCmd {
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
        /// A product personalised on the profile: aruba-key (on cns: the Aruba Key USB token,
        /// told apart by its ATR).
        #[arg(long)]
        variant: Option<Variant>,
    },
}

pub fn run(cmd: ImageCmd) -> CliResult {
    match cmd {
        ImageCmd::Show { file, json } => {
            let image = CardImage::load(&file)?;
            let summary = inspect::summarize(&image);
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", inspect::render(&summary));
            }
        }
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
            variant,
        } => {
            if let Some(v) = variant
                && v.profile() != profile
            {
                return Err(format!("--variant {v} is personalised on --profile {}", v.profile().name()).into());
            }
            let image = fixtures::new_image_file(&NewImage {
                profile,
                out,
                force,
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
                ocsp_url,
                crl_url,
                variant,
            })?;
            print!("{}", inspect::render(&inspect::summarize(&image)));
        }
    }
    Ok(0)
}
