//! `firmalab apdu`: APDUs from the command line to a card image.

use crate::transport::Transport;
use firmalab_emulator::hex;
use firmalab_emulator::vpcd::HostedCard;
use firmalab_emulator::{CardRng, Sw};
use std::path::Path;

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
pub fn parse_apdu_arg(arg: &str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(arg).map_err(|e| format!("APDU {arg:?}: {e}"))?;
    if bytes.len() < 4 {
        return Err(format!("APDU {arg:?}: shorter than the 4-byte header"));
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
pub fn run(image_path: &Path, apdus: &[String], raw: bool, seed: Option<u64>) -> Result<ImageSession, String> {
    let commands = apdus.iter().map(|a| parse_apdu_arg(a)).collect::<Result<Vec<_>, _>>()?;
    let rng = match seed {
        Some(s) => CardRng::insecure_deterministic(s),
        None => CardRng::from_os()?,
    };
    let mut host = HostedCard::open(image_path, rng).map_err(|e| e.to_string())?;
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
pub fn run_on(t: &mut dyn Transport, apdus: &[String], raw: bool) -> Result<Vec<String>, String> {
    let commands = apdus.iter().map(|a| parse_apdu_arg(a)).collect::<Result<Vec<_>, _>>()?;
    let mut lines = Vec::with_capacity(commands.len());
    for c in &commands {
        let r = t.transmit_raw(c).map_err(|e| e.to_string())?;
        lines.push(format_response(&r, raw));
    }
    Ok(lines)
}

/// Refuses a list of APDUs to be sent repeatedly when one carries a PIN or PUK (VERIFY,
/// CHANGE REFERENCE DATA, RESET RETRY COUNTER with data): on a real token a wrong one costs a
/// try each time. `allowed`: the user declared the card virtual or accepted the risk.
pub fn refuse_secrets(apdus: &[String], allowed: bool) -> Result<(), String> {
    if allowed {
        return Ok(());
    }
    for a in apdus {
        let bytes = parse_apdu_arg(a)?;
        if crate::wire::apdu::carries_secret(&bytes) {
            return Err(format!(
                "{} carries a PIN or PUK: sent repeatedly it would block a real token after a few wrong tries; refused (--virtual-card for firmalab's card, --accept-secret-risk to send it anyway)",
                crate::wire::apdu::describe(&bytes)
            ));
        }
    }
    Ok(())
}

/// Round-trip statistics of sending `apdus` `rounds` times (after 10 % warm-up rounds).
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    pub samples: usize,
    pub median_us: f64,
    pub p90_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} round trips: median {:.1} us, p90 {:.1} us, min {:.1} us, max {:.1} us",
            self.samples, self.median_us, self.p90_us, self.min_us, self.max_us
        )
    }
}

/// Sends every APDU `rounds` times and measures each round trip (the card's reply included).
pub fn time_on(t: &mut dyn Transport, apdus: &[String], rounds: usize) -> Result<Timing, String> {
    let commands = apdus.iter().map(|a| parse_apdu_arg(a)).collect::<Result<Vec<_>, _>>()?;
    let warmup = (rounds / 10).max(1);
    let mut samples = Vec::with_capacity(rounds * commands.len());
    for round in 0..warmup + rounds {
        for c in &commands {
            let start = std::time::Instant::now();
            t.transmit_raw(c).map_err(|e| e.to_string())?;
            if round >= warmup {
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    if samples.is_empty() {
        return Err("nothing to time".into());
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(Timing {
        samples: samples.len(),
        median_us: at(0.5),
        p90_us: at(0.9),
        min_us: samples[0],
        max_us: samples[samples.len() - 1],
    })
}
