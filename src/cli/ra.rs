//! `firmalab ra …`: the back office (CMS) on the command line. Exit codes: 0 done, 1 refused
//! by a rule (the reason code is printed) or the store could not be opened, 3 the card could
//! not be read.

use super::CliResult;
use clap::{Args, Subcommand, ValueEnum};
use firmalab_harness::backoffice::{DEFAULT_CDRL, RevocationReason};
use firmalab_harness::cms::Target;
use firmalab_harness::dates::Date;
use firmalab_harness::notices::Within;
use firmalab_harness::open::CardSpec;
use firmalab_harness::outbox::DEFAULT_OUTBOX;
use firmalab_harness::ra::{self, Command, RaError};
use std::path::PathBuf;

#[derive(Args)]
pub struct RaArgs {
    #[command(subcommand)]
    command: RaCmd,
    /// The back-office store.
    #[arg(long, global = true, default_value = firmalab_harness::backoffice::DEFAULT_PATH)]
    ra: PathBuf,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
}

/// Which certificates `revoke`, `suspend` and `reactivate` act on.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// Every certificate of this card (by card serial): "Revoca carta".
    #[arg(long)]
    card: Option<String>,
    /// One certificate, by its hex serial.
    #[arg(long)]
    cert: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        match (&self.card, &self.cert) {
            (Some(c), _) => Target::Card(c.clone()),
            (None, Some(s)) => Target::Certificate(s.clone()),
            (None, None) => Target::Card(String::new()),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CrlFormat {
    Pem,
    Der,
}

#[derive(Subcommand, Debug)]
pub enum RaCmd {
    /// Practices, cards, holders, certificates, contacts and orders (the codes masked).
    Show,
    /// The event log with event types ("Ricerca Eventi" → "Eventi Carta"), by practice and/or holder.
    Events {
        #[arg(long)]
        practice: Option<String>,
        /// The holder's codice fiscale.
        #[arg(long)]
        holder: Option<String>,
    },
    /// Record the issuance of a card read from it: practice, certificates, holder, contacts, and
    /// the PIN/PUK envelope (first half by SMS, second half by email, both into the outbox).
    Enroll {
        /// An image file or reader:NAME.
        #[arg(long)]
        card: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        mobile: String,
        /// The holder's postal address.
        #[arg(long)]
        address: Option<String>,
        /// The CDRL issuing the card.
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        /// The PIN the card was issued with (`image new --pin`): with --puk, sent in two halves.
        /// Without them the codes went in a sealed paper envelope (not recoverable).
        #[arg(long, requires = "puk")]
        pin: Option<String>,
        #[arg(long, requires = "pin")]
        puk: Option<String>,
        #[arg(long, default_value = DEFAULT_OUTBOX)]
        outbox: PathBuf,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Change what the certificate does not carry: address, email, mobile (uniqueness checked).
    Holder {
        /// The holder's codice fiscale.
        codice_fiscale: String,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        mobile: Option<String>,
        #[arg(long)]
        now: Option<Date>,
    },
    /// The signed originals of an issuance arrived: Attesa Originali → Completato.
    ReceiveOriginals {
        practice: String,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Complete a renewal waiting for the CDRL's authorisation (after payment).
    Authorize {
        practice: String,
        /// The CDRL authorising: it must be the one that issued the card and ran the renewal.
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Revoke a card's certificates or one certificate (only the CDRL that issued the card).
    Revoke {
        #[command(flatten)]
        target: TargetArgs,
        /// unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation.
        #[arg(long, default_value = "unspecified")]
        reason: RevocationReason,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Suspend active certificates (certificateHold in CRL and OCSP).
    Suspend {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Reactivate certificates a CDRL suspended.
    Reactivate {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Send the second half of the PIN/PUK codes again to the practice's email (only in
    /// Attesa Originali or Completato).
    ResendCodes {
        practice: String,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long, default_value = DEFAULT_OUTBOX)]
        outbox: PathBuf,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Certificates entering their renewal window; with --outbox, one RFC 5322 notice per holder.
    Due {
        /// How far ahead: days (60d) or weeks (8w).
        #[arg(long, default_value = "60d")]
        within: Within,
        /// Write the notices here (and log them on the practices).
        #[arg(long)]
        outbox: Option<PathBuf>,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Write the issuing CA's CRL (signed, reasons; certificateHold for suspended ones).
    Crl {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "pem")]
        format: CrlFormat,
        /// Days until nextUpdate.
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// The test CA folder (default: the test CA built into firmalab).
        #[arg(long, value_name = "DIR")]
        ca: Option<PathBuf>,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Aruba Key renewal, phase 1 (the web order): the card authenticates with its CNS
    /// certificate (the back office's challenge signed on the card), the diagnostic passes,
    /// new key pairs are generated on the card and the CA issues their certificates, which
    /// wait for `firmalab flow import`. Exit codes as `firmalab flow`.
    Order(Box<OrderArgs>),
    /// Write index.txt, the CA and the responder's certificate and key for `openssl ocsp`.
    OcspIndex {
        #[arg(long)]
        out: PathBuf,
        /// The test CA folder (default: the test CA built into firmalab).
        #[arg(long, value_name = "DIR")]
        ca: Option<PathBuf>,
        #[arg(long)]
        now: Option<Date>,
    },
}

/// `ra order`: the card and what the order page asks (the PIN, the contract conditions).
#[derive(Args, Debug)]
pub struct OrderArgs {
    /// An image file or reader:NAME.
    #[arg(long)]
    card: String,
    /// The PIN (asked, hidden, when missing and a terminal is attached). Scripts use
    /// --pin-file: a command line is visible to every user of the machine.
    #[arg(long, conflicts_with = "pin_file")]
    pin: Option<String>,
    /// Read the PIN from the first line of this file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
    /// Accept the contract conditions of the order.
    #[arg(long)]
    yes: bool,
    /// Send the PIN even when its object has 1 try left.
    #[arg(long)]
    allow_last_try: bool,
    /// Send only commands that read; stop before the first that would present a secret or
    /// change the card.
    #[arg(long)]
    dry_run: bool,
    /// Confirms the key generation on a card in a reader by its serial (no terminal to type it).
    #[arg(long, value_name = "SERIAL")]
    confirm_serial: Option<String>,
    /// The test CA folder (default: the test CA built into firmalab).
    #[arg(long, value_name = "DIR")]
    ca: Option<PathBuf>,
    /// Where the requests and the issued certificates are written.
    #[arg(long, default_value = "firmalab-out")]
    out_dir: PathBuf,
    /// From when the new certificates' 3 years count (the Aruba Key pages: from issuance).
    #[arg(long, value_enum, default_value = "from-issuance")]
    expiry: super::flow::Expiry,
    /// The diagnostic's "not revoked" asks this OCSP responder instead of the back office.
    #[arg(long)]
    ocsp: Option<String>,
    #[arg(long)]
    now: Option<Date>,
    /// Record the APDU transcript (PINs as placeholders) to this file.
    #[arg(long)]
    transcript: Option<PathBuf>,
    /// Write a JUnit XML report.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write a support bundle to this file (by default one is written when the order fails).
    #[arg(long, value_name = "FILE")]
    support_bundle: Option<PathBuf>,
    #[arg(long, conflicts_with = "support_bundle")]
    no_support_bundle: bool,
    /// INSECURE deterministic card RNG and back-office challenge, for tests.
    #[arg(long)]
    seed: Option<u64>,
    /// In-process cards answer with a physical token's latency (none, fast, typical, slow).
    #[arg(long, default_value = "none")]
    timing: firmalab_emulator::timing::Timing,
}

impl OrderArgs {
    /// The order as the flow runner takes it.
    fn into_flow(self, ra: PathBuf, json: bool) -> super::flow::FlowArgs {
        super::flow::FlowArgs {
            name: super::flow::FlowName::Order,
            cards: vec![self.card],
            pin: self.pin,
            pin_file: self.pin_file,
            puk: None,
            puk_file: None,
            new_pin: None,
            new_pin_file: None,
            new_puk: None,
            new_puk_file: None,
            default_pin: false,
            allow_last_try: self.allow_last_try,
            dry_run: self.dry_run,
            confirm_serial: self.confirm_serial,
            yes: self.yes,
            serial: None,
            holder_data_wrong: false,
            email: None,
            mobile: None,
            cdrl: None,
            ocsp: self.ocsp,
            now: self.now,
            ra,
            ca: self.ca,
            out_dir: self.out_dir,
            expiry: self.expiry,
            json,
            transcript: self.transcript,
            junit: self.junit,
            support_bundle: self.support_bundle,
            no_support_bundle: self.no_support_bundle,
            seed: self.seed,
            timing: self.timing,
        }
    }
}

impl From<CrlFormat> for ra::CrlFormat {
    fn from(f: CrlFormat) -> Self {
        match f {
            CrlFormat::Pem => ra::CrlFormat::Pem,
            CrlFormat::Der => ra::CrlFormat::Der,
        }
    }
}

impl RaCmd {
    /// The back-office command, or the order, which runs as a flow on a card.
    fn into_command(self) -> Result<Command, Box<OrderArgs>> {
        Ok(match self {
            RaCmd::Show => Command::Show,
            RaCmd::Events { practice, holder } => Command::Events { practice, holder },
            RaCmd::Enroll { card, email, mobile, address, cdrl, pin, puk, outbox, now } => Command::Enroll {
                card: CardSpec::parse(&card),
                email,
                mobile,
                address,
                cdrl,
                codes: pin.zip(puk),
                outbox,
                now,
            },
            RaCmd::Holder { codice_fiscale, address, email, mobile, now } => {
                Command::Holder { codice_fiscale, address, email, mobile, now }
            }
            RaCmd::ReceiveOriginals { practice, cdrl, now } => Command::ReceiveOriginals { practice, cdrl, now },
            RaCmd::Authorize { practice, cdrl, now } => Command::Authorize { practice, cdrl, now },
            RaCmd::Revoke { target, reason, cdrl, now } => {
                Command::Revoke { target: target.target(), reason, cdrl, now }
            }
            RaCmd::Suspend { target, cdrl, now } => Command::Suspend { target: target.target(), cdrl, now },
            RaCmd::Reactivate { target, cdrl, now } => Command::Reactivate { target: target.target(), cdrl, now },
            RaCmd::ResendCodes { practice, cdrl, outbox, now } => Command::ResendCodes { practice, cdrl, outbox, now },
            RaCmd::Due { within, outbox, now } => Command::Due { within, outbox, now },
            RaCmd::Crl { out, format, days, ca, now } => Command::Crl { out, format: format.into(), days, ca, now },
            RaCmd::OcspIndex { out, ca, now } => Command::OcspIndex { out, ca, now },
            RaCmd::Order(o) => return Err(o),
        })
    }
}

/// `firmalab ra …`.
pub fn run(a: RaArgs) -> CliResult {
    let enroll = matches!(a.command, RaCmd::Enroll { .. });
    let command = match a.command.into_command() {
        Ok(c) => c,
        Err(order) => return super::flow::run(order.into_flow(a.ra, a.json)),
    };
    match ra::run(command, &a.ra, a.json) {
        Ok(shown) => {
            print!("{}", shown.text);
            if enroll && !a.json {
                eprintln!("back office: {}", firmalab_harness::fixtures::absolute(&a.ra).display());
            }
            Ok(shown.code)
        }
        Err(RaError::Card(e)) => {
            eprintln!("firmalab: {e}");
            Ok(3)
        }
        Err(e) => Err(e.into()),
    }
}
