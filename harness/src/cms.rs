//! The CMS: what a CDRL operator and the CA do on the back-office store (spec/domain.md §0 FAQ
//! CMS, §6.3 items 10-11, §6.4). Every operation checks a state rule and, when it refuses,
//! says why with a typed [`Refusal`]; every change is one atomic save of the store.
//!
//! | operation | rule |
//! | --- | --- |
//! | [`enroll`] | issuance: Creazione Modulo → Attesa Originali, codes sent in two halves |
//! | [`receive_originals`] | Attesa Originali → Completato, same CDRL |
//! | [`authorize`] | a renewal in AwaitingCdrlAuthorization → Completed, same CDRL |
//! | [`revoke`] | active or suspended certificates, same CDRL (else `IssuedByOtherCdrl`) |
//! | [`suspend`] / [`reactivate`] | active ⇄ suspended (certificateHold), same CDRL |
//! | [`resend_codes`] | issuance in Attesa Originali or Completato, codes sent by SMS + email |

use crate::backoffice::{
    BackOffice, CardRecord, CertRecord, CertStatus, CodeDelivery, CodeEnvelope, CodeHalf, ContactError, ContactKind,
    EventKind, HolderRecord, NewPractice, OrderStatus, PracticeKind, PracticeState, Reason, RevocationReason,
    StatusChange, Store, StoreError, normalise_address,
};
use crate::client::{CardClient, ClientError, KeyRole};
use crate::dates::Date;
use crate::outbox::{self, Email, OutboxError, Stamp};
use der::Decode;
use serde::Serialize;
use std::path::{Path, PathBuf};
use x509_cert::Certificate;

/// Why the CMS refused an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NoSuchPractice {
        practice: String,
    },
    NoSuchCard {
        card: String,
    },
    NoSuchCertificate {
        serial: String,
    },
    NoSuchHolder {
        codice_fiscale: String,
    },
    AlreadyEnrolled {
        card: String,
    },
    /// The card's certificate names the holder of a codice fiscale the back office already
    /// knows under other names: one of the two is wrong, and enrolling would bind this
    /// card (and its contacts) to that person.
    HolderMismatch {
        codice_fiscale: String,
        recorded: String,
        on_card: String,
    },
    /// The card holds no qualified signature certificate to enroll.
    CertificateMissing {
        card: String,
    },
    /// The card was issued by another CDRL: only that CDRL operates on it (FAQ CMS, revoke).
    IssuedByOtherCdrl {
        card: String,
        issued_by: String,
        cdrl: String,
    },
    /// The practice was opened by another CDRL.
    PracticeOfOtherCdrl {
        practice: String,
        opened_by: String,
        cdrl: String,
    },
    WrongPracticeState {
        practice: String,
        state: PracticeState,
        allowed: Vec<PracticeState>,
    },
    /// Codes belong to an issuance; a renewal keeps the holder's PIN.
    NotAnIssuance {
        practice: String,
    },
    /// The codes went in a sealed paper envelope: nothing to resend (FAQ firma digitale).
    CodesOnPaper {
        practice: String,
    },
    AlreadyRevoked {
        serial: String,
        status: CertStatus,
    },
    NotActive {
        serial: String,
        status: CertStatus,
    },
    NotSuspended {
        serial: String,
        status: CertStatus,
    },
    /// A renewal's certificate waits for `ra authorize`, not for `ra reactivate`.
    AwaitingAuthorization {
        serial: String,
    },
    /// None of the card's certificates can take this operation.
    NoCertificateToChange {
        card: String,
        wanted: &'static str,
    },
    InvalidCodes {
        why: String,
    },
    InvalidAddress {
        why: String,
    },
    Contact(ContactError),
}

impl Refusal {
    /// The reason code.
    pub fn code(&self) -> Reason {
        match self {
            Refusal::NoSuchPractice { .. } => Reason::NoSuchPractice,
            Refusal::NoSuchCard { .. } => Reason::NoSuchCard,
            Refusal::NoSuchCertificate { .. } => Reason::NoSuchCertificate,
            Refusal::NoSuchHolder { .. } => Reason::NoSuchHolder,
            Refusal::AlreadyEnrolled { .. } => Reason::AlreadyEnrolled,
            Refusal::HolderMismatch { .. } => Reason::HolderMismatch,
            Refusal::CertificateMissing { .. } => Reason::CertificateMissing,
            Refusal::IssuedByOtherCdrl { .. } => Reason::IssuedByOtherCdrl,
            Refusal::PracticeOfOtherCdrl { .. } => Reason::PracticeOfOtherCdrl,
            Refusal::WrongPracticeState { .. } => Reason::WrongPracticeState,
            Refusal::NotAnIssuance { .. } => Reason::NotAnIssuance,
            Refusal::CodesOnPaper { .. } => Reason::CodesOnPaper,
            Refusal::AlreadyRevoked { .. } => Reason::AlreadyRevoked,
            Refusal::NotActive { .. } => Reason::NotActive,
            Refusal::NotSuspended { .. } => Reason::NotSuspended,
            Refusal::AwaitingAuthorization { .. } => Reason::AwaitingAuthorization,
            Refusal::NoCertificateToChange { .. } => Reason::NoCertificateToChange,
            Refusal::InvalidCodes { .. } => Reason::InvalidCodes,
            Refusal::InvalidAddress { .. } => Reason::InvalidAddress,
            Refusal::Contact(e) => e.code(),
        }
    }
}

fn status_name(s: CertStatus) -> &'static str {
    match s {
        CertStatus::Active => "active",
        CertStatus::Suspended => "suspended",
        CertStatus::Superseded => "superseded",
        CertStatus::Revoked => "revoked",
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoSuchPractice { practice } => write!(f, "no practice {practice}"),
            Refusal::NoSuchCard { card } => write!(f, "no card {card} in the back office"),
            Refusal::NoSuchCertificate { serial } => write!(f, "no certificate {serial} in the back office"),
            Refusal::NoSuchHolder { codice_fiscale } => write!(f, "no holder {codice_fiscale} in the back office"),
            Refusal::AlreadyEnrolled { card } => write!(f, "card {card} is already enrolled"),
            Refusal::HolderMismatch { codice_fiscale, recorded, on_card } => write!(
                f,
                "codice fiscale {codice_fiscale} belongs to {recorded} in the back office, but the card's certificate names {on_card}: nothing enrolled (check the holder data; a card with wrong holder data is replaced, not enrolled)"
            ),
            Refusal::CertificateMissing { card } => write!(f, "card {card} has no qualified signature certificate"),
            Refusal::IssuedByOtherCdrl { card, issued_by, cdrl } => write!(
                f,
                "card {card} was issued by {issued_by}, not {cdrl}: only the CDRL that issued it revokes it from \
                 Gestione Servizi → Revoca carta; for a card of another CDRL follow the CA's separate revocation \
                 procedure (the holder's signed revocation request to the CA, or the issuing CDRL)"
            ),
            Refusal::PracticeOfOtherCdrl { practice, opened_by, cdrl } => {
                write!(f, "practice {practice} belongs to {opened_by}, not {cdrl}")
            }
            Refusal::WrongPracticeState { practice, state, allowed } => write!(
                f,
                "practice {practice} is in state {} ({state:?}); allowed only in {}",
                state.label(),
                allowed.iter().map(|s| s.label()).collect::<Vec<_>>().join(" or ")
            ),
            Refusal::NotAnIssuance { practice } => {
                write!(f, "practice {practice} is a renewal: codes are sent with an issuance only")
            }
            Refusal::CodesOnPaper { practice } => write!(
                f,
                "practice {practice}: the PIN and PUK were handed over in a sealed paper envelope, which cannot be \
                 sent again (the holder unblocks with the PUK, or the card is revoked and a new one issued)"
            ),
            Refusal::AlreadyRevoked { serial, status } => {
                write!(f, "certificate {serial} is already {}", status_name(*status))
            }
            Refusal::NotActive { serial, status } => {
                write!(f, "certificate {serial} is {}, not active", status_name(*status))
            }
            Refusal::NotSuspended { serial, status } => {
                write!(f, "certificate {serial} is {}, not suspended", status_name(*status))
            }
            Refusal::AwaitingAuthorization { serial } => write!(
                f,
                "certificate {serial} comes from a renewal waiting for the CDRL's authorisation: use `firmalab ra authorize`"
            ),
            Refusal::NoCertificateToChange { card, wanted } => write!(f, "card {card} has no {wanted} certificate"),
            Refusal::InvalidCodes { why } => write!(f, "codes: {why}"),
            Refusal::InvalidAddress { why } => write!(f, "address: {why}"),
            Refusal::Contact(e) => e.fmt(f),
        }
    }
}

/// How an operation ended badly.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("refused, {}: {}", .0.code(), .0)]
    Refused(Refusal),
    /// The store could not be saved.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The card could not be read.
    #[error(transparent)]
    Card(#[from] ClientError),
    /// A certificate read from the card does not parse (`what`: which one).
    #[error("{what}: {why}")]
    Certificate { what: String, why: String },
    /// The signature certificate's subject has no holder's fields.
    #[error("the certificate subject is not a holder's")]
    NotAHolder,
    /// A message could not be written to the outbox.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

impl From<Refusal> for CmsError {
    fn from(r: Refusal) -> Self {
        CmsError::Refused(r)
    }
}

impl From<ContactError> for CmsError {
    fn from(e: ContactError) -> Self {
        CmsError::Refused(Refusal::Contact(e))
    }
}

/// What an operation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Done {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practice: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Messages written to the outbox.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// What `ra revoke`, `suspend` and `reactivate` act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every certificate of the card the operation applies to ("Revoca carta").
    Card(String),
    /// One certificate, by its hex serial.
    Certificate(String),
}

fn save(store: &Store) -> Result<(), CmsError> {
    Ok(store.save()?)
}

/// The card a target names, and the serials of its certificates it covers.
fn resolve(b: &BackOffice, target: &Target) -> Result<(CardRecord, Vec<String>), Refusal> {
    match target {
        Target::Card(card) => {
            let rec = b.card(card).cloned().ok_or_else(|| Refusal::NoSuchCard { card: card.clone() })?;
            let serials = b.certificates.iter().filter(|c| c.card_serial == *card).map(|c| c.serial.clone()).collect();
            Ok((rec, serials))
        }
        Target::Certificate(serial) => {
            let c = b.cert(serial).ok_or_else(|| Refusal::NoSuchCertificate { serial: serial.clone() })?;
            let rec =
                b.card(&c.card_serial).cloned().ok_or_else(|| Refusal::NoSuchCard { card: c.card_serial.clone() })?;
            Ok((rec, vec![c.serial.clone()]))
        }
    }
}

fn same_cdrl(card: &CardRecord, cdrl: &str) -> Result<(), Refusal> {
    if card.cdrl == cdrl {
        Ok(())
    } else {
        Err(Refusal::IssuedByOtherCdrl { card: card.serial.clone(), issued_by: card.cdrl.clone(), cdrl: cdrl.into() })
    }
}

fn log_on_card(b: &mut BackOffice, card: &str, kind: EventKind, now: Date, text: &str) -> Option<String> {
    let p = b.current_practice_mut(card)?;
    p.log(kind, now, text);
    Some(p.id.clone())
}

/// `ra revoke`: the CDRL that issued the card revokes it (every live certificate) or one
/// certificate. When no live certificate is left, the card's practices become `Revocata`.
pub fn revoke(
    store: &mut Store,
    target: &Target,
    cdrl: &str,
    reason: RevocationReason,
    now: Date,
) -> Result<Done, CmsError> {
    let b = &mut store.data;
    let (card, serials) = resolve(b, target)?;
    same_cdrl(&card, cdrl)?;
    let mut revoked = vec![];
    for serial in &serials {
        let Some(c) = b.cert_mut(serial) else { continue };
        if !c.live() {
            if matches!(target, Target::Certificate(_)) {
                return Err(Refusal::AlreadyRevoked { serial: c.serial.clone(), status: c.status }.into());
            }
            continue;
        }
        c.revoke(reason, now, Some(cdrl));
        revoked.push(c.serial.clone());
    }
    if revoked.is_empty() {
        return Err(Refusal::NoCertificateToChange { card: card.serial, wanted: "active or suspended" }.into());
    }
    let text = format!("certificati revocati da {cdrl} ({}): {}", reason.openssl_name(), revoked.join(", "));
    let none_left = !b.certificates.iter().any(|c| c.card_serial == card.serial && c.live());
    let mut practice = None;
    if none_left {
        for p in b.practices.iter_mut().filter(|p| {
            p.card_serial == card.serial && !matches!(p.state, PracticeState::Invalidated | PracticeState::Revocata)
        }) {
            p.state = PracticeState::Revocata;
            p.log(EventKind::Revoked, now, &text);
            practice = Some(p.id.clone());
        }
    } else {
        practice = log_on_card(b, &card.serial, EventKind::Revoked, now, &text);
    }
    save(store)?;
    Ok(Done {
        message: format!(
            "{} certificate(s) of card {} revoked ({}){}",
            revoked.len(),
            card.serial,
            reason.openssl_name(),
            if none_left { "; the card's practices are Revocata" } else { "" }
        ),
        practice,
        certificates: revoked,
        files: vec![],
    })
}

/// `ra suspend`: active certificates go on hold (certificateHold in CRL and OCSP).
pub fn suspend(store: &mut Store, target: &Target, cdrl: &str, now: Date) -> Result<Done, CmsError> {
    let b = &mut store.data;
    let (card, serials) = resolve(b, target)?;
    same_cdrl(&card, cdrl)?;
    let mut changed = vec![];
    for serial in &serials {
        let Some(c) = b.cert_mut(serial) else { continue };
        if c.status != CertStatus::Active {
            if matches!(target, Target::Certificate(_)) {
                return Err(Refusal::NotActive { serial: c.serial.clone(), status: c.status }.into());
            }
            continue;
        }
        c.status = CertStatus::Suspended;
        c.change = Some(StatusChange {
            date: now.to_string(),
            reason: RevocationReason::CertificateHold,
            by: Some(cdrl.into()),
        });
        changed.push(c.serial.clone());
    }
    if changed.is_empty() {
        return Err(Refusal::NoCertificateToChange { card: card.serial, wanted: "active" }.into());
    }
    let practice = log_on_card(
        b,
        &card.serial,
        EventKind::Suspended,
        now,
        &format!("certificati sospesi da {cdrl}: {}", changed.join(", ")),
    );
    save(store)?;
    Ok(Done {
        message: format!("{} certificate(s) of card {} suspended (certificateHold)", changed.len(), card.serial),
        practice,
        certificates: changed,
        files: vec![],
    })
}

/// `ra reactivate`: certificates a CDRL suspended become active again.
pub fn reactivate(store: &mut Store, target: &Target, cdrl: &str, now: Date) -> Result<Done, CmsError> {
    let b = &mut store.data;
    let (card, serials) = resolve(b, target)?;
    same_cdrl(&card, cdrl)?;
    let mut changed = vec![];
    let mut pending = None;
    for serial in &serials {
        let Some(c) = b.cert_mut(serial) else { continue };
        if !c.held_by_cdrl() {
            let refusal = if c.status == CertStatus::Suspended {
                Refusal::AwaitingAuthorization { serial: c.serial.clone() }
            } else {
                Refusal::NotSuspended { serial: c.serial.clone(), status: c.status }
            };
            if matches!(target, Target::Certificate(_)) {
                return Err(refusal.into());
            }
            if c.status == CertStatus::Suspended {
                pending = Some(refusal);
            }
            continue;
        }
        c.status = CertStatus::Active;
        c.change = None;
        changed.push(c.serial.clone());
    }
    if changed.is_empty() {
        return Err(pending
            .unwrap_or(Refusal::NoCertificateToChange { card: card.serial, wanted: "suspended" })
            .into());
    }
    let practice = log_on_card(
        b,
        &card.serial,
        EventKind::Reactivated,
        now,
        &format!("certificati riattivati da {cdrl}: {}", changed.join(", ")),
    );
    save(store)?;
    Ok(Done {
        message: format!("{} certificate(s) of card {} active again", changed.len(), card.serial),
        practice,
        certificates: changed,
        files: vec![],
    })
}

/// `ra authorize`: the CDRL completes a renewal after payment; the renewal's certificates go
/// from suspended to active. `cdrl`: who authorises (`None`: the CDRL that ran the renewal);
/// either way it must be the CDRL that issued the card.
pub fn authorize(store: &mut Store, practice: &str, cdrl: Option<&str>, now: Date) -> Result<Done, CmsError> {
    let b = &mut store.data;
    let p = b.practice(practice).ok_or_else(|| Refusal::NoSuchPractice { practice: practice.into() })?.clone();
    let cdrl = cdrl.unwrap_or(&p.cdrl);
    let card = b.card(&p.card_serial).cloned().ok_or_else(|| Refusal::NoSuchCard { card: p.card_serial.clone() })?;
    same_cdrl(&card, cdrl)?;
    if p.cdrl != cdrl {
        return Err(Refusal::PracticeOfOtherCdrl {
            practice: practice.into(),
            opened_by: p.cdrl.clone(),
            cdrl: cdrl.into(),
        }
        .into());
    }
    if p.state != PracticeState::AwaitingCdrlAuthorization {
        return Err(Refusal::WrongPracticeState {
            practice: practice.into(),
            state: p.state,
            allowed: vec![PracticeState::AwaitingCdrlAuthorization],
        }
        .into());
    }
    let mut activated = vec![];
    for c in b
        .certificates
        .iter_mut()
        .filter(|c| c.card_serial == p.card_serial && c.status == CertStatus::Suspended && !c.held_by_cdrl())
    {
        c.status = CertStatus::Active;
        activated.push(c.serial.clone());
    }
    for o in b.orders.iter_mut().filter(|o| o.practice == practice) {
        o.status = OrderStatus::Completed;
    }
    if let Some(p) = b.practice_mut(practice) {
        p.state = PracticeState::Completed;
        p.log(EventKind::RenewalAuthorized, now, format!("pagamento registrato; rinnovo autorizzato da {cdrl}"));
    }
    save(store)?;
    Ok(Done {
        message: format!("practice {practice} completed; {} certificate(s) active", activated.len()),
        practice: Some(practice.into()),
        certificates: activated,
        files: vec![],
    })
}

/// `ra receive-originals`: the signed originals of an issuance reached the CA.
pub fn receive_originals(store: &mut Store, practice: &str, cdrl: &str, now: Date) -> Result<Done, CmsError> {
    let b = &mut store.data;
    let p = b.practice_mut(practice).ok_or_else(|| Refusal::NoSuchPractice { practice: practice.into() })?;
    if p.cdrl != cdrl {
        return Err(Refusal::PracticeOfOtherCdrl {
            practice: practice.into(),
            opened_by: p.cdrl.clone(),
            cdrl: cdrl.into(),
        }
        .into());
    }
    if p.kind != PracticeKind::Issuance {
        return Err(Refusal::NotAnIssuance { practice: practice.into() }.into());
    }
    if p.state != PracticeState::AttesaOriginali {
        return Err(Refusal::WrongPracticeState {
            practice: practice.into(),
            state: p.state,
            allowed: vec![PracticeState::AttesaOriginali],
        }
        .into());
    }
    p.state = PracticeState::Completato;
    p.log(EventKind::OriginalsReceived, now, format!("originali firmati ricevuti da {cdrl}"));
    save(store)?;
    Ok(Done { message: format!("practice {practice} Completato"), practice: Some(practice.into()), ..Done::default() })
}

/// Splits a code: the first half (rounded up) goes by SMS, the rest by email.
pub fn split_code(code: &str) -> (String, String) {
    let chars: Vec<char> = code.chars().collect();
    let cut = chars.len().div_ceil(2);
    (chars[..cut].iter().collect(), chars[cut..].iter().collect())
}

/// A half shown in place: `1234****` or `****5678`.
fn shown(first: &str, second: &str, which_first: bool) -> String {
    if which_first {
        format!("{first}{}", "*".repeat(second.chars().count()))
    } else {
        format!("{}{second}", "*".repeat(first.chars().count()))
    }
}

fn part_two_email(practice: &str, to: &str, pin: (&str, &str), puk: (&str, &str), now: Stamp, resent: bool) -> Email {
    Email {
        to: to.into(),
        subject: format!("Firma digitale: seconda parte dei codici PIN e PUK (pratica {practice})"),
        date: now,
        id: format!("{practice}.codes-part2{}.{}", if resent { ".resent" } else { "" }, now.date),
        body: format!(
            "Gentile titolare,\n\n\
             ecco la seconda parte dei codici del suo dispositivo di firma (pratica {practice}).\n\
             La prima parte le e' stata inviata via SMS: unisca le due parti al posto degli asterischi.\n\n\
             PIN: {}\nPUK: {}\n\n\
             Conservi i codici separati dal dispositivo. Se li ha gia' cambiati, questi non valgono piu'.\n",
            shown(pin.0, pin.1, false),
            shown(puk.0, puk.1, false)
        ),
    }
}

/// Who the issuance records and how the codes reach the holder.
pub struct Enrollment<'a> {
    pub cdrl: &'a str,
    pub email: &'a str,
    pub mobile: &'a str,
    pub address: Option<&'a str>,
    /// The PIN and PUK the card was issued with (`image new --pin --puk`): sent in two halves.
    /// `None`: they went in a sealed paper envelope (not recoverable).
    pub codes: Option<(&'a str, &'a str)>,
    pub outbox: &'a Path,
}

fn digits(what: &str, v: &str) -> Result<(), Refusal> {
    if (4..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Refusal::InvalidCodes { why: format!("the {what} must be 4 to 64 digits") })
    }
}

fn cert_dates(c: &Certificate) -> (Date, Date) {
    let v = c.tbs_certificate().validity();
    (Date::from_der(&v.not_before.to_date_time()), Date::from_der(&v.not_after.to_date_time()))
}

/// `ra enroll`: records the issuance of a card read from the card itself. The practice opens
/// with the request form ("creazione modulo"), records the certificates, sends the codes (first
/// half by SMS, second half by email, both into the outbox) and waits for the signed originals
/// (`Attesa Originali`).
pub fn enroll(client: &mut dyn CardClient, store: &mut Store, e: &Enrollment<'_>, now: Date) -> Result<Done, CmsError> {
    let serial = client.serial()?;
    let certs = client.certificates()?;
    let sign = certs
        .iter()
        .find(|c| c.role == KeyRole::Signature)
        .ok_or_else(|| Refusal::CertificateMissing { card: serial.clone() })?;
    let sign = Certificate::from_der(&sign.der)
        .map_err(|x| CmsError::Certificate { what: "signature certificate".into(), why: x.to_string() })?;
    let holder = crate::ca::holder_of(sign.tbs_certificate().subject()).ok_or(CmsError::NotAHolder)?;
    let cf = holder.codice_fiscale.clone();
    // Everything is checked before anything is written.
    let b = &mut store.data;
    if b.card(&serial).is_some() {
        return Err(Refusal::AlreadyEnrolled { card: serial }.into());
    }
    if let Some(h) = b.holders.iter().find(|h| h.codice_fiscale == cf)
        && (!h.first_name.eq_ignore_ascii_case(&holder.first_name)
            || !h.last_name.eq_ignore_ascii_case(&holder.last_name))
    {
        return Err(Refusal::HolderMismatch {
            codice_fiscale: cf,
            recorded: format!("{} {}", h.first_name, h.last_name),
            on_card: format!("{} {}", holder.first_name, holder.last_name),
        }
        .into());
    }
    let email = b.check_contact(ContactKind::Email, e.email, &cf)?;
    let mobile = b.check_contact(ContactKind::Mobile, e.mobile, &cf)?;
    let address = e.address.map(normalise_address).transpose().map_err(|why| Refusal::InvalidAddress { why: why.0 })?;
    if let Some((pin, puk)) = e.codes {
        digits("PIN", pin)?;
        digits("PUK", puk)?;
    }
    let mut parsed = vec![];
    for c in &certs {
        parsed.push((
            c.role,
            Certificate::from_der(&c.der)
                .map_err(|x| CmsError::Certificate { what: c.path.clone(), why: x.to_string() })?,
        ));
    }

    let spec = NewPractice {
        kind: PracticeKind::Issuance,
        codice_fiscale: &cf,
        cdrl: e.cdrl,
        card: &serial,
        state: PracticeState::CreazioneModulo,
    };
    let name = format!("{} {}", holder.first_name, holder.last_name);
    let id = b.new_practice(
        spec,
        now,
        EventKind::FormCreated,
        &format!("modulo di richiesta certificati creato: {name} ({cf}), carta {serial}, CDRL {}", e.cdrl),
    );
    b.bind_contact(ContactKind::Email, &email, &cf)?;
    b.bind_contact(ContactKind::Mobile, &mobile, &cf)?;
    match b.holder_mut(&cf) {
        Some(h) => {
            if address.is_some() {
                h.address = address.clone();
            }
        }
        None => b.holders.push(HolderRecord {
            codice_fiscale: cf.clone(),
            first_name: holder.first_name.clone(),
            last_name: holder.last_name.clone(),
            address: address.clone(),
        }),
    }
    let (issued, _) = cert_dates(&sign);
    b.cards.push(CardRecord {
        serial: serial.clone(),
        codice_fiscale: cf.clone(),
        cdrl: e.cdrl.into(),
        first_issuance: issued.to_string(),
        renewal_count: 0,
    });
    let mut serials = vec![];
    for (role, x) in &parsed {
        let (nb, na) = cert_dates(x);
        let s = crate::ca::serial_hex(x);
        b.certificates.push(CertRecord {
            serial: s.clone(),
            role: *role,
            codice_fiscale: cf.clone(),
            card_serial: serial.clone(),
            status: CertStatus::Active,
            not_before: nb.to_string(),
            not_after: na.to_string(),
            change: None,
        });
        serials.push(s);
    }
    let until = cert_dates(&sign).1;
    let stamp = Stamp::at(Some(now));
    let mut files = vec![];
    let envelope = match e.codes {
        Some((pin, puk)) => {
            let (pin1, pin2) = split_code(pin);
            let (puk1, puk2) = split_code(puk);
            let sms = outbox::sms(
                &mobile,
                &format!(
                    "Firma digitale, pratica {id}: prima parte dei codici. PIN {} PUK {}. La seconda parte arriva via email a {email}.",
                    shown(&pin1, &pin2, true),
                    shown(&puk1, &puk2, true)
                ),
            );
            let mail = part_two_email(&id, &email, (&pin1, &pin2), (&puk1, &puk2), stamp, false);
            files.push(outbox::deliver(e.outbox, &format!("{id}-codes-part1-sms"), "txt", sms.as_bytes())?);
            files.push(outbox::deliver(e.outbox, &format!("{id}-codes-part2-email"), "eml", mail.render().as_bytes())?);
            CodeEnvelope {
                delivery: CodeDelivery::SmsAndEmail,
                mobile: Some(mobile.clone()),
                email: Some(email.clone()),
                second_half: Some(CodeHalf {
                    pin_first_digits: pin1.chars().count(),
                    puk_first_digits: puk1.chars().count(),
                    pin: pin2,
                    puk: puk2,
                }),
            }
        }
        None => CodeEnvelope { delivery: CodeDelivery::Paper, mobile: None, email: None, second_half: None },
    };
    if let Some(p) = b.practice_mut(&id) {
        p.log(
            EventKind::CertificatesIssued,
            now,
            format!("certificati emessi sulla carta {serial}: {} (validi fino al {until})", serials.join(", ")),
        );
        p.log(
            EventKind::CodesSent,
            now,
            match envelope.delivery {
                CodeDelivery::SmsAndEmail => {
                    format!("codici inviati: prima parte via SMS a {mobile}, seconda parte via email a {email}")
                }
                CodeDelivery::Paper => "codici consegnati in busta cieca (non recuperabili)".to_owned(),
            },
        );
        p.envelope = Some(envelope);
        p.state = PracticeState::AttesaOriginali;
    }
    save(store)?;
    Ok(Done {
        message: format!(
            "card {serial} of {name} ({cf}) enrolled as practice {id} (Attesa Originali){}",
            if files.is_empty() {
                "; codes on paper".to_owned()
            } else {
                "; codes sent: first half by SMS, second half by email (outbox)".to_owned()
            }
        ),
        practice: Some(id),
        certificates: serials,
        files: files.iter().map(|p| p.display().to_string()).collect(),
    })
}

/// `ra resend-codes`: the CDRL sends the second half of the codes again to the practice's
/// email, from the "creazione modulo" event (FAQ CMS). Only in Attesa Originali or Completato.
pub fn resend_codes(
    store: &mut Store,
    practice: &str,
    cdrl: &str,
    outbox_dir: &Path,
    now: Stamp,
) -> Result<Done, CmsError> {
    let b = &mut store.data;
    let p = b.practice_mut(practice).ok_or_else(|| Refusal::NoSuchPractice { practice: practice.into() })?;
    if p.cdrl != cdrl {
        return Err(Refusal::PracticeOfOtherCdrl {
            practice: practice.into(),
            opened_by: p.cdrl.clone(),
            cdrl: cdrl.into(),
        }
        .into());
    }
    if p.kind != PracticeKind::Issuance {
        return Err(Refusal::NotAnIssuance { practice: practice.into() }.into());
    }
    let allowed = [PracticeState::AttesaOriginali, PracticeState::Completato];
    if !allowed.contains(&p.state) {
        return Err(Refusal::WrongPracticeState {
            practice: practice.into(),
            state: p.state,
            allowed: allowed.to_vec(),
        }
        .into());
    }
    let Some(CodeEnvelope { delivery: CodeDelivery::SmsAndEmail, email: Some(email), second_half: Some(half), .. }) =
        p.envelope.clone()
    else {
        return Err(Refusal::CodesOnPaper { practice: practice.into() }.into());
    };
    // The first half is not kept, only its length.
    let first_pin = "*".repeat(half.pin_first_digits);
    let first_puk = "*".repeat(half.puk_first_digits);
    let mail = part_two_email(practice, &email, (&first_pin, &half.pin), (&first_puk, &half.puk), now, true);
    let path =
        outbox::deliver(outbox_dir, &format!("{practice}-codes-part2-email-resent"), "eml", mail.render().as_bytes())?;
    p.log(
        EventKind::CodesResent,
        now.date,
        format!("seconda parte dei codici reinviata a {email} da {cdrl} (dall'evento creazione modulo)"),
    );
    save(store)?;
    Ok(Done {
        message: format!("second half of the codes of practice {practice} sent again to {email}"),
        practice: Some(practice.into()),
        certificates: vec![],
        files: vec![path.display().to_string()],
    })
}

/// `ra holder`: the data the certificate does not carry (address, email, mobile) changes.
pub fn edit_holder(
    store: &mut Store,
    cf: &str,
    address: Option<&str>,
    email: Option<&str>,
    mobile: Option<&str>,
    now: Date,
) -> Result<Done, CmsError> {
    let b = &mut store.data;
    let cf = cf.trim().to_uppercase();
    if b.holder(&cf).is_none() {
        return Err(Refusal::NoSuchHolder { codice_fiscale: cf }.into());
    }
    let address = address.map(normalise_address).transpose().map_err(|why| Refusal::InvalidAddress { why: why.0 })?;
    let email = email.map(|v| b.check_contact(ContactKind::Email, v, &cf)).transpose()?;
    let mobile = mobile.map(|v| b.check_contact(ContactKind::Mobile, v, &cf)).transpose()?;
    let mut changes = vec![];
    if let Some(a) = &address {
        if let Some(h) = b.holder_mut(&cf) {
            h.address = Some(a.clone());
        }
        changes.push(format!("indirizzo {a}"));
    }
    if let Some(v) = &email {
        b.replace_contact(ContactKind::Email, v, &cf)?;
        changes.push(format!("email {v}"));
    }
    if let Some(v) = &mobile {
        b.replace_contact(ContactKind::Mobile, v, &cf)?;
        changes.push(format!("cellulare {v}"));
    }
    if changes.is_empty() {
        return Ok(Done { message: format!("holder {cf}: nothing to change"), ..Done::default() });
    }
    let text = format!("dati del titolare modificati: {}", changes.join(", "));
    let practice = b.practices.iter_mut().rev().find(|p| p.codice_fiscale == cf).map(|p| {
        p.log(EventKind::HolderDataChanged, now, &text);
        p.id.clone()
    });
    save(store)?;
    Ok(Done { message: format!("holder {cf}: {}", changes.join(", ")), practice, ..Done::default() })
}

/// One line of `ra events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub practice: String,
    pub practice_kind: PracticeKind,
    pub state: PracticeState,
    pub codice_fiscale: String,
    pub card: String,
    pub cdrl: String,
    pub date: String,
    pub kind: EventKind,
    /// The CMS's name of the event type, e.g. "creazione modulo".
    pub label: &'static str,
    pub event: String,
    /// On a "creazione modulo" event: the second half of the codes can be sent again now.
    pub codes_resendable: bool,
}

/// `ra events`: the event log ("Ricerca Eventi" → "Eventi Carta"), by practice and/or holder.
pub fn events(b: &BackOffice, practice: Option<&str>, holder: Option<&str>) -> Result<Vec<EventRow>, Refusal> {
    if let Some(p) = practice
        && b.practice(p).is_none()
    {
        return Err(Refusal::NoSuchPractice { practice: p.into() });
    }
    let holder = holder.map(|h| h.trim().to_uppercase());
    let mut rows = vec![];
    for p in b
        .practices
        .iter()
        .filter(|p| practice.is_none_or(|id| p.id == id) && holder.as_ref().is_none_or(|cf| p.codice_fiscale == *cf))
    {
        let resendable = p.kind == PracticeKind::Issuance
            && matches!(p.state, PracticeState::AttesaOriginali | PracticeState::Completato)
            && p.envelope.as_ref().is_some_and(|e| e.delivery == CodeDelivery::SmsAndEmail);
        for e in &p.events {
            rows.push(EventRow {
                practice: p.id.clone(),
                practice_kind: p.kind,
                state: p.state,
                codice_fiscale: p.codice_fiscale.clone(),
                card: p.card_serial.clone(),
                cdrl: p.cdrl.clone(),
                date: e.date.clone(),
                kind: e.kind,
                label: e.kind.label(),
                event: e.event.clone(),
                codes_resendable: resendable && e.kind == EventKind::FormCreated,
            });
        }
    }
    Ok(rows)
}

/// Where `ra` writes messages by default.
pub fn default_outbox() -> PathBuf {
    PathBuf::from(outbox::DEFAULT_OUTBOX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_split_with_the_longer_half_first() {
        assert_eq!(split_code("12345678"), ("1234".into(), "5678".into()));
        assert_eq!(split_code("12345"), ("123".into(), "45".into()));
        assert_eq!(shown("123", "45", true), "123**");
        assert_eq!(shown("123", "45", false), "***45");
    }
}
