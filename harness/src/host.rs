//! `firmalab card`: virtual cards in vpcd readers, one thread per card, so every PC/SC program
//! sees them. Image cards are locked for as long as they run and saved as they change;
//! built-in personas are ephemeral.

use crate::fixtures::{self, FixtureError};
use firmalab_emulator::hostile::{Fault, Hostility, Mutator};
use firmalab_emulator::image::ImageError;
use firmalab_emulator::timing::Timing;
use firmalab_emulator::vpcd::{self, Event, HostedCard};
use firmalab_emulator::{Card, CardRng};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The first vpcd port; card `i` goes to `127.0.0.1:35963 + i` unless addresses are given.
pub const FIRST_VPCD_PORT: u16 = 35963;

/// Which cards to run, and how.
#[derive(Clone, Debug)]
pub struct Cards {
    /// Card images, saved after every command that changes them.
    pub images: Vec<PathBuf>,
    /// Built-in fixtures by name ([`fixtures::builtin`]), never saved.
    pub personas: Vec<String>,
    /// One vpcd address per card, images first (empty: [`FIRST_VPCD_PORT`] onwards).
    pub vpcd: Vec<String>,
    /// Log every APDU (PINs and PUKs redacted) with the card's time, and power events.
    pub verbose: bool,
    /// INSECURE deterministic card RNG seed (card `i` gets `seed + i`).
    pub seed: Option<u64>,
    /// Re-arm TCP_QUICKACK before every read (off only to measure the stall it removes).
    pub quickack: bool,
    /// Answer with a physical token's latency.
    pub timing: Timing,
    /// Also run a zero-work card after the others ([`HostedCard::echo`]: `9000` at once to
    /// every APDU, the transport's floor for `firmalab bench --echo-reader`).
    pub echo: bool,
    /// Faults every card (not the echo card) injects, at its own command APDU numbers
    /// (`firmalab card --fault`, [`firmalab_emulator::hostile`]).
    pub faults: Vec<Fault>,
    /// Random answer mutations of every card (not the echo card), reproducible by seed.
    pub mutate: Option<Mutator>,
}

impl Default for Cards {
    fn default() -> Self {
        Cards {
            images: vec![],
            personas: vec![],
            vpcd: vec![],
            verbose: false,
            seed: None,
            quickack: true,
            timing: Timing::None,
            echo: false,
            faults: vec![],
            mutate: None,
        }
    }
}

/// Why the cards could not run, or why one stopped.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("give at least one --image FILE, --persona NAME or --echo")]
    NoCards,
    #[error("{cards} cards but {addresses} --vpcd addresses: give one per card, in order")]
    AddressCount { cards: usize, addresses: usize },
    #[error("vpcd address {0} is given to two cards: one reader holds one card")]
    SharedAddress(String),
    /// An address that is not `HOST:PORT` (the emulator's words).
    #[error("{0}")]
    BadAddress(String),
    /// No randomness for a card.
    #[error("{0}")]
    Rng(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    /// A card's connection to vpcd failed (`card`: its label).
    #[error("[{card}] {addr}: {source}")]
    Vpcd { card: String, addr: String, source: std::io::Error },
    #[error("a card thread failed")]
    Thread,
}

/// Runs the cards until `stop` is set (or one of them fails, which stops them all: no card
/// keeps running unnoticed). Every address is checked, and every image locked, before any
/// card starts. `log` gets each line to show (connection, power events, APDUs with
/// `verbose`, later cards' failures, and `cards removed` once they stopped), from the cards'
/// threads; the first failure is returned.
pub fn run(cards: Cards, stop: Arc<AtomicBool>, log: Arc<dyn Fn(String) + Send + Sync>) -> Result<(), HostError> {
    let count = cards.images.len() + cards.personas.len() + usize::from(cards.echo);
    if count == 0 {
        return Err(HostError::NoCards);
    }
    let addrs: Vec<String> = if cards.vpcd.is_empty() {
        (0..count).map(|i| format!("127.0.0.1:{}", usize::from(FIRST_VPCD_PORT) + i)).collect()
    } else if cards.vpcd.len() == count {
        cards.vpcd
    } else {
        return Err(HostError::AddressCount { cards: count, addresses: cards.vpcd.len() });
    };
    let mut seen = Vec::new();
    for a in &addrs {
        for resolved in vpcd::check_address(a).map_err(HostError::BadAddress)? {
            if seen.contains(&resolved) {
                return Err(HostError::SharedAddress(a.clone()));
            }
            seen.push(resolved);
        }
    }
    let rng = |i: usize| match cards.seed {
        Some(s) => Ok(CardRng::insecure_deterministic(s.wrapping_add(i as u64))),
        None => CardRng::from_os().map_err(HostError::Rng),
    };
    let hostility = || Hostility::new(cards.faults.clone(), cards.mutate);
    let mut hosts: Vec<(String, HostedCard)> = Vec::new();
    for path in &cards.images {
        // Locked for as long as this process runs the card.
        let host = HostedCard::open(path, rng(hosts.len())?)?;
        hosts.push((path.display().to_string(), host.with_timing(cards.timing).with_hostility(hostility())));
    }
    for name in &cards.personas {
        let image = fixtures::builtin(name)?;
        let host = HostedCard::ephemeral(Card::new(image, rng(hosts.len())?))
            .with_timing(cards.timing)
            .with_hostility(hostility());
        hosts.push((format!("{name} (ephemeral)"), host));
    }
    if hostility().is_active() {
        let mut plan: Vec<String> = cards.faults.iter().map(|f| f.to_string()).collect();
        if let Some(m) = cards.mutate {
            plan.push(format!("{}% of answers mutated at random (seed {})", m.rate, m.seed));
        }
        log(format!(
            "hostile card{}: {} (command APDUs counted from 1 since this process started, per card)",
            if hosts.len() == 1 { "" } else { "s" },
            plan.join(", ")
        ));
    }
    if cards.echo {
        // The ATR of the CNS persona, so PC/SC sees a card it knows; nothing is executed.
        let card = Card::new(fixtures::builtin("cns")?, rng(hosts.len())?);
        hosts.push(("echo card (9000 at once, zero work)".to_owned(), HostedCard::echo(card)));
    }
    let (verbose, quickack) = (cards.verbose, cards.quickack);
    let threads: Vec<_> = hosts
        .into_iter()
        .zip(addrs)
        .map(|((label, mut host), addr)| {
            let stop = stop.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut show = |e: Event<'_>| match e {
                    Event::Apdu { command, response, micros } if verbose => {
                        log(format!("[{label}] > {command}\n[{label}] < {response}  ({micros} us)"))
                    }
                    Event::Apdu { .. } | Event::Atr => {}
                    Event::PowerOff | Event::PowerOn | Event::Reset if !verbose => {}
                    Event::Connecting(a) => {
                        log(format!("[{label}] waiting for vpcd at {a} (is pcscd running with vsmartcard-vpcd?)"))
                    }
                    Event::Connected(a) => log(format!("[{label}] inserted in the vpcd reader at {a}")),
                    Event::Fault { what, .. } => log(format!("[{label}] FAULT {what}")),
                    other => log(format!("[{label}] {other:?}")),
                };
                let result = vpcd::serve_with(&mut host, &addr, vpcd::Options { quickack }, &stop, &mut show)
                    .map_err(|source| HostError::Vpcd { card: label.clone(), addr: addr.clone(), source });
                if result.is_err() {
                    // One card failing stops them all.
                    stop.store(true, Ordering::Relaxed);
                }
                result
            })
        })
        .collect();
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) if result.is_ok() => result = Err(e),
            Ok(Err(e)) => log(format!("firmalab: {e}")),
            Err(_) => result = result.and(Err(HostError::Thread)),
        }
    }
    log("cards removed".into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(cards: Cards) -> String {
        let log: Arc<dyn Fn(String) + Send + Sync> = Arc::new(|_| {});
        match run(cards, Arc::new(AtomicBool::new(true)), log) {
            Err(e) => e.to_string(),
            Ok(()) => "ran".into(),
        }
    }

    #[test]
    fn cards_and_addresses_are_checked_before_any_card_starts() {
        assert_eq!(refused(Cards::default()), "give at least one --image FILE, --persona NAME or --echo");
        let two = || Cards { personas: vec!["cns".into(), "oberthur".into()], ..Cards::default() };
        let one_address = Cards { vpcd: vec!["127.0.0.1:1".into()], ..two() };
        assert_eq!(refused(one_address), "2 cards but 1 --vpcd addresses: give one per card, in order");
        let same = Cards { vpcd: vec!["127.0.0.1:40001".into(), "127.0.0.1:40001".into()], ..two() };
        assert_eq!(refused(same), "vpcd address 127.0.0.1:40001 is given to two cards: one reader holds one card");
        let unknown = Cards { personas: vec!["nobody".into()], ..Cards::default() };
        assert!(refused(unknown).starts_with("no built-in card \"nobody\""));
    }
}
