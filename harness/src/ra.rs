//! `firmalab ra`: the back office (CMS) as an operator drives it — each [`Command`] runs on
//! the store and comes back as the text (or JSON) to show and an exit code ([`Shown`]). The
//! work is in [`crate::cms`], [`crate::notices`] and [`crate::revocation`]; this module
//! opens the store as each command needs (locked to write, or read-only) and renders results.
//!
//! Exit codes: 0 done, 1 refused by a rule (the reason code is shown) or the store could not
//! be opened ([`RaError`]), 3 the card could not be read ([`RaError::Card`]).

use crate::backoffice::{BackOffice, RevocationReason, Store, StoreError};
use crate::cms::{self, CmsError, Done, Enrollment, Target};
use crate::dates::Date;
use crate::notices::{self, Within};
use crate::open::{CardSpec, OpenError, OpenOptions};
use crate::outbox::Stamp;
use crate::pki::PkiError;
use crate::revocation::{self, RevocationError};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `firmalab ra` shows: text for standard output and the exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    /// Every line ends in a newline.
    pub text: String,
    pub code: u8,
}

impl Shown {
    fn done(text: String) -> Self {
        Shown { text, code: 0 }
    }
}

/// Why `firmalab ra` could not run a command (a rule's refusal is not an error: it is
/// [`Shown`] with exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The card to enroll could not be opened or read (exit code 3).
    #[error(transparent)]
    Card(#[from] OpenError),
    #[error(transparent)]
    Cms(#[from] CmsError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Revocation(#[from] RevocationError),
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The CRL's encoding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CrlFormat {
    Pem,
    Der,
}

/// A `firmalab ra` command (see its `--help` for each one's rule).
#[derive(Clone, Debug)]
pub enum Command {
    /// Practices, cards, holders, certificates, contacts and orders (the codes masked).
    Show,
    /// The event log, by practice and/or holder (codice fiscale).
    Events {
        practice: Option<String>,
        holder: Option<String>,
    },
    /// Records the issuance of a card read from it.
    Enroll {
        card: CardSpec,
        email: String,
        mobile: String,
        address: Option<String>,
        cdrl: String,
        /// The PIN and PUK the card was issued with, sent in two halves; `None`: a paper
        /// envelope.
        codes: Option<(String, String)>,
        outbox: PathBuf,
        now: Option<Date>,
    },
    Holder {
        codice_fiscale: String,
        address: Option<String>,
        email: Option<String>,
        mobile: Option<String>,
        now: Option<Date>,
    },
    ReceiveOriginals {
        practice: String,
        cdrl: String,
        now: Option<Date>,
    },
    Authorize {
        practice: String,
        cdrl: String,
        now: Option<Date>,
    },
    Revoke {
        target: Target,
        reason: RevocationReason,
        cdrl: String,
        now: Option<Date>,
    },
    Suspend {
        target: Target,
        cdrl: String,
        now: Option<Date>,
    },
    Reactivate {
        target: Target,
        cdrl: String,
        now: Option<Date>,
    },
    ResendCodes {
        practice: String,
        cdrl: String,
        outbox: PathBuf,
        now: Option<Date>,
    },
    /// Certificates entering their renewal window; with `outbox`, one notice per holder.
    Due {
        within: Within,
        outbox: Option<PathBuf>,
        now: Option<Date>,
    },
    /// The issuing CA's CRL, `days` until nextUpdate, the CA from `ca`.
    Crl {
        out: PathBuf,
        format: CrlFormat,
        days: i64,
        /// `None`: the test CA built into firmalab.
        ca: Option<PathBuf>,
        now: Option<Date>,
    },
    /// `index.txt` and the responder's files for `openssl ocsp`.
    OcspIndex {
        out: PathBuf,
        /// `None`: the test CA built into firmalab.
        ca: Option<PathBuf>,
        now: Option<Date>,
    },
}

fn today(now: Option<Date>) -> Date {
    now.unwrap_or_else(Date::today)
}

fn pretty(v: &impl serde::Serialize) -> Result<String, serde_json::Error> {
    Ok(format!("{}\n", serde_json::to_string_pretty(v)?))
}

/// What an operation did (exit 0), or why a rule refused it (exit 1).
pub fn outcome(what: &str, r: Result<Done, CmsError>, json: bool) -> Result<Shown, RaError> {
    match r {
        Ok(d) => {
            if json {
                let mut v = serde_json::to_value(&d)?;
                v["outcome"] = "done".into();
                return Ok(Shown::done(pretty(&v)?));
            }
            let mut text = format!("ra {what}: {}\n", d.message);
            for f in &d.files {
                let _ = writeln!(text, "  wrote {f}");
            }
            Ok(Shown::done(text))
        }
        Err(CmsError::Refused(r)) => {
            let text = if json {
                pretty(&serde_json::json!({"outcome": "refused", "code": r.code(), "message": r.to_string()}))?
            } else {
                format!("ra {what}: refused, {} — {r}\n", r.code())
            };
            Ok(Shown { text, code: 1 })
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs a command on the store at `store`.
pub fn run(cmd: Command, store: &Path, json: bool) -> Result<Shown, RaError> {
    match cmd {
        Command::Show => {
            let bo = Store::open_read_only(store)?;
            Ok(Shown::done(show(store, &bo.data, json)?))
        }
        Command::Events { practice, holder } => {
            let bo = Store::open_read_only(store)?;
            match cms::events(&bo.data, practice.as_deref(), holder.as_deref()) {
                Ok(rows) if json => Ok(Shown::done(pretty(&rows)?)),
                Ok(rows) => Ok(Shown::done(events(&rows))),
                Err(r) => outcome("events", Err(CmsError::Refused(r)), json),
            }
        }
        Command::Enroll { card, email, mobile, address, cdrl, codes, outbox, now } => {
            let mut bo = Store::open(store)?;
            let transport = card.transport(&OpenOptions::default())?;
            let mut c = crate::client::open(transport).map_err(OpenError::Client)?;
            let e = Enrollment {
                cdrl: &cdrl,
                email: &email,
                mobile: &mobile,
                address: address.as_deref(),
                codes: codes.as_ref().map(|(pin, puk)| (pin.as_str(), puk.as_str())),
                outbox: &outbox,
            };
            outcome("enroll", cms::enroll(c.as_mut(), &mut bo, &e, today(now)), json)
        }
        Command::Holder { codice_fiscale, address, email, mobile, now } => {
            let mut bo = Store::open(store)?;
            let r = cms::edit_holder(
                &mut bo,
                &codice_fiscale,
                address.as_deref(),
                email.as_deref(),
                mobile.as_deref(),
                today(now),
            );
            outcome("holder", r, json)
        }
        Command::ReceiveOriginals { practice, cdrl, now } => {
            let mut bo = Store::open(store)?;
            outcome("receive-originals", cms::receive_originals(&mut bo, &practice, &cdrl, today(now)), json)
        }
        Command::Authorize { practice, cdrl, now } => {
            let mut bo = Store::open(store)?;
            outcome("authorize", cms::authorize(&mut bo, &practice, Some(&cdrl), today(now)), json)
        }
        Command::Revoke { target, reason, cdrl, now } => {
            let mut bo = Store::open(store)?;
            outcome("revoke", cms::revoke(&mut bo, &target, &cdrl, reason, today(now)), json)
        }
        Command::Suspend { target, cdrl, now } => {
            let mut bo = Store::open(store)?;
            outcome("suspend", cms::suspend(&mut bo, &target, &cdrl, today(now)), json)
        }
        Command::Reactivate { target, cdrl, now } => {
            let mut bo = Store::open(store)?;
            outcome("reactivate", cms::reactivate(&mut bo, &target, &cdrl, today(now)), json)
        }
        Command::ResendCodes { practice, cdrl, outbox, now } => {
            let mut bo = Store::open(store)?;
            outcome("resend-codes", cms::resend_codes(&mut bo, &practice, &cdrl, &outbox, Stamp::at(now)), json)
        }
        Command::Due { within, outbox, now } => due(store, within, outbox, now, json).map(Shown::done),
        Command::Crl { out, format, days, ca, now } => {
            crl(store, &out, format, days, ca.as_deref(), now, json).map(Shown::done)
        }
        Command::OcspIndex { out, ca, now } => {
            let ca = crate::fixtures::test_ca(ca.as_deref())?;
            let bo = Store::open_read_only(store)?;
            let files = revocation::write_ocsp_dir(&ca, &bo.data, &out, today(now))?;
            if json {
                return Ok(Shown::done(pretty(&files)?));
            }
            let mut text = format!(
                "ra ocsp-index: {} certificate(s), {} revoked or suspended, in {}\n",
                files.certificates,
                files.revoked,
                files.index.display()
            );
            let _ = writeln!(text, "  serve:  {}", files.command);
            let _ = writeln!(
                text,
                "  ask:    openssl ocsp -url {} -issuer {} -CAfile {} -cert CERT.pem",
                ca.urls.ocsp,
                files.ca.display(),
                files.chain.display()
            );
            text.push_str("  (openssl ocsp rereads index.txt only between requests: restart it after this command)\n");
            Ok(Shown::done(text))
        }
    }
}

/// `ra crl`: signs the CRL with the next CRL number, writes it (`0600`) and records the
/// number in the store.
fn crl(
    store: &Path,
    out: &Path,
    format: CrlFormat,
    days: i64,
    ca: Option<&Path>,
    now: Option<Date>,
    json: bool,
) -> Result<String, RaError> {
    let chain = match ca {
        Some(dir) => dir.join("chain.pem").display().to_string(),
        None => {
            "CHAIN.pem (the built-in test CA's chain: `firmalab ra ocsp-index --out DIR` writes DIR/chain.pem)".into()
        }
    };
    let ca = crate::fixtures::test_ca(ca)?;
    let mut bo = Store::open(store)?;
    let now = today(now);
    let number = bo.data.crl_number + 1;
    let der = revocation::crl_der(&ca, &bo.data, now, days, number)?;
    let bytes = match format {
        CrlFormat::Der => der.clone(),
        CrlFormat::Pem => revocation::crl_pem(&der)?.into_bytes(),
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| RaError::Write { path: dir.to_owned(), source })?;
    }
    crate::files::write_private(out, &bytes).map_err(|source| RaError::Write { path: out.to_owned(), source })?;
    bo.data.crl_number = number;
    bo.save()?;
    let listed = revocation::entries(&bo.data, now).iter().filter(|e| e.revoked.is_some()).count();
    if json {
        return Ok(pretty(&serde_json::json!({
            "outcome": "done", "file": out.display().to_string(), "crl_number": number,
            "revoked": listed, "this_update": now.to_string(), "next_update": now.add_days(days).to_string(),
        }))?);
    }
    Ok(format!(
        "ra crl: CRL number {number} with {listed} revoked or suspended certificate(s), valid {now} .. {}, written to {}\n  check a certificate: openssl verify -crl_check -CRLfile {} -CAfile {chain} CERT.pem\n",
        now.add_days(days),
        out.display(),
        out.display()
    ))
}

/// The event log as `ra events` prints it: a line per practice, then its events.
pub fn events(rows: &[cms::EventRow]) -> String {
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str("no events\n");
    }
    let mut last = String::new();
    for r in rows {
        if r.practice != last {
            let _ = writeln!(
                text,
                "{}  {:?} {}  card {}  holder {}  CDRL {}",
                r.practice,
                r.practice_kind,
                r.state.label(),
                r.card,
                r.codice_fiscale,
                r.cdrl
            );
            last = r.practice.clone();
        }
        let _ = writeln!(text, "  {}  {:<28} {}", r.date, r.label, r.event);
        if r.codes_resendable {
            let _ = writeln!(text, "  {:10}  {:<28} → firmalab ra resend-codes {}", "", "", r.practice);
        }
    }
    text
}

/// `ra due`: what comes due within `within`; with `outbox`, the notices are written (and
/// logged on the practices, so the store is opened for writing).
fn due(
    store: &Path,
    within: Within,
    outbox: Option<PathBuf>,
    now: Option<Date>,
    json: bool,
) -> Result<String, RaError> {
    let stamp = Stamp::at(now);
    let policy = crate::flows::diagnostic::Policy::default();
    let (mut list, sent) = match &outbox {
        Some(dir) => {
            let mut bo = Store::open(store)?;
            let mut list = notices::due(&bo.data, stamp.date, within, policy.window_months, policy.max_renewals);
            let sent = notices::send(&mut bo, &mut list, dir, stamp, within)?;
            (list, Some(sent))
        }
        None => {
            let bo = Store::open_read_only(store)?;
            (notices::due(&bo.data, stamp.date, within, policy.window_months, policy.max_renewals), None)
        }
    };
    if json {
        return Ok(pretty(
            &serde_json::json!({"within_days": within.0, "today": stamp.date.to_string(), "notices": &list}),
        )?);
    }
    let count: usize = list.iter().map(|n| n.certificates.len()).sum();
    let mut text = format!(
        "ra due: {count} certificate(s) of {} holder(s) expire by {} ({} days from {})\n",
        list.len(),
        stamp.date.add_days(within.0),
        within.0,
        stamp.date
    );
    for n in &mut list {
        let _ =
            writeln!(text, "  {} ({})  {}", n.name, n.codice_fiscale, n.email.as_deref().unwrap_or("no email on file"));
        for c in &n.certificates {
            let _ = writeln!(
                text,
                "    card {}  {:?} {}  expires {} ({} days); window opened {}{}",
                c.card,
                c.role,
                c.serial,
                c.not_after,
                c.days_left,
                c.window_opens,
                if c.renewable { "" } else { "; already renewed: a new card is needed" }
            );
        }
        if let Some(f) = &n.file {
            let _ = writeln!(text, "    notice: {f}");
        }
    }
    if let Some(sent) = sent {
        let _ = writeln!(text, "ra due: {sent} notice(s) written");
    }
    Ok(text)
}

/// `ra show`: the store at `path` (`data`, codes masked) as text, or JSON.
pub fn show(path: &Path, data: &BackOffice, json: bool) -> Result<String, serde_json::Error> {
    let data = data.redacted();
    if json {
        return pretty(&data);
    }
    let mut text = format!("back office {}\ncards\n", path.display());
    for c in &data.cards {
        let _ = writeln!(
            text,
            "  {}  holder {}  CDRL {}  first issued {}  renewals {}",
            c.serial, c.codice_fiscale, c.cdrl, c.first_issuance, c.renewal_count
        );
    }
    text.push_str("holders\n");
    for h in &data.holders {
        let _ = writeln!(
            text,
            "  {}  {} {}  address {}",
            h.codice_fiscale,
            h.first_name,
            h.last_name,
            h.address.as_deref().unwrap_or("-")
        );
    }
    text.push_str("practices (events: firmalab ra events --practice ID)\n");
    for p in &data.practices {
        let codes = match &p.envelope {
            Some(e) if e.second_half.is_some() => "  codes: SMS + email",
            Some(_) => "  codes: paper",
            None => "",
        };
        let _ = writeln!(
            text,
            "  {}  {:?} {} ({:?})  card {}  holder {}  CDRL {}  {} events{codes}",
            p.id,
            p.kind,
            p.state.label(),
            p.state,
            p.card_serial,
            p.codice_fiscale,
            p.cdrl,
            p.events.len()
        );
    }
    text.push_str("certificates\n");
    for c in &data.certificates {
        let change = c
            .change
            .as_ref()
            .map(|ch| {
                format!(
                    "  since {} ({}{})",
                    ch.date,
                    ch.reason.openssl_name(),
                    ch.by.as_ref().map(|b| format!(", by {b}")).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "  {}  {:?} {:?}  card {}  {} .. {}{change}",
            c.serial, c.role, c.status, c.card_serial, c.not_before, c.not_after
        );
    }
    text.push_str("contacts\n");
    for c in &data.contacts {
        let _ = writeln!(text, "  {:?} {}  → {}", c.kind, c.value, c.codice_fiscale);
    }
    text.push_str("orders\n");
    for o in &data.orders {
        let _ = writeln!(text, "  {}  practice {}  {:?}", o.id, o.practice, o.status);
    }
    Ok(text)
}
