//! Running virtual cards in a private PC/SC stack, for the tests that need the real stack.
//!
//! One private pcscd per test binary (started by the first test that needs it); tests take
//! turns with a mutex and never share a reader at once. Without the stack the tests print
//! `SKIPPED …` with the reason on stderr (not captured by libtest) and pass, unless
//! `FIRMALAB_PCSC_REQUIRED=1` (set by `.ci/run`), which turns the skip into a failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firmalab_emulator::vpcd::{self, HostedCard};
use firmalab_emulator::{Card, CardImage, CardRng};
use firmalab_harness::stack::PrivateStack;
use std::io::Write;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static STACK: OnceLock<Result<PrivateStack, String>> = OnceLock::new();
static TURN: Mutex<()> = Mutex::new(());
/// When each slot's last card was removed (pcsc.md §3 bug 6: wait > 1 s before the next).
static REMOVED: Mutex<[Option<Instant>; 2]> = Mutex::new([None, None]);

pub fn required() -> bool {
    std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1")
}

/// Says loudly why a test cannot run; fails instead when the stack is required.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn missing_tool() -> Option<String> {
    for tool in ["opensc-tool", "pkcs15-tool", "pkcs11-tool", "openssl"] {
        let ok = Command::new(tool).arg("--help").output().is_ok();
        if !ok {
            return Some(format!("{tool} not installed (apt-get install opensc openssl)"));
        }
    }
    None
}

/// The stack and this test's turn, or `None` (skipped, reason printed).
pub fn stack(test: &str) -> Option<(&'static PrivateStack, MutexGuard<'static, ()>)> {
    if std::env::var("FIRMALAB_PCSC").is_ok_and(|v| v == "off") {
        skip(test, "FIRMALAB_PCSC=off");
        return None;
    }
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let s = STACK.get_or_init(|| match missing_tool() {
        Some(why) => Err(why),
        None => PrivateStack::start().map_err(|e| e.to_string()),
    });
    match s {
        Ok(s) => Some((s, turn)),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

/// A card in one of the private stack's readers.
pub struct Inserted {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<HostedCard>>,
    pub slot: u8,
    pub reader: String,
}

impl Inserted {
    /// Stops the card and returns it (its final persistent state).
    pub fn remove(mut self) -> Card {
        self.take()
    }

    fn take(&mut self) -> Card {
        self.stop.store(true, Ordering::Relaxed);
        let host = self.thread.take().unwrap().join().expect("card thread");
        REMOVED.lock().unwrap()[usize::from(self.slot)] = Some(Instant::now());
        host.card
    }
}

impl Drop for Inserted {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.take();
        }
    }
}

/// Waits until pcscd reports no card in `slot`'s reader. A card must not come back before
/// pcscd's poller has seen the last one go (pcsc.md §3 bug 6: the reader would then show no
/// card for good); on a busy machine the poller can take longer than its 400 ms period.
pub fn wait_reader_empty(stack: &PrivateStack, slot: u8) {
    let reader = PrivateStack::reader(slot);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = firmalab(stack, &["readers"]);
        let listing = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() && listing.lines().any(|l| l.starts_with(&reader) && l.ends_with("(no card)")) {
            return;
        }
        assert!(Instant::now() < deadline, "pcscd still reports a card in {reader} (30 s):\n{listing}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a card on vpcd in the slot whose last card left longest ago, and waits until pcscd
/// reports it present (SCardGetStatusChange, through `firmalab readers --wait`).
pub fn insert(stack: &PrivateStack, image: CardImage) -> Inserted {
    insert_with(stack, image, firmalab_emulator::timing::Timing::None, None)
}

/// What the card saw, in order: `PowerOn`, `PowerOff`, `Reset`, or `> COMMAND` (secrets
/// redacted by the card's logger).
pub type CardLog = Arc<Mutex<Vec<String>>>;

/// [`insert`] with a physical token's latency, logging what the card sees into the returned
/// log.
pub fn insert_logged(
    stack: &PrivateStack,
    image: CardImage,
    timing: firmalab_emulator::timing::Timing,
) -> (Inserted, CardLog) {
    let log: CardLog = Arc::new(Mutex::new(vec![]));
    (insert_with(stack, image, timing, Some(log.clone())), log)
}

fn insert_with(
    stack: &PrivateStack,
    image: CardImage,
    timing: firmalab_emulator::timing::Timing,
    log: Option<CardLog>,
) -> Inserted {
    let slot = {
        let removed = REMOVED.lock().unwrap();
        let slot = if removed[0] <= removed[1] { 0 } else { 1 };
        if let Some(t) = removed[usize::from(slot)] {
            let ready = t + Duration::from_millis(1200);
            std::thread::sleep(ready.saturating_duration_since(Instant::now()));
            wait_reader_empty(stack, slot);
        }
        slot
    };
    let stop = Arc::new(AtomicBool::new(false));
    let addr = stack.vpcd_addr(slot);
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut host = HostedCard::ephemeral(Card::new(image, CardRng::insecure_deterministic(11))).with_timing(timing);
        let mut record = |e: vpcd::Event<'_>| {
            if let Some(log) = &log {
                let line = match e {
                    vpcd::Event::PowerOn => "PowerOn".to_owned(),
                    vpcd::Event::PowerOff => "PowerOff".to_owned(),
                    vpcd::Event::Reset => "Reset".to_owned(),
                    vpcd::Event::Apdu { command, .. } => format!("> {command}"),
                    _ => return,
                };
                log.lock().unwrap().push(line);
            }
        };
        vpcd::serve(&mut host, &addr, &flag, &mut record).expect("vpcd client");
        host
    });
    let reader = PrivateStack::reader(slot);
    let out = firmalab(stack, &["readers", "--wait", &reader, "--timeout", "10"]);
    assert!(
        out.status.success(),
        "card never appeared in {reader}: {}\npcscd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.log()
    );
    Inserted { stop, thread: Some(thread), slot, reader }
}

/// Waits until a pcscd started with `--debug` has logged the end of every client that called
/// it after byte `from` of its log (`Client die: N` after the client's last `Received
/// command: … from client N`), and returns the whole log then. A client's calls are logged
/// before pcscd answers them, but what follows its last answer (the rest of that call's
/// record, the client's end) is logged when pcscd gets to it, which on a busy machine can be
/// well after the client exited.
pub fn wait_clients_done(stack: &PrivateStack, from: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = stack.log();
        let mut open = std::collections::BTreeSet::new();
        for line in log.get(from..).unwrap_or_default().lines() {
            if let Some(rest) = line.split("Received command: ").nth(1)
                && let Some(client) = rest.split(" from client ").nth(1)
            {
                open.insert(client.trim().to_owned());
            } else if let Some(client) = line.split("Client die: ").nth(1) {
                open.remove(client.trim());
            }
        }
        if open.is_empty() {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "pcscd never logged the end of client(s) {open:?} (30 s):\n{}",
            log.get(from..).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a PC/SC client program against the private stack.
pub fn client(stack: &PrivateStack, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("PCSCLITE_CSOCK_NAME", stack.socket())
        // A refused flow writes no support bundle into the source tree.
        .env("FIRMALAB_SUPPORT_BUNDLE", "off")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

pub fn firmalab(stack: &PrivateStack, args: &[&str]) -> Output {
    client(stack, env!("CARGO_BIN_EXE_firmalab"), args)
}

#[allow(unused_imports)] // a binary that prints no output
pub use cli::out as text;

pub fn fixture(name: &str) -> CardImage {
    CardImage::load(&cli::root().join("fixtures/cards").join(name)).unwrap()
}

pub const PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

/// The helpers of the tests that run the `firmalab` binary, with the scratch folder.
pub mod cli;
pub use cli::Scratch;

/// This test's own folder in the temporary folder, removed with its contents when dropped.
pub fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("firmalab-pcsc-test-{name}"))
}
