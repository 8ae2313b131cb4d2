//! The Aruba Key's two-phase renewal, phase 2: the import (spec/domain.md §2.2, §6.3 item 8;
//! `firmalab flow import`). Aruba Renew asks for the *Numero seriale SmartCard* and the PIN
//! and installs the certificates the CA issued for the order ([`super::order`]) onto the
//! key; the Aruba Key's launcher calls it "Utilità → Import certificato".
//!
//! Steps: `SecretsChecked` → `Scanned` (the serial typed must be the card's) → `OrderFound`
//! (the back office's order waiting for this card) → `SerialConfirmed` (cards in readers;
//! the serial typed is the confirmation) → `PinStatus` → `PinVerified` → `KeysMatched` (for
//! each certificate, a test signature with the new key the order left on the card, verified
//! with the certificate's key; certificates already on the card are recognised, so an
//! interrupted import resumes) → `CertificatesImported` (authentication first, signature
//! last: each key and certificate swapped in one command) → `BackOfficeUpdated` (the new
//! certificates active, the old ones superseded, one renewal more for the device, the
//! practice and order completed).
//!
//! Refusals: `WrongSerial`, `NothingToImport`, `KeyNotOnCard` (nothing written), the PIN's.

use super::order::describe;
use super::renewal::pin_stop;
use super::secrets::{self, Field, Given};
use super::{Finished, FlowReport, Reason, Runner, Stop, refuse, tries_step};
use crate::backoffice::{BackOffice, CertStatus, EventKind, OrderStatus, PracticeState, RevocationReason, Store};
use crate::client::{KeyRole, SecretKind, StagedKey};
use der::Decode;
use der::referenced::OwnedToRef;
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// What Aruba Renew asks for.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The card serial the holder types (printed on the key); it must be the card's. `None`
    /// checks nothing (a dry run, or a caller that identified the card otherwise).
    pub serial: Option<String>,
    pub pin: String,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct ImportDetails {
    pub practice: Option<String>,
    pub order: Option<String>,
    pub imported: Vec<String>,
    /// Already on the card when this run started (an interrupted import).
    pub already_installed: Vec<String>,
}

/// `ImportRequired` when the CA issued certificates for `card` that wait to be imported:
/// the refusal a renewal, a new order and the diagnostic give.
pub fn import_required(bo: &BackOffice, card: &str) -> Option<Stop> {
    let p = bo.pending_import(card)?;
    let order = bo.order_of(&p.id).map_or_else(|| p.id.clone(), |o| o.id.clone());
    Some(refuse(
        Reason::ImportRequired,
        format!(
            "order {order} (practice {}): the CA issued new certificates for this card that are not on it yet; import them first with Aruba Renew (firmalab flow import --card … --serial {card})",
            p.id
        ),
    ))
}

/// Phase 2 on `r`'s card: the steps of this module's header. Done:
/// [`Finished::CertificatesImported`].
pub fn run(mut r: Runner<'_>, bo: &mut Store, o: &ImportOptions) -> FlowReport {
    r.secret("pin", &o.pin);
    let mut details = ImportDetails::default();
    let mut card = String::new();
    let result = import(&mut r, bo, o, &mut details, &mut card);
    let details = serde_json::to_value(&details).unwrap_or_default();
    r.finish("import", card, result, details)
}

/// One certificate of the order, parsed.
struct Ordered {
    role: KeyRole,
    serial: String,
    der: Vec<u8>,
    public: rsa::RsaPublicKey,
}

fn import(
    r: &mut Runner<'_>,
    bo: &mut Store,
    o: &ImportOptions,
    d: &mut ImportDetails,
    card: &mut String,
) -> Result<(Finished, String), Stop> {
    secrets::step(r, &[Given::current(Field::Pin, &o.pin)])?;
    *card = r.step("Scanned", |c, _| {
        let s = c.serial()?;
        if let Some(typed) = o.serial.as_deref().map(str::trim)
            && typed != s
        {
            return Err(refuse(
                Reason::WrongSerial,
                format!("the serial typed, {typed}, is not this card's ({s}): check the number printed on the key"),
            ));
        }
        Ok((s.clone(), format!("card {s} ({})", describe(c))))
    })?;
    let card_s = card.clone();
    let (practice, order_id, ordered) = r.step("OrderFound", |_, _| {
        let Some(p) = bo.data.pending_import(&card_s) else {
            let done = bo.data.practices.iter().rev().find(|p| {
                p.card_serial == card_s
                    && p.state == PracticeState::Completed
                    && p.events.iter().any(|e| e.kind == EventKind::CertificatesImported)
            });
            let why = match done {
                Some(p) => format!("the certificates of practice {} are already on card {card_s}", p.id),
                None => format!(
                    "no renewal order of card {card_s} waits for its certificates (firmalab ra order places one)"
                ),
            };
            return Err(refuse(Reason::NothingToImport, why));
        };
        let order = bo.data.order_of(&p.id).ok_or_else(|| Stop::Failed(format!("practice {} has no order", p.id)))?;
        let mut ordered = vec![];
        for c in &order.certificates {
            let der = crate::wire::hex::decode(&c.der)
                .map_err(|e| Stop::Failed(format!("order {}: certificate {}: {e}", order.id, c.serial)))?;
            let x = Certificate::from_der(&der)
                .map_err(|e| Stop::Failed(format!("order {}: certificate {}: {e}", order.id, c.serial)))?;
            let public = rsa::RsaPublicKey::try_from(x.tbs_certificate().subject_public_key_info().owned_to_ref())
                .map_err(|e| Stop::Failed(format!("order {}: certificate {}: {e}", order.id, c.serial)))?;
            ordered.push(Ordered { role: c.role, serial: c.serial.clone(), der, public });
        }
        // Authentication first, the qualified signature last.
        ordered.sort_by_key(|c| c.role == KeyRole::Signature);
        let detail = format!(
            "order {} (practice {}): {}",
            order.id,
            p.id,
            ordered.iter().map(|c| format!("{:?} {}", c.role, c.serial)).collect::<Vec<_>>().join(", ")
        );
        Ok(((p.id.clone(), order.id.clone(), ordered), detail))
    })?;
    d.practice = Some(practice.clone());
    d.order = Some(order_id.clone());
    r.confirm_destructive(card, "install the renewed certificates and remove the old keys and certificates")?;
    tries_step(r, SecretKind::Pin)?;
    r.step("PinVerified", |c, _| {
        pin_stop(c.verify_pin(&o.pin)?)?;
        Ok(((), "PIN accepted".into()))
    })?;
    let plan = r.step("KeysMatched", |c, _| {
        let on_card = c.certificates()?;
        let mut plan = vec![];
        let mut lines = vec![];
        for cert in &ordered {
            if on_card.iter().any(|x| x.role == cert.role && x.der == cert.der) {
                lines.push(format!("{:?} {} already on the card", cert.role, cert.serial));
                plan.push((cert, None));
                continue;
            }
            let no_key = || {
                refuse(
                    Reason::KeyNotOnCard,
                    format!(
                        "the {:?} key pair of order {order_id} is no longer on the card (a reset or another renewal replaced it): certificate {} cannot be installed; nothing was written",
                        cert.role, cert.serial
                    ),
                )
            };
            let handle = c.pending_handle(cert.role).ok_or_else(no_key)?;
            let staged = StagedKey { role: cert.role, public: cert.public.clone(), handle };
            let digest: [u8; 32] =
                Sha256::digest(format!("firmalab import: {order_id} {} {}", cert.serial, card_s).as_bytes()).into();
            let signature = match c.sign_sha256(cert.role, Some(&staged), &digest, &o.pin) {
                Ok(s) => s,
                Err(crate::client::ClientError::Card { .. }) => return Err(no_key()),
                Err(e) => return Err(e.into()),
            };
            if cert.public.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &signature).is_err() {
                return Err(no_key());
            }
            lines.push(format!("{:?} {}: the new key on the card signs for it", cert.role, cert.serial));
            plan.push((cert, Some(staged)));
        }
        Ok((plan, lines.join("; ")))
    })?;
    r.step("CertificatesImported", |c, _| {
        let mut n = 0;
        for (cert, staged) in &plan {
            if let Some(k) = staged {
                c.install(k, &cert.der, &o.pin)?;
                n += 1;
            }
        }
        Ok(((), format!("{n} certificate(s) written with their keys; the old keys and certificates removed")))
    })?;
    d.imported = plan.iter().filter(|(_, s)| s.is_some()).map(|(c, _)| c.serial.clone()).collect();
    d.already_installed = plan.iter().filter(|(_, s)| s.is_none()).map(|(c, _)| c.serial.clone()).collect();
    let serials: Vec<String> = ordered.iter().map(|c| c.serial.clone()).collect();
    r.step("BackOfficeUpdated", |_, now| {
        let b = &mut bo.data;
        for c in b.certificates.iter_mut().filter(|c| c.card_serial == card_s) {
            if serials.contains(&c.serial) {
                c.status = CertStatus::Active;
                c.change = None;
            } else if c.status == CertStatus::Active {
                c.revoke(RevocationReason::Superseded, now, None);
            } else if c.status == CertStatus::Suspended && !c.held_by_cdrl() {
                c.revoke(RevocationReason::Unspecified, now, None);
            }
        }
        if let Some(c) = b.card_mut(&card_s) {
            c.renewal_count += 1;
        }
        for ord in b.orders.iter_mut().filter(|x| x.id == order_id) {
            ord.status = OrderStatus::Completed;
        }
        if let Some(p) = b.practice_mut(&practice) {
            p.state = PracticeState::Completed;
            p.log(
                EventKind::CertificatesImported,
                now,
                format!("certificati importati sul dispositivo {card_s} con Aruba Renew: {}", serials.join(", ")),
            );
        }
        bo.save()?;
        Ok((
            (),
            format!(
                "certificates {} active; the previous ones superseded; practice {practice} completed",
                serials.join(", ")
            ),
        ))
    })?;
    Ok((
        Finished::CertificatesImported,
        format!("order {order_id}: the renewed certificates are on card {card_s} and active"),
    ))
}
