//! Fault injection: a transport that, at APDU number `at` (0-based), cuts the card's power
//! before or after it executes the command, drops the connection, or corrupts the response.
//! After a cut or a drop the card stays unreachable for the rest of the session, as a token
//! pulled out of the reader.

use super::{Transport, TransportError};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The card loses power before it sees the command.
    CutBefore,
    /// The card executes the command and loses power before the answer gets out.
    CutAfter,
    /// The reader connection drops (the command is not delivered).
    Drop,
    /// The answer arrives with its bytes flipped.
    Corrupt,
}

pub struct Faulty {
    inner: Box<dyn Transport>,
    state: State,
}

#[derive(Copy, Clone, Debug)]
struct State {
    at: usize,
    fault: Fault,
    sent: usize,
    gone: bool,
}

impl State {
    fn transmit(&mut self, inner: &mut dyn Transport, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.gone {
            return Err(TransportError::CardGone("the card was removed".into()));
        }
        let n = self.sent;
        self.sent += 1;
        if n != self.at {
            return inner.transmit_raw(command);
        }
        match self.fault {
            Fault::CutBefore | Fault::Drop => {
                self.gone = true;
                let _ = inner.reset();
                Err(TransportError::CardGone(format!("{:?} at APDU {n}", self.fault)))
            }
            Fault::CutAfter => {
                let _ = inner.transmit_raw(command);
                self.gone = true;
                let _ = inner.reset();
                Err(TransportError::CardGone(format!("power cut after APDU {n}")))
            }
            Fault::Corrupt => {
                let mut r = inner.transmit_raw(command)?;
                for b in &mut r {
                    *b ^= 0x5A;
                }
                Ok(r)
            }
        }
    }
}

/// The faulty transport inside an exclusive section of the one it wraps.
struct View<'a> {
    inner: &'a mut dyn Transport,
    state: &'a mut State,
}

impl Transport for View<'_> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.state.transmit(self.inner, command)
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        self.inner.reset()
    }
    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        let state = &mut *self.state;
        self.inner.exclusive(&mut |t| f(&mut View { inner: t, state }))
    }
}

impl Faulty {
    pub fn new(inner: Box<dyn Transport>, at: usize, fault: Fault) -> Self {
        Faulty { inner, state: State { at, fault, sent: 0, gone: false } }
    }

    /// APDUs that reached the card or were meant to.
    pub fn sent(&self) -> usize {
        self.state.sent
    }

    pub fn into_inner(self) -> Box<dyn Transport> {
        self.inner
    }
}

impl Transport for Faulty {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.state.transmit(self.inner.as_mut(), command)
    }

    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }

    fn name(&self) -> String {
        format!("{} (fault {:?} at APDU {})", self.inner.name(), self.state.fault, self.state.at)
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        self.inner.reset()
    }

    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        let Faulty { inner, state } = self;
        inner.exclusive(&mut |t| f(&mut View { inner: t, state }))
    }
}
