//! The management flows, as Aruba Enroll, Aruba Sign and Bit4id PKI Manager run them
//! (spec/domain.md §6.3): typed steps and outcomes, each step timed and recorded.
//!
//! A flow runs on a [`Runner`]: the card client over a recording transport, the injected
//! clock ("now"), and a reporter that sees each step as it ends.

pub mod diagnostic;
pub mod import;
pub mod order;
pub mod pin;
pub mod renewal;
pub mod reset;
pub mod secrets;

pub use crate::reason::Reason;

use crate::client::{self, CardClient, ClientError, Counter, SecretKind, SecretPolicy};
use crate::dates::Date;
use crate::transcript::{Recorder, Recording, Transcript};
use crate::transport::gate::Consent;
use crate::transport::{Transport, TransportError};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    /// A rule of the flow stopped it (wrong PIN, diagnostic failed, not acknowledged …).
    Refused,
    /// The card or the transport failed.
    Failed,
    /// Not run (a diagnostic check that needs what is missing).
    Skipped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub name: String,
    pub status: StepStatus,
    pub detail: String,
    pub millis: u64,
}

crate::reason::codes! {
    /// Where a flow that ran to its end left the card.
    pub enum Finished {
        /// The diagnostic: every check passed.
        Renewable,
        PinChanged,
        PinUnblocked,
        PukChanged,
        /// The card is blank with the default PIN.
        Reset,
        /// The renewal installed the new certificates; the CDRL authorises after payment.
        AwaitingCdrlAuthorization,
        /// Two-phase renewal, phase 1 (`ra order`): ordered, paid, the certificates issued
        /// for the new keys on the card; they wait for `flow import`.
        AwaitingImport,
        /// Two-phase renewal, phase 2 (`flow import`): the issued certificates are on the card.
        CertificatesImported,
    }
}

/// How a flow ended. Exit codes: `Done` 0, `Refused` 1, `Failed` 3 (2 is bad usage).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done {
        state: Finished,
        message: String,
    },
    Refused {
        /// The reason code (JSON `"code"`).
        #[serde(rename = "code")]
        reason: Reason,
        message: String,
    },
    Failed {
        message: String,
    },
    /// `--dry-run`: stopped before the first command that would change the card.
    DryRun {
        message: String,
    },
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Done { .. } | Outcome::DryRun { .. } => 0,
            Outcome::Refused { .. } => 1,
            Outcome::Failed { .. } => 3,
        }
    }
}

/// What a flow reports.
#[derive(Clone, Debug, Serialize)]
pub struct FlowReport {
    pub flow: String,
    pub card: String,
    pub profile: String,
    pub outcome: Outcome,
    pub steps: Vec<StepRecord>,
    /// Flow-specific results (the diagnostic's checks, the renewal's practice …).
    pub details: serde_json::Value,
    #[serde(skip)]
    pub transcript: Transcript,
}

/// Why a step stopped the flow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// A rule of the flow (or the card) said no.
    #[error("{reason}: {message}")]
    Refused { reason: Reason, message: String },
    /// The card, the transport or a file failed: the message says what.
    #[error("{0}")]
    Failed(String),
    /// The dry run reached a command that would change the card.
    #[error("dry run: stopped before {0}")]
    DryRun(String),
}

impl Stop {
    /// The status of the step it stopped (its detail line is the `Display` form).
    pub fn step_status(&self) -> StepStatus {
        match self {
            Stop::Refused { .. } => StepStatus::Refused,
            Stop::Failed(_) => StepStatus::Failed,
            Stop::DryRun(_) => StepStatus::Skipped,
        }
    }
}

impl From<crate::backoffice::StoreError> for Stop {
    fn from(e: crate::backoffice::StoreError) -> Self {
        Stop::Failed(e.to_string())
    }
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { reason, message } => Stop::Refused { reason, message },
            ClientError::Transport(TransportError::DryRun(what)) => Stop::DryRun(what),
            ClientError::Transport(TransportError::NotConfirmed(what)) => {
                Stop::Refused { reason: Reason::NotConfirmed, message: what }
            }
            e => Stop::Failed(e.to_string()),
        }
    }
}

/// A refusal for `reason`, with the message the user reads.
pub fn refuse(reason: impl Into<Reason>, message: impl Into<String>) -> Stop {
    Stop::Refused { reason: reason.into(), message: message.into() }
}

/// What a reporter sees: a step starting (long ones take seconds on a real card), a step done.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Begin(&'a str),
    End(&'a StepRecord),
}

/// Asks the user to confirm a destructive operation on the card with this serial (`what`
/// says what it does); `Err` says why not.
pub type Confirmer<'r> = Box<dyn FnMut(&str, &str) -> Result<(), String> + 'r>;

/// Runs a flow's steps on one card: the card client over a recording transport, the clock,
/// and the reporter that sees each step. Get one from [`crate::open::OpenCard::runner`] (a
/// card named by the user, behind its gate) or [`Runner::open`] on any transport.
pub struct Runner<'r> {
    pub client: Box<dyn CardClient>,
    pub recording: Rc<RefCell<Recording>>,
    pub now: Date,
    pub steps: Vec<StepRecord>,
    pub(crate) reporter: &'r mut dyn FnMut(Event<'_>),
    started: Option<(String, Instant)>,
    /// `--dry-run`: the transport stops before the first change; questions count as answered.
    pub dry_run: bool,
    /// A card in a reader: writes need the user's confirmation by the card's serial.
    confirm: Option<(Consent, Confirmer<'r>)>,
}

impl<'r> Runner<'r> {
    /// Wraps the transport in a recorder and opens the right client for the card.
    pub fn open(
        transport: Box<dyn Transport>,
        flow: &str,
        now: Date,
        reporter: &'r mut dyn FnMut(Event<'_>),
    ) -> Result<Self, ClientError> {
        let profile = crate::wire::atr::recognise(&transport.atr()).profile.map_or("unknown", |p| p.name());
        let recorder = Recorder::new(transport, flow, profile);
        let recording = recorder.recording.clone();
        let client = client::open(Box::new(recorder))?;
        Ok(Runner { client, recording, now, steps: vec![], reporter, started: None, dry_run: false, confirm: None })
    }

    /// What the user allowed for secrets (`--allow-last-try`, `--virtual-card`).
    pub fn with_policy(mut self, policy: SecretPolicy) -> Self {
        self.client.set_policy(policy);
        self
    }

    /// The transport is a dry-run gate: confirmations and questions count as answered (the
    /// run stops before anything they guard).
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The card is in a reader behind a consent gate: destructive steps first ask `confirm`
    /// (the card's serial typed, or `--confirm-serial`).
    pub fn confirming(mut self, consent: Consent, confirm: Confirmer<'r>) -> Self {
        self.confirm = Some((consent, confirm));
        self
    }

    /// Before a destructive step on a card in a reader: the user confirms by the card's
    /// serial (a step `SerialConfirmed`). Cards in image files and dry runs need nothing.
    pub fn confirm_destructive(&mut self, serial: &str, what: &str) -> Result<(), Stop> {
        if self.dry_run || self.confirm.is_none() {
            return Ok(());
        }
        self.begin("SerialConfirmed");
        let answer = match &mut self.confirm {
            Some((consent, ask)) => ask(serial, what).map(|()| consent.confirm()),
            None => Ok(()),
        };
        match answer {
            Ok(()) => {
                self.end(StepStatus::Ok, format!("card {serial} confirmed by its serial"));
                Ok(())
            }
            Err(why) => {
                self.end(StepStatus::Refused, format!("NotConfirmed: {why}"));
                Err(refuse(Reason::NotConfirmed, why))
            }
        }
    }

    /// Registers a secret so transcripts show it as a placeholder.
    pub fn secret(&self, name: &str, value: &str) {
        self.recording.borrow_mut().secret(name, value);
    }

    /// Announces a long step before it runs (key generation takes seconds on a real card).
    pub fn begin(&mut self, name: &str) {
        self.recording.borrow_mut().step(name);
        (self.reporter)(Event::Begin(name));
        self.started = Some((name.to_owned(), Instant::now()));
    }

    /// Ends the step begun with [`Runner::begin`].
    pub fn end(&mut self, status: StepStatus, detail: impl Into<String>) {
        let (name, t) = self.started.take().unwrap_or_else(|| ("?".into(), Instant::now()));
        let rec = StepRecord {
            name,
            status,
            detail: detail.into(),
            millis: u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        (self.reporter)(Event::End(&rec));
        self.steps.push(rec);
    }

    /// Runs one step: `f` returns its detail line, or why the flow stops.
    pub fn step<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut dyn CardClient, Date) -> Result<(T, String), Stop>,
    ) -> Result<T, Stop> {
        self.begin(name);
        match f(self.client.as_mut(), self.now) {
            Ok((v, detail)) => {
                self.end(StepStatus::Ok, detail);
                Ok(v)
            }
            Err(stop) => {
                self.end(stop.step_status(), stop.to_string());
                Err(stop)
            }
        }
    }

    /// Finishes the flow into a report.
    pub fn finish(
        self,
        flow: &str,
        card: String,
        result: Result<(Finished, String), Stop>,
        details: serde_json::Value,
    ) -> FlowReport {
        let outcome = match result {
            Ok((state, message)) => Outcome::Done { state, message },
            Err(Stop::Refused { reason, message }) => Outcome::Refused { reason, message },
            Err(Stop::Failed(message)) => Outcome::Failed { message },
            Err(Stop::DryRun(what)) => {
                Outcome::DryRun { message: format!("stopped before {what}; nothing that changes the card was sent") }
            }
        };
        // Leave the token as found: what this run verified is logged out where the card can.
        // Not an error of the flow if it fails (the card may be gone).
        let mut client = self.client;
        if !matches!(outcome, Outcome::DryRun { .. }) {
            let _ = client.logout();
        }
        let transcript = self.recording.borrow().transcript.clone();
        FlowReport {
            flow: flow.into(),
            card,
            profile: client.profile().name().into(),
            outcome,
            steps: self.steps,
            details,
            transcript,
        }
    }
}

/// Shows the tries left of the user's PINs or PUKs before one is sent (step `PinStatus` /
/// `PukStatus`), and refuses when one is blocked, or at its last try unless the user allowed
/// it. Where the card's mask may count the status query as an attempt, nothing is sent and
/// the step says so.
pub fn tries_step(r: &mut Runner<'_>, kind: SecretKind) -> Result<Vec<Counter>, Stop> {
    let name = match kind {
        SecretKind::Pin => "PinStatus",
        SecretKind::Puk => "PukStatus",
    };
    r.step(name, |c, _| {
        let counters = match kind {
            SecretKind::Pin => c.pin_counters()?,
            SecretKind::Puk => c.puk_counters()?,
        };
        let what = kind.name();
        let shown = counters.iter().map(Counter::short).collect::<Vec<_>>().join(", ");
        let policy = c.policy();
        if !policy.virtual_card {
            if counters.iter().any(|k| k.blocked) {
                return Err(match kind {
                    SecretKind::Pin => refuse(Reason::PinBlocked, format!("the PIN is blocked ({shown}): unblock it with the PUK")),
                    SecretKind::Puk => refuse(
                        Reason::PukBlocked,
                        format!("the PUK is blocked ({shown}): the card cannot be unblocked; revoke the certificates and buy a new card"),
                    ),
                });
            }
            if !policy.allow_last_try && let Some(k) = counters.iter().find(|k| k.tries_left == Some(1)) {
                return Err(refuse(
                    Reason::LastTry,
                    format!(
                        "{} has 1 try left: a wrong {what} would block it, so nothing was sent (--allow-last-try if you are sure of the {what})",
                        k.label
                    ),
                ));
            }
        }
        let note = counters.iter().find_map(|k| k.note.clone()).map(|n| format!(" ({n})")).unwrap_or_default();
        Ok((counters, format!("tries left: {shown}{note}")))
    })
}
