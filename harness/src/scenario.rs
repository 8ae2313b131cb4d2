//! Scenario files: named steps mixing raw APDUs (expected SW, optional expected data) and
//! high-level actions (verify / change / unblock the PIN, read the serial, run the
//! diagnostic), in JSON with explicit step tags and unknown fields rejected. The same file
//! runs in-process, over PC/SC on the virtual card, and against a real token.
//!
//! On a real token a scenario is held to the flows' rules: PIN steps go through the card
//! client's secret guard (tries shown, the last one protected, a refused value never sent
//! twice) unless the user declares the card virtual; raw APDUs carrying a secret are refused
//! on cards in readers unless the user declares it virtual or accepts the risk; raw APDUs
//! that write need the confirmation by the card's serial.

use crate::backoffice::BackOffice;
use crate::client::{self, ClientError, PinOutcome, SecretPolicy};
use crate::dates::Date;
use crate::flows::Confirmer;
use crate::flows::diagnostic::{Policy, diagnose};
use crate::transport::gate::Consent;
use crate::transport::{Transport, TransportError};
use crate::wire::apdu::{Effect, carries_secret, effect};
use crate::wire::hex::{self, HexError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SCHEMA_NAME: &str = "firmalab-scenario";

/// Why a scenario could not be read or run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not a valid scenario (`source` says why).
    #[error("scenario {}: {source}", path.display())]
    Invalid { path: PathBuf, source: Box<ScenarioError> },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("not a {SCHEMA_NAME} v1 file")]
    Schema,
    /// The same key twice in one JSON object (which one would count?).
    #[error("{0}")]
    DuplicateKey(String),
    #[error("step {step:?}: {source}")]
    Hex { step: String, source: HexError },
    #[error("step {step:?}: {command} is not a well-formed APDU")]
    Malformed { step: String, command: String },
    /// The scenario names another profile than the card's.
    #[error("scenario {name:?} is for {profile} cards; this card is {card}")]
    WrongProfile { name: String, profile: String, card: String },
    /// A raw APDU carries a PIN or PUK, on a card where that is refused (`{0}`: the command).
    #[error(
        "the scenario sends a PIN or PUK in a raw APDU ({0}): refused on a card in a reader, where a wrong value costs a try of someone's token; use a verify_pin step (tries shown, last try protected), or pass --virtual-card / --accept-secret-risk"
    )]
    RawSecret(String),
    /// The user did not confirm the writes by the card's serial.
    #[error("not confirmed: {0}")]
    NotConfirmed(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What a PIN step must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinExpect {
    Accepted,
    Wrong,
    Blocked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// A raw command APDU. `sw` defaults to `9000`; `data` is the exact response data in hex,
    /// or a prefix ending in `..`.
    Apdu {
        name: String,
        command: String,
        #[serde(default)]
        sw: Option<String>,
        #[serde(default)]
        data: Option<String>,
    },
    VerifyPin {
        name: String,
        pin: String,
        expect: PinExpect,
    },
    ChangePin {
        name: String,
        pin: String,
        new_pin: String,
        expect: PinExpect,
    },
    UnblockPin {
        name: String,
        puk: String,
        new_pin: String,
        expect: PinExpect,
    },
    /// The card serial equals this.
    Serial {
        name: String,
        equals: String,
    },
    /// The diagnostic's first failing reason code, or `Renewable` (back office empty, so
    /// check 10 is expected to fail unless `ignore_back_office`).
    Diagnostic {
        name: String,
        now: String,
        #[serde(default)]
        pin: Option<String>,
        expect: String,
    },
}

impl Step {
    pub fn name(&self) -> &str {
        match self {
            Step::Apdu { name, .. }
            | Step::VerifyPin { name, .. }
            | Step::ChangePin { name, .. }
            | Step::UnblockPin { name, .. }
            | Step::Serial { name, .. }
            | Step::Diagnostic { name, .. } => name,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub schema: String,
    pub version: u32,
    pub name: String,
    /// `cns` or `oberthur`: the scenario refuses to run on another card.
    #[serde(default)]
    pub profile: Option<String>,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// The PINs and PUKs the scenario's steps send, named as transcripts name them, so a
    /// recording of the run shows them as placeholders.
    pub fn secrets(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![];
        for step in &self.steps {
            match step {
                Step::VerifyPin { pin, .. } => out.push(("pin", pin.as_str())),
                Step::ChangePin { pin, new_pin, .. } => out.extend([("pin", pin.as_str()), ("new_pin", new_pin)]),
                Step::UnblockPin { puk, new_pin, .. } => out.extend([("puk", puk.as_str()), ("new_pin", new_pin)]),
                Step::Diagnostic { pin: Some(pin), .. } => out.push(("pin", pin.as_str())),
                _ => {}
            }
        }
        out
    }

    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text =
            crate::files::read_text(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| ScenarioError::Invalid { path: path.to_owned(), source: Box::new(e) })
    }

    /// Parses a scenario (JSON, `firmalab-scenario` v1); every raw APDU must be well formed.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        crate::files::check_unique_keys(text).map_err(ScenarioError::DuplicateKey)?;
        let s: Scenario = serde_json::from_str(text)?;
        if s.schema != SCHEMA_NAME || s.version != 1 {
            return Err(ScenarioError::Schema);
        }
        for step in &s.steps {
            if let Step::Apdu { command, .. } = step {
                let bytes =
                    hex::decode(command).map_err(|source| ScenarioError::Hex { step: step.name().into(), source })?;
                if !crate::transcript::well_formed(&bytes) {
                    return Err(ScenarioError::Malformed { step: step.name().into(), command: command.clone() });
                }
            }
        }
        Ok(s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// A dry run stopped at this step: it was not (fully) sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// How a scenario may treat the card.
#[derive(Default)]
pub struct Options<'a> {
    pub policy: SecretPolicy,
    /// Raw APDU steps may carry a PIN or PUK (image cards; `--virtual-card` or
    /// `--accept-secret-risk` on cards in readers).
    pub raw_secrets: bool,
    /// A card in a reader behind a consent gate: raw APDUs that write need the user's
    /// confirmation by the card's serial, asked once before the first step.
    pub consent: Option<(Consent, Confirmer<'a>)>,
}

fn pin_matches(got: PinOutcome, want: PinExpect) -> bool {
    matches!(
        (got, want),
        (PinOutcome::Accepted, PinExpect::Accepted)
            | (PinOutcome::Wrong { .. }, PinExpect::Wrong)
            | (PinOutcome::Blocked, PinExpect::Blocked)
    )
}

/// Runs a scenario with the strict secret policy; stops at the first failing step.
pub fn run(s: &Scenario, transport: Box<dyn Transport>) -> Result<Vec<StepResult>, ScenarioError> {
    run_with(s, transport, Options::default())
}

/// Runs a scenario; stops at the first failing step (or where a dry run stops). Returns every
/// step's result.
pub fn run_with(
    s: &Scenario,
    transport: Box<dyn Transport>,
    mut o: Options<'_>,
) -> Result<Vec<StepResult>, ScenarioError> {
    let mut c = client::open(transport)?;
    c.set_policy(o.policy);
    if let Some(p) = &s.profile
        && p != c.profile().name()
    {
        return Err(ScenarioError::WrongProfile {
            name: s.name.clone(),
            profile: p.clone(),
            card: c.profile().name().into(),
        });
    }
    let model = c.model().clone();
    let raw: Vec<Vec<u8>> = s
        .steps
        .iter()
        .filter_map(|st| match st {
            Step::Apdu { command, .. } => hex::decode(command).ok(),
            _ => None,
        })
        .collect();
    if !o.raw_secrets
        && let Some(secret) = raw.iter().find(|b| carries_secret(b))
    {
        return Err(ScenarioError::RawSecret(crate::wire::apdu::describe(secret)));
    }
    let writes = raw.iter().any(|b| effect(model.profile, model.tries_query_free, b) == Effect::Write);
    if writes && let Some((consent, ask)) = &mut o.consent {
        let serial = c.serial()?;
        ask(&serial, "send the scenario's commands that write to the card").map_err(ScenarioError::NotConfirmed)?;
        consent.confirm();
    }
    let mut out = vec![];
    for step in &s.steps {
        let result = run_step(c.as_mut(), step);
        let (passed, detail, dry_run) = match result {
            Ok((passed, detail)) => (passed, detail, false),
            Err(ClientError::Transport(TransportError::DryRun(what))) => {
                (false, format!("dry run: stopped before {what}"), true)
            }
            Err(ClientError::Refused { reason, message }) => (false, format!("refused, {reason}: {message}"), false),
            Err(e) => return Err(e.into()),
        };
        out.push(StepResult { name: step.name().to_owned(), passed, detail, dry_run });
        if !passed {
            break;
        }
    }
    // Leave the token as found (Oberthur: LOGOUT of the PIN the scenario verified).
    if !out.iter().any(|r| r.dry_run) {
        let _ = c.logout();
    }
    Ok(out)
}

fn run_step(c: &mut dyn client::CardClient, step: &Step) -> Result<(bool, String), ClientError> {
    Ok(match step {
        Step::Apdu { command, sw, data, .. } => {
            let bytes = hex::decode(command).map_err(|e| ClientError::Content(e.to_string()))?;
            let r = c.transport().transmit_raw(&bytes)?;
            let (got_data, got_sw) = r.split_at(r.len().saturating_sub(2));
            let want_sw = sw.clone().unwrap_or_else(|| "9000".into()).to_uppercase();
            let sw_ok = want_sw == "*" || hex::encode(got_sw) == want_sw;
            let data_ok = match data {
                None => true,
                Some(d) if d.ends_with("..") => hex::encode(got_data).starts_with(&d[..d.len() - 2].to_uppercase()),
                Some(d) => hex::encode(got_data) == d.to_uppercase(),
            };
            (sw_ok && data_ok, format!("< {}", hex::encode(&r)))
        }
        Step::VerifyPin { pin, expect, .. } => {
            let o = c.verify_pin(pin)?;
            (pin_matches(o, *expect), format!("{o:?}"))
        }
        Step::ChangePin { pin, new_pin, expect, .. } => {
            let o = c.change_pin(pin, new_pin)?;
            (pin_matches(o, *expect), format!("{o:?}"))
        }
        Step::UnblockPin { puk, new_pin, expect, .. } => {
            let o = c.unblock_pin(puk, new_pin)?;
            (pin_matches(o, *expect), format!("{o:?}"))
        }
        Step::Serial { equals, .. } => {
            let s = c.serial()?;
            (&s == equals, format!("serial {s}"))
        }
        Step::Diagnostic { now, pin, expect, .. } => {
            let now: Date = now.parse().map_err(|e: crate::dates::DateError| ClientError::Content(e.to_string()))?;
            let d = match diagnose(c, now, &BackOffice::default(), &Policy::default(), pin.as_deref()) {
                Ok(d) => d,
                Err(crate::flows::Stop::DryRun(what)) => {
                    return Err(ClientError::Transport(TransportError::DryRun(what)));
                }
                Err(e) => return Err(ClientError::Content(e.to_string())),
            };
            let first = d.checks.iter().find(|k| k.status == crate::flows::diagnostic::CheckStatus::Fail && k.id != 10);
            let got = first.map_or("Renewable", |k| k.reason.unwrap_or(crate::Reason::UnknownCard).as_str());
            (got == expect, format!("diagnostic: {got}"))
        }
    })
}

/// A scenario run with its APDUs recorded.
pub struct Recorded {
    pub results: Vec<StepResult>,
    /// Every APDU sent (the steps' PINs and PUKs as placeholders).
    pub transcript: crate::transcript::Transcript,
}

/// [`run_with`], recording the APDUs: the PINs and PUKs the steps send are registered as
/// `pin`, `pin2` …, `new_pin`, `puk` … so the recording shows placeholders.
pub fn run_recorded(s: &Scenario, transport: Box<dyn Transport>, o: Options<'_>) -> Result<Recorded, ScenarioError> {
    use crate::transcript::Recorder;
    let profile = crate::wire::atr::recognise(&transport.atr()).profile.map_or("unknown", |p| p.name());
    let recorder = Recorder::new(transport, "scenario", profile);
    let recording = recorder.recording.clone();
    let mut used: Vec<(String, String)> = vec![];
    for (name, value) in s.secrets() {
        if used.iter().any(|(_, v)| v == value) {
            continue;
        }
        let n = used.iter().filter(|(k, _)| k.starts_with(name)).count();
        let key = if n == 0 { name.to_owned() } else { format!("{name}{}", n + 1) };
        recording.borrow_mut().secret(&key, value);
        used.push((key, value.to_owned()));
    }
    let results = run_with(s, Box::new(recorder), o)?;
    let transcript = recording.borrow().transcript.clone();
    Ok(Recorded { results, transcript })
}

/// What `firmalab scenario` shows for a run: a line per step, then `passed` / `FAILED` — or,
/// when a dry run stopped, the APDUs sent and where it stopped. The flag: whether it passed
/// (a dry run that stopped counts as passed: nothing failed).
pub fn report(s: &Scenario, r: &Recorded) -> (String, bool) {
    let mut out = String::new();
    for step in &r.results {
        let mark = if step.dry_run {
            "-- "
        } else if step.passed {
            "ok "
        } else {
            "NO "
        };
        out.push_str(&format!("  {mark} {:<40} {}\n", step.name, step.detail));
    }
    if r.results.iter().any(|step| step.dry_run) {
        out.push_str("  APDUs of the dry run (secrets as placeholders):\n");
        for line in r.transcript.render().lines().skip(1) {
            out.push_str(&format!("    {line}\n"));
        }
        out.push_str(
            "  dry run: stopped before the first command that changes the card; nothing that changes it was sent\n",
        );
        return (out, true);
    }
    let passed = r.results.len() == s.steps.len() && r.results.iter().all(|step| step.passed);
    out.push_str(if passed { "  passed\n" } else { "  FAILED\n" });
    (out, passed)
}
