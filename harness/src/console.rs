//! `firmalab apdu`: APDUs from the command line to a card image.

use crate::transport::Transport;
use firmalab_emulator::hex;
use firmalab_emulator::{Card, CardImage, CardRng, Sw};
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
    if data.is_empty() {
        format!("{sw}  {meaning}")
    } else {
        format!("{} {sw}  {meaning}", hex::encode(data))
    }
}

/// Parses one APDU argument (hex; spaces and colons allowed).
pub fn parse_apdu_arg(arg: &str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(arg).map_err(|e| format!("APDU {arg:?}: {e}"))?;
    if bytes.len() < 4 {
        return Err(format!("APDU {arg:?}: shorter than the 4-byte header"));
    }
    Ok(bytes)
}

/// Sends the APDUs to the image's card, saves the image back only if it changed, and returns
/// one line per response.
pub fn run(
    image_path: &Path,
    apdus: &[String],
    raw: bool,
    seed: Option<u64>,
) -> Result<Vec<String>, String> {
    let commands = apdus
        .iter()
        .map(|a| parse_apdu_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    let image = CardImage::load(image_path).map_err(|e| e.to_string())?;
    let rng = match seed {
        Some(s) => CardRng::insecure_deterministic(s),
        None => CardRng::from_os()?,
    };
    let mut card = Card::new(image, rng);
    card.power_on();
    let mut lines = Vec::with_capacity(commands.len());
    let mut changed = false;
    for c in &commands {
        lines.push(format_response(card.transmit(c), raw));
        changed |= card.take_changed();
    }
    if changed {
        card.image().save(image_path).map_err(|e| e.to_string())?;
    }
    Ok(lines)
}

/// Sends the APDUs over any transport, exactly as given (61xx and 6Cxx are shown, not
/// followed), one line per response.
pub fn run_on(t: &mut dyn Transport, apdus: &[String], raw: bool) -> Result<Vec<String>, String> {
    let commands = apdus
        .iter()
        .map(|a| parse_apdu_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut lines = Vec::with_capacity(commands.len());
    for c in &commands {
        let r = t.transmit_raw(c).map_err(|e| e.to_string())?;
        lines.push(format_response(&r, raw));
    }
    Ok(lines)
}
