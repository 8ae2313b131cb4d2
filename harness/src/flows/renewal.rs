//! Renewal as Aruba Enroll runs it for a CDRL customer (spec/domain.md §0, §2, §6.3 item 6):
//!
//! Scanned → CertSelected → EncryptionWarningAcknowledged → PinVerified → DiagnosticPassed →
//! HolderDataConfirmed (uniqueness of email and mobile) → ContractsAccepted → FormSigned
//! (CAdES-BES `.p7m` with the expiring key) → KeysGenerated (next to the old ones) →
//! CsrSubmitted (PKCS#10 signed by each new key, authorised by the old qualified key) →
//! CertificateInstalled (old keys and certificates gone, the decryption key with them) →
//! AwaitingCdrlAuthorization, until `firmalab ra authorize` (the reseller, after payment).
//!
//! Open points of §6.6 are options: the expiry rule ([`ExpiryRule`]), and the new
//! certificates stay `suspended` in the registry until the CDRL authorises.
//!
//! A card whose issued certificates wait to be imported (an Aruba Key after `ra order`) is
//! refused at once, `ImportRequired`: the FAQ's "import the certificate before renewing".

use super::diagnostic::{Policy, diagnose};
use super::secrets::{self, Field, Given};
use super::{Finished, FlowReport, Reason, Runner, Stop, refuse, tries_step};
use crate::backoffice::{
    CertRecord, CertStatus, ContactKind, EventKind, NewPractice, OrderStatus, PracticeKind, PracticeState,
    RenewalOrder, RevocationReason, Store,
};
use crate::ca::{ExpiryRule, issue_renewal, serial_hex};
use crate::cades;
use crate::client::{CardClient, ClientError, KeyRole, OnCardRenewal, PinOutcome, SecretKind, StagedKey};
use crate::dates::Date;
use crate::pki::{CertKind, TestCa};
use crate::signer::CardSigner;
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use serde::Serialize;
use std::path::PathBuf;
use x509_cert::Certificate;
use x509_cert::builder::{Builder, RequestBuilder};

/// What the holder (or the operator) decides during the flow.
#[derive(Clone, Debug)]
pub struct RenewalOptions {
    pub pin: String,
    /// The warning "renewal deletes the decryption key" was read and accepted.
    pub acknowledge_key_loss: bool,
    /// The holder data written in the certificate is right (else: buy a new card).
    pub holder_data_correct: bool,
    pub email: String,
    pub mobile: String,
    pub accept_contracts: bool,
    pub cdrl: String,
    pub expiry: ExpiryRule,
    /// Where the signed form and the requests are written.
    pub out_dir: PathBuf,
    pub policy: Policy,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct RenewalDetails {
    pub practice: Option<String>,
    pub form: Option<String>,
    pub old_signature_certificate: Option<String>,
    pub new_certificates: Vec<String>,
    pub files: Vec<String>,
}

pub(super) fn dates(c: &Certificate) -> (Date, Date) {
    let v = c.tbs_certificate().validity();
    (Date::from_der(&v.not_before.to_date_time()), Date::from_der(&v.not_after.to_date_time()))
}

pub(super) fn pin_stop(o: PinOutcome) -> Result<(), Stop> {
    match o {
        PinOutcome::Accepted => Ok(()),
        PinOutcome::Wrong { tries_left } if tries_left > 0 => {
            Err(refuse(Reason::WrongPin, format!("wrong PIN, {tries_left} tries left")))
        }
        _ => Err(refuse(Reason::PinBlocked, "the PIN is blocked: unblock it with the PUK")),
    }
}

/// The Modulo di Rinnovo the holder signs.
fn form_text(
    holder: &crate::pki::Holder,
    card: &str,
    old: &Certificate,
    o: &RenewalOptions,
    now: Date,
    practice: &str,
) -> String {
    format!(
        "MODULO DI RINNOVO DEL CERTIFICATO DI FIRMA DIGITALE\n\
         Pratica: {practice}\nData: {now}\n\
         Titolare: {} {}\nCodice fiscale: {}\n\
         Dispositivo: {card}\nCertificato in scadenza: {} (scade il {})\n\
         Email: {}\nCellulare: {}\nCDRL: {}\n\
         Il titolare richiede il rinnovo dei certificati sul dispositivo indicato e accetta le condizioni contrattuali.\n\
         La procedura cancella la chiave di decifratura presente sul dispositivo.\n",
        holder.first_name,
        holder.last_name,
        holder.codice_fiscale,
        serial_hex(old),
        dates(old).1,
        o.email,
        o.mobile,
        o.cdrl
    )
}

pub(super) fn public_of(c: &Certificate) -> Result<rsa::RsaPublicKey, Stop> {
    rsa::RsaPublicKey::try_from(c.tbs_certificate().subject_public_key_info().owned_to_ref())
        .map_err(|e| Stop::Failed(format!("certificate key: {e}")))
}

fn signer_error(s: &CardSigner<'_>, what: &str, e: impl std::fmt::Display) -> Stop {
    match s.take_error() {
        Some(card) => Stop::Failed(format!("{what}: {card}")),
        None => Stop::Failed(format!("{what}: {e}")),
    }
}

pub(super) fn write(dir: &std::path::Path, name: &str, bytes: &[u8], files: &mut Vec<String>) -> Result<(), Stop> {
    std::fs::create_dir_all(dir).map_err(|e| Stop::Failed(format!("{}: {e}", dir.display())))?;
    let p = dir.join(name);
    crate::files::write_private(&p, bytes).map_err(|e| Stop::Failed(format!("{}: {e}", p.display())))?;
    files.push(p.display().to_string());
    Ok(())
}

/// Runs the renewal on one card, as the steps of this module's header; `ca` issues the new
/// certificates, `bo` holds the practice, contacts and certificate registry, `o` the holder's
/// answers. Done: [`super::Finished::AwaitingCdrlAuthorization`] (the practice id is in the
/// report's `details`); a run interrupted after the practice opened resumes where it
/// stopped. Refusals carry the diagnostic's reasons and the renewal's own
/// (`DecryptionKeyWarningNotAccepted`, `NewPurchaseRequired`, `ContractsNotAccepted`,
/// `CaRefused`, contact reasons …).
pub fn run(mut r: Runner<'_>, ca: &TestCa, bo: &mut Store, o: &RenewalOptions) -> FlowReport {
    r.secret("pin", &o.pin);
    let mut details = RenewalDetails::default();
    let mut card = String::new();
    let result = renew(&mut r, ca, bo, o, &mut details, &mut card);
    if let Err(Stop::Refused { .. } | Stop::Failed(_)) = &result
        && let Some(p) = details.practice.as_ref().and_then(|id| bo.data.practice_mut(id))
        && p.state == PracticeState::RenewalInProgress
    {
        p.log(EventKind::RenewalInterrupted, r.now, "renewal interrupted; run it again to resume");
        let _ = bo.save();
    }
    let details = serde_json::to_value(&details).unwrap_or_default();
    r.finish("renewal", card, result, details)
}

fn renew(
    r: &mut Runner<'_>,
    ca: &TestCa,
    bo: &mut Store,
    o: &RenewalOptions,
    d: &mut RenewalDetails,
    card: &mut String,
) -> Result<(Finished, String), Stop> {
    let now = r.now;
    secrets::step(r, &[Given::current(Field::Pin, &o.pin)])?;
    *card = r.step("Scanned", |c, _| {
        let s = c.serial()?;
        // Certificates the CA already issued for this card (an Aruba Key's order) go on it
        // first: a renewal now would replace the keys they certify.
        if let Some(stop) = super::import::import_required(&bo.data, &s) {
            return Err(stop);
        }
        // Before anything is written or a PIN is sent: a card without the commands the new
        // keys need would fail halfway (a read-only probe, see `CardClient::on_card_renewal`).
        if let OnCardRenewal::Unavailable(why) = c.on_card_renewal()? {
            return Err(refuse(Reason::OnCardRenewalUnavailable, why));
        }
        Ok((s.clone(), format!("card {s} ({})", super::order::describe(c))))
    })?;
    r.confirm_destructive(
        card,
        "generate new key pairs on the card and delete the old keys, certificates and the decryption key",
    )?;
    let certs = r.step("CertSelected", |c, now| {
        let certs = c.certificates()?;
        let mut parsed = vec![];
        for cc in certs {
            let x = Certificate::from_der(&cc.der).map_err(|e| Stop::Failed(format!("{}: {e}", cc.path)))?;
            parsed.push((cc.role, x));
        }
        let sign = parsed
            .iter()
            .find(|(r, _)| *r == KeyRole::Signature)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| refuse(Reason::CertificateMissing, "no qualified signature certificate on the card"))?;
        let (_, until) = dates(&sign);
        let detail = format!(
            "signature certificate {} expires {until} ({} days)",
            serial_hex(&sign),
            until.days_since_epoch() - now.days_since_epoch()
        );
        Ok((parsed, detail))
    })?;
    let old_sign = certs
        .iter()
        .find(|(r, _)| *r == KeyRole::Signature)
        .map(|(_, c)| c.clone())
        .ok_or_else(|| Stop::Failed("no signature certificate".into()))?;
    d.old_signature_certificate = Some(serial_hex(&old_sign));
    r.step("EncryptionWarningAcknowledged", |_, _| {
        if o.acknowledge_key_loss {
            Ok(((), "renewal deletes the decryption key: files encrypted for it can no longer be opened".into()))
        } else {
            Err(refuse(
                Reason::DecryptionKeyWarningNotAccepted,
                "the renewal deletes the decryption key; accept the warning to go on (--yes)",
            ))
        }
    })?;
    tries_step(r, SecretKind::Pin)?;
    r.step("PinVerified", |c, _| {
        pin_stop(c.verify_pin(&o.pin)?)?;
        Ok(((), "PIN accepted".into()))
    })?;
    // A renewal already under way for this card resumes where it stopped.
    let resuming = bo.data.open_renewal(card).map(|p| (p.id.clone(), p.state));
    if let Some((id, PracticeState::AwaitingCdrlAuthorization)) = &resuming {
        d.practice = Some(id.clone());
        return Err(refuse(
            Reason::AlreadyAwaitingAuthorization,
            format!("practice {id}: the new certificate is on the card; the CDRL must authorise it"),
        ));
    }
    if let Some((id, PracticeState::RenewalInProgress)) = &resuming {
        d.practice = Some(id.clone());
        let on_card: Vec<String> = certs.iter().map(|(_, c)| serial_hex(c)).collect();
        let installed = bo.data.certificates.iter().any(|c| {
            c.card_serial == *card
                && c.status == CertStatus::Suspended
                && c.role == KeyRole::Signature
                && on_card.contains(&c.serial)
        });
        if installed {
            r.step("Resumed", |c, _| {
                c.tidy(&o.pin)?;
                Ok((
                    (),
                    "the new certificates were already installed when the renewal stopped; completing it".to_owned(),
                ))
            })?;
            finalize(bo, card, id, now, &on_card)?;
            return Ok((
                Finished::AwaitingCdrlAuthorization,
                format!(
                    "practice {id}: renewal partially complete, the CDRL authorises it after payment (firmalab ra authorize {id})"
                ),
            ));
        }
        // Certificates issued before the interruption but never installed are void.
        for c in bo
            .data
            .certificates
            .iter_mut()
            .filter(|c| c.card_serial == *card && c.status == CertStatus::Suspended && !on_card.contains(&c.serial))
        {
            c.revoke(RevocationReason::Unspecified, now, None);
        }
        bo.save()?;
    }
    if resuming.is_none() {
        r.step("DiagnosticPassed", |c, now| {
            let diagnosis = diagnose(c, now, &bo.data, &o.policy, Some(&o.pin))?;
            match diagnosis.first_failure() {
                None => Ok(((), format!("{} checks passed", diagnosis.checks.len()))),
                Some(f) => Err(refuse(f.reason.unwrap_or(Reason::UnknownCard), f.detail.clone())),
            }
        })?;
    }
    let holder = crate::ca::holder_of(old_sign.tbs_certificate().subject())
        .ok_or_else(|| Stop::Failed("the certificate subject is not a holder's".into()))?;
    r.step("HolderDataConfirmed", |c, _| {
        if let Some(h) = c.holder()?
            && h.codice_fiscale != holder.codice_fiscale
        {
            return Err(refuse(
                Reason::NewPurchaseRequired,
                format!(
                    "the card's personal data ({}) differs from the certificate ({})",
                    h.codice_fiscale, holder.codice_fiscale
                ),
            ));
        }
        if !o.holder_data_correct {
            return Err(refuse(
                Reason::NewPurchaseRequired,
                "the data in the certificate is wrong: it cannot be changed by a renewal; buy a new card",
            ));
        }
        for (kind, value) in [(ContactKind::Email, &o.email), (ContactKind::Mobile, &o.mobile)] {
            bo.data.check_contact(kind, value, &holder.codice_fiscale).map_err(|e| refuse(e.code(), e.to_string()))?;
        }
        Ok((
            (),
            format!(
                "{} {} ({}), {}, {}",
                holder.first_name, holder.last_name, holder.codice_fiscale, o.email, o.mobile
            ),
        ))
    })?;
    r.step("ContractsAccepted", |_, _| {
        if o.accept_contracts {
            Ok(((), "contract conditions accepted".into()))
        } else {
            Err(refuse(Reason::ContractsNotAccepted, "the contract conditions must be accepted (--accept-contracts)"))
        }
    })?;
    // Back office: the renewal practice and its order.
    let practice = match resuming {
        Some((id, _)) => id,
        None => {
            let b = &mut bo.data;
            for (kind, value) in [(ContactKind::Email, &o.email), (ContactKind::Mobile, &o.mobile)] {
                b.bind_contact(kind, value, &holder.codice_fiscale).map_err(|e| refuse(e.code(), e.to_string()))?;
            }
            let spec = NewPractice {
                kind: PracticeKind::Renewal,
                codice_fiscale: &holder.codice_fiscale,
                cdrl: &o.cdrl,
                card,
                state: PracticeState::RenewalInProgress,
            };
            let id = b.new_practice(spec, now, EventKind::RenewalStarted, "renewal started with Aruba Enroll");
            b.orders.push(RenewalOrder {
                id: format!("O-{}", &id[2..]),
                practice: id.clone(),
                status: OrderStatus::Requested,
                certificates: vec![],
            });
            bo.save()?;
            id
        }
    };
    d.practice = Some(practice.clone());
    let form = form_text(&holder, card, &old_sign, o, now, &practice);
    let old_public = public_of(&old_sign)?;
    let p7m = r.step("FormSigned", |c, now| {
        let signer = CardSigner::new(c, KeyRole::Signature, None, old_public.clone(), &o.pin);
        let p7m = cades::sign_attached(form.as_bytes(), &old_sign, &signer, now)
            .map_err(|e| signer_error(&signer, "signing the form", e))?;
        // The card's signature is checked before the form goes anywhere.
        cades::verify_cades(&p7m).map_err(|e| Stop::Failed(format!("the signed form does not verify: {e}")))?;
        Ok((p7m, "Modulo di Rinnovo signed (CAdES-BES, signingCertificateV2) with the expiring key".to_owned()))
    })?;
    let form_name = format!("{practice}-modulo-rinnovo.txt.p7m");
    write(&o.out_dir, &form_name, &p7m, &mut d.files)?;
    d.form = d.files.last().cloned();
    if let Some(p) = bo.data.practice_mut(&practice) {
        p.log(EventKind::RenewalFormSigned, now, format!("modulo di rinnovo firmato; copia inviata a {}", o.email));
    }
    bo.save()?;

    let staged = generate_keys(r, &o.pin)?;
    let issued = r.step("CsrSubmitted", |c, now| {
        request_certificates(c, &staged, &certs, &old_sign, &old_public, &o.pin, ca, &bo.data, card, now, o.expiry)
    })?;
    for (k, csr, authorized, cert) in &issued {
        let role = format!("{:?}", k.role).to_lowercase();
        write(&o.out_dir, &format!("{practice}-{role}.csr"), csr, &mut d.files)?;
        write(&o.out_dir, &format!("{practice}-{role}-authorized.p7m"), authorized, &mut d.files)?;
        write(&o.out_dir, &format!("{practice}-{role}.cer"), &cert.to_der().unwrap_or_default(), &mut d.files)?;
    }
    // Record the new certificates before touching the card, suspended until the CDRL acts.
    for (k, _, _, cert) in &issued {
        let (nb, na) = dates(cert);
        bo.data.certificates.push(CertRecord {
            serial: serial_hex(cert),
            role: k.role,
            codice_fiscale: holder.codice_fiscale.clone(),
            card_serial: card.clone(),
            status: CertStatus::Suspended,
            not_before: nb.to_string(),
            not_after: na.to_string(),
            change: None,
        });
        d.new_certificates.push(serial_hex(cert));
    }
    bo.save()?;

    r.step("CertificateInstalled", |c, _| {
        // The authentication key first: the qualified one goes last, its old key authorised all.
        let mut ordered: Vec<&(StagedKey, Vec<u8>, Vec<u8>, Certificate)> = issued.iter().collect();
        ordered.sort_by_key(|(k, ..)| k.role == KeyRole::Signature);
        for (k, _, _, cert) in ordered {
            let der = cert.to_der().map_err(|e| Stop::Failed(e.to_string()))?;
            c.install(k, &der, &o.pin)?;
        }
        Ok(((), "new certificates written; old keys, certificates and the decryption key removed".into()))
    })?;
    let installed: Vec<String> = issued.iter().map(|(_, _, _, c)| serial_hex(c)).collect();
    finalize(bo, card, &practice, now, &installed)?;
    Ok((
        Finished::AwaitingCdrlAuthorization,
        format!(
            "practice {practice}: renewal partially complete, the CDRL authorises it after payment (firmalab ra authorize {practice})"
        ),
    ))
}

/// The `KeysGenerated` step: what an interrupted run left tidied, then a new signature and
/// authentication key pair generated on the card next to the current ones.
pub(super) fn generate_keys(r: &mut Runner<'_>, pin: &str) -> Result<Vec<StagedKey>, Stop> {
    r.begin("KeysGenerated");
    if let Err(e) = r.client.tidy(pin) {
        r.end(super::StepStatus::Failed, e.to_string());
        return Err(e.into());
    }
    let mut staged: Vec<StagedKey> = vec![];
    for role in [KeyRole::Signature, KeyRole::Authentication] {
        match r.client.stage_key(role, pin) {
            Ok(k) => staged.push(k),
            Err(e) => {
                r.end(super::StepStatus::Failed, e.to_string());
                return Err(e.into());
            }
        }
    }
    r.end(super::StepStatus::Ok, "new signature and authentication key pairs generated on the card (RSA-2048)");
    Ok(staged)
}

/// A new key with its request, the request authorised by the old qualified key, and the
/// certificate the CA issued for it.
pub(super) type Issued = (StagedKey, Vec<u8>, Vec<u8>, Certificate);

/// The `CsrSubmitted` step's work: for each new key a PKCS#10 request with the current
/// subject signed by the new key on the card, wrapped in a CMS SignedData signed by the
/// current qualified key (the authorisation), and the certificate the CA issues for it.
#[allow(clippy::too_many_arguments)]
pub(super) fn request_certificates(
    c: &mut dyn CardClient,
    staged: &[StagedKey],
    certs: &[(KeyRole, Certificate)],
    old_sign: &Certificate,
    old_public: &rsa::RsaPublicKey,
    pin: &str,
    ca: &TestCa,
    bo: &crate::backoffice::BackOffice,
    card: &str,
    now: Date,
    expiry: ExpiryRule,
) -> Result<(Vec<Issued>, String), Stop> {
    let mut out = vec![];
    for k in staged {
        let subject = certs
            .iter()
            .find(|(role, _)| *role == k.role)
            .map(|(_, x)| x.tbs_certificate().subject().clone())
            .unwrap_or_else(|| old_sign.tbs_certificate().subject().clone());
        let csr = {
            let signer = CardSigner::new(&mut *c, k.role, Some(k.clone()), k.public.clone(), pin);
            let builder = RequestBuilder::new(subject).map_err(|e| Stop::Failed(e.to_string()))?;
            let req = builder
                .build::<_, rsa::pkcs1v15::Signature>(&signer)
                .map_err(|e| signer_error(&signer, "signing the request with the new key", e))?;
            req.to_der().map_err(|e| Stop::Failed(e.to_string()))?
        };
        let authorized = {
            let signer = CardSigner::new(&mut *c, KeyRole::Signature, None, old_public.clone(), pin);
            cades::signed_data(cades::ID_DATA, &csr, old_sign, &signer, Some(now), false)
                .map_err(|e| signer_error(&signer, "authorising the request with the expiring key", e))?
        };
        let kind = if k.role == KeyRole::Signature { CertKind::QualifiedSignature } else { CertKind::Authentication };
        let cert = issue_renewal(ca, bo, card, &authorized, kind, now, expiry)
            .map_err(|e| refuse(Reason::CaRefused, e.to_string()))?;
        out.push((k.clone(), csr, authorized, cert));
    }
    let detail = out
        .iter()
        .map(|(k, _, _, c)| format!("{:?} → {} until {}", k.role, serial_hex(c), dates(c).1))
        .collect::<Vec<_>>()
        .join("; ");
    Ok((out, format!("CA issued {detail}")))
}

/// Records a completed installation: certificates on the card stay suspended until the CDRL
/// authorises; the card's other active ones are superseded, issued-but-absent ones void; one
/// more renewal for the device; the practice waits for the CDRL.
fn finalize(bo: &mut Store, card: &str, practice: &str, now: Date, on_card: &[String]) -> Result<(), Stop> {
    let b = &mut bo.data;
    for c in b.certificates.iter_mut().filter(|c| c.card_serial == card && !on_card.contains(&c.serial)) {
        match c.status {
            CertStatus::Active => c.revoke(RevocationReason::Superseded, now, None),
            CertStatus::Suspended => c.revoke(RevocationReason::Unspecified, now, None),
            _ => {}
        }
    }
    if let Some(c) = b.card_mut(card) {
        c.renewal_count += 1;
    }
    if let Some(p) = b.practice_mut(practice) {
        p.state = PracticeState::AwaitingCdrlAuthorization;
        p.log(
            EventKind::CertificatesInstalled,
            now,
            "certificates installed on the card; waiting for the CDRL's authorisation",
        );
    }
    Ok(bo.save()?)
}

/// `firmalab ra authorize`: the reseller completes a renewal after payment, as the CDRL that
/// ran it (see [`crate::cms::authorize`]).
pub fn authorize(bo: &mut Store, practice: &str, now: Date) -> Result<String, crate::cms::CmsError> {
    crate::cms::authorize(bo, practice, None, now).map(|d| d.message)
}

/// `firmalab ra enroll` without codes (a paper envelope) or address: records an issued card in
/// the back office (see [`crate::cms::enroll`]).
pub fn enroll(
    client: &mut dyn CardClient,
    bo: &mut Store,
    cdrl: &str,
    email: &str,
    mobile: &str,
    now: Date,
) -> Result<String, crate::cms::CmsError> {
    let outbox = crate::cms::default_outbox();
    let e = crate::cms::Enrollment { cdrl, email, mobile, address: None, codes: None, outbox: &outbox };
    crate::cms::enroll(client, bo, &e, now).map(|d| d.message)
}

/// Why no card could be chosen for the renewal.
#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    #[error(transparent)]
    Card(#[from] ClientError),
    #[error("no card has a signature certificate that can still be renewed")]
    NothingToRenew,
}

/// Among several cards, the one to renew: the signature certificate that expires first among
/// those not yet expired (Enroll: "choose the expiring certificate"). Returns its index.
pub fn choose(clients: &mut [Box<dyn CardClient>], now: Date) -> Result<usize, ChooseError> {
    let mut best: Option<(usize, Date)> = None;
    for (i, c) in clients.iter_mut().enumerate() {
        let certs = c.certificates()?;
        let Some(sign) = certs.iter().find(|x| x.role == KeyRole::Signature) else { continue };
        let Ok(cert) = Certificate::from_der(&sign.der) else { continue };
        let until = dates(&cert).1;
        if until > now && best.is_none_or(|(_, b)| until < b) {
            best = Some((i, until));
        }
    }
    best.map(|(i, _)| i).ok_or(ChooseError::NothingToRenew)
}
