//! `firmalab apdu`: APDUs from the command line to a card image or a card in a reader, one
//! response line each, or round-trip statistics.

use crate::transport::{Transport, TransportError};
use firmalab_emulator::hex;
use firmalab_emulator::image::ImageError;
use firmalab_emulator::vpcd::HostedCard;
use firmalab_emulator::{CardRng, Sw};
use std::path::Path;

/// Why APDUs could not be sent or timed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// An APDU argument is not hex.
    #[error("APDU {arg:?}: {why}")]
    NotHex { arg: String, why: String },
    #[error("APDU {arg:?}: shorter than the 4-byte header")]
    TooShort { arg: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    /// No randomness for the card.
    #[error("{0}")]
    Rng(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// `--repeat` would send a PIN or PUK again and again (`{0}`: the command).
    #[error(
        "{0} carries a PIN or PUK: sent repeatedly it would block a real token after a few wrong tries; refused (--virtual-card for firmalab's card, --accept-secret-risk to send it anyway)"
    )]
    RepeatedSecret(String),
    /// Built without the `pcsc` feature.
    #[error(
        "this firmalab was built without PC/SC support: rebuild with `--features pcsc` (needs libpcsclite-dev and pkg-config)"
    )]
    NoPcsc,
}

/// One response line: data hex, SW, meaning — or, with `raw`, the whole response hex.
pub fn format_response(response: &[u8], raw: bool) -> String {
    if raw {
        return hex::encode(response);
    }
    let split = response.len().saturating_sub(2);
    let (data, sw) = response.split_at(split);
    let sw = match *sw {
        [a, b] => Sw::from_u16(u16::from_be_bytes([a, b])),
        _ => Sw::Unknown,
    };
    let meaning = match sw {
        Sw::TriesLeft(n) => format!("{} ({n})", sw.meaning()),
        Sw::MoreData(n) | Sw::WrongLe(n) => format!("{} ({n} bytes)", sw.meaning()),
        _ => sw.meaning().to_owned(),
    };
    if data.is_empty() { format!("{sw}  {meaning}") } else { format!("{} {sw}  {meaning}", hex::encode(data)) }
}

/// Parses one APDU argument (hex; spaces and colons allowed).
pub fn parse_apdu_arg(arg: &str) -> Result<Vec<u8>, ConsoleError> {
    let bytes = hex::decode(arg).map_err(|why| ConsoleError::NotHex { arg: arg.into(), why })?;
    if bytes.len() < 4 {
        return Err(ConsoleError::TooShort { arg: arg.into() });
    }
    Ok(bytes)
}

/// What `firmalab apdu --image` did: one line per response, and why a save failed, if one did
/// (the card answered `6581` to that command, nothing changed, and no later command was sent).
#[derive(Debug, Default)]
pub struct ImageSession {
    pub lines: Vec<String>,
    pub save_failure: Option<String>,
}

/// Sends the APDUs to the image's card, holding the image locked meanwhile; every command that
/// changed the card is saved before its response counts (a failed save rolls the card back).
pub fn run(image_path: &Path, apdus: &[String], raw: bool, seed: Option<u64>) -> Result<ImageSession, ConsoleError> {
    let commands = apdus.iter().map(|a| parse_apdu_arg(a)).collect::<Result<Vec<_>, _>>()?;
    let rng = match seed {
        Some(s) => CardRng::insecure_deterministic(s),
        None => CardRng::from_os().map_err(ConsoleError::Rng)?,
    };
    let mut host = HostedCard::open(image_path, rng)?;
    host.card.power_on();
    let mut session = ImageSession { lines: Vec::with_capacity(commands.len()), save_failure: None };
    for c in &commands {
        let (response, failure) = host.transmit(c);
        session.lines.push(format_response(&response, raw));
        if failure.is_some() {
            session.save_failure = failure;
            break;
        }
    }
    Ok(session)
}

/// Sends the APDUs over any transport, exactly as given (61xx and 6Cxx are shown, not
/// followed), one line per response.
pub fn run_on(t: &mut dyn Transport, apdus: &[String], raw: bool) -> Result<Vec<String>, ConsoleError> {
    let commands = apdus.iter().map(|a| parse_apdu_arg(a)).collect::<Result<Vec<_>, _>>()?;
    let mut lines = Vec::with_capacity(commands.len());
    for c in &commands {
        let r = t.transmit_raw(c)?;
        lines.push(format_response(&r, raw));
    }
    Ok(lines)
}

/// Refuses a list of APDUs to be sent repeatedly when one carries a PIN or PUK (VERIFY,
/// CHANGE REFERENCE DATA, RESET RETRY COUNTER with data): on a real token a wrong one costs a
/// try each time. `allowed`: the user declared the card virtual or accepted the risk.
pub fn refuse_secrets(apdus: &[String], allowed: bool) -> Result<(), ConsoleError> {
    if allowed {
        return Ok(());
    }
    for a in apdus {
        let bytes = parse_apdu_arg(a)?;
        if crate::wire::apdu::carries_secret(&bytes) {
            return Err(ConsoleError::RepeatedSecret(crate::wire::apdu::describe(&bytes)));
        }
    }
    Ok(())
}

/// `firmalab apdu --reader`: connects to the card in `reader` (exact name or a unique part,
/// waiting up to 5 s for a card) and sends the APDUs once each ([`run_on`]). Timed repeats
/// (`--repeat`) are [`crate::bench::repeat_on_reader`], the one PC/SC round-trip measurement.
/// Without the `pcsc` feature: [`ConsoleError::NoPcsc`].
#[cfg(feature = "pcsc")]
pub fn run_reader(reader: &str, apdus: &[String], raw: bool) -> Result<Vec<String>, ConsoleError> {
    use crate::transport::pcsc::PcscTransport;
    let mut t = PcscTransport::connect(reader, std::time::Duration::from_secs(5))?;
    run_on(&mut t, apdus, raw)
}

/// `firmalab apdu --reader` needs the `pcsc` feature.
#[cfg(not(feature = "pcsc"))]
pub fn run_reader(_reader: &str, _apdus: &[String], _raw: bool) -> Result<Vec<String>, ConsoleError> {
    Err(ConsoleError::NoPcsc)
}

/// A PC/SC reader and the card in it, as `firmalab readers` lists them.
#[derive(Clone, Debug)]
pub struct ReaderLine {
    pub name: String,
    /// The card's ATR and what it means, when a card is present.
    pub card: Option<(Vec<u8>, String)>,
}

/// `firmalab readers`: every PC/SC reader with its card, after waiting up to `timeout` for a
/// card in `wait` when given. Without the `pcsc` feature: [`ConsoleError::NoPcsc`].
#[cfg(feature = "pcsc")]
pub fn readers(wait: Option<&str>, timeout: std::time::Duration) -> Result<Vec<ReaderLine>, ConsoleError> {
    use crate::transport::pcsc;
    if let Some(reader) = wait {
        // Connecting waits for the card with SCardGetStatusChange.
        pcsc::PcscTransport::connect(reader, timeout)?;
    }
    Ok(pcsc::list_readers()?
        .into_iter()
        .map(|r| ReaderLine { card: r.atr.zip(r.recognised).map(|(atr, what)| (atr, what.label)), name: r.name })
        .collect())
}

/// `firmalab readers` needs the `pcsc` feature.
#[cfg(not(feature = "pcsc"))]
pub fn readers(_wait: Option<&str>, _timeout: std::time::Duration) -> Result<Vec<ReaderLine>, ConsoleError> {
    Err(ConsoleError::NoPcsc)
}
