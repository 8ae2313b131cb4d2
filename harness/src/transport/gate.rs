//! The gate in front of a card: what may go out, decided by the harness's own table of what
//! each command does ([`crate::wire::apdu::effect`]), never by asking the card.
//!
//! * **Dry run**: reads and volatile commands go to the card; the first command that would
//!   present a secret or write the card is not sent and ends the run
//!   ([`TransportError::DryRun`]). The card is unchanged.
//! * **Consent**: a card in a reader (someone's token) accepts writes (erase, key generation,
//!   file and record changes, deletes) only after the user confirmed by the card's serial
//!   ([`Consent::confirm`]); before that they are refused ([`TransportError::NotConfirmed`]).
//!   Presenting or changing a PIN is not a write here: the secret guard of the card client
//!   governs it.

use super::{Transport, TransportError};
use crate::wire::apdu::{Effect, describe, effect};
use crate::wire::{Profile, atr};
use std::cell::Cell;
use std::rc::Rc;

/// What the gate lets through.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only reads and volatile commands; stop at the first other one.
    DryRun,
    /// Everything but writes, until consent is given.
    Consent,
}

/// The user's confirmation, shared between the gate and whoever asks for it.
#[derive(Clone, Debug, Default)]
pub struct Consent(Rc<Cell<bool>>);

impl Consent {
    /// The user confirmed: writes may go to the card from now on.
    pub fn confirm(&self) {
        self.0.set(true);
    }

    pub fn given(&self) -> bool {
        self.0.get()
    }
}

pub struct Gate {
    inner: Box<dyn Transport>,
    rule: Rule,
}

#[derive(Clone, Debug)]
struct Rule {
    mode: Mode,
    profile: Option<Profile>,
    query_free: bool,
    consent: Consent,
}

impl Rule {
    fn check(&self, command: &[u8]) -> Result<(), TransportError> {
        let e = effect(self.profile, self.query_free, command);
        match (self.mode, e) {
            (_, Effect::Read | Effect::Volatile) => Ok(()),
            (Mode::DryRun, Effect::Secret) => Err(TransportError::DryRun(format!(
                "{}: it presents a secret (a wrong one costs a try)",
                describe(command)
            ))),
            (Mode::DryRun, Effect::Write) => {
                Err(TransportError::DryRun(format!("{}: it changes the card", describe(command))))
            }
            (Mode::Consent, Effect::Secret) => Ok(()),
            (Mode::Consent, Effect::Write) if self.consent.given() => Ok(()),
            (Mode::Consent, Effect::Write) => Err(TransportError::NotConfirmed(format!(
                "{} would change the card in the reader, and the user did not confirm by its serial",
                describe(command)
            ))),
        }
    }
}

impl Gate {
    /// A gate in front of `inner`; the profile and mask come from its ATR.
    pub fn new(inner: Box<dyn Transport>, mode: Mode) -> (Self, Consent) {
        let model = atr::recognise(&inner.atr());
        let consent = Consent::default();
        let rule = Rule { mode, profile: model.profile, query_free: model.tries_query_free, consent: consent.clone() };
        (Gate { inner, rule }, consent)
    }
}

struct View<'a> {
    inner: &'a mut dyn Transport,
    rule: &'a Rule,
}

impl Transport for View<'_> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.rule.check(command)?;
        self.inner.transmit_raw(command)
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
        let rule = self.rule;
        self.inner.exclusive(&mut |t| f(&mut View { inner: t, rule }))
    }
}

impl Transport for Gate {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.rule.check(command)?;
        self.inner.transmit_raw(command)
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        match self.rule.mode {
            Mode::DryRun => Err(TransportError::DryRun("a card reset".into())),
            Mode::Consent => self.inner.reset(),
        }
    }
    fn exclusive(&mut self, f: &mut dyn FnMut(&mut dyn Transport)) -> Result<(), TransportError> {
        let Gate { inner, rule } = self;
        let rule = &*rule;
        inner.exclusive(&mut |t| f(&mut View { inner: t, rule }))
    }
}
