//! A hostile card for middleware QA (`firmalab card --fault …`, `--mutate-answers SEED`):
//! faults a card in a vpcd reader injects into its own answers, at command APDUs counted
//! since the card process started.
//!
//! The in-process kinds keep the meaning they have in the harness's fault transport
//! (`harness/src/transport/fault.rs`), as seen from the card's side of a PC/SC reader:
//!
//! | Spec | command `N` executes | the card | the PC/SC client gets |
//! | --- | --- | --- | --- |
//! | `cut-before@N` | no | powered off, removed from the reader | no answer: the card is gone (`SCARD_E_NOT_TRANSACTED`, then "removed") |
//! | `cut-after@N` | yes (saved first) | powered off, removed | the same |
//! | `drop@N` | yes (saved first) | left powered, removed | the same |
//! | `corrupt@N` | yes | — | the answer with every byte XOR `5A`; the session goes on |
//! | `garbage@N` | yes | — | 1–40 random bytes instead of the answer |
//! | `delay@N:MS` | yes | — | the answer, MS milliseconds late |
//!
//! vpcd cannot carry "no answer" any other way than a removal: when a card closes its
//! connection, or answers with an empty frame, vpcd ejects it. A removed card comes back
//! into its reader about a second later, as a token put back in (the next PC/SC connection
//! sees it powered up afresh). A card image is saved before any of this happens: a fault
//! never damages it, and a cut before the command leaves it exactly as it was.
//!
//! `--mutate-answers SEED` mutates answers at random at a given rate (default 10 %, one in
//! ten). Whether APDU `n` is mutated, and how, is a function of `(SEED, n)` alone, so the same
//! seed and the same sequence of commands give the same mutations on every run. The
//! mutations: one bit flipped anywhere in the answer; the status word replaced by another
//! (an error, a warning or a `61xx` that promises more data); the answer truncated (at least
//! one byte is kept, an empty answer would be a removal); 1–16 random bytes inserted before
//! the status word.

use std::fmt;

/// The XOR mask of a corrupted answer (the same as the in-process fault transport's).
pub const CORRUPT_MASK: u8 = 0x5A;
/// Default `--mutate-rate`: percent of answers mutated.
pub const DEFAULT_MUTATE_RATE: u8 = 10;
/// Longest accepted `delay@N:MS` (ten minutes).
pub const MAX_DELAY_MS: u64 = 600_000;

/// One fault kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Power is cut before the card sees the command: not executed; the card is removed.
    CutBefore,
    /// The command executes (and is saved); power is cut before the answer goes out.
    CutAfter,
    /// The command executes (and is saved); the connection drops with the answer, the card
    /// stays powered.
    Drop,
    /// The answer goes out with every byte XOR [`CORRUPT_MASK`].
    Corrupt,
    /// The answer is replaced by 1–40 random bytes.
    Garbage,
    /// The answer goes out this many milliseconds late.
    Delay(u64),
}

impl FaultKind {
    /// The card loses its reader at this fault.
    pub fn removes_card(self) -> bool {
        matches!(self, FaultKind::CutBefore | FaultKind::CutAfter | FaultKind::Drop)
    }
}

/// A fault at one command APDU (`KIND@N`, N from 1).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The command APDU it hits, counted from 1 since the card process started.
    pub at: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            FaultKind::CutBefore => "cut-before",
            FaultKind::CutAfter => "cut-after",
            FaultKind::Drop => "drop",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Garbage => "garbage",
            FaultKind::Delay(_) => "delay",
        };
        write!(f, "{name}@{}", self.at)?;
        if let FaultKind::Delay(ms) = self.kind {
            write!(f, ":{ms}")?;
        }
        Ok(())
    }
}

/// Parses `KIND@N[,KIND@N…]`: kinds `cut-before`, `cut-after`, `drop`, `corrupt`, `garbage`,
/// `delay` (with `:MS`); N counts command APDUs from 1. Errors are one line naming the bad part.
pub fn parse_faults(spec: &str) -> Result<Vec<Fault>, String> {
    let mut faults: Vec<Fault> = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        let fault = parse_one(part)?;
        if let Some(other) = faults.iter().find(|f| f.at == fault.at) {
            return Err(format!("fault {part:?}: APDU {} already has {other}; one fault per APDU", fault.at));
        }
        faults.push(fault);
    }
    faults.sort_by_key(|f| f.at);
    Ok(faults)
}

const KINDS: &str = "cut-before, cut-after, drop, corrupt, garbage, delay@N:MS";

fn parse_one(part: &str) -> Result<Fault, String> {
    if part.is_empty() {
        return Err(format!("empty fault in the list; expected KIND@N with KIND one of {KINDS}"));
    }
    let Some((kind, rest)) = part.split_once('@') else {
        return Err(format!("fault {part:?}: expected KIND@N (e.g. corrupt@5), KIND one of {KINDS}"));
    };
    let (n, ms) = match rest.split_once(':') {
        Some((n, ms)) => (n, Some(ms)),
        None => (rest, None),
    };
    let at: u64 = n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
        format!("fault {part:?}: APDU number {n:?} is not a whole number from 1 (the first command APDU is 1)")
    })?;
    let kind = match (kind, ms) {
        ("delay", Some(ms)) => {
            let ms: u64 = ms.parse().ok().filter(|&m| m <= MAX_DELAY_MS).ok_or_else(|| {
                format!("fault {part:?}: delay {ms:?} is not a number of milliseconds from 0 to {MAX_DELAY_MS}")
            })?;
            FaultKind::Delay(ms)
        }
        ("delay", None) => {
            return Err(format!("fault {part:?}: delay needs its milliseconds, delay@N:MS (e.g. delay@5:2000)"));
        }
        (k, Some(_)) if ["cut-before", "cut-after", "drop", "corrupt", "garbage"].contains(&k) => {
            return Err(format!("fault {part:?}: only delay takes :MS"));
        }
        ("cut-before", None) => FaultKind::CutBefore,
        ("cut-after", None) => FaultKind::CutAfter,
        ("drop", None) => FaultKind::Drop,
        ("corrupt", None) => FaultKind::Corrupt,
        ("garbage", None) => FaultKind::Garbage,
        (k, _) => return Err(format!("fault {part:?}: unknown kind {k:?}; kinds: {KINDS}")),
    };
    Ok(Fault { kind, at })
}

/// Random answer mutations, reproducible by seed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Mutator {
    pub seed: u64,
    /// Percent of answers mutated, 1–100.
    pub rate: u8,
}

/// What the host does to one command APDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the command executes and its answer goes out.
    Pass,
    /// A planned fault.
    Fault(Fault),
    /// A random mutation of the answer (`--mutate-answers`).
    Mutate(Mutation),
}

/// One random mutation, fully determined by `(seed, n)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Flip one bit: byte index (modulo the answer's length) and bit.
    BitFlip { byte: usize, bit: u8 },
    /// Replace the status word.
    StatusWord([u8; 2]),
    /// Keep this many bytes (at least one, fewer than the answer has; modulo its length).
    Truncate { keep: usize },
    /// Insert these bytes before the status word.
    Extend(Vec<u8>),
}

/// Status words a mutated answer may carry instead of its own.
const STATUS_WORDS: [[u8; 2]; 12] = [
    [0x6A, 0x82],
    [0x69, 0x82],
    [0x69, 0x83],
    [0x69, 0x85],
    [0x67, 0x00],
    [0x6D, 0x00],
    [0x6E, 0x00],
    [0x6F, 0x00],
    [0x65, 0x81],
    [0x63, 0xC0],
    [0x62, 0x82],
    [0x90, 0x00],
];

/// A small, portable generator (SplitMix64): the mutations must be the same on every
/// machine and version for a seed to reproduce a run.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The generator for APDU `n` under `seed`: independent of every other APDU.
fn stream(seed: u64, n: u64) -> SplitMix {
    let mut g = SplitMix::new(seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03));
    g.next_u64();
    g
}

impl Mutator {
    /// The mutation of APDU `n`, if it is one of the `rate` percent mutated.
    pub fn mutation(&self, n: u64) -> Option<Mutation> {
        let mut g = stream(self.seed, n);
        if g.below(100) >= u64::from(self.rate) {
            return None;
        }
        Some(match g.below(4) {
            0 => Mutation::BitFlip { byte: g.below(4096) as usize, bit: g.below(8) as u8 },
            1 => {
                // One of the table, or (one time in thirteen) 61xx: "xx more bytes waiting".
                let i = g.below(STATUS_WORDS.len() as u64 + 1) as usize;
                let sw = STATUS_WORDS.get(i).copied().unwrap_or([0x61, g.below(256) as u8]);
                Mutation::StatusWord(sw)
            }
            2 => Mutation::Truncate { keep: g.below(4096) as usize },
            _ => {
                let len = 1 + g.below(16) as usize;
                Mutation::Extend((0..len).map(|_| g.below(256) as u8).collect())
            }
        })
    }
}

/// Applies a mutation to an answer; returns a one-line description for the log (status words
/// only: the data may be secret).
pub fn mutate(answer: &mut Vec<u8>, m: &Mutation) -> String {
    let before = sw_of(answer);
    match m {
        Mutation::BitFlip { byte, bit } => {
            if answer.is_empty() {
                return "empty answer left alone".into();
            }
            let i = byte % answer.len();
            answer[i] ^= 1 << bit;
            format!("bit {bit} of byte {i} flipped (of {}), status word {before} -> {}", answer.len(), sw_of(answer))
        }
        Mutation::StatusWord(sw) => {
            if answer.len() >= 2 {
                let at = answer.len() - 2;
                answer[at..].copy_from_slice(sw);
            } else {
                *answer = sw.to_vec();
            }
            format!("status word {before} -> {}", sw_of(answer))
        }
        Mutation::Truncate { keep } => {
            let len = answer.len();
            if len < 2 {
                return "answer too short to truncate, left alone".into();
            }
            let keep = 1 + keep % (len - 1);
            answer.truncate(keep);
            format!("truncated from {len} to {keep} bytes (status word {before} lost)")
        }
        Mutation::Extend(extra) => {
            let at = answer.len().saturating_sub(2);
            answer.splice(at..at, extra.iter().copied());
            format!("{} bytes inserted before the status word {before}", extra.len())
        }
    }
}

/// Garbage for `garbage@n`: 1–40 bytes, reproducible by `n`, never a clean `9000` answer.
pub fn garbage(n: u64) -> Vec<u8> {
    let mut g = stream(0x0067_6172_6261_6765, n);
    let len = 1 + g.below(40) as usize;
    let mut bytes: Vec<u8> = (0..len).map(|_| g.below(256) as u8).collect();
    if bytes.ends_with(&[0x90, 0x00]) {
        let last = bytes.len() - 1;
        bytes[last] = 0x01;
    }
    bytes
}

fn sw_of(answer: &[u8]) -> String {
    match answer.split_last_chunk::<2>() {
        Some((_, sw)) => crate::hex::encode(sw),
        None => format!("none ({} byte answer)", answer.len()),
    }
}

/// What a hostile card does, and how many command APDUs it has seen.
#[derive(Clone, Debug, Default)]
pub struct Hostility {
    faults: Vec<Fault>,
    mutator: Option<Mutator>,
    seen: u64,
}

impl Hostility {
    pub fn new(faults: Vec<Fault>, mutator: Option<Mutator>) -> Self {
        Hostility { faults, mutator, seen: 0 }
    }

    /// Whether it does anything at all.
    pub fn is_active(&self) -> bool {
        !self.faults.is_empty() || self.mutator.is_some()
    }

    /// Counts one more command APDU and says what to do with it (a planned fault first, then
    /// a random mutation). Returns the APDU's number (from 1) and the action.
    pub fn next_apdu(&mut self) -> (u64, Action) {
        self.seen += 1;
        let n = self.seen;
        if let Some(f) = self.faults.iter().find(|f| f.at == n) {
            return (n, Action::Fault(*f));
        }
        match self.mutator.and_then(|m| m.mutation(n)) {
            Some(m) => (n, Action::Mutate(m)),
            None => (n, Action::Pass),
        }
    }

    /// Command APDUs seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Planned faults not reached yet.
    pub fn pending(&self) -> impl Iterator<Item = &Fault> {
        self.faults.iter().filter(|f| f.at > self.seen)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_list_of_faults_parses_in_apdu_order() {
        let f = parse_faults("corrupt@5, cut-before@2,delay@7:250,garbage@9,drop@11,cut-after@12").unwrap();
        let shown: Vec<String> = f.iter().map(|f| f.to_string()).collect();
        assert_eq!(shown, ["cut-before@2", "corrupt@5", "delay@7:250", "garbage@9", "drop@11", "cut-after@12"]);
        assert_eq!(f[2].kind, FaultKind::Delay(250));
    }

    #[test]
    fn bad_fault_specs_are_refused_with_one_line_naming_the_part() {
        for (spec, says) in [
            ("", "empty fault"),
            ("corrupt", "expected KIND@N"),
            ("corrupt@0", "whole number from 1"),
            ("corrupt@x", "whole number from 1"),
            ("corrupt@-1", "whole number from 1"),
            ("melt@3", "unknown kind \"melt\""),
            ("delay@3", "delay needs its milliseconds"),
            ("delay@3:soon", "not a number of milliseconds"),
            ("delay@3:600001", "from 0 to 600000"),
            ("corrupt@3:10", "only delay takes :MS"),
            ("corrupt@3,drop@3", "APDU 3 already has corrupt@3"),
            ("corrupt@3,", "empty fault"),
        ] {
            let e = parse_faults(spec).unwrap_err();
            assert!(e.contains(says), "{spec:?}: {e}");
            assert!(!e.contains('\n'), "{spec:?}: one line: {e}");
        }
    }

    #[test]
    fn the_counter_hits_each_fault_at_its_apdu_number_from_one() {
        let mut h = Hostility::new(parse_faults("corrupt@2,drop@4").unwrap(), None);
        let actions: Vec<Action> = (0..5).map(|_| h.next_apdu().1).collect();
        assert_eq!(actions[0], Action::Pass);
        assert_eq!(actions[1], Action::Fault(Fault { kind: FaultKind::Corrupt, at: 2 }));
        assert_eq!(actions[2], Action::Pass);
        assert_eq!(actions[3], Action::Fault(Fault { kind: FaultKind::Drop, at: 4 }));
        assert_eq!(h.seen(), 5);
        assert_eq!(h.pending().count(), 0);
    }

    #[test]
    fn mutations_are_reproducible_by_seed_and_close_to_the_rate() {
        let m = Mutator { seed: 42, rate: 10 };
        let a: Vec<Option<Mutation>> = (1..=2000).map(|n| m.mutation(n)).collect();
        let b: Vec<Option<Mutation>> = (1..=2000).map(|n| m.mutation(n)).collect();
        assert_eq!(a, b);
        let hit = a.iter().filter(|x| x.is_some()).count();
        assert!((150..=250).contains(&hit), "10 % of 2000 answers mutated: {hit}");
        let other = Mutator { seed: 43, rate: 10 };
        assert_ne!(a, (1..=2000).map(|n| other.mutation(n)).collect::<Vec<_>>());
        let all = Mutator { seed: 1, rate: 100 };
        assert!((1..=100).all(|n| all.mutation(n).is_some()));
    }

    #[test]
    fn every_mutation_changes_the_answer_and_never_empties_it() {
        let m = Mutator { seed: 7, rate: 100 };
        for n in 1..=500 {
            let original = vec![0x01, 0x02, 0x03, 0x90, 0x00];
            let mut answer = original.clone();
            let mutation = m.mutation(n).unwrap();
            let said = mutate(&mut answer, &mutation);
            assert!(!answer.is_empty(), "{mutation:?}");
            if mutation != Mutation::StatusWord([0x90, 0x00]) {
                assert_ne!(answer, original, "{mutation:?}: {said}");
            }
        }
    }

    #[test]
    fn garbage_is_reproducible_short_and_never_a_clean_success() {
        for n in 1..=300 {
            let g = garbage(n);
            assert_eq!(g, garbage(n));
            assert!((1..=40).contains(&g.len()));
            assert!(!g.ends_with(&[0x90, 0x00]));
        }
    }
}
