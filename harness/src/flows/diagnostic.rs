//! The card diagnostic that tells whether a card can be renewed: the ten checks of
//! spec/domain.md §4, each with pass/fail/skip and a reason code (§6.3 item 1).

use super::{FlowReport, Runner, StepStatus, Stop};
use crate::backoffice::{BackOffice, CertStatus};
use crate::client::{CardClient, KeyRole, PinOutcome};
use crate::dates::Date;
use der::Decode;
use der::referenced::OwnedToRef;
use firmalab_emulator::ProfileKind;
use firmalab_emulator::profile::recognise;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why a check failed (spec/domain.md §6.3 item 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Reason {
    UnknownCard,
    ObsoleteCard,
    SerialUnreadable,
    NotOperational,
    CertificateMissing,
    PinBlocked,
    PukBlocked,
    CertKeyMismatch,
    NotInRenewalWindow,
    CertExpired,
    CertRevoked,
    WrongIssuer,
    AlreadyRenewed,
    DeviceTooOld,
    InsufficientMemory,
    NotInBackOffice,
    IssuedByOtherCdrl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: u8,
    pub name: &'static str,
    pub status: CheckStatus,
    pub reason: Option<Reason>,
    pub detail: String,
}

/// The rules the checks apply.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Renewal opens this many months before expiry (Aruba: 2).
    pub window_months: i32,
    /// Renewals allowed per device (Aruba: 1).
    pub max_renewals: u8,
    /// Device life in years (about 6).
    pub max_device_years: i32,
    /// EEPROM needed for a renewal: two RSA-2048 keys and two certificates.
    pub required_free_bytes: u32,
    /// The CDRL running the renewal, if the CMS path checks it.
    pub cdrl: Option<String>,
    /// Check "not revoked" with this OCSP responder instead of the back office.
    pub ocsp: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            window_months: 2,
            max_renewals: 1,
            max_device_years: 6,
            required_free_bytes: 4096,
            cdrl: None,
            ocsp: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    pub serial: Option<String>,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == CheckStatus::Fail)
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, id: u8, name: &'static str, result: Result<String, (Reason, String)>) {
        let (status, reason, detail) = match result {
            Ok(d) => (CheckStatus::Pass, None, d),
            Err((r, d)) => (CheckStatus::Fail, Some(r), d),
        };
        self.0.push(Check { id, name, status, reason, detail });
    }
    fn skip(&mut self, id: u8, name: &'static str, why: &str) {
        self.0.push(Check { id, name, status: CheckStatus::Skip, reason: None, detail: why.into() });
    }
}

fn cert_dates(c: &x509_cert::Certificate) -> (Date, Date) {
    let v = c.tbs_certificate().validity();
    (Date::from_der(&v.not_before.to_date_time()), Date::from_der(&v.not_after.to_date_time()))
}

/// Runs the ten checks. `pin`: needed for the key ↔ certificate check (a test signature).
pub fn diagnose(
    client: &mut dyn CardClient,
    now: Date,
    bo: &BackOffice,
    policy: &Policy,
    pin: Option<&str>,
) -> Result<Diagnosis, Stop> {
    let mut checks = Checks(vec![]);
    // 1. Recognised, not obsolete.
    let atr = client.atr();
    let what = recognise(&atr);
    let cns_version = atr.get(atr.len().saturating_sub(4)).copied();
    checks.add(
        1,
        "card recognised",
        match what.profile {
            None => Err((Reason::UnknownCard, what.label.clone())),
            Some(ProfileKind::Cns) if cns_version.is_some_and(|v| v < 0x11) => {
                Err((Reason::ObsoleteCard, format!("{}: no RSA-2048", what.label)))
            }
            Some(_) => Ok(what.label.clone()),
        },
    );
    // 2. Serial.
    let serial = client.serial().ok();
    checks.add(
        2,
        "serial",
        match &serial {
            Some(s) => Ok(s.clone()),
            None => Err((Reason::SerialUnreadable, "the serial cannot be read".into())),
        },
    );
    // 3. Life-cycle.
    match client.life_cycle()? {
        Some(0x10) => checks.add(3, "life-cycle", Ok("user (10): issued".into())),
        Some(b) => checks.add(
            3,
            "life-cycle",
            Err((Reason::NotOperational, format!("life-cycle {b:02X}: not issued to a holder"))),
        ),
        None => checks.skip(3, "life-cycle", "the card does not report one"),
    }
    // 4. Certificates.
    let certs = client.certificates()?;
    let parsed: Vec<(KeyRole, x509_cert::Certificate)> =
        certs.iter().filter_map(|c| x509_cert::Certificate::from_der(&c.der).ok().map(|x| (c.role, x))).collect();
    let sign = parsed.iter().find(|(r, _)| *r == KeyRole::Signature).map(|(_, c)| c.clone());
    checks.add(
        4,
        "certificates",
        match (&sign, parsed.iter().any(|(r, _)| *r == KeyRole::Authentication)) {
            (Some(_), true) => Ok(format!("{} certificates parse as X.509", parsed.len())),
            (None, _) => Err((Reason::CertificateMissing, "no qualified signature certificate".into())),
            (Some(_), false) => Err((Reason::CertificateMissing, "no authentication certificate".into())),
        },
    );
    // 5. PIN and PUK.
    let pins = client.pin_counters()?;
    let puks = client.puk_counters()?;
    let show = |v: &[crate::client::Counter]| {
        v.iter()
            .map(|c| format!("{} {}", c.label, c.tries_left.map_or("?".into(), |n| n.to_string())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    checks.add(
        5,
        "PIN and PUK",
        if puks.iter().any(|c| c.blocked) {
            Err((Reason::PukBlocked, format!("PUK blocked ({})", show(&puks))))
        } else if pins.iter().any(|c| c.blocked) {
            Err((Reason::PinBlocked, format!("PIN blocked ({}); unblock it with the PUK", show(&pins))))
        } else {
            Ok(format!("tries left: {}; {}", show(&pins), show(&puks)))
        },
    );
    // 6. Key ↔ certificate: a test signature verified with the certificate's key.
    match (&sign, pin) {
        (Some(cert), Some(pin)) if !pins.iter().any(|c| c.blocked) => {
            let challenge: [u8; 32] = Sha256::digest(format!("firmalab diagnostic {now}").as_bytes()).into();
            let result = match client.sign_sha256(KeyRole::Signature, None, &challenge, pin) {
                Ok(sig) => {
                    let key =
                        rsa::RsaPublicKey::try_from(cert.tbs_certificate().subject_public_key_info().owned_to_ref());
                    let ok = key.is_ok_and(|k| k.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &challenge, &sig).is_ok());
                    if ok {
                        Ok("test signature verifies with the certificate".into())
                    } else {
                        Err((Reason::CertKeyMismatch, "the signature key does not match the certificate".into()))
                    }
                }
                Err(crate::client::ClientError::Card { sw, .. })
                    if matches!(sw, firmalab_emulator::Sw::TriesLeft(_) | firmalab_emulator::Sw::AuthBlocked) =>
                {
                    Err((Reason::PinBlocked, format!("the PIN was refused ({sw})")))
                }
                Err(e) => return Err(e.into()),
            };
            checks.add(6, "key matches certificate", result);
        }
        (Some(_), Some(_)) => checks.skip(6, "key matches certificate", "the PIN is blocked"),
        (Some(_), None) => checks.skip(6, "key matches certificate", "needs the PIN (--pin)"),
        (None, _) => checks.skip(6, "key matches certificate", "no signature certificate"),
    }
    // 7. Renewal window, status, issuer.
    match &sign {
        Some(cert) => {
            let (_, until) = cert_dates(cert);
            let opens = until.add_months(-policy.window_months);
            let status =
                crate::revocation::status_for_diagnostic(cert, bo, policy.ocsp.as_deref()).map_err(Stop::Failed)?;
            let key_bits = rsa::RsaPublicKey::try_from(cert.tbs_certificate().subject_public_key_info().owned_to_ref())
                .map(|k| k.size() * 8)
                .unwrap_or(0);
            checks.add(
                7,
                "renewal window",
                if now >= until {
                    Err((Reason::CertExpired, format!("expired on {until}: renewal impossible, buy a new card")))
                } else if matches!(status, Some(CertStatus::Revoked | CertStatus::Suspended | CertStatus::Superseded)) {
                    Err((
                        Reason::CertRevoked,
                        format!("certificate status {:?}", status.unwrap_or(CertStatus::Revoked)).to_lowercase(),
                    ))
                } else if cert.tbs_certificate().issuer().to_string()
                    != crate::pki::issuing_name().map(|n| n.to_string()).unwrap_or_default()
                {
                    Err((Reason::WrongIssuer, format!("issued by {}", cert.tbs_certificate().issuer())))
                } else if key_bits < 2048 {
                    Err((Reason::ObsoleteCard, format!("RSA-{key_bits} key")))
                } else if now < opens {
                    Err((Reason::NotInRenewalWindow, format!("expires {until}; renewal opens {opens}")))
                } else {
                    Ok(format!("expires {until}, {} days left", until.days_since_epoch() - now.days_since_epoch()))
                },
            );
        }
        None => checks.skip(7, "renewal window", "no signature certificate"),
    }
    // 8. Renewals so far and device age; 10. back-office record.
    let record = serial.as_deref().and_then(|s| bo.card(s));
    match record {
        Some(card) => {
            let first: Date = card.first_issuance.parse().unwrap_or(now);
            let end_of_life = first.add_years(policy.max_device_years);
            checks.add(
                8,
                "renewals and device age",
                if card.renewal_count >= policy.max_renewals {
                    Err((
                        Reason::AlreadyRenewed,
                        format!("renewed {} time(s) already: buy a new card", card.renewal_count),
                    ))
                } else if now.add_years(3) > end_of_life {
                    Err((
                        Reason::DeviceTooOld,
                        format!("first issued {first}: the device ends its life on {end_of_life}"),
                    ))
                } else {
                    Ok(format!("first issued {first}, renewed {} time(s)", card.renewal_count))
                },
            );
        }
        None => checks.skip(8, "renewals and device age", "no back-office record"),
    }
    // 9. Free memory.
    match client.free_memory()? {
        Some(free) => checks.add(
            9,
            "free memory",
            if free >= policy.required_free_bytes {
                Ok(format!("{free} bytes free"))
            } else {
                Err((Reason::InsufficientMemory, format!("{free} bytes free, {} needed", policy.required_free_bytes)))
            },
        ),
        None => checks.skip(9, "free memory", "the card does not report it"),
    }
    checks.add(
        10,
        "back-office record",
        match (record, &policy.cdrl) {
            (None, _) => Err((Reason::NotInBackOffice, "the CA has no practice for this card".into())),
            (Some(c), Some(cdrl)) if &c.cdrl != cdrl => {
                Err((Reason::IssuedByOtherCdrl, format!("issued by {}", c.cdrl)))
            }
            (Some(c), _) => Ok(format!("holder {}, CDRL {}", c.codice_fiscale, c.cdrl)),
        },
    );
    Ok(Diagnosis { serial, checks: checks.0 })
}

/// The `diagnostic` flow: one step per check.
pub fn run(mut r: Runner<'_>, bo: &BackOffice, policy: &Policy, pin: Option<&str>) -> FlowReport {
    if let Some(p) = pin {
        r.secret("pin", p);
    }
    r.begin("Diagnostic");
    let now = r.now;
    let result = diagnose(r.client.as_mut(), now, bo, policy, pin);
    match result {
        Ok(d) => {
            let failed = d.first_failure().cloned();
            r.end(
                if failed.is_some() { StepStatus::Refused } else { StepStatus::Ok },
                format!("{} checks", d.checks.len()),
            );
            for c in &d.checks {
                let status = match c.status {
                    CheckStatus::Fail => StepStatus::Refused,
                    CheckStatus::Skip => StepStatus::Skipped,
                    CheckStatus::Pass => StepStatus::Ok,
                };
                let rec = super::StepRecord {
                    name: format!("{:>2}. {}", c.id, c.name),
                    status,
                    detail: match (c.status, c.reason) {
                        (CheckStatus::Skip, _) => format!("skipped: {}", c.detail),
                        (_, Some(reason)) => format!("{reason:?}: {}", c.detail),
                        _ => c.detail.clone(),
                    },
                    millis: 0,
                };
                (r.reporter)(super::Event::End(&rec));
                r.steps.push(rec);
            }
            let card = d.serial.clone().unwrap_or_default();
            let details = serde_json::to_value(&d).unwrap_or_default();
            let result = match failed {
                None => Ok(("Renewable".to_owned(), "every check passed: the card can be renewed".to_owned())),
                Some(c) => Err(super::refuse(&format!("{:?}", c.reason.unwrap_or(Reason::UnknownCard)), c.detail)),
            };
            r.finish("diagnostic", card, result, details)
        }
        Err(stop) => {
            r.end(StepStatus::Failed, format!("{stop:?}"));
            r.finish("diagnostic", String::new(), Err(stop), serde_json::Value::Null)
        }
    }
}

/// Whether a PIN outcome is a success (helper for callers).
pub fn accepted(o: PinOutcome) -> bool {
    o == PinOutcome::Accepted
}
