//! How the host reaches a card: one [`Transport`] trait, implemented in-process (the emulator
//! in this process) and over PC/SC (feature `pcsc`: the emulator through pcscd + vpcd, or a
//! physical token in any reader).
//!
//! [`exchange`] follows `61xx` (GET RESPONSE) and `6Cxx` (resend with the right Le) the way
//! OpenSC's `apdu.c` does, so callers always see the whole answer.

pub mod fault;
pub mod gate;
pub mod in_process;
#[cfg(feature = "pcsc")]
pub mod pcsc;

use crate::wire::Sw;

/// A transport failure (not a card status word: those are in [`Response`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No PC/SC service (pcscd not running).
    #[error("no PC/SC service: {0} (is pcscd running?)")]
    NoService(String),
    /// The named reader does not exist; the list of readers that do.
    #[error("{}", no_reader(wanted, available))]
    NoReader { wanted: String, available: Vec<String> },
    /// No card in the reader (within the wait).
    #[error("no card in reader {0:?}")]
    NoCard(String),
    /// The card was removed or reset under us.
    #[error("card removed or reset: {0}")]
    CardGone(String),
    /// Not sent: the dry run stops before the first command that would change the card.
    #[error("dry run: stopped before {0}")]
    DryRun(String),
    /// Not sent: a command that writes to a card in a reader, without the user's
    /// confirmation by the card's serial.
    #[error("not confirmed: {0}")]
    NotConfirmed(String),
    /// Anything else from the stack.
    #[error("{0}")]
    Other(String),
}

fn no_reader(wanted: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("no reader {wanted:?}: no readers at all")
    } else {
        format!("no reader {wanted:?}; readers: {}", available.join(", "))
    }
}

/// A response APDU, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: Sw,
}

impl Response {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransportError> {
        match bytes.len().checked_sub(2) {
            Some(n) => {
                let (data, sw) = bytes.split_at(n);
                Ok(Response { data: data.to_vec(), sw: Sw::from_u16(u16::from_be_bytes([sw[0], sw[1]])) })
            }
            None => Err(TransportError::Other(format!("response of {} bytes has no status word", bytes.len()))),
        }
    }

    pub fn ok(&self) -> bool {
        self.sw == Sw::Ok
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.data.clone();
        v.extend_from_slice(&self.sw.to_bytes());
        v
    }
}

/// `&mut self` as a `&mut dyn Transport` (for [`Transport::exclusive`]'s default).
pub trait AsTransport {
    fn as_transport(&mut self) -> &mut dyn Transport;
}

impl<T: Transport> AsTransport for T {
    fn as_transport(&mut self) -> &mut dyn Transport {
        self
    }
}

/// A card connection.
pub trait Transport: AsTransport {
    /// Sends one command APDU, returns the raw response (data ‖ SW).
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
    /// The card's ATR.
    fn atr(&self) -> Vec<u8>;
    /// Where the card is, for messages ("in-process cns-renewable.json", "Virtual PCD 00 00").
    fn name(&self) -> String;
    /// Warm-resets the card (all its volatile state is lost). Only tests and explicit user
    /// requests call it: a card in a reader is never reset behind the user's back.
    fn reset(&mut self) -> Result<(), TransportError>;
    /// A command and its `61xx` / `6Cxx` follow-ups as one unit (PC/SC: one transaction).
    fn exchange(&mut self, command: &[u8]) -> Result<Response, TransportError> {
        follow(self.as_transport(), command)
    }
    /// Runs `f` with the card held exclusively: over PC/SC one transaction
    /// (`SCardBeginTransaction` … `SCardEndTransaction(LEAVE_CARD)`), so no other program's
    /// command comes between the APDUs `f` sends (a PIN-guarded signature, the blocks of a
    /// chained command, a flow step). Nested calls run inside the outer transaction.
    /// Wrappers forward it to the transport they wrap.
    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        f(self.as_transport());
        Ok(())
    }
}

/// [`Transport::exclusive`] with a result.
pub fn atomically<R>(t: &mut dyn Transport, f: impl FnOnce(&mut dyn Transport) -> R) -> Result<R, TransportError> {
    let mut f = Some(f);
    let mut out = None;
    t.exclusive(&mut |t| {
        if let Some(f) = f.take() {
            out = Some(f(t));
        }
    })?;
    out.ok_or_else(|| TransportError::Other("the exclusive section did not run".into()))
}

/// Sends a command and follows `61xx` / `6Cxx` until the whole answer is in.
pub fn exchange(t: &mut dyn Transport, command: &[u8]) -> Result<Response, TransportError> {
    t.exchange(command)
}

/// Most GET RESPONSE rounds followed for one command (a 4 KiB answer in 256-byte pieces).
const MAX_GET_RESPONSE: usize = 64;

/// The follow-up logic of [`exchange`], over any transport.
pub fn follow(t: &mut dyn Transport, command: &[u8]) -> Result<Response, TransportError> {
    let mut r = Response::from_bytes(&t.transmit_raw(command)?)?;
    if let Sw::WrongLe(n) = r.sw
        && let Some(again) = crate::wire::apdu::with_le(command, if n == 0 { 256 } else { usize::from(n) })
    {
        // Resend once with Le = the exact length the card asked for.
        r = Response::from_bytes(&t.transmit_raw(&again)?)?;
    }
    let mut data = std::mem::take(&mut r.data);
    let mut rounds = 0;
    while let Sw::MoreData(n) = r.sw {
        rounds += 1;
        if rounds > MAX_GET_RESPONSE {
            return Err(TransportError::Other("card keeps answering 61xx".into()));
        }
        r = Response::from_bytes(&t.transmit_raw(&[0x00, 0xC0, 0x00, 0x00, n])?)?;
        data.append(&mut r.data);
    }
    Ok(Response { data, sw: r.sw })
}
