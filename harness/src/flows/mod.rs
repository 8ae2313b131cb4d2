//! The management flows, as Aruba Enroll, Aruba Sign and Bit4id PKI Manager run them
//! (spec/domain.md §6.3): typed steps and outcomes, each step timed and recorded.
//!
//! A flow runs on a [`Runner`]: the card client over a recording transport, the injected
//! clock ("now"), and a reporter that sees each step as it ends.

pub mod diagnostic;
pub mod pin;
pub mod renewal;
pub mod reset;

use crate::client::{self, CardClient, ClientError};
use crate::dates::Date;
use crate::transcript::{Recorder, Recording, Transcript};
use crate::transport::Transport;
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

/// How a flow ended. Exit codes: `Done` 0, `Refused` 1, `Failed` 3 (2 is bad usage).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done { state: String, message: String },
    Refused { code: String, message: String },
    Failed { message: String },
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Done { .. } => 0,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Refused { code: String, message: String },
    Failed(String),
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Self {
        Stop::Failed(e.to_string())
    }
}

pub fn refuse(code: &str, message: impl Into<String>) -> Stop {
    Stop::Refused { code: code.into(), message: message.into() }
}

/// What a reporter sees: a step starting (long ones take seconds on a real card), a step done.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Begin(&'a str),
    End(&'a StepRecord),
}

/// Runs a flow's steps on one card.
pub struct Runner<'r> {
    pub client: Box<dyn CardClient>,
    pub recording: Rc<RefCell<Recording>>,
    pub now: Date,
    pub steps: Vec<StepRecord>,
    pub(crate) reporter: &'r mut dyn FnMut(Event<'_>),
    started: Option<(String, Instant)>,
}

impl<'r> Runner<'r> {
    /// Wraps the transport in a recorder and opens the right client for the card.
    pub fn open(
        transport: Box<dyn Transport>,
        flow: &str,
        now: Date,
        reporter: &'r mut dyn FnMut(Event<'_>),
    ) -> Result<Self, String> {
        let profile = firmalab_emulator::profile::recognise(&transport.atr()).profile.map_or("unknown", |p| p.name());
        let recorder = Recorder::new(transport, flow, profile);
        let recording = recorder.recording.clone();
        let client = client::open(Box::new(recorder)).map_err(|e| e.to_string())?;
        Ok(Runner { client, recording, now, steps: vec![], reporter, started: None })
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
                let (status, detail) = match &stop {
                    Stop::Refused { code, message } => (StepStatus::Refused, format!("{code}: {message}")),
                    Stop::Failed(m) => (StepStatus::Failed, m.clone()),
                };
                self.end(status, detail);
                Err(stop)
            }
        }
    }

    /// Finishes the flow into a report.
    pub fn finish(
        self,
        flow: &str,
        card: String,
        result: Result<(String, String), Stop>,
        details: serde_json::Value,
    ) -> FlowReport {
        let outcome = match result {
            Ok((state, message)) => Outcome::Done { state, message },
            Err(Stop::Refused { code, message }) => Outcome::Refused { code, message },
            Err(Stop::Failed(message)) => Outcome::Failed { message },
        };
        let transcript = self.recording.borrow().transcript.clone();
        FlowReport {
            flow: flow.into(),
            card,
            profile: self.client.profile().name().into(),
            outcome,
            steps: self.steps,
            details,
            transcript,
        }
    }
}

/// Client-side checks of a new PIN or PUK (Aruba: digits only; length per card).
pub fn check_new_secret(what: &str, new: &str, repeat: &str, min: usize, max: usize) -> Result<(), Stop> {
    if new != repeat {
        return Err(refuse("Mismatch", format!("the new {what} and its repetition differ")));
    }
    if !new.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("NotDigits", format!("the new {what} must be digits only")));
    }
    if !(min..=max).contains(&new.len()) {
        return Err(refuse("BadLength", format!("the new {what} must have {min} to {max} digits")));
    }
    Ok(())
}
