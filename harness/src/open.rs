//! Opening a card the way a user names it: an image file, or `reader:NAME` for a card in a
//! PC/SC reader. The command line and the tests open cards only through here.
//!
//! ```
//! use firmalab_harness::backoffice::BackOffice;
//! use firmalab_harness::fixtures::REFERENCE_DATE;
//! use firmalab_harness::flows::Event;
//! use firmalab_harness::flows::diagnostic::{self, Policy};
//! use firmalab_harness::open::{CardSpec, OpenOptions};
//! use firmalab_harness::report;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A copy of a fixture card: the image file is locked while open and saved as it changes.
//! let dir = std::env::temp_dir().join(format!("firmalab-doc-open-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let copy = dir.join("cns-renewable.json");
//! firmalab_harness::fixtures::builtin("cns-renewable")?.save(&copy)?;
//! let spec: CardSpec = copy.display().to_string().parse()?;
//! let card = spec.open(&OpenOptions { seed: Some(7), ..OpenOptions::default() })?;
//! // Each step as it ends: `  ok   2. serial  6010000000000101  (0 ms)` …
//! let mut print = |e: Event<'_>| {
//!     if let Some(line) = report::step_line(e) {
//!         println!("{line}");
//!     }
//! };
//! let runner = card.runner("diagnostic", REFERENCE_DATE, &mut print, None)?;
//! let r = diagnostic::run(runner, &BackOffice::default(), &Policy::default(), Some("12345678"));
//! println!("{}", report::outcome_line(&r)); // diagnostic: refused, NotInBackOffice — …
//! assert_eq!(r.steps.len(), 11, "the Diagnostic step and its ten checks");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! A card in a reader may be someone's qualified signature token: [`CardSpec::open`] puts it
//! behind a consent gate, so nothing that writes to it goes out before the user confirmed by
//! the card's serial ([`confirm_by_serial`]); a dry run ([`OpenOptions::dry_run`]) stops
//! before the first command that would present a secret or change any card.

use crate::client::{self, CardClient, ClientError};
use crate::dates::Date;
use crate::flows::{Confirmer, Event, Runner};
use crate::transport::gate::{Consent, Gate, Mode};
use crate::transport::in_process::InProcess;
use crate::transport::{Transport, TransportError};
use firmalab_emulator::CardRng;
use firmalab_emulator::image::ImageError;
use firmalab_emulator::timing::Timing;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A card as the user names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardSpec {
    /// A card image file: the card runs in this process, the file is locked while open and
    /// saved after every command that changes the card.
    Image(PathBuf),
    /// `reader:NAME`: the card in a PC/SC reader (exact name or a unique part of it), the
    /// virtual card through vpcd or a physical token. Needs the `pcsc` feature.
    Reader(String),
}

impl CardSpec {
    /// Reads `reader:NAME` or an image path (any other text).
    pub fn parse(spec: &str) -> CardSpec {
        match spec.strip_prefix("reader:") {
            Some(reader) => CardSpec::Reader(reader.to_owned()),
            None => CardSpec::Image(PathBuf::from(spec)),
        }
    }

    /// Whether the card is in a PC/SC reader (someone's token, perhaps).
    pub fn in_reader(&self) -> bool {
        matches!(self, CardSpec::Reader(_))
    }

    /// Where the card is, for messages: the reader's name or the image path.
    pub fn place(&self) -> String {
        match self {
            CardSpec::Reader(r) => r.clone(),
            CardSpec::Image(p) => p.display().to_string(),
        }
    }

    /// The bare transport to the card, without any gate (see [`CardSpec::open`] for the
    /// guarded one). In-process cards get the RNG and latency of `o`.
    pub fn transport(&self, o: &OpenOptions) -> Result<Box<dyn Transport>, OpenError> {
        match self {
            CardSpec::Reader(reader) => open_reader(reader, o.reader_wait),
            CardSpec::Image(path) => {
                let rng = match o.seed {
                    Some(s) => CardRng::insecure_deterministic(s),
                    None => CardRng::from_os().map_err(OpenError::Rng)?,
                };
                Ok(Box::new(InProcess::open(path, rng)?.with_timing(o.timing)))
            }
        }
    }

    /// Opens the card behind the gate it needs: a dry run stops before the first command
    /// that would present a secret or change the card; a card in a reader takes writes only
    /// after the user confirmed by its serial.
    pub fn open(&self, o: &OpenOptions) -> Result<OpenCard, OpenError> {
        let t = self.transport(o)?;
        Ok(if o.dry_run {
            OpenCard { transport: Box::new(Gate::new(t, Mode::DryRun).0), consent: None, dry_run: true }
        } else if self.in_reader() {
            let (gate, consent) = Gate::new(t, Mode::Consent);
            OpenCard { transport: Box::new(gate), consent: Some(consent), dry_run: false }
        } else {
            OpenCard { transport: t, consent: None, dry_run: false }
        })
    }
}

impl std::str::FromStr for CardSpec {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(CardSpec::parse(s))
    }
}

impl fmt::Display for CardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardSpec::Reader(r) => write!(f, "reader:{r}"),
            CardSpec::Image(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How to open a card.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// INSECURE deterministic RNG seed for in-process cards (reproducible challenges and
    /// keys); `None`: the operating system's randomness.
    pub seed: Option<u64>,
    /// In-process cards answer with a physical token's latency.
    pub timing: Timing,
    /// Send only what reads; stop before the first command that would present a secret or
    /// change the card.
    pub dry_run: bool,
    /// How long to wait for a card in the reader.
    pub reader_wait: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { seed: None, timing: Timing::None, dry_run: false, reader_wait: Duration::from_secs(10) }
    }
}

impl OpenOptions {
    /// Whether RSA-2048 keys generated on this card come from the public key pool instead of
    /// its RNG: an in-process card in deterministic mode (`--seed`). Anyone has those private
    /// keys (`fixtures/keys/rsa2048-pool.txt`).
    pub fn pool_keys(&self, spec: &CardSpec) -> bool {
        self.seed.is_some() && !spec.in_reader()
    }
}

/// What the key-generation step says when the keys were not generated but drawn from the
/// public pool (deterministic mode).
pub const POOL_NOTE: &str = "key pairs drawn from the public pool fixtures/keys/rsa2048-pool.txt (deterministic mode, --seed): not generated, not secret";

/// A flow step as [`crate::report::step_line`] shows it; when `pool_keys`, the key-generation
/// step says that its keys came from the public pool ([`POOL_NOTE`]), so no run presents pool
/// keys as generated.
pub fn step_line(e: Event<'_>, pool_keys: bool) -> Option<String> {
    match e {
        Event::Begin("KeysGenerated") if pool_keys => {
            Some(format!("  …  {:<30} drawing key pairs from the public pool (deterministic mode)", "KeysGenerated"))
        }
        Event::End(s) if pool_keys && s.name == "KeysGenerated" && s.status == crate::flows::StepStatus::Ok => {
            let pooled = crate::flows::StepRecord { detail: POOL_NOTE.to_owned(), ..s.clone() };
            crate::report::step_line(Event::End(&pooled))
        }
        _ => crate::report::step_line(e),
    }
}

/// Why a card could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The image file: missing, invalid, or locked by another process.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// No randomness for the card.
    #[error("{0}")]
    Rng(String),
    /// The reader or the card in it.
    #[error(transparent)]
    Reader(#[from] TransportError),
    /// `reader:NAME` in a build without the `pcsc` feature.
    #[error("reader:NAME needs PC/SC support: rebuild with `--features pcsc`")]
    NoPcsc,
    /// The card is not one the harness has a client for, or its client could not start.
    #[error(transparent)]
    Client(#[from] ClientError),
}

#[cfg(feature = "pcsc")]
fn open_reader(reader: &str, wait: Duration) -> Result<Box<dyn Transport>, OpenError> {
    Ok(Box::new(crate::transport::pcsc::PcscTransport::connect(reader, wait)?))
}

#[cfg(not(feature = "pcsc"))]
fn open_reader(_reader: &str, _wait: Duration) -> Result<Box<dyn Transport>, OpenError> {
    Err(OpenError::NoPcsc)
}

/// An open card behind its gate.
pub struct OpenCard {
    /// The card's transport (gated for dry runs and cards in readers).
    pub transport: Box<dyn Transport>,
    /// For cards in readers: writes wait for this consent (the confirmation by serial).
    pub consent: Option<Consent>,
    /// The gate is a dry run.
    pub dry_run: bool,
}

impl OpenCard {
    /// The card client for the card's ATR, with the strict secret policy.
    pub fn client(self) -> Result<Box<dyn CardClient>, OpenError> {
        Ok(client::open(self.transport)?)
    }

    /// A [`Runner`] for the flow `flow` on this card, recording its transcript: a dry run
    /// makes it answer its questions as accepted (the gate stops before anything they
    /// guard); on a card in a reader destructive steps first ask `confirm` (see
    /// [`confirm_by_serial`]; without one they are refused).
    pub fn runner<'r>(
        self,
        flow: &str,
        now: Date,
        reporter: &'r mut dyn FnMut(Event<'_>),
        confirm: Option<Confirmer<'r>>,
    ) -> Result<Runner<'r>, OpenError> {
        let mut r = Runner::open(self.transport, flow, now, reporter)?;
        if self.dry_run {
            r = r.dry_run();
        }
        if let Some(consent) = self.consent {
            let refuse: Confirmer<'r> = Box::new(|serial: &str, what: &str| {
                Err(format!("this would {what} on card {serial}, and nobody was asked to confirm"))
            });
            r = r.confirming(consent, confirm.unwrap_or(refuse));
        }
        Ok(r)
    }
}

/// Among several cards, the one a renewal takes: the one whose signature certificate expires
/// first among those not yet expired (Aruba Enroll: "choose the expiring certificate").
/// Every card is opened (without a gate: this only reads) and closed again; returns the index
/// of the chosen spec.
pub fn choose_for_renewal(specs: &[CardSpec], o: &OpenOptions, now: Date) -> Result<usize, crate::Error> {
    let mut clients = vec![];
    for spec in specs {
        clients.push(client::open(spec.transport(o)?)?);
    }
    Ok(crate::flows::renewal::choose(&mut clients, now)?)
}

/// Shows a prompt and returns the line the user typed (or why it could not be read).
pub type Ask<'a> = Box<dyn FnMut(&str) -> Result<String, String> + 'a>;

/// The confirmation by serial of a destructive operation on a card in `reader`: the serial
/// given in advance (`--confirm-serial`) must be the card's; without one, `ask` shows its
/// prompt and returns the line the user typed (`None`: no terminal to ask on, refused).
pub fn confirm_by_serial<'a>(given: Option<String>, reader: &'a str, mut ask: Option<Ask<'a>>) -> Confirmer<'a> {
    Box::new(move |serial: &str, what: &str| match (&given, &mut ask) {
        (Some(given), _) if given == serial => Ok(()),
        (Some(given), _) => Err(format!("--confirm-serial {given} is not this card's serial ({serial}): nothing done")),
        (None, Some(ask)) => {
            let line =
                ask(&format!("This will {what}: card {serial} in {reader}.\nType the card's serial to confirm: "))?;
            if line.trim() == serial {
                Ok(())
            } else {
                Err(format!("{:?} is not the card's serial: nothing done", line.trim()))
            }
        }
        (None, None) => Err(format!(
            "this would {what} on card {serial} in {reader}: confirm with --confirm-serial {serial} (no terminal to ask on)"
        )),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_locked_while_open_and_a_dry_run_stops_before_a_change() {
        let dir = std::env::temp_dir().join(format!("firmalab-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("card.json");
        crate::fixtures::builtin("cns-renewable").unwrap().save(&path).unwrap();
        let spec = CardSpec::parse(path.to_str().unwrap());
        let card = spec.open(&OpenOptions { seed: Some(1), dry_run: true, ..OpenOptions::default() }).unwrap();
        assert!(card.dry_run && card.consent.is_none());
        assert!(matches!(spec.open(&OpenOptions::default()), Err(OpenError::Image(_))), "locked while open");
        let mut t = card.transport;
        assert!(t.transmit_raw(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]).is_ok(), "a SELECT goes out");
        let erase = t.transmit_raw(&[0xB0, 0xF5, 0x00, 0x00]);
        assert!(matches!(erase, Err(TransportError::DryRun(_))), "{erase:?}");
        drop(t);
        let card = spec.open(&OpenOptions::default()).unwrap();
        assert_eq!(card.client().unwrap().serial().unwrap(), "6010000000000101");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(not(feature = "pcsc"))]
    #[test]
    fn a_reader_needs_the_pcsc_feature() {
        let e = CardSpec::parse("reader:Virtual PCD").open(&OpenOptions::default()).err().unwrap();
        assert_eq!(e.to_string(), "reader:NAME needs PC/SC support: rebuild with `--features pcsc`");
    }

    #[test]
    fn specs_name_a_reader_or_an_image() {
        assert_eq!(CardSpec::parse("reader:Virtual PCD 00 00"), CardSpec::Reader("Virtual PCD 00 00".into()));
        assert_eq!(CardSpec::parse("cards/x.json"), CardSpec::Image("cards/x.json".into()));
        assert!(CardSpec::parse("reader:00").in_reader());
        assert_eq!(CardSpec::parse("reader:00").to_string(), "reader:00");
    }

    #[test]
    fn the_serial_confirms_only_when_it_is_the_cards() {
        let mut c = confirm_by_serial(Some("1234".into()), "R", None);
        assert_eq!(c("1234", "erase"), Ok(()));
        assert!(c("9999", "erase").is_err_and(|e| e.contains("is not this card's serial (9999)")));
        let mut c = confirm_by_serial(None, "R", None);
        assert!(c("1234", "erase it").is_err_and(|e| e.contains("confirm with --confirm-serial 1234")));
        let mut c = confirm_by_serial(None, "R", Some(Box::new(|_: &str| Ok(" 1234\n".to_owned()))));
        assert_eq!(c("1234", "erase"), Ok(()));
        let mut c = confirm_by_serial(None, "R", Some(Box::new(|_: &str| Ok("12".to_owned()))));
        assert!(c("1234", "erase").is_err());
    }
}
