//! Fault injection: a transport that, at APDU number `at` (0-based), cuts the card's power
//! before or after it executes the command, drops the connection, or corrupts the response.
//! After a cut or a drop the card stays unreachable for the rest of the session, as a token
//! pulled out of the reader.
//!
//! What the card underneath sees, per fault at APDU `at`:
//!
//! | Fault | command `at` reaches the card | power cut ([`Transport::reset`]) | host gets |
//! | --- | --- | --- | --- |
//! | [`Fault::CutBefore`] | no | yes | `CardGone` |
//! | [`Fault::CutAfter`] | yes, executed | yes, after it | `CardGone` |
//! | [`Fault::Drop`] | yes, executed | no: the card stays powered | `CardGone` |
//! | [`Fault::Corrupt`] | yes, executed | no | the answer with every byte flipped; the session goes on |
//!
//! A cut is a [`Transport::reset`] of the card underneath: an in-process card loses its
//! volatile state; a card whose image lives in a file can be reloaded from disk there, which
//! is what a real card's EEPROM gives after a power loss.

use super::{Transport, TransportError};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The card loses power before it sees the command: the command never reaches it.
    CutBefore,
    /// The card executes the command and loses power before the answer gets out.
    CutAfter,
    /// The reader connection drops after the command went out: the card executes it and
    /// stays powered (its volatile state is left as the command made it), the answer is lost.
    Drop,
    /// The answer arrives with its bytes flipped; the session goes on.
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
            Fault::CutBefore => {
                self.gone = true;
                let _ = inner.reset();
                Err(TransportError::CardGone(format!("power cut before APDU {n}")))
            }
            Fault::CutAfter => {
                let _ = inner.transmit_raw(command);
                self.gone = true;
                let _ = inner.reset();
                Err(TransportError::CardGone(format!("power cut after APDU {n}")))
            }
            Fault::Drop => {
                let _ = inner.transmit_raw(command);
                self.gone = true;
                Err(TransportError::CardGone(format!("connection dropped at APDU {n}, its answer lost")))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A card stand-in that logs what reaches it (`tx 01`, `reset`) and echoes the first byte.
    struct Log(Rc<RefCell<Vec<String>>>);

    impl Transport for Log {
        fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            self.0.borrow_mut().push(format!("tx {:02X}", command[0]));
            Ok(vec![command[0], 0x90, 0x00])
        }
        fn atr(&self) -> Vec<u8> {
            vec![]
        }
        fn name(&self) -> String {
            "log".into()
        }
        fn reset(&mut self) -> Result<(), TransportError> {
            self.0.borrow_mut().push("reset".into());
            Ok(())
        }
    }

    type Got = Vec<Result<Vec<u8>, TransportError>>;

    /// Sends commands 01, 02, 03 with the fault at the second; returns what the host got and
    /// what reached the card.
    fn three(fault: Fault) -> (Got, Vec<String>) {
        let log = Rc::new(RefCell::new(vec![]));
        let mut f = Faulty::new(Box::new(Log(log.clone())), 1, fault);
        let got = (1..=3u8).map(|b| f.transmit_raw(&[b])).collect();
        let seen = log.borrow().clone();
        (got, seen)
    }

    fn gone(r: &Result<Vec<u8>, TransportError>) -> bool {
        matches!(r, Err(TransportError::CardGone(_)))
    }

    #[test]
    fn a_cut_before_never_reaches_the_card_and_powers_it_off() {
        let (got, seen) = three(Fault::CutBefore);
        assert_eq!(seen, ["tx 01", "reset"]);
        assert_eq!(got[0].as_deref(), Ok(&[1, 0x90, 0][..]));
        assert!(gone(&got[1]) && gone(&got[2]), "{got:?}");
    }

    #[test]
    fn a_cut_after_executes_the_command_then_powers_the_card_off() {
        let (got, seen) = three(Fault::CutAfter);
        assert_eq!(seen, ["tx 01", "tx 02", "reset"]);
        assert!(gone(&got[1]) && gone(&got[2]), "{got:?}");
    }

    #[test]
    fn a_dropped_connection_executes_the_command_loses_its_answer_and_leaves_the_card_powered() {
        let (got, seen) = three(Fault::Drop);
        assert_eq!(seen, ["tx 01", "tx 02"]);
        assert!(gone(&got[1]) && gone(&got[2]), "{got:?}");
    }

    #[test]
    fn a_corrupted_answer_flips_every_byte_and_the_session_goes_on() {
        let (got, seen) = three(Fault::Corrupt);
        assert_eq!(seen, ["tx 01", "tx 02", "tx 03"]);
        assert_eq!(got[1].as_deref(), Ok(&[0x02 ^ 0x5A, 0x90 ^ 0x5A, 0x5A][..]));
        assert_eq!(got[2].as_deref(), Ok(&[3, 0x90, 0][..]));
    }
}
