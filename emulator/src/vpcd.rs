//! The card as a client of vsmartcard's vpcd driver, so pcscd — and every PC/SC program —
//! sees it in a reader ("Virtual PCD 00 00" on TCP 35963, "00 01" on 35964).
//!
//! Wire format (pcsc.md §3): each message is a 2-byte big-endian length and a payload. A
//! 1-byte payload is a control code: `00` power off, `01` power on, `02` reset (no reply),
//! `04` get ATR (reply: the ATR). Anything longer is a command APDU; the reply is the response.
//!
//! What this client does beyond the `vpicc` crate (pcsc.md §3 and §9):
//! * re-arms TCP_QUICKACK before every read: Debian 12's vpcd sends length and payload in two
//!   segments without TCP_NODELAY, which otherwise costs a 40 ms delayed-ACK stall per APDU;
//! * connects with retries until vpcd listens, reconnects when pcscd restarts, waiting more than
//!   a second first (a faster reconnect can leave pcscd reporting "no card" forever);
//! * never sends a frame over 65 535 bytes (one would wedge pcscd);
//! * saves the card image before it answers a command that changed persistent state, so a
//!   killed process never loses a response the host already saw;
//! * stops cleanly when the stop flag is set (checked at least every 100 ms).

use crate::apdu;
use crate::card::Card;
use crate::hex;
use crate::sw::Sw;
use socket2::SockRef;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Default vpcd address: loopback, first slot of the Debian package's reader.
pub const DEFAULT_ADDR: &str = "127.0.0.1:35963";
/// Largest frame payload the u16 length can carry.
pub const MAX_FRAME: usize = 65_535;
/// How long to wait after losing vpcd before reconnecting (pcsc.md §3 bug 6: > 1 s).
pub const RECONNECT_DELAY: Duration = Duration::from_millis(1100);
/// Read timeout, so a stop request is noticed promptly.
const POLL: Duration = Duration::from_millis(100);

/// A card in a virtual reader: the card, and where its image is saved (none for ephemeral
/// cards).
pub struct HostedCard {
    pub card: Card,
    pub image_path: Option<PathBuf>,
    /// A physical token's latency, added after each command (default: none).
    pub timing: crate::timing::Timing,
}

impl HostedCard {
    /// Executes an APDU; when persistent state changed, saves the image before returning the
    /// response. If the save fails the host gets `6581` (memory failure), never a success
    /// the image does not hold.
    pub fn transmit(&mut self, command: &[u8]) -> (Vec<u8>, Option<String>) {
        let response = self.card.transmit_vec(command);
        let delay = self.timing.delay(self.card.last_effect());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if self.card.take_changed()
            && let Some(path) = &self.image_path
            && let Err(e) = self.card.image().save(path)
        {
            return (Sw::MemoryFailure.to_bytes().to_vec(), Some(e.to_string()));
        }
        (response, None)
    }
}

/// What happened, for the caller to log.
#[derive(Debug)]
pub enum Event<'a> {
    Connecting(&'a str),
    Connected(&'a str),
    Disconnected(String),
    PowerOff,
    PowerOn,
    Reset,
    Atr,
    /// A command (secrets redacted), its response and how long the card took.
    Apdu {
        command: String,
        response: String,
        micros: u128,
    },
    SaveFailed(String),
}

/// How the client talks to vpcd.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Re-arm TCP_QUICKACK before every read (on by default; off only to measure the stall
    /// it removes).
    pub quickack: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { quickack: true }
    }
}

/// Runs the card on vpcd at `addr` until `stop` is set.
pub fn serve(host: &mut HostedCard, addr: &str, stop: &AtomicBool, log: &mut dyn FnMut(Event<'_>)) -> io::Result<()> {
    serve_with(host, addr, Options::default(), stop, log)
}

/// [`serve`] with explicit [`Options`].
pub fn serve_with(
    host: &mut HostedCard,
    addr: &str,
    options: Options,
    stop: &AtomicBool,
    log: &mut dyn FnMut(Event<'_>),
) -> io::Result<()> {
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        if !announced {
            log(Event::Connecting(addr));
            announced = true;
        }
        let stream = match connect(addr) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::TimedOut | ErrorKind::ConnectionReset
                ) =>
            {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(e),
        };
        log(Event::Connected(addr));
        let outcome = session(stream, host, options, stop, log);
        // Losing the reader is a card removal: all volatile state goes.
        host.card.power_off();
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => {
                log(Event::Disconnected(e.to_string()));
                announced = false;
                let until = Instant::now() + RECONNECT_DELAY;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL);
                }
            }
        }
    }
    Ok(())
}

fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(ErrorKind::InvalidInput, format!("{addr}: no address"));
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads exactly `buf.len()` bytes, checking `stop` while idle. `Ok(false)`: stopped before
/// a message began.
fn read_frame_part(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool, may_stop: bool) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(io::Error::new(ErrorKind::UnexpectedEof, "vpcd closed the connection"));
            }
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                if may_stop && got == 0 && stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn send(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let payload = if payload.len() > MAX_FRAME { &Sw::Unknown.to_bytes()[..] } else { payload };
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame)
}

fn session(
    mut stream: TcpStream,
    host: &mut HostedCard,
    options: Options,
    stop: &AtomicBool,
    log: &mut dyn FnMut(Event<'_>),
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    let mut payload = vec![0u8; MAX_FRAME];
    loop {
        // Must be re-armed before every read: setting it once still stalls (pcsc.md §4).
        if options.quickack {
            let _ = SockRef::from(&stream).set_tcp_quickack(true);
        }
        let mut len = [0u8; 2];
        if !read_frame_part(&mut stream, &mut len, stop, true)? {
            return Ok(());
        }
        let n = usize::from(u16::from_be_bytes(len));
        if options.quickack {
            let _ = SockRef::from(&stream).set_tcp_quickack(true);
        }
        let msg = payload.get_mut(..n).ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "frame too long"))?;
        read_frame_part(&mut stream, msg, stop, false)?;
        match *msg {
            [] => {}
            [0x00] => {
                host.card.power_off();
                log(Event::PowerOff);
            }
            [0x01] => {
                host.card.power_on();
                log(Event::PowerOn);
            }
            [0x02] => {
                host.card.reset();
                log(Event::Reset);
            }
            [0x04] => {
                let atr = host.card.atr().to_vec();
                send(&mut stream, &atr)?;
                log(Event::Atr);
            }
            [_] => {} // vpcd sends no other control code
            ref command => {
                let started = Instant::now();
                let (response, save_error) = host.transmit(command);
                let micros = started.elapsed().as_micros();
                send(&mut stream, &response)?;
                if let Some(e) = save_error {
                    log(Event::SaveFailed(e));
                }
                log(Event::Apdu { command: apdu::redacted_hex(command), response: hex::encode(&response), micros });
            }
        }
    }
}
