//! A private PC/SC stack for another project's tests: its own pcscd in its own mount
//! namespace ([`crate::stack`]), vsmartcard's vpcd readers, and firmalab's virtual cards in
//! them, started by a test and torn down when the [`PcscLab`] is dropped. Any PC/SC program
//! the test starts with [`PcscLab::command`] (a program on the `pcsc` crate, OpenSC's
//! `pkcs11-tool` and PKCS#11 module, …) sees the cards; nothing touches the machine's own
//! pcscd.
//!
//! ```no_run
//! use firmalab_harness::lab::PcscLab;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut lab = PcscLab::start()?; // Err(LabError::Unavailable(why)) without pcscd, vpcd or root
//! let reader = lab.insert_persona("cns")?; // "Virtual PCD 00 00", card present
//! let out = lab
//!     .command("pkcs11-tool")
//!     .args(["--module", firmalab_harness::lab::OPENSC_PKCS11, "--list-slots"])
//!     .output()?;
//! assert!(String::from_utf8_lossy(&out.stdout).contains("MARIO ROSSI"));
//! # let _ = reader;
//! # Ok(())
//! # }
//! ```
//!
//! pcsc-lite reads the daemon's socket from `PCSCLITE_CSOCK_NAME` once per process, so the
//! PC/SC client runs as a child process with that variable set ([`PcscLab::command`]); a
//! program under test is usually its own binary anyway (`CARGO_BIN_EXE_<name>` in an
//! integration test). Needs root (the mount namespace), `pcscd` and `vsmartcard-vpcd`;
//! [`PcscLab::unavailable`] says what is missing, so a test can skip with the reason.

use crate::fixtures::{self, FixtureError};
use crate::stack::{PrivateStack, StackError};
use firmalab_emulator::vpcd::{self, HostedCard};
use firmalab_emulator::{Card, CardRng};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// OpenSC's PKCS#11 module on Debian and Ubuntu (amd64).
pub const OPENSC_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

/// How many readers a lab has ("Virtual PCD 00 00" and "00 01").
pub const READERS: usize = 2;

/// Why a lab could not start, or a card could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// This machine cannot run a private PC/SC stack (what is missing): skip the test.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error("no randomness for the card: {0}")]
    Rng(String),
    #[error("both readers hold a card")]
    Full,
    /// pcscd never powered the card up.
    #[error("pcscd did not power the card in {reader} up within 10 s; its log:\n{log}")]
    NotPresent { reader: String, log: String },
}

/// A card running in one of the lab's readers.
struct Slot {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<HostedCard>>,
}

/// A private pcscd with two vpcd readers and the virtual cards inserted in them; dropping it
/// removes the cards and stops pcscd.
pub struct PcscLab {
    stack: PrivateStack,
    slots: Vec<Slot>,
}

impl PcscLab {
    /// What this machine lacks for a lab (pcscd, vpcd, util-linux, root), if anything.
    pub fn unavailable() -> Option<String> {
        crate::stack::missing_prerequisite()
    }

    /// Starts a private pcscd with two empty vpcd readers.
    pub fn start() -> Result<Self, LabError> {
        if let Some(why) = Self::unavailable() {
            return Err(LabError::Unavailable(why));
        }
        Ok(PcscLab { stack: PrivateStack::start()?, slots: vec![] })
    }

    /// The pcscd socket PC/SC clients must use (`PCSCLITE_CSOCK_NAME`).
    pub fn socket(&self) -> PathBuf {
        self.stack.socket()
    }

    /// A PC/SC program that talks to this lab's pcscd (and not the machine's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("PCSCLITE_CSOCK_NAME", self.socket());
        c
    }

    /// Inserts a built-in persona ([`fixtures::builtin`]: `cns`, `oberthur`,
    /// `cns-pin-blocked` …; never saved) with a deterministic RNG (keys generated on it come
    /// from the public pool); returns its reader's name.
    pub fn insert_persona(&mut self, name: &str) -> Result<String, LabError> {
        let image = fixtures::builtin(name)?;
        self.insert(Card::new(image, CardRng::insecure_deterministic(11)))
    }

    /// Inserts the zero-work card ([`HostedCard::echo`]: the CNS persona's ATR, `9000` at
    /// once to every APDU): the round trip of pcscd and vpcd alone. Returns its reader.
    pub fn insert_echo(&mut self) -> Result<String, LabError> {
        let card = Card::new(fixtures::builtin("cns")?, CardRng::insecure_deterministic(12));
        self.insert_hosted(HostedCard::echo(card))
    }

    /// Inserts a card into the next free reader and waits until pcscd has powered it up;
    /// returns the reader's name.
    pub fn insert(&mut self, card: Card) -> Result<String, LabError> {
        self.insert_hosted(HostedCard::ephemeral(card))
    }

    fn insert_hosted(&mut self, mut host: HostedCard) -> Result<String, LabError> {
        let slot = self.slots.len();
        if slot >= READERS {
            return Err(LabError::Full);
        }
        let reader = PrivateStack::reader(slot as u8);
        let addr = self.stack.vpcd_addr(slot as u8);
        let stop = Arc::new(AtomicBool::new(false));
        let powered = Arc::new(AtomicBool::new(false));
        let (flag, seen) = (stop.clone(), powered.clone());
        let thread = std::thread::spawn(move || {
            let mut log = |e: vpcd::Event<'_>| {
                if matches!(e, vpcd::Event::Atr | vpcd::Event::PowerOn) {
                    seen.store(true, Ordering::Relaxed);
                }
            };
            // A failure ends the thread; the wait below reports it as a card never present.
            let _ = vpcd::serve(&mut host, &addr, &flag, &mut log);
            host
        });
        self.slots.push(Slot { stop, thread: Some(thread) });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !powered.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                return Err(LabError::NotPresent { reader, log: self.stack.log() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // pcscd reads the ATR as it powers the card up; give it time to publish the state.
        std::thread::sleep(Duration::from_millis(200));
        Ok(reader)
    }
}

impl Drop for PcscLab {
    fn drop(&mut self) {
        for s in &self.slots {
            s.stop.store(true, Ordering::Relaxed);
        }
        for s in &mut self.slots {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
        self.stack.stop();
        let _ = std::fs::remove_dir_all(&self.stack.dir);
    }
}

/// Whether the tests must have the PC/SC stack (`FIRMALAB_PCSC_REQUIRED=1`, as CI sets it):
/// then a missing stack is a failure, not a skip.
pub fn required() -> bool {
    std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1")
}
