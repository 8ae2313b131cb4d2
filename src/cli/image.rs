//! `firmalab image show | new`: inspect a card image, or issue one from the test CA.

use super::CliResult;
use clap::Subcommand;
use firmalab_emulator::CardImage;
use firmalab_emulator::image::ProfileKind;
use firmalab_harness::dates::Date;
use firmalab_harness::fixtures::{self, NewImage};
use firmalab_harness::twin::Twin;
use firmalab_harness::variant::Variant;
use firmalab_harness::{capture, inspect};
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
    /// Issue a card from the test CA, renewable today by default (its certificates expire in
    /// 30 days, inside the 2-month renewal window; --expires-in 3y for a freshly issued one).
    /// New RSA-2048 keys from the OS RNG (a second or so), unless --seed.
    New {
        /// cns, oberthur or incrypto34 (implied by --twin).
        #[arg(long, required_unless_present = "twin")]
        profile: Option<ProfileKind>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "Mario")]
        first_name: String,
        #[arg(long, default_value = "Rossi")]
        last_name: String,
        /// The first 15 characters of the codice fiscale (the check character is computed).
        /// Default: derived from the names (born 1980-01-01 in Rome, male): RSSMRA80A01H501
        /// for Mario Rossi.
        #[arg(long)]
        cf: Option<String>,
        /// CNS: 16 characters for EF_IDCarta; Oberthur: 8 hex digits. Default: from the clock.
        #[arg(long)]
        serial: Option<String>,
        #[arg(long, default_value = "12345678")]
        pin: String,
        #[arg(long, default_value = "87654321")]
        puk: String,
        /// Today (YYYY-MM-DD; default: the system clock).
        #[arg(long)]
        now: Option<Date>,
        /// When the certificates expire, counted from today: 30d (default: renewable today),
        /// 8w, 6m, 3y (a fresh card). They are valid for 3 years up to then.
        #[arg(long, default_value = "30d")]
        expires_in: fixtures::Span,
        /// INSECURE: derive the keys from this label instead of the OS RNG (reproducible; anyone
        /// who knows the label can recompute the private keys).
        #[arg(long)]
        seed: Option<String>,
        /// Issue a blank card (failed issuance: no keys, default PIN 12345).
        #[arg(long)]
        blank: bool,
        /// The test CA folder (default: the test CA built into firmalab, the same as
        /// fixtures/ca).
        #[arg(long, value_name = "DIR")]
        ca: Option<PathBuf>,
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
        #[arg(long, conflicts_with = "twin")]
        variant: Option<Variant>,
        /// A strict twin of a genuine token: none of firmalab's convenience commands, refused
        /// as the real card refuses them. cns-incard-1.0 (the genuine Aruba Incard CNS 1.0 ATR,
        /// RSA-2048 keys, no on-card renewal commands), cns-idemia-2021 (one PIN for both keys;
        /// its PIN status query costs a try), oberthur-authentic (T=0 only: extended APDUs
        /// refused).
        #[arg(long)]
        twin: Option<Twin>,
    },
    /// A virtual twin of a card in a PC/SC reader, read without changing it: ATR, profile,
    /// file tree with FCPs, certificates, public keys, life cycle, counters (where the query
    /// is free). Only SELECT, READ BINARY/RECORD and GET DATA are sent (a write or a PIN
    /// cannot pass the read-only gate). Fresh key pairs stand in for the private keys, the
    /// template's test values for the PINs (build with --features pcsc).
    Capture {
        /// The reader: exact name or a unique part of it.
        #[arg(long)]
        reader: String,
        /// The twin's image file (not replaced unless --force).
        #[arg(long)]
        out: PathBuf,
        /// Replace holder names, codice fiscale, birth date, email and serial-derived data
        /// with consistent pseudonyms of the same shape.
        #[arg(long)]
        scrub: bool,
        /// INSECURE: derive the stand-in keys from this label (reproducible, public) instead
        /// of the OS RNG.
        #[arg(long)]
        seed: Option<String>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
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
            expires_in,
            seed,
            blank,
            ca,
            force,
            ocsp_url,
            crl_url,
            variant,
            twin,
        } => {
            let profile = match (profile, twin) {
                (Some(p), Some(t)) if p != t.profile() => {
                    return Err(format!(
                        "--twin {t} is personalised on --profile {}, not {}",
                        t.profile().name(),
                        p.name()
                    )
                    .into());
                }
                (Some(p), _) => p,
                (None, Some(t)) => t.profile(),
                (None, None) => return Err("--profile or --twin is required".into()),
            };
            if let Some(v) = variant
                && v.profile() != profile
            {
                return Err(format!("--variant {v} is personalised on --profile {}", v.profile().name()).into());
            }
            let image = fixtures::new_image_file(&NewImage {
                profile,
                out: out.clone(),
                force,
                first_name,
                last_name,
                cf,
                serial,
                pin,
                puk,
                now,
                expires_in,
                seed,
                blank,
                ca,
                ocsp_url,
                crl_url,
                variant,
                twin,
            })?;
            print!("{}", inspect::render(&inspect::summarize(&image)));
            println!("written to {}", fixtures::absolute(&out).display());
        }
        ImageCmd::Capture { reader, out, scrub, seed, force } => {
            if out.exists() && !force {
                return Err(format!("{} exists: give --force to replace it", out.display()).into());
            }
            let opts = capture::CaptureOptions { scrub, key_seed: seed, source: format!("reader {reader:?}") };
            let c = capture::capture_reader(&reader, &opts)?;
            c.image.save(&out)?;
            print!("{}", inspect::render(&inspect::summarize(&c.image)));
            println!("captured read-only: {} files read in {} APDUs", c.files, c.apdus);
            for n in &c.notes {
                println!("note: {n}");
            }
            println!("written to {}", fixtures::absolute(&out).display());
        }
    }
    Ok(0)
}
