//! The secret guard: every PIN, PUK or unblock code a client sends passes through it, right
//! before the command that carries it.
//!
//! A physical token is someone's qualified signature: three wrong PINs block it. So, before a
//! secret goes out, the guard
//!
//! * knows the object's tries left: from an earlier answer in this run, or by the status
//!   query (`VERIFY` without data) when the card's mask answers it without counting an
//!   attempt; on other masks it does not query, and says the count is unknown;
//! * refuses when the object has 1 try left, unless the user allowed the last try;
//! * refuses a value the card already rejected in this run (a typo is never sent twice);
//! * does not send to an object it knows is blocked: that answer is known without asking.
//!
//! A card the user declared virtual (`--virtual-card`: scenario files that block PINs on
//! purpose) keeps the bookkeeping and the status queries but not the refusals.

use super::{ClientError, Counter, Result};
use crate::Reason;
use crate::transport::{Response, Transport};
use crate::wire::Sw;
use sha2::{Digest, Sha256};

/// What the user allowed for this run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretPolicy {
    /// Send a secret to an object with 1 try left (`--allow-last-try`).
    pub allow_last_try: bool,
    /// The card is a firmalab virtual card: wrong secrets and blocked PINs are part of the
    /// test (`--virtual-card`). Only the refusals are lifted.
    pub virtual_card: bool,
}

/// PIN or PUK.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    Pin,
    Puk,
}

impl SecretKind {
    pub fn name(self) -> &'static str {
        match self {
            SecretKind::Pin => "PIN",
            SecretKind::Puk => "PUK",
        }
    }
}

/// A PIN or PUK object on the card.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SecretObject {
    pub label: &'static str,
    pub kind: SecretKind,
    /// The reference as the status query sends it (P2 of `VERIFY`).
    pub reference: u8,
}

/// What the guard knows of an object's counter.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tries {
    Left(u8),
    Blocked,
    /// The last secret sent to it was accepted: the counter is full.
    Full,
    /// Not known and not asked (the mask may count the query as an attempt).
    Unknown,
}

/// The guard's state for one card.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    pub policy: SecretPolicy,
    /// Whether the status query is free on this card (from the mask table).
    pub query_free: bool,
    tries: Vec<(u8, Tries)>,
    /// SHA-256 of (kind, value) of every secret the card rejected in this run.
    rejected: Vec<[u8; 32]>,
}

fn fingerprint(kind: SecretKind, value: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(kind.name().as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    h.finalize().into()
}

/// Why the tries are not shown, for masks whose status query is not free.
pub const NOT_QUERIED: &str =
    "not queried: this card's mask may count a status query as a failed attempt, so firmalab does not send it";

impl Guard {
    pub fn new(query_free: bool) -> Self {
        Guard { query_free, ..Guard::default() }
    }

    fn get(&self, reference: u8) -> Option<&Tries> {
        self.tries.iter().find(|(r, _)| *r == reference).map(|(_, t)| t)
    }

    fn set(&mut self, reference: u8, t: Tries) {
        match self.tries.iter_mut().find(|(r, _)| *r == reference) {
            Some(slot) => slot.1 = t,
            None => self.tries.push((reference, t)),
        }
    }

    /// Records the answer of a status query or of a command carrying a secret.
    pub fn learn(&mut self, obj: SecretObject, sw: Sw) {
        let t = match sw {
            Sw::Ok => Tries::Full,
            Sw::TriesLeft(0) | Sw::AuthBlocked => Tries::Blocked,
            Sw::TriesLeft(n) => Tries::Left(n),
            _ => return,
        };
        self.set(obj.reference, t);
    }

    /// The object's counter, asking the card when the query is free and the count unknown.
    /// The caller has selected the object's DF.
    pub fn counter(&mut self, t: &mut dyn Transport, obj: SecretObject) -> Result<Counter> {
        if !self.query_free {
            return Ok(Counter {
                label: obj.label.into(),
                tries_left: None,
                blocked: false,
                note: Some(NOT_QUERIED.into()),
            });
        }
        let sw = super::send(t, 0x00, 0x20, 0x00, obj.reference, &[], None)?.sw;
        self.learn(obj, sw);
        Ok(match sw {
            Sw::TriesLeft(n) => Counter { label: obj.label.into(), tries_left: Some(n), blocked: n == 0, note: None },
            Sw::AuthBlocked => Counter { label: obj.label.into(), tries_left: Some(0), blocked: true, note: None },
            // 9000: already verified in this session; the counter is full.
            Sw::Ok => Counter {
                label: obj.label.into(),
                tries_left: None,
                blocked: false,
                note: Some("verified in this session".into()),
            },
            other => Counter {
                label: obj.label.into(),
                tries_left: None,
                blocked: false,
                note: Some(format!("the card answered {other} ({})", other.meaning())),
            },
        })
    }

    /// Right before a command carrying `value` (the user's secret; `None` for a code the card
    /// itself supplied) for `obj` goes out: `Ok(None)` to send it, `Ok(Some(Sw))` for an
    /// answer known without sending (the object is blocked), or a refusal.
    pub fn before(&mut self, t: &mut dyn Transport, obj: SecretObject, value: Option<&str>) -> Result<Option<Sw>> {
        let lenient = self.policy.virtual_card;
        if let Some(v) = value
            && !lenient
            && self.rejected.contains(&fingerprint(obj.kind, v))
        {
            return Err(ClientError::Refused {
                reason: match obj.kind {
                    SecretKind::Pin => Reason::PinAlreadyRejected,
                    SecretKind::Puk => Reason::PukAlreadyRejected,
                },
                message: format!("the card refused this {} earlier in this run: it is not sent again", obj.kind.name()),
            });
        }
        if self.get(obj.reference).is_none() && self.query_free {
            self.counter(t, obj)?;
        }
        match self.get(obj.reference).cloned().unwrap_or(Tries::Unknown) {
            Tries::Blocked if !lenient => Ok(Some(Sw::AuthBlocked)),
            Tries::Left(1) if !lenient && !self.policy.allow_last_try => Err(ClientError::Refused {
                reason: Reason::LastTry,
                message: format!(
                    "{} has 1 try left: a wrong {} would block it, so it was not sent (--allow-last-try sends it)",
                    obj.label,
                    obj.kind.name()
                ),
            }),
            _ => Ok(None),
        }
    }

    /// After the command carrying `value` for `obj` was answered.
    pub fn after(&mut self, obj: SecretObject, value: Option<&str>, r: &Response) {
        self.learn(obj, r.sw);
        if let (Some(v), Sw::TriesLeft(_) | Sw::AuthBlocked) = (value, r.sw) {
            let f = fingerprint(obj.kind, v);
            if !self.rejected.contains(&f) {
                self.rejected.push(f);
            }
        }
    }

    /// Whether a secret sent to the object was accepted in this run (so the card may hold it
    /// verified).
    pub fn succeeded(&self, obj: SecretObject) -> bool {
        self.get(obj.reference) == Some(&Tries::Full)
    }

    /// Whether the value was rejected earlier in this run.
    pub fn was_rejected(&self, kind: SecretKind, value: &str) -> bool {
        self.rejected.contains(&fingerprint(kind, value))
    }

    /// Tries left of an object as far as known (`None`: unknown).
    pub fn known_tries(&self, obj: SecretObject) -> Option<u8> {
        match self.get(obj.reference)? {
            Tries::Left(n) => Some(*n),
            Tries::Blocked => Some(0),
            Tries::Full | Tries::Unknown => None,
        }
    }
}

/// Sends a command carrying a secret through the guard: the status check (and query) first,
/// then the command, then the answer recorded.
pub(crate) fn send_secret(
    guard: &mut Guard,
    t: &mut dyn Transport,
    obj: SecretObject,
    value: Option<&str>,
    command: (u8, u8, u8, u8),
    data: &[u8],
) -> Result<Response> {
    if let Some(sw) = guard.before(t, obj, value)? {
        return Ok(Response { data: vec![], sw });
    }
    let (cla, ins, p1, p2) = command;
    let r = super::send(t, cla, ins, p1, p2, data, None)?;
    guard.after(obj, value, &r);
    Ok(r)
}
