//! The Aruba Key's two-phase renewal, phase 1: the order (spec/domain.md §2.2, §6.3 item 8;
//! `firmalab ra order`). On rinnovifirmadigitale.pec.it the holder logs in with the token's
//! CNS certificate (TLS client authentication, Firefox only) and pays; the new certificates
//! are installed later by Aruba Renew (phase 2, [`super::import`]).
//!
//! Steps: `SecretsChecked` → `Scanned` (the card, and whether it is an Aruba Key) →
//! `SerialConfirmed` (cards in readers) → `PinStatus` → `PinVerified` →
//! `ClientAuthenticated` (the back office's challenge signed with the authentication key,
//! verified against the enrolled certificate: [`crate::client_auth`]) → `DiagnosticPassed`
//! → `ContractsAccepted` → `KeysGenerated` → `CsrSubmitted` → `OrderPlaced`.
//!
//! **Where the keys come from.** The CA can only issue a certificate for a public key it
//! has, so phase 1 generates the new key pairs on the card (next to the current ones, which
//! keep signing until the import) and sends PKCS#10 requests signed by the new keys and
//! authorised by the current qualified key, exactly as the Enroll renewal does; the CA
//! issues the certificates at once and the back office keeps them with the order, suspended
//! (certificateHold) until they are on the device. This is how the real flow must work too:
//! Firefox, the only browser Aruba's order page supported, could generate keys on a PKCS#11
//! token for a web enrolment; Aruba Renew then only "imports" certificates (serial + PIN).
//! Only cards that keep a generated key across sessions until it is installed can do this
//! (the CNS layout: the slot's pending key); others are refused, `TwoPhaseNotSupported`.
//!
//! Refusals: the diagnostic's reasons, `ImportRequired` (an order already waits for its
//! import), `NotInBackOffice`, `ClientAuthFailed`, `ContractsNotAccepted`, `CaRefused`,
//! `TwoPhaseNotSupported`, and the PIN's.

use super::diagnostic::{Policy, diagnose};
use super::renewal::{dates, generate_keys, pin_stop, public_of, request_certificates, write};
use super::secrets::{self, Field, Given};
use super::{Finished, FlowReport, Reason, Runner, Stop, refuse, tries_step};
use crate::backoffice::{
    CertRecord, CertStatus, EventKind, IssuedCertificate, NewPractice, OrderStatus, PracticeKind, PracticeState,
    RenewalOrder, Store,
};
use crate::ca::{ExpiryRule, serial_hex};
use crate::client::{CardClient, KeyRole, SecretKind};
use crate::client_auth::{self, Challenge};
use crate::pki::TestCa;
use crate::wire::CardModel;
use crate::wire::atr::{IC_ST, MASK_STINCARD};
use der::{Decode, Encode};
use serde::Serialize;
use std::path::PathBuf;
use x509_cert::Certificate;

/// What the token says about itself through Bit4id's PKCS#11 module (`libbit4ipki.so`), as
/// spec/domain.md §1.1 reports for the Aruba Key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Token {
    pub label: &'static str,
    pub manufacturer: &'static str,
    pub model: &'static str,
}

/// The Aruba Key's identity.
pub const ARUBA_KEY: Token = Token { label: "CNS", manufacturer: "ST Incard", model: "T&S DS/2048 (LB)" };

/// Whether the card is an Aruba Key, from its ATR alone: the ST Incard CNS 1.1 token lot
/// whose ATR PeculiarVentures/fortify#314 shows for the Aruba Incard token
/// (`3BFF1800FF8131FE55006B02090200011101434E531131808E`: IC ST, mask STIncard, firmware
/// 02.00, CNS 1.1). The Aruba smart cards of the same mask have other firmware bytes (13.03,
/// 04.03), so the host tells a key from a card before sending anything.
pub fn aruba_key(model: &CardModel) -> Option<Token> {
    let b = model.cns?;
    (b.ic == IC_ST && b.mask == MASK_STINCARD && b.firmware == (0x02, 0x00) && b.version == 0x11).then_some(ARUBA_KEY)
}

/// How the `Scanned` steps name a card: its profile, and for an Aruba Key what Bit4id's
/// module reports.
pub fn describe(c: &dyn CardClient) -> String {
    match aruba_key(c.model()) {
        Some(t) => format!(
            "{}; Aruba Key: token label {}, manufacturer {}, model {}",
            c.profile().name(),
            t.label,
            t.manufacturer,
            t.model
        ),
        None => c.profile().name().to_owned(),
    }
}

/// What the holder decides and the back office sends.
#[derive(Clone, Debug)]
pub struct OrderOptions {
    pub pin: String,
    /// The contract conditions of the order were accepted.
    pub accept_contracts: bool,
    /// From when the new certificates' 3 years count (the Aruba Key pages: from issuance).
    pub expiry: ExpiryRule,
    /// Where the requests and the issued certificates are written.
    pub out_dir: PathBuf,
    pub policy: Policy,
    /// The back office's challenge for the client authentication: [`Challenge::random`]
    /// (reproducible ones only for tests and `--seed` runs).
    pub challenge: Challenge,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct OrderDetails {
    pub practice: Option<String>,
    pub order: Option<String>,
    pub authenticated_with: Option<String>,
    pub new_certificates: Vec<String>,
    pub files: Vec<String>,
}

/// Phase 1 of the two-phase renewal on `r`'s card: the steps of this module's header.
/// Done: [`Finished::AwaitingImport`] (practice and order ids in the report's `details`).
pub fn run(mut r: Runner<'_>, ca: &TestCa, bo: &mut Store, o: &OrderOptions) -> FlowReport {
    r.secret("pin", &o.pin);
    let mut details = OrderDetails::default();
    let mut card = String::new();
    let result = order(&mut r, ca, bo, o, &mut details, &mut card);
    let details = serde_json::to_value(&details).unwrap_or_default();
    r.finish("order", card, result, details)
}

fn order(
    r: &mut Runner<'_>,
    ca: &TestCa,
    bo: &mut Store,
    o: &OrderOptions,
    d: &mut OrderDetails,
    card: &mut String,
) -> Result<(Finished, String), Stop> {
    secrets::step(r, &[Given::current(Field::Pin, &o.pin)])?;
    *card = r.step("Scanned", |c, _| {
        let s = c.serial()?;
        if let Some(stop) = super::import::import_required(&bo.data, &s) {
            return Err(stop);
        }
        if c.pending_handle(KeyRole::Signature).is_none() {
            return Err(refuse(
                Reason::TwoPhaseNotSupported,
                format!(
                    "a {} card cannot keep new keys between an order and its import: renew it with Aruba Enroll (firmalab flow renewal)",
                    c.profile().name()
                ),
            ));
        }
        if let crate::client::OnCardRenewal::Unavailable(why) = c.on_card_renewal()? {
            return Err(refuse(Reason::OnCardRenewalUnavailable, why));
        }
        if bo.data.card(&s).is_none() {
            return Err(refuse(Reason::NotInBackOffice, format!("card {s} is not enrolled: the CA has no practice for it")));
        }
        Ok((s.clone(), format!("card {s} ({})", describe(c))))
    })?;
    r.confirm_destructive(
        card,
        "generate new key pairs on the card for a renewal order (the current keys stay until the certificates are imported)",
    )?;
    tries_step(r, SecretKind::Pin)?;
    r.step("PinVerified", |c, _| {
        pin_stop(c.verify_pin(&o.pin)?)?;
        Ok(((), "PIN accepted".into()))
    })?;
    let certs = r.step("ClientAuthenticated", |c, now| {
        let mut parsed = vec![];
        let mut auth_der = None;
        for cc in c.certificates()? {
            let x = Certificate::from_der(&cc.der).map_err(|e| Stop::Failed(format!("{}: {e}", cc.path)))?;
            if cc.role == KeyRole::Authentication {
                auth_der = Some(cc.der.clone());
            }
            parsed.push((cc.role, x));
        }
        let auth_der = auth_der
            .ok_or_else(|| refuse(Reason::CertificateMissing, "no authentication (CNS) certificate on the card"))?;
        let digest = client_auth::signed_digest(&o.challenge, &auth_der);
        let signature = c.sign_sha256(KeyRole::Authentication, None, &digest, &o.pin)?;
        let who = client_auth::verify(ca, &bo.data, card, &auth_der, &o.challenge, &signature, now)
            .map_err(|e| refuse(Reason::ClientAuthFailed, e.to_string()))?;
        let detail = format!(
            "the back office's challenge signed with the authentication key; certificate {} of {} (CDRL {}) verified",
            who.certificate, who.codice_fiscale, who.cdrl
        );
        Ok(((parsed, who), detail))
    })?;
    let (certs, who) = certs;
    d.authenticated_with = Some(who.certificate.clone());
    r.step("DiagnosticPassed", |c, now| {
        let diagnosis = diagnose(c, now, &bo.data, &o.policy, Some(&o.pin))?;
        match diagnosis.first_failure() {
            None => Ok(((), format!("{} checks passed", diagnosis.checks.len()))),
            Some(f) => Err(refuse(f.reason.unwrap_or(Reason::UnknownCard), f.detail.clone())),
        }
    })?;
    r.step("ContractsAccepted", |_, _| {
        if o.accept_contracts {
            Ok(((), "contract conditions of the renewal order accepted".into()))
        } else {
            Err(refuse(Reason::ContractsNotAccepted, "the contract conditions must be accepted (--yes)"))
        }
    })?;
    let old_sign = certs
        .iter()
        .find(|(r, _)| *r == KeyRole::Signature)
        .map(|(_, c)| c.clone())
        .ok_or_else(|| refuse(Reason::CertificateMissing, "no qualified signature certificate on the card"))?;
    let holder = crate::ca::holder_of(old_sign.tbs_certificate().subject())
        .ok_or_else(|| Stop::Failed("the certificate subject is not a holder's".into()))?;
    let old_public = public_of(&old_sign)?;
    let staged = generate_keys(r, &o.pin)?;
    let issued = r.step("CsrSubmitted", |c, now| {
        request_certificates(c, &staged, &certs, &old_sign, &old_public, &o.pin, ca, &bo.data, card, now, o.expiry)
    })?;
    let number = bo.data.orders.len() + 1;
    let order_id = format!("O-{number:06}");
    for (k, csr, authorized, cert) in &issued {
        let role = format!("{:?}", k.role).to_lowercase();
        write(&o.out_dir, &format!("{order_id}-{role}.csr"), csr, &mut d.files)?;
        write(&o.out_dir, &format!("{order_id}-{role}-authorized.p7m"), authorized, &mut d.files)?;
        write(&o.out_dir, &format!("{order_id}-{role}.cer"), &cert.to_der().unwrap_or_default(), &mut d.files)?;
    }
    let cdrl = who.cdrl.clone();
    let (practice, order_id) = r.step("OrderPlaced", |_, now| {
        let b = &mut bo.data;
        let spec = NewPractice {
            kind: PracticeKind::Renewal,
            codice_fiscale: &holder.codice_fiscale,
            cdrl: &cdrl,
            card: card.as_str(),
            state: PracticeState::AwaitingImport,
        };
        let practice = b.new_practice(
            spec,
            now,
            EventKind::RenewalOrdered,
            &format!(
                "ordine di rinnovo {order_id} con accesso tramite certificato CNS {} e pagamento registrato",
                who.certificate
            ),
        );
        let mut records = vec![];
        for (k, _, _, cert) in &issued {
            let der = cert.to_der().map_err(|e| Stop::Failed(e.to_string()))?;
            let (nb, na) = dates(cert);
            b.certificates.push(CertRecord {
                serial: serial_hex(cert),
                role: k.role,
                codice_fiscale: holder.codice_fiscale.clone(),
                card_serial: card.clone(),
                status: CertStatus::Suspended,
                not_before: nb.to_string(),
                not_after: na.to_string(),
                change: None,
            });
            records.push(IssuedCertificate {
                role: k.role,
                serial: serial_hex(cert),
                der: crate::wire::hex::encode(&der),
            });
        }
        let serials: Vec<String> = records.iter().map(|c| c.serial.clone()).collect();
        b.orders.push(RenewalOrder {
            id: order_id.clone(),
            practice: practice.clone(),
            status: OrderStatus::Paid,
            certificates: records,
        });
        if let Some(p) = b.practice_mut(&practice) {
            p.log(
                EventKind::CertificatesIssued,
                now,
                format!("certificati emessi, da importare sul dispositivo {card}: {}", serials.join(", ")),
            );
        }
        bo.save()?;
        let detail = format!(
            "order {order_id} paid, practice {practice}: certificates {} issued, suspended until imported",
            serials.join(", ")
        );
        Ok(((practice, order_id.clone()), detail))
    })?;
    d.practice = Some(practice.clone());
    d.order = Some(order_id.clone());
    d.new_certificates = issued.iter().map(|(_, _, _, c)| serial_hex(c)).collect();
    Ok((
        Finished::AwaitingImport,
        format!(
            "order {order_id} (practice {practice}): the CA issued the certificates for the new keys on the card; import them with Aruba Renew (firmalab flow import --card … --serial {card})"
        ),
    ))
}
