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
//!   killed process never loses a response the host already saw, and rolls the card back
//!   when that save fails ([`HostedCard`]);
//! * stops cleanly when the stop flag is set: every read, write and connection attempt
//!   notices it within half a second, also in the middle of a frame;
//! * injects the faults of a hostile card ([`crate::hostile`], `firmalab card --fault`) at
//!   command APDUs counted from 1 since the card process started, after the image was saved.
//!
//! It does not run on `vpicc::Connection` (feature `vpicc`: `crate::vpicc_card`) because
//! `vpicc` 0.1.0 cannot give that last guarantee by itself: its `poll` blocks with no timeout,
//! and a timeout would drop a half-read frame, so stopping it takes a second thread.

use crate::apdu;
use crate::card::Card;
use crate::hex;
use crate::hostile::{self, Action, FaultKind, Hostility};
use crate::image::{CardImage, ImageError, ImageFile};
use crate::rng::CardRng;
use crate::sw::Sw;
use socket2::SockRef;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Default vpcd address: loopback, first slot of the Debian package's reader.
pub const DEFAULT_ADDR: &str = "127.0.0.1:35963";
/// Largest frame payload the u16 length can carry.
pub const MAX_FRAME: usize = 65_535;
/// How long to wait after losing vpcd before reconnecting (pcsc.md §3 bug 6: > 1 s).
pub const RECONNECT_DELAY: Duration = Duration::from_millis(1100);
/// Read and write timeout, so a stop request is noticed promptly in every read and write.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for one connection attempt (a stop request waits at most this long).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a hosted card's persistent state goes after every command that changed it.
pub trait ImageStore: Send {
    /// Writes `image` durably, or says why not (then nothing was written).
    fn save(&mut self, image: &CardImage) -> Result<(), String>;
}

impl ImageStore for ImageFile {
    fn save(&mut self, image: &CardImage) -> Result<(), String> {
        ImageFile::save(self, image).map_err(|e| e.to_string())
    }
}

/// A card in a host (a vpcd reader, the in-process transport, `firmalab apdu`): the card, and
/// where its image is saved (nowhere for ephemeral cards).
///
/// Every command that wrote the card's persistent state is saved before its response goes
/// out; a presented PIN or PUK counts as a write (the card writes its try counter before it
/// compares, `card/pins.rs`). When the save fails the command is undone as a card undoes a
/// failed EEPROM write ([`Card::restore`]): the image is the last saved one again, the session
/// is as it was before the command, and the host gets `6581` (memory failure). `6581` from a
/// hosted card means nothing changed, on disk or in the card, whether the PIN it carried was
/// right or wrong.
pub struct HostedCard {
    pub card: Card,
    /// A physical token's latency, added after each command (default: none).
    pub timing: crate::timing::Timing,
    store: Option<Box<dyn ImageStore>>,
    /// The persistent state as last saved (what a rollback returns to).
    saved: Option<CardImage>,
    /// A zero-work card ([`HostedCard::echo`]).
    echo: bool,
    /// The faults it injects into its answers through vpcd, and its APDU counter.
    hostility: Hostility,
}

impl HostedCard {
    /// A card that is never saved.
    pub fn ephemeral(card: Card) -> Self {
        HostedCard {
            card,
            timing: crate::timing::Timing::None,
            store: None,
            saved: None,
            echo: false,
            hostility: Hostility::default(),
        }
    }

    /// A zero-work card: `card` gives the ATR and takes the power events, and every command
    /// APDU is answered `9000` at once, without being executed. Through pcscd and vpcd it
    /// measures the transport's floor, the round trip of a card that does nothing
    /// (`firmalab card --echo`, `firmalab bench --echo-reader`).
    pub fn echo(card: Card) -> Self {
        HostedCard { echo: true, ..Self::ephemeral(card) }
    }

    /// A card whose current image is what `store` holds, saved there as it changes.
    pub fn persisted(card: Card, store: Box<dyn ImageStore>) -> Self {
        let saved = Some(card.image().clone());
        HostedCard { store: Some(store), saved, ..Self::ephemeral(card) }
    }

    /// Opens an image file for writing ([`ImageFile::open`]: locked while this card lives)
    /// and puts its card in the host.
    pub fn open(path: &Path, rng: CardRng) -> Result<Self, ImageError> {
        let (file, image) = ImageFile::open(path)?;
        Ok(Self::persisted(Card::new(image, rng), Box::new(file)))
    }

    /// Adds a physical token's latency to every command.
    pub fn with_timing(mut self, timing: crate::timing::Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Makes the card hostile through vpcd: planned faults and random answer mutations
    /// ([`crate::hostile`]); its APDU counter starts at 0.
    pub fn with_hostility(mut self, hostility: Hostility) -> Self {
        self.hostility = hostility;
        self
    }

    /// Command APDUs this card has been sent through vpcd since it was created.
    pub fn apdus_seen(&self) -> u64 {
        self.hostility.seen()
    }

    /// Whether changes are saved somewhere.
    pub fn is_persisted(&self) -> bool {
        self.store.is_some()
    }

    /// Executes an APDU; when persistent state changed, saves the image before returning the
    /// response. If the save fails the card is rolled back to the last saved image and the
    /// host gets `6581` (memory failure), never a success the image does not hold; the second
    /// value says why the save failed.
    pub fn transmit(&mut self, command: &[u8]) -> (Vec<u8>, Option<String>) {
        if self.echo {
            return (Sw::Ok.to_bytes().to_vec(), None);
        }
        let response = self.card.transmit_vec(command);
        let delay = self.timing.delay(self.card.last_effect());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if self.card.take_changed()
            && let Some(store) = &mut self.store
        {
            match store.save(self.card.image()) {
                Ok(()) => self.saved = Some(self.card.image().clone()),
                Err(e) => {
                    let e = self.roll_back(e);
                    return (Sw::MemoryFailure.to_bytes().to_vec(), Some(e));
                }
            }
        }
        (response, None)
    }

    /// Undoes the command whose save failed ([`Card::restore`] with the last saved image);
    /// returns the message to report.
    fn roll_back(&mut self, error: String) -> String {
        let Some(saved) = self.saved.clone() else { return error };
        self.card.restore(saved);
        format!("{error}; the card is back to its last saved state, as before the command")
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
    /// A command (the data of VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER and CREATE
    /// PIN as `**`), its response (data read from a secret file, such as Oberthur's PUK
    /// file, as `**`) and how long the card took.
    Apdu {
        command: String,
        response: String,
        micros: u128,
    },
    SaveFailed(String),
    /// A hostile card's fault or mutation (`firmalab card --fault`, `--mutate-answers`) at
    /// command APDU `apdu` (from 1 since the card process started).
    Fault {
        apdu: u64,
        what: String,
    },
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
    reconnecting(addr, stop, log, |stream, log| {
        let outcome = session(stream, host, options, stop, log);
        // Losing the reader (or being stopped) is a card removal: all volatile state goes. A
        // hostile card's fault removed it leaving its power as the fault says (a cut powered
        // it off, a drop did not); it comes back like a token put back in.
        if !matches!(outcome, Ok(Ended::Removed)) {
            host.card.power_off();
        }
        outcome
    })
}

/// The connection loop of a card on vpcd, shared by firmalab's own vpcd client and the
/// `vpicc` runner: connect (retried every [`POLL`] until vpcd listens), run `session`, and
/// after a lost connection or a removal wait [`RECONNECT_DELAY`] and connect again, until
/// `stop` is set or `session` says it was. A connection error other than "nobody listens
/// yet" ends the loop with that error.
pub(crate) fn reconnecting(
    addr: &str,
    stop: &AtomicBool,
    log: &mut dyn FnMut(Event<'_>),
    mut session: impl FnMut(TcpStream, &mut dyn FnMut(Event<'_>)) -> io::Result<Ended>,
) -> io::Result<()> {
    let pause = || {
        let until = Instant::now() + RECONNECT_DELAY;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
        }
    };
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
        match session(stream, log) {
            Ok(Ended::Stopped) => return Ok(()),
            Ok(Ended::Removed) => pause(),
            Err(e) => {
                log(Event::Disconnected(e.to_string()));
                announced = false;
                pause();
            }
        }
    }
    Ok(())
}

/// Checks a vpcd address before any card starts: `HOST:PORT` with a port, resolving to at
/// least one socket address. Returns the addresses it names.
pub fn check_address(addr: &str) -> Result<Vec<SocketAddr>, String> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("vpcd address {addr:?}: {e} (expected HOST:PORT, e.g. {DEFAULT_ADDR})"))?
        .collect();
    if resolved.is_empty() {
        return Err(format!("vpcd address {addr:?} resolves to no address"));
    }
    if resolved.iter().any(|a| a.port() == 0) {
        return Err(format!("vpcd address {addr:?}: port 0 is not a vpcd port"));
    }
    Ok(resolved)
}

/// A response as hex for logs: when its data is secret ([`Card::last_reply_secret`]) each
/// data byte is `**` and only the status word shows.
pub fn logged_response(response: &[u8], secret: bool) -> String {
    match response.split_last_chunk::<2>() {
        Some((data, sw)) if secret && !data.is_empty() => format!("{}{}", "**".repeat(data.len()), hex::encode(sw)),
        _ => hex::encode(response),
    }
}

pub(crate) fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(ErrorKind::InvalidInput, format!("{addr}: no address"));
    for a in addr.to_socket_addrs()? {
        // Short enough that a stop request waits at most this long.
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// An answer for a fault's log line: in full when short, else its length and status word
/// (secret data as `**`, [`logged_response`]).
fn answer_summary(response: &[u8], secret: bool) -> String {
    match response.split_last_chunk::<2>() {
        Some((data, sw)) if data.len() > 16 => format!("{} data bytes + {}", data.len(), hex::encode(sw)),
        _ => logged_response(response, secret),
    }
}

/// How a session with vpcd ended without an error.
pub(crate) enum Ended {
    /// The stop flag was set.
    Stopped,
    /// A hostile card's fault took the card out of the reader.
    Removed,
}

/// Sleeps `ms` milliseconds in slices; `false` when `stop` was set meanwhile.
fn hold(ms: u64, stop: &AtomicBool) -> bool {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
    true
}

/// Reads exactly `buf.len()` bytes. `Ok(false)`: `stop` was set, noticed within [`POLL`]
/// whether or not part of a message has arrived (the half-read message is dropped with the
/// session).
fn read_frame_part(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(io::Error::new(ErrorKind::UnexpectedEof, "vpcd closed the connection"));
            }
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sends one frame. `Ok(false)`: `stop` was set while vpcd was not reading.
fn send(stream: &mut TcpStream, payload: &[u8], stop: &AtomicBool) -> io::Result<bool> {
    let payload = if payload.len() > MAX_FRAME { &Sw::Unknown.to_bytes()[..] } else { payload };
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(payload);
    let mut sent = 0;
    while sent < frame.len() {
        match stream.write(&frame[sent..]) {
            Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "vpcd stopped reading")),
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn session(
    mut stream: TcpStream,
    host: &mut HostedCard,
    options: Options,
    stop: &AtomicBool,
    log: &mut dyn FnMut(Event<'_>),
) -> io::Result<Ended> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(POLL))?;
    let mut payload = vec![0u8; MAX_FRAME];
    loop {
        // Must be re-armed before every read: setting it once still stalls (pcsc.md §4).
        if options.quickack {
            let _ = SockRef::from(&stream).set_tcp_quickack(true);
        }
        let mut len = [0u8; 2];
        if !read_frame_part(&mut stream, &mut len, stop)? {
            return Ok(Ended::Stopped);
        }
        let n = usize::from(u16::from_be_bytes(len));
        if options.quickack {
            let _ = SockRef::from(&stream).set_tcp_quickack(true);
        }
        let msg = payload.get_mut(..n).ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "frame too long"))?;
        if !read_frame_part(&mut stream, msg, stop)? {
            return Ok(Ended::Stopped);
        }
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
                if !send(&mut stream, &atr, stop)? {
                    return Ok(Ended::Stopped);
                }
                log(Event::Atr);
            }
            [_] => {} // vpcd sends no other control code
            ref command => {
                let (n, action) = host.hostility.next_apdu();
                if let Action::Fault(f) = &action
                    && f.kind == FaultKind::CutBefore
                {
                    host.card.power_off();
                    let what = format!(
                        "{f}: power cut before APDU {n} ({}) reached the card: not executed; the card leaves the reader",
                        apdu::redacted_hex(command)
                    );
                    log(Event::Fault { apdu: n, what });
                    return Ok(Ended::Removed);
                }
                let started = Instant::now();
                let (mut response, save_error) = host.transmit(command);
                let micros = started.elapsed().as_micros();
                if let Some(e) = save_error {
                    log(Event::SaveFailed(e));
                }
                let secret = host.card.last_reply_secret();
                let command = apdu::redacted_hex(command);
                let answer = answer_summary(&response, secret);
                let what = match action {
                    Action::Pass => None,
                    Action::Fault(f) => Some(match f.kind {
                        FaultKind::CutBefore | FaultKind::CutAfter | FaultKind::Drop => {
                            let how = if f.kind == FaultKind::Drop {
                                "the connection dropped (the card stays powered)"
                            } else {
                                host.card.power_off();
                                "power cut"
                            };
                            log(Event::Apdu {
                                command: command.clone(),
                                response: format!("{answer} (not sent)"),
                                micros,
                            });
                            let what = format!(
                                "{f}: APDU {n} ({command}) executed, its answer {answer} lost, {how}; the card leaves the reader"
                            );
                            log(Event::Fault { apdu: n, what });
                            return Ok(Ended::Removed);
                        }
                        FaultKind::Corrupt => {
                            for b in &mut response {
                                *b ^= hostile::CORRUPT_MASK;
                            }
                            format!(
                                "{f}: APDU {n} ({command}) answered {answer} with every byte XOR {:02X}: {}",
                                hostile::CORRUPT_MASK,
                                answer_summary(&response, secret)
                            )
                        }
                        FaultKind::Garbage => {
                            response = hostile::garbage(n);
                            format!(
                                "{f}: APDU {n} ({command}) answered {answer}, replaced by {} random bytes: {}",
                                response.len(),
                                hex::encode(&response)
                            )
                        }
                        FaultKind::Delay(ms) => {
                            log(Event::Fault {
                                apdu: n,
                                what: format!("{f}: APDU {n} ({command}) answer {answer} held {ms} ms"),
                            });
                            if !hold(ms, stop) {
                                return Ok(Ended::Stopped);
                            }
                            format!("{f}: APDU {n} answer sent after {ms} ms")
                        }
                    }),
                    Action::Mutate(m) => Some(format!(
                        "mutated answer: APDU {n} ({command}) answered {answer}: {}",
                        hostile::mutate(&mut response, &m)
                    )),
                };
                if let Some(what) = what {
                    log(Event::Fault { apdu: n, what });
                }
                let sent = send(&mut stream, &response, stop)?;
                log(Event::Apdu { command, response: logged_response(&response, secret), micros });
                if !sent {
                    return Ok(Ended::Stopped);
                }
            }
        }
    }
}
