//! `firmalab ra …`: the back office (CMS) on the command line. Argument parsing and printing;
//! the work is in `firmalab_harness::cms`, `notices` and `revocation`.
//!
//! Exit codes: 0 done, 1 refused by a rule (the reason code is printed) or the store could not
//! be opened, 3 the card could not be read.

use clap::{Args, Subcommand, ValueEnum};
use firmalab_harness::backoffice::{DEFAULT_CDRL, RevocationReason, Store};
use firmalab_harness::cms::{self, CmsError, Done, Enrollment, Target};
use firmalab_harness::dates::Date;
use firmalab_harness::notices::{self, Within};
use firmalab_harness::outbox::{DEFAULT_OUTBOX, Stamp};
use firmalab_harness::pki::TestCa;
use firmalab_harness::{client, revocation};
use std::path::{Path, PathBuf};

/// Which certificates `revoke`, `suspend` and `reactivate` act on.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// Every certificate of this card (by card serial): "Revoca carta".
    #[arg(long)]
    card: Option<String>,
    /// One certificate, by its hex serial.
    #[arg(long)]
    cert: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        match (&self.card, &self.cert) {
            (Some(c), _) => Target::Card(c.clone()),
            (None, Some(s)) => Target::Certificate(s.clone()),
            (None, None) => Target::Card(String::new()),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CrlFormat {
    Pem,
    Der,
}

#[derive(Subcommand, Debug)]
pub enum RaCmd {
    /// Practices, cards, holders, certificates, contacts and orders (the codes masked).
    Show,
    /// The event log with event types ("Ricerca Eventi" → "Eventi Carta"), by practice and/or holder.
    Events {
        #[arg(long)]
        practice: Option<String>,
        /// The holder's codice fiscale.
        #[arg(long)]
        holder: Option<String>,
    },
    /// Record the issuance of a card read from it: practice, certificates, holder, contacts, and
    /// the PIN/PUK envelope (first half by SMS, second half by email, both into the outbox).
    Enroll {
        /// An image file or reader:NAME.
        #[arg(long)]
        card: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        mobile: String,
        /// The holder's postal address.
        #[arg(long)]
        address: Option<String>,
        /// The CDRL issuing the card.
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        /// The PIN the card was issued with (`image new --pin`): with --puk, sent in two halves.
        /// Without them the codes went in a sealed paper envelope (not recoverable).
        #[arg(long, requires = "puk")]
        pin: Option<String>,
        #[arg(long, requires = "pin")]
        puk: Option<String>,
        #[arg(long, default_value = DEFAULT_OUTBOX)]
        outbox: PathBuf,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Change what the certificate does not carry: address, email, mobile (uniqueness checked).
    Holder {
        /// The holder's codice fiscale.
        codice_fiscale: String,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        mobile: Option<String>,
        #[arg(long)]
        now: Option<Date>,
    },
    /// The signed originals of an issuance arrived: Attesa Originali → Completato.
    ReceiveOriginals {
        practice: String,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Complete a renewal waiting for the CDRL's authorisation (after payment).
    Authorize {
        practice: String,
        /// The CDRL authorising: it must be the one that issued the card and ran the renewal.
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Revoke a card's certificates or one certificate (only the CDRL that issued the card).
    Revoke {
        #[command(flatten)]
        target: TargetArgs,
        /// unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation.
        #[arg(long, default_value = "unspecified")]
        reason: RevocationReason,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Suspend active certificates (certificateHold in CRL and OCSP).
    Suspend {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Reactivate certificates a CDRL suspended.
    Reactivate {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Send the second half of the PIN/PUK codes again to the practice's email (only in
    /// Attesa Originali or Completato).
    ResendCodes {
        practice: String,
        #[arg(long, default_value = DEFAULT_CDRL)]
        cdrl: String,
        #[arg(long, default_value = DEFAULT_OUTBOX)]
        outbox: PathBuf,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Certificates entering their renewal window; with --outbox, one RFC 5322 notice per holder.
    Due {
        /// How far ahead: days (60d) or weeks (8w).
        #[arg(long, default_value = "60d")]
        within: Within,
        /// Write the notices here (and log them on the practices).
        #[arg(long)]
        outbox: Option<PathBuf>,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Write the issuing CA's CRL (signed, reasons; certificateHold for suspended ones).
    Crl {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "pem")]
        format: CrlFormat,
        /// Days until nextUpdate.
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// The test CA folder.
        #[arg(long, default_value = "fixtures/ca")]
        ca: PathBuf,
        #[arg(long)]
        now: Option<Date>,
    },
    /// Write index.txt, the CA and the responder's certificate and key for `openssl ocsp`.
    OcspIndex {
        #[arg(long)]
        out: PathBuf,
        /// The test CA folder.
        #[arg(long, default_value = "fixtures/ca")]
        ca: PathBuf,
        #[arg(long)]
        now: Option<Date>,
    },
}

fn today(now: Option<Date>) -> Date {
    now.unwrap_or_else(Date::today)
}

/// Prints what an operation did (or why not) and returns the exit code.
fn report(what: &str, r: Result<Done, CmsError>, json: bool) -> Result<u8, String> {
    match r {
        Ok(d) => {
            if json {
                let mut v = serde_json::to_value(&d).map_err(|e| e.to_string())?;
                v["outcome"] = "done".into();
                println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                println!("ra {what}: {}", d.message);
                for f in &d.files {
                    println!("  wrote {f}");
                }
            }
            Ok(0)
        }
        Err(CmsError::Refused(r)) => {
            if json {
                let v = serde_json::json!({"outcome": "refused", "code": r.code(), "message": r.to_string()});
                println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                println!("ra {what}: refused, {} — {r}", r.code());
            }
            Ok(1)
        }
        Err(CmsError::Failed(m)) => Err(m),
    }
}

/// Prints a serialisable value as pretty JSON (a macro: the binary does not depend on serde).
macro_rules! json_out {
    ($v:expr) => {{
        println!("{}", serde_json::to_string_pretty(&$v).map_err(|e| e.to_string())?);
        Ok::<(), String>(())
    }};
}

/// `firmalab ra …`.
pub fn run(cmd: RaCmd, path: &Path, json: bool) -> Result<u8, String> {
    match cmd {
        RaCmd::Show => show(path, json).map(|()| 0),
        RaCmd::Events { practice, holder } => {
            let bo = Store::open_read_only(path)?;
            match cms::events(&bo.data, practice.as_deref(), holder.as_deref()) {
                Ok(rows) if json => json_out!(rows).map(|()| 0),
                Ok(rows) => {
                    print_events(&rows);
                    Ok(0)
                }
                Err(r) => report("events", Err(CmsError::Refused(r)), json),
            }
        }
        RaCmd::Enroll { card, email, mobile, address, cdrl, pin, puk, outbox, now } => {
            let mut bo = Store::open(path)?;
            let transport = match crate::flows_cli::open_card(&card, None) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("firmalab: {e}");
                    return Ok(3);
                }
            };
            let mut c = match client::open(transport) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("firmalab: {e}");
                    return Ok(3);
                }
            };
            let codes = pin.as_deref().zip(puk.as_deref());
            let e = Enrollment {
                cdrl: &cdrl,
                email: &email,
                mobile: &mobile,
                address: address.as_deref(),
                codes,
                outbox: &outbox,
            };
            report("enroll", cms::enroll(c.as_mut(), &mut bo, &e, today(now)), json)
        }
        RaCmd::Holder { codice_fiscale, address, email, mobile, now } => {
            let mut bo = Store::open(path)?;
            let r = cms::edit_holder(
                &mut bo,
                &codice_fiscale,
                address.as_deref(),
                email.as_deref(),
                mobile.as_deref(),
                today(now),
            );
            report("holder", r, json)
        }
        RaCmd::ReceiveOriginals { practice, cdrl, now } => {
            let mut bo = Store::open(path)?;
            report("receive-originals", cms::receive_originals(&mut bo, &practice, &cdrl, today(now)), json)
        }
        RaCmd::Authorize { practice, cdrl, now } => {
            let mut bo = Store::open(path)?;
            report("authorize", cms::authorize(&mut bo, &practice, Some(&cdrl), today(now)), json)
        }
        RaCmd::Revoke { target, reason, cdrl, now } => {
            let mut bo = Store::open(path)?;
            report("revoke", cms::revoke(&mut bo, &target.target(), &cdrl, reason, today(now)), json)
        }
        RaCmd::Suspend { target, cdrl, now } => {
            let mut bo = Store::open(path)?;
            report("suspend", cms::suspend(&mut bo, &target.target(), &cdrl, today(now)), json)
        }
        RaCmd::Reactivate { target, cdrl, now } => {
            let mut bo = Store::open(path)?;
            report("reactivate", cms::reactivate(&mut bo, &target.target(), &cdrl, today(now)), json)
        }
        RaCmd::ResendCodes { practice, cdrl, outbox, now } => {
            let mut bo = Store::open(path)?;
            report("resend-codes", cms::resend_codes(&mut bo, &practice, &cdrl, &outbox, Stamp::at(now)), json)
        }
        RaCmd::Due { within, outbox, now } => due(path, within, outbox, now, json).map(|()| 0),
        RaCmd::Crl { out, format, days, ca, now } => {
            let ca = TestCa::load(&ca)?;
            let mut bo = Store::open(path)?;
            let now = today(now);
            let number = bo.data.crl_number + 1;
            let der = revocation::crl_der(&ca, &bo.data, now, days, number)?;
            let bytes = match format {
                CrlFormat::Der => der.clone(),
                CrlFormat::Pem => revocation::crl_pem(&der)?.into_bytes(),
            };
            firmalab_emulator::storage::write_private(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
            bo.data.crl_number = number;
            bo.save()?;
            let listed = revocation::entries(&bo.data, now).iter().filter(|e| e.revoked.is_some()).count();
            if json {
                json_out!(serde_json::json!({
                    "outcome": "done", "file": out.display().to_string(), "crl_number": number,
                    "revoked": listed, "this_update": now.to_string(), "next_update": now.add_days(days).to_string(),
                }))?;
            } else {
                println!(
                    "ra crl: CRL number {number} with {listed} revoked or suspended certificate(s), valid {now} .. {}, written to {}",
                    now.add_days(days),
                    out.display()
                );
                println!(
                    "  check a certificate: openssl verify -crl_check -CRLfile {} -CAfile fixtures/ca/chain.pem CERT.pem",
                    out.display()
                );
            }
            Ok(0)
        }
        RaCmd::OcspIndex { out, ca, now } => {
            let ca = TestCa::load(&ca)?;
            let bo = Store::open_read_only(path)?;
            let files = revocation::write_ocsp_dir(&ca, &bo.data, &out, today(now))?;
            if json {
                json_out!(files)?;
            } else {
                println!(
                    "ra ocsp-index: {} certificate(s), {} revoked or suspended, in {}",
                    files.certificates,
                    files.revoked,
                    files.index.display()
                );
                println!("  serve:  {}", files.command);
                println!(
                    "  ask:    openssl ocsp -url {} -issuer {} -CAfile {} -cert CERT.pem",
                    ca.urls.ocsp,
                    files.ca.display(),
                    files.chain.display()
                );
                println!("  (openssl ocsp rereads index.txt only between requests: restart it after this command)");
            }
            Ok(0)
        }
    }
}

fn print_events(rows: &[cms::EventRow]) {
    if rows.is_empty() {
        println!("no events");
    }
    let mut last = String::new();
    for r in rows {
        if r.practice != last {
            println!(
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
        println!("  {}  {:<28} {}", r.date, r.label, r.event);
        if r.codes_resendable {
            println!("  {:10}  {:<28} → firmalab ra resend-codes {}", "", "", r.practice);
        }
    }
}

fn due(path: &Path, within: Within, outbox: Option<PathBuf>, now: Option<Date>, json: bool) -> Result<(), String> {
    let stamp = Stamp::at(now);
    let policy = firmalab_harness::flows::diagnostic::Policy::default();
    let (mut list, sent) = match &outbox {
        Some(dir) => {
            let mut bo = Store::open(path)?;
            let mut list = notices::due(&bo.data, stamp.date, within, policy.window_months, policy.max_renewals);
            let sent = notices::send(&mut bo, &mut list, dir, stamp, within)?;
            (list, Some(sent))
        }
        None => {
            let bo = Store::open_read_only(path)?;
            (notices::due(&bo.data, stamp.date, within, policy.window_months, policy.max_renewals), None)
        }
    };
    if json {
        return json_out!(
            serde_json::json!({"within_days": within.0, "today": stamp.date.to_string(), "notices": &list})
        );
    }
    let count: usize = list.iter().map(|n| n.certificates.len()).sum();
    println!(
        "ra due: {count} certificate(s) of {} holder(s) expire by {} ({} days from {})",
        list.len(),
        stamp.date.add_days(within.0),
        within.0,
        stamp.date
    );
    for n in &mut list {
        println!("  {} ({})  {}", n.name, n.codice_fiscale, n.email.as_deref().unwrap_or("no email on file"));
        for c in &n.certificates {
            println!(
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
            println!("    notice: {f}");
        }
    }
    if let Some(sent) = sent {
        println!("ra due: {sent} notice(s) written");
    }
    Ok(())
}

/// `firmalab ra show`.
pub fn show(path: &Path, json: bool) -> Result<(), String> {
    let bo = Store::open_read_only(path)?;
    let data = bo.data.redacted();
    if json {
        return json_out!(data);
    }
    println!("back office {}", path.display());
    println!("cards");
    for c in &data.cards {
        println!(
            "  {}  holder {}  CDRL {}  first issued {}  renewals {}",
            c.serial, c.codice_fiscale, c.cdrl, c.first_issuance, c.renewal_count
        );
    }
    println!("holders");
    for h in &data.holders {
        println!(
            "  {}  {} {}  address {}",
            h.codice_fiscale,
            h.first_name,
            h.last_name,
            h.address.as_deref().unwrap_or("-")
        );
    }
    println!("practices (events: firmalab ra events --practice ID)");
    for p in &data.practices {
        let codes = match &p.envelope {
            Some(e) if e.second_half.is_some() => "  codes: SMS + email",
            Some(_) => "  codes: paper",
            None => "",
        };
        println!(
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
    println!("certificates");
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
        println!(
            "  {}  {:?} {:?}  card {}  {} .. {}{change}",
            c.serial, c.role, c.status, c.card_serial, c.not_before, c.not_after
        );
    }
    println!("contacts");
    for c in &data.contacts {
        println!("  {:?} {}  → {}", c.kind, c.value, c.codice_fiscale);
    }
    println!("orders");
    for o in &data.orders {
        println!("  {}  practice {}  {:?}", o.id, o.practice, o.status);
    }
    Ok(())
}
