//! The card as a [`vpicc::VSmartCard`] (cargo feature `vpicc`), for Rust users who already run
//! virtual cards with the `vpicc` crate, as Nitrokey's opcard-rs and piv-authenticator do:
//!
//! ```no_run
//! use firmalab_emulator::vpcd::HostedCard;
//! use firmalab_emulator::{Card, CardImage, CardRng};
//! let image = CardImage::load("fixtures/cards/cns-renewable.json".as_ref())?;
//! let mut host = HostedCard::ephemeral(Card::new(image, CardRng::from_os()?));
//! vpicc::connect()?.run(&mut host)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The trait is implemented for [`HostedCard`], not for the bare [`Card`](crate::Card): a card
//! behind `vpicc` then keeps every promise it keeps behind firmalab's own vpcd client. A
//! command that changed the card's persistent state is saved before `execute` returns, so
//! before `vpicc` writes the answer; a failed save rolls the card back and answers `6581`
//! ([`HostedCard::transmit`]). A bare `Card` would answer and lose every change when the
//! process ends; `HostedCard::ephemeral(card)` is the one-line way to run a throwaway card.
//!
//! What `vpicc` 0.1.0 leaves to its caller (shared/pcsc.md §3), and how [`serve`] supplies it:
//! * **TCP_QUICKACK.** The crate never sets it; Debian 12's vpcd then costs ~44 ms per APDU.
//!   [`serve`] re-arms it on a clone of the socket before every `poll` (once is not enough).
//! * **Reconnect.** `poll` fails with `UnexpectedEof` when pcscd stops; [`serve`] connects
//!   again (after more than a second, or pcscd may show the reader empty for good).
//! * **Frames over 65 535 bytes.** `vpicc` writes the length as `len as u16`: a longer answer
//!   goes out truncated and wedges pcscd. `execute` answers `6F00` instead of such a frame. A
//!   firmalab card never produces one (its answers hold at most
//!   [`MAX_RESPONSE_DATA`](crate::apdu::MAX_RESPONSE_DATA) + 2 = 4 098 bytes), so the cap is a
//!   guard, not a path anything takes.
//! * **Stopping.** `poll` blocks in `read_exact` with no timeout. A read timeout cannot be added
//!   from outside: `read_exact` would throw away half a frame that timed out and the stream
//!   would lose its framing. So `vpicc` alone cannot stop within a second while vpcd is silent
//!   or has sent half a frame. [`serve`] gives that guarantee with a second thread per
//!   connection that shuts the socket down when the stop flag is set, which unblocks `poll`.
//!
//! `firmalab card` keeps its own loop ([`crate::vpcd::serve`]) for that last point: it stops
//! within a second in one thread, because its reads resume after a timeout without losing a
//! byte, and it needs no optional dependency. Speed is no reason either way: with QUICKACK
//! re-armed, both loops measured ~90 µs per SELECT through pcscd (README, PC/SC section).

use crate::apdu;
use crate::hex;
use crate::sw::Sw;
use crate::vpcd::{Event, HostedCard, MAX_FRAME, Options};
use socket2::SockRef;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the stop watcher looks at the stop flag.
const WATCH: Duration = Duration::from_millis(50);

/// An answer `vpicc` can frame: over [`MAX_FRAME`] bytes it would be truncated, so `6F00`.
fn framable(response: Vec<u8>) -> Vec<u8> {
    if response.len() > MAX_FRAME { Sw::Unknown.to_bytes().to_vec() } else { response }
}

impl vpicc::VSmartCard for HostedCard {
    fn atr(&self) -> &[u8] {
        self.card.atr()
    }

    fn power_on(&mut self) {
        self.card.power_on();
    }

    fn power_off(&mut self) {
        self.card.power_off();
    }

    fn reset(&mut self) {
        self.card.reset();
    }

    /// Saves before it returns (so before `vpicc` answers); `6581` after a failed save, with
    /// the card rolled back. Use [`Logged`] to hear why a save failed.
    fn execute(&mut self, msg: &[u8]) -> Vec<u8> {
        framable(self.transmit(msg).0)
    }
}

/// A hosted card that reports what it sees as firmalab's vpcd client does ([`Event`]: power,
/// reset, each APDU with secrets redacted and the card's time, failed saves).
pub struct Logged<'a> {
    pub host: &'a mut HostedCard,
    pub log: &'a mut dyn FnMut(Event<'_>),
}

impl vpicc::VSmartCard for Logged<'_> {
    fn atr(&self) -> &[u8] {
        self.host.card.atr()
    }

    fn power_on(&mut self) {
        self.host.card.power_on();
        (self.log)(Event::PowerOn);
    }

    fn power_off(&mut self) {
        self.host.card.power_off();
        (self.log)(Event::PowerOff);
    }

    fn reset(&mut self) {
        self.host.card.reset();
        (self.log)(Event::Reset);
    }

    fn execute(&mut self, msg: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let (response, save_error) = self.host.transmit(msg);
        let micros = started.elapsed().as_micros();
        let response = framable(response);
        if let Some(e) = save_error {
            (self.log)(Event::SaveFailed(e));
        }
        (self.log)(Event::Apdu { command: apdu::redacted_hex(msg), response: hex::encode(&response), micros });
        response
    }
}

/// Runs the card through `vpicc::Connection` on vpcd at `addr` until `stop` is set, with the
/// guarantees of [`crate::vpcd::serve_with`]: TCP_QUICKACK re-armed before every message
/// (unless `options` turn it off), connection retried until vpcd listens and again after it
/// goes away (pcscd restarts), saved before answering, and back within a second of `stop`
/// even when vpcd has sent half a frame. A session that ends is a card removal: the card
/// powers off.
pub fn serve(
    host: &mut HostedCard,
    addr: &str,
    options: Options,
    stop: &AtomicBool,
    log: &mut dyn FnMut(Event<'_>),
) -> io::Result<()> {
    crate::vpcd::reconnecting(addr, stop, log, |stream, log| {
        let outcome = session(stream, host, options, stop, log);
        host.card.power_off();
        outcome.map(|()| crate::vpcd::Ended::Stopped)
    })
}

/// One vpcd connection: `Ok` when stopped, the error that ended it otherwise.
fn session(
    stream: TcpStream,
    host: &mut HostedCard,
    options: Options,
    stop: &AtomicBool,
    log: &mut dyn FnMut(Event<'_>),
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // The same socket, for QUICKACK and for the watcher's shutdown.
    let side = stream.try_clone()?;
    let mut connection = vpicc::Connection::from(stream);
    let mut card = Logged { host, log };
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // `poll` cannot time out (see the module docs): shutting the socket down is what
        // wakes it when a stop is asked for, whatever it is waiting for.
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    let _ = side.shutdown(Shutdown::Both);
                    return;
                }
                std::thread::park_timeout(WATCH);
            }
        });
        let outcome = loop {
            // Must be re-armed before every message: set once, it still stalls (pcsc.md §4).
            if options.quickack {
                let _ = SockRef::from(&side).set_tcp_quickack(true);
            }
            let polled = connection.poll(&mut card);
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            if let Err(e) = polled {
                break Err(e);
            }
        };
        done.store(true, Ordering::Relaxed);
        watcher.thread().unpark();
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rule_an_answer_vpicc_would_truncate_becomes_6f00_and_a_full_frame_passes() {
        assert_eq!(framable(vec![0x5A; MAX_FRAME + 1]), [0x6F, 0x00]);
        let full = vec![0x5A; MAX_FRAME];
        assert_eq!(framable(full.clone()), full);
    }
}
