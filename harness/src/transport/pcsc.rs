//! PC/SC through libpcsclite (the `pcsc` crate): the emulator behind pcscd + vpcd, or a
//! physical token in any reader. Waits for cards with SCardGetStatusChange, never a fixed
//! sleep; works with T=0 and T=1.
//!
//! A token in a reader is shared with other programs (a browser logged in with it, the
//! signing software), so the transport
//! * connects in shared mode and holds the card exclusively only for one logical operation:
//!   each exchange (a command and its GET RESPONSE rounds) and each
//!   [`Transport::exclusive`] section (a PIN-guarded signature, a chained command, a flow
//!   step) runs in one PC/SC transaction, ended with `SCARD_LEAVE_CARD`;
//! * disconnects with `SCARD_LEAVE_CARD`, never `SCARD_RESET_CARD` (the `pcsc` crate's own
//!   drop would reset the card and log every other program out of it);
//! * never resets the card unless it was opened with [`PcscTransport::allowing_reset`].

use super::{Transport, TransportError};
use crate::wire::atr::{CardModel, recognise};
use pcsc::{Context, Disposition, Error, Protocols, ReaderState, Scope, ShareMode, State};
use std::ffi::CString;
use std::time::{Duration, Instant};

fn map(e: Error, reader: &str) -> TransportError {
    match e {
        Error::NoService | Error::ServiceStopped | Error::NoReadersAvailable if reader.is_empty() => {
            TransportError::NoService(e.to_string())
        }
        Error::NoService | Error::ServiceStopped => TransportError::NoService(e.to_string()),
        Error::NoSmartcard | Error::RemovedCard => TransportError::NoCard(reader.into()),
        Error::ResetCard | Error::UnpoweredCard => TransportError::CardGone(e.to_string()),
        other => TransportError::Other(format!("PC/SC: {other}")),
    }
}

fn context() -> Result<Context, TransportError> {
    Context::establish(Scope::User).map_err(|e| map(e, ""))
}

fn reader_names(ctx: &Context) -> Result<Vec<CString>, TransportError> {
    match ctx.list_readers_owned() {
        Ok(r) => Ok(r),
        Err(Error::NoReadersAvailable) => Ok(vec![]),
        Err(e) => Err(map(e, "")),
    }
}

/// A reader as `firmalab readers` shows it.
#[derive(Clone, Debug)]
pub struct ReaderInfo {
    pub name: String,
    pub atr: Option<Vec<u8>>,
    pub recognised: Option<CardModel>,
}

/// Every reader, with the ATR of the card in it and what that ATR means.
pub fn list_readers() -> Result<Vec<ReaderInfo>, TransportError> {
    let ctx = context()?;
    let names = reader_names(&ctx)?;
    let mut states: Vec<ReaderState> = names.iter().map(|n| ReaderState::new(n.clone(), State::UNAWARE)).collect();
    if !states.is_empty() {
        ctx.get_status_change(Duration::from_millis(0), &mut states).map_err(|e| map(e, ""))?;
    }
    Ok(states
        .iter()
        .map(|s| {
            let present = s.event_state().contains(State::PRESENT);
            let atr = present.then(|| s.atr().to_vec()).filter(|a| !a.is_empty());
            ReaderInfo { name: s.name().to_string_lossy().into_owned(), recognised: atr.as_deref().map(recognise), atr }
        })
        .collect())
}

/// Finds the reader: exact name, else the only one containing `wanted`.
fn pick(ctx: &Context, wanted: &str) -> Result<CString, TransportError> {
    let names = reader_names(ctx)?;
    let display: Vec<String> = names.iter().map(|n| n.to_string_lossy().into_owned()).collect();
    if let Some(i) = display.iter().position(|n| n == wanted) {
        return Ok(names[i].clone());
    }
    let hits: Vec<usize> = display.iter().enumerate().filter(|(_, n)| n.contains(wanted)).map(|(i, _)| i).collect();
    match hits.as_slice() {
        [i] => Ok(names[*i].clone()),
        _ => Err(TransportError::NoReader { wanted: wanted.into(), available: display }),
    }
}

/// Blocks until a card is present in the reader (SCardGetStatusChange), up to `timeout`.
pub fn wait_for_card(ctx: &Context, reader: &CString, timeout: Duration) -> Result<(), TransportError> {
    let name = reader.to_string_lossy().into_owned();
    let deadline = Instant::now() + timeout;
    let mut states = [ReaderState::new(reader.clone(), State::UNAWARE)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(Error::Timeout) => return Err(TransportError::NoCard(name)),
            Err(e) => return Err(map(e, &name)),
        }
        let s = &states[0];
        if s.event_state().contains(State::PRESENT) && !s.event_state().contains(State::MUTE) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TransportError::NoCard(name));
        }
        states[0].sync_current_state();
    }
}

/// A connected card.
pub struct PcscTransport {
    /// `None` only while dropping.
    card: Option<pcsc::Card>,
    reader: String,
    atr: Vec<u8>,
    may_reset: bool,
    // Keeps the context alive as long as the card.
    _ctx: Context,
}

impl PcscTransport {
    /// Connects to the card in `reader` (exact name or unique substring), waiting up to
    /// `wait` for one to be inserted.
    pub fn connect(reader: &str, wait: Duration) -> Result<Self, TransportError> {
        let ctx = context()?;
        let name = pick(&ctx, reader)?;
        wait_for_card(&ctx, &name, wait)?;
        let display = name.to_string_lossy().into_owned();
        let card =
            ctx.connect(&name, ShareMode::Shared, Protocols::T0 | Protocols::T1).map_err(|e| map(e, &display))?;
        let atr = match card.status2_owned() {
            Ok(s) => s.atr().to_vec(),
            Err(e) => {
                leave(card);
                return Err(map(e, &display));
            }
        };
        Ok(PcscTransport { card: Some(card), reader: display, atr, may_reset: false, _ctx: ctx })
    }

    /// Lets [`Transport::reset`] reset the card (an explicit user request; tests).
    pub fn allowing_reset(mut self) -> Self {
        self.may_reset = true;
        self
    }

    /// Sends one command without holding the card exclusively, as a program that never
    /// takes transactions does (while another program holds the card it fails with a sharing
    /// violation). firmalab itself never uses it: tests play the other program with it.
    pub fn transmit_unlocked(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let reader = self.reader.clone();
        transmit_on(self.card()?, &reader, command)
    }

    fn card(&mut self) -> Result<&mut pcsc::Card, TransportError> {
        self.card.as_mut().ok_or_else(|| TransportError::CardGone("disconnected".into()))
    }
}

/// Disconnects leaving the card as it is (powered, PINs verified by others still verified).
/// If even that fails the handle is forgotten rather than dropped: the `pcsc` crate's drop
/// would disconnect with `SCARD_RESET_CARD`.
fn leave(card: pcsc::Card) {
    if let Err((card, _)) = card.disconnect(Disposition::LeaveCard) {
        std::mem::forget(card);
    }
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            leave(card);
        }
    }
}

fn transmit_on(card: &pcsc::Card, reader: &str, command: &[u8]) -> Result<Vec<u8>, TransportError> {
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    let answer = card.transmit(command, &mut buf).map_err(|e| map(e, reader))?;
    // Debian 12's vpcd passes on an empty answer when the card's connection closed under the
    // command: the card is gone, not answering "6F00". A single byte has no status word.
    match answer.len() {
        0 => Err(TransportError::CardGone(format!("{reader}: no answer, the card left the reader"))),
        1 => Err(TransportError::Other(format!("{reader}: a 1-byte answer ({:02X}), no status word", answer[0]))),
        _ => Ok(answer.to_vec()),
    }
}

/// The card inside one open transaction.
struct InTransaction<'a> {
    card: &'a pcsc::Card,
    reader: &'a str,
    atr: &'a [u8],
}

impl Transport for InTransaction<'_> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        transmit_on(self.card, self.reader, command)
    }
    fn atr(&self) -> Vec<u8> {
        self.atr.to_vec()
    }
    fn name(&self) -> String {
        self.reader.to_owned()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        Err(TransportError::Other("no reset inside a transaction".into()))
    }
}

impl Transport for PcscTransport {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        super::atomically(self, |t| t.transmit_raw(command))?
    }

    fn exchange(&mut self, command: &[u8]) -> Result<super::Response, TransportError> {
        super::atomically(self, |t| super::follow(t, command))?
    }

    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        let reader = self.reader.clone();
        let atr = self.atr.clone();
        let card = self.card()?;
        let tx = card.transaction().map_err(|e| map(e, &reader))?;
        f(&mut InTransaction { card: &tx, reader: &reader, atr: &atr });
        tx.end(Disposition::LeaveCard).map_err(|(_, e)| map(e, &reader))
    }

    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn name(&self) -> String {
        self.reader.clone()
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        if !self.may_reset {
            return Err(TransportError::Other(format!(
                "refusing to reset the card in {}: a token in a reader is reset only on request",
                self.reader
            )));
        }
        let reader = self.reader.clone();
        self.card()?
            .reconnect(ShareMode::Shared, Protocols::T0 | Protocols::T1, Disposition::ResetCard)
            .map_err(|e| map(e, &reader))
    }
}
