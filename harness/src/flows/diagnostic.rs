//! The card diagnostic that tells whether a card can be renewed: the ten checks of
//! spec/domain.md §4, each with pass/fail/skip and a reason code (§6.3 item 1).

use super::{FlowReport, Runner, StepStatus, Stop};
use crate::backoffice::{BackOffice, CertStatus};
use crate::client::{CardClient, ClientError, KeyRole, PinOutcome, SecretKind};
use crate::dates::Date;
use crate::wire::Sw;
use crate::wire::atr::LotStatus;
use der::Decode;
use der::referenced::OwnedToRef;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why a check failed (spec/domain.md §6.3 item 1): the flows' [`Reason`] codes.
pub use super::Reason;

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

/// RSA modulus size of a certificate's key (0 when it is not RSA).
fn key_bits(c: &x509_cert::Certificate) -> usize {
    rsa::RsaPublicKey::try_from(c.tbs_certificate().subject_public_key_info().owned_to_ref())
        .map(|k| k.size() * 8)
        .unwrap_or(0)
}

/// Check 1: the card's mask and lot from the table of known lots (spec/domain.md §1.1), and
/// the size of the keys its certificates certify. Not the CNS version alone: the genuine
/// Aruba Incard CNS 1.0 lots carry RSA-2048 keys.
fn judge_card(
    client: &dyn CardClient,
    certs: &[(KeyRole, x509_cert::Certificate)],
) -> Result<String, (Reason, String)> {
    let model = client.model();
    let Some(lot) = model.lot else {
        return Err(match (model.profile, model.cns) {
            (Some(_), Some(b)) => (
                Reason::ObsoleteCard,
                format!(
                    "{}: unknown lot (IC {:02X} {}, mask {:02X} {}, firmware {:02X}.{:02X}): not a supported card",
                    model.label,
                    b.ic,
                    b.ic_name(),
                    b.mask,
                    b.mask_name(),
                    b.firmware.0,
                    b.firmware.1
                ),
            ),
            _ => (Reason::UnknownCard, model.label.clone()),
        });
    };
    if let LotStatus::Obsolete(why) = lot.status {
        return Err((Reason::ObsoleteCard, format!("{}: {why}", lot.name)));
    }
    let sizes: Vec<usize> = certs.iter().map(|(_, c)| key_bits(c)).collect();
    if let Some(small) = sizes.iter().find(|b| **b < lot.min_key_bits) {
        return Err((
            Reason::ObsoleteCard,
            format!("{}: RSA-{small} keys (renewal needs RSA-{})", lot.name, lot.min_key_bits),
        ));
    }
    let keys = match sizes.iter().max() {
        Some(b) => format!("RSA-{b} keys"),
        None => "no keys certified".into(),
    };
    let what = match model.cns {
        Some(b) => format!(
            "{} (CNS {}.{}, IC {}, mask {}, firmware {:02X}.{:02X})",
            lot.name,
            b.version >> 4,
            b.version & 0x0F,
            b.ic_name(),
            b.mask_name(),
            b.firmware.0,
            b.firmware.1
        ),
        None => lot.name.to_owned(),
    };
    Ok(format!("{what}; {keys}"))
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
    // 1. Recognised, not obsolete: mask, lot and key sizes.
    checks.add(1, "card recognised", judge_card(client, &parsed));
    // 5. PIN and PUK.
    let pins = client.pin_counters()?;
    let puks = client.puk_counters()?;
    let show = |v: &[crate::client::Counter]| v.iter().map(|c| c.short()).collect::<Vec<_>>().join(", ");
    let unknown = pins.iter().chain(&puks).find_map(|c| c.note.clone()).map(|n| format!(" ({n})")).unwrap_or_default();
    checks.add(
        5,
        "PIN and PUK",
        if puks.iter().any(|c| c.blocked) {
            Err((Reason::PukBlocked, format!("PUK blocked ({})", show(&puks))))
        } else if pins.iter().any(|c| c.blocked) {
            Err((Reason::PinBlocked, format!("PIN blocked ({}); unblock it with the PUK", show(&pins))))
        } else {
            Ok(format!("tries left: {}; {}{unknown}", show(&pins), show(&puks)))
        },
    );
    // 6. Key ↔ certificate: a test signature verified with the certificate's key. The PIN
    // goes to the card only if check 5 did not find its object at the last try (unless the
    // user allowed it) and the card did not refuse it earlier in this run.
    const CHECK6: &str = "key matches certificate";
    let signing_pin = client.signing_pin(KeyRole::Signature);
    let counter = pins.iter().find(|c| c.label == signing_pin.label);
    let secrets = client.policy();
    match (&sign, pin) {
        (None, _) => checks.skip(6, CHECK6, "no signature certificate"),
        (Some(_), None) => checks.skip(6, CHECK6, "needs the PIN (--pin)"),
        (Some(_), Some(_)) if pins.iter().any(|c| c.blocked) => checks.skip(6, CHECK6, "the PIN is blocked"),
        (Some(_), Some(p)) if !secrets.virtual_card && client.was_rejected(SecretKind::Pin, p) => {
            checks.skip(6, CHECK6, "the card refused this PIN earlier in this run: it is not sent again")
        }
        (Some(_), Some(_))
            if !secrets.virtual_card && !secrets.allow_last_try && counter.is_some_and(|c| c.tries_left == Some(1)) =>
        {
            checks.skip(
                6,
                CHECK6,
                &format!(
                    "{} has 1 try left: a wrong PIN would block the qualified signature, so no test signature was made (--allow-last-try)",
                    signing_pin.label
                ),
            )
        }
        (Some(cert), Some(pin)) => {
            let challenge: [u8; 32] = Sha256::digest(format!("firmalab diagnostic {now}").as_bytes()).into();
            match client.sign_sha256(KeyRole::Signature, None, &challenge, pin) {
                Ok(sig) => {
                    let key =
                        rsa::RsaPublicKey::try_from(cert.tbs_certificate().subject_public_key_info().owned_to_ref());
                    let ok = key.is_ok_and(|k| k.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &challenge, &sig).is_ok());
                    checks.add(
                        6,
                        CHECK6,
                        if ok {
                            Ok("test signature verifies with the certificate".into())
                        } else {
                            Err((Reason::CertKeyMismatch, "the signature key does not match the certificate".into()))
                        },
                    );
                }
                Err(ClientError::Card { sw: Sw::TriesLeft(n), .. }) if n > 0 => {
                    checks.add(6, CHECK6, Err((Reason::WrongPin, format!("the PIN was refused: {n} tries left"))))
                }
                Err(ClientError::Card { sw: Sw::TriesLeft(_) | Sw::AuthBlocked, .. }) => {
                    checks.add(6, CHECK6, Err((Reason::PinBlocked, "the PIN was refused and is now blocked".into())))
                }
                Err(ClientError::Refused { message, .. }) => checks.skip(6, CHECK6, &message),
                Err(e) => return Err(e.into()),
            }
        }
    }
    // 7. Renewal window, status, issuer.
    match &sign {
        Some(cert) => {
            let (_, until) = cert_dates(cert);
            let opens = until.add_months(-policy.window_months);
            let status = crate::revocation::status_for_diagnostic(cert, bo, policy.ocsp.as_deref())
                .map_err(|e| Stop::Failed(e.to_string()))?;
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
            (Some(c), _) if bo.pending_import(&c.serial).is_some() => Err((
                Reason::ImportRequired,
                format!(
                    "the CA issued new certificates for this card that are not on it yet: import them first (firmalab flow import --card … --serial {})",
                    c.serial
                ),
            )),
            (Some(c), _) => Ok(format!("holder {}, CDRL {}", c.codice_fiscale, c.cdrl)),
        },
    );
    let mut checks = checks.0;
    checks.sort_by_key(|c| c.id);
    Ok(Diagnosis { serial, checks })
}

/// The `diagnostic` flow: a `Diagnostic` step, then one step per check (pass, fail with its
/// [`Reason`], or skip with why). `bo`: the back office checks 8 and 10 read; `pin`: for the
/// test signature of check 6 (never sent when its object is at its last try, unless the
/// policy allows it). Done: [`super::Finished::Renewable`]; refused with the first failing
/// check's reason. The checks are in the report's `details` as JSON.
pub fn run(mut r: Runner<'_>, bo: &BackOffice, policy: &Policy, pin: Option<&str>) -> FlowReport {
    r.begin("Diagnostic");
    if let Some(p) = pin {
        r.secret("pin", p);
        // The PIN is checked against the card's rule before any APDU (no step of its own:
        // the diagnostic's steps are this one and its ten checks).
        let given = [super::secrets::Given::current(super::secrets::Field::Pin, p)];
        if let Err(stop) = super::secrets::check(r.client.profile(), &given) {
            r.end(stop.step_status(), stop.to_string());
            return r.finish("diagnostic", String::new(), Err(stop), serde_json::Value::Null);
        }
    }
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
                        (_, Some(reason)) => format!("{reason}: {}", c.detail),
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
                None => {
                    let skipped: Vec<String> = d
                        .checks
                        .iter()
                        .filter(|c| c.status == CheckStatus::Skip)
                        .map(|c| format!("{} ({})", c.id, c.name))
                        .collect();
                    let message = if skipped.is_empty() {
                        "every check passed: the card can be renewed".to_owned()
                    } else {
                        format!(
                            "every check that ran passed, but check {} was skipped (see above): the card can be renewed as far as the checks that ran can tell",
                            skipped.join(", check ")
                        )
                    };
                    Ok((super::Finished::Renewable, message))
                }
                Some(c) => Err(super::refuse(c.reason.unwrap_or(Reason::UnknownCard), c.detail)),
            };
            r.finish("diagnostic", card, result, details)
        }
        Err(stop) => {
            r.end(stop.step_status(), stop.to_string());
            r.finish("diagnostic", String::new(), Err(stop), serde_json::Value::Null)
        }
    }
}

/// Whether a PIN outcome is a success (helper for callers).
pub fn accepted(o: PinOutcome) -> bool {
    o == PinOutcome::Accepted
}
