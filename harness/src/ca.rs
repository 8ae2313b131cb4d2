//! The CA's side of a renewal (spec/domain.md §2.1 steps 4-5): the request is a PKCS#10
//! signed by the new key, wrapped in a CMS SignedData signed by the holder's current qualified
//! key (the MS-WCCE pattern). The CA checks the authorisation (made with the qualified key of
//! the card being renewed), the old certificate's validity and status, the request's own
//! signature and that the subject is unchanged, then issues a certificate with the same profile.

use crate::backoffice::{BackOffice, CertStatus};
use crate::cades;
use crate::dates::Date;
use crate::pki::{CertKind, TestCa};
use der::referenced::OwnedToRef;
use der::{Decode, Encode, Tagged};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use signature::Verifier;
use x509_cert::Certificate;
use x509_cert::request::CertReq;

/// From when the new certificate's 3 years count (spec/domain.md §1.7: the sources disagree).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExpiryRule {
    /// 3 years from the old certificate's expiry: an early renewal loses no days (Enroll pages).
    FromOldExpiry,
    /// 3 years from issuance (older and Aruba Key pages).
    FromIssuance,
}

/// Why the CA refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The authorisation does not verify, or is not from a certificate of this CA.
    #[error("authorisation rejected: {0}")]
    BadAuthorization(String),
    /// The authorisation is signed with the qualified key of another card than the one
    /// being renewed (`signer_card`, as the registry has it).
    #[error(
        "authorisation rejected: it is signed with the qualified key of card {signer_card}, not of card {card} being renewed"
    )]
    OtherCard { signer_card: String, card: String },
    #[error("the authorising certificate has expired")]
    CertExpired,
    #[error("the authorising certificate is not active")]
    CertRevoked,
    /// The request's own signature does not verify.
    #[error("request rejected: {0}")]
    BadRequest(String),
    #[error("the request's subject differs from the certificate's")]
    SubjectChanged,
}

/// Hex serial as the registry keeps it.
pub fn serial_hex(c: &Certificate) -> String {
    firmalab_emulator::hex::encode(c.tbs_certificate().serial_number().as_bytes())
}

fn verify_with(cert_spki: &spki::SubjectPublicKeyInfoOwned, tbs: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = rsa::RsaPublicKey::try_from(cert_spki.owned_to_ref()) else { return false };
    let Ok(sig) = Signature::try_from(sig) else { return false };
    VerifyingKey::<Sha256>::new(key).verify(tbs, &sig).is_ok()
}

/// Checks an authorised renewal request for the card with serial `card` and issues the new
/// certificate.
pub fn issue_renewal(
    ca: &TestCa,
    bo: &BackOffice,
    card: &str,
    authorized: &[u8],
    kind: CertKind,
    now: Date,
    rule: ExpiryRule,
) -> Result<Certificate, Refusal> {
    let v = cades::verify(authorized).map_err(|e| Refusal::BadAuthorization(e.to_string()))?;
    let old = v.signer;
    let old_tbs = old.tbs_certificate();
    // Issued by this CA?
    let ca_spki = ca.issuing.tbs_certificate().subject_public_key_info().clone();
    let tbs_der = old_tbs.to_der().map_err(|e| Refusal::BadAuthorization(e.to_string()))?;
    if old_tbs.issuer() != ca.issuing.tbs_certificate().subject()
        || !verify_with(&ca_spki, &tbs_der, old.signature().raw_bytes())
    {
        return Err(Refusal::BadAuthorization("the authorising certificate is not from this CA".into()));
    }
    if crate::client::role_of(&old.to_der().unwrap_or_default()) != Some(crate::client::KeyRole::Signature) {
        return Err(Refusal::BadAuthorization("only the qualified signature key authorises a renewal".into()));
    }
    let record = bo.cert(&serial_hex(&old));
    if let Some(r) = record
        && r.card_serial != card
    {
        return Err(Refusal::OtherCard { signer_card: r.card_serial.clone(), card: card.to_owned() });
    }
    let from = Date::from_der(&old_tbs.validity().not_before.to_date_time());
    let until = Date::from_der(&old_tbs.validity().not_after.to_date_time());
    if now < from || now >= until {
        return Err(Refusal::CertExpired);
    }
    match record.map(|c| c.status) {
        Some(CertStatus::Active) => {}
        _ => return Err(Refusal::CertRevoked),
    }
    let req = CertReq::from_der(&v.content).map_err(|e| Refusal::BadRequest(format!("not a PKCS#10: {e}")))?;
    let info_der = req.info.to_der().map_err(|e| Refusal::BadRequest(e.to_string()))?;
    if !verify_with(&req.info.public_key, &info_der, req.signature.raw_bytes()) {
        return Err(Refusal::BadRequest("its signature does not verify with its key".into()));
    }
    if &req.info.subject != old_tbs.subject() {
        return Err(Refusal::SubjectChanged);
    }
    let holder = holder_of(old_tbs.subject()).ok_or_else(|| Refusal::BadRequest("subject is not a holder's".into()))?;
    let not_after = match rule {
        ExpiryRule::FromOldExpiry => until.add_years(3),
        ExpiryRule::FromIssuance => now.add_years(3),
    };
    // Unique per issuance, and reproducible: the registry's size tells issuances apart.
    let issued = bo.certificates.len().to_be_bytes();
    let digest = Sha256::digest(
        [old_tbs.serial_number().as_bytes(), &[kind as u8], now.to_string().as_bytes(), &issued[..]].concat(),
    );
    let serial = u64::from_be_bytes([
        digest[0] & 0x7F,
        digest[1],
        digest[2],
        digest[3],
        digest[4],
        digest[5],
        digest[6],
        digest[7],
    ]);
    ca.issue(&crate::pki::Issue {
        kind,
        holder: &holder,
        public_key: req.info.public_key.clone(),
        serial,
        not_before: now,
        not_after,
    })
    .map_err(|e| Refusal::BadRequest(e.to_string()))
}

/// The holder fields of a subject Name.
pub fn holder_of(name: &x509_cert::name::Name) -> Option<crate::pki::Holder> {
    use crate::pki::oid;
    let get = |o| -> Option<String> {
        name.iter().find(|a| a.oid == o).and_then(|a| match a.value.tag() {
            der::Tag::Utf8String | der::Tag::PrintableString => {
                std::str::from_utf8(a.value.value()).ok().map(str::to_owned)
            }
            _ => None,
        })
    };
    Some(crate::pki::Holder {
        first_name: get(oid::GIVEN_NAME)?,
        last_name: get(oid::SURNAME)?,
        codice_fiscale: get(oid::SERIAL_NUMBER)?.strip_prefix("TINIT-")?.to_owned(),
        reference: get(oid::DN_QUALIFIER).unwrap_or_default(),
    })
}
