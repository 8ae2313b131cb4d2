//! The back office's client authentication for the Aruba Key's renewal order (spec/domain.md
//! §2.2: phase 1 on rinnovifirmadigitale.pec.it, "TLS client authentication with the CNS
//! certificate"): the back office sends a fresh challenge, the card signs it with its
//! authentication (CNS0) key, and the back office verifies the signature against the
//! certificate it enrolled for that card.
//!
//! What is signed follows TLS 1.2's CertificateVerify with `rsa_pkcs1_sha256` (RFC 5246
//! §7.4.8: a PKCS#1 v1.5 signature over a hash of the handshake, which holds the server's
//! random and the client's certificate): SHA-256 over [`CONTEXT`], the 32-byte challenge and
//! the SHA-256 of the certificate's DER. The card receives only that digest (as a DigestInfo
//! in the block the host pads), so the same card operation as a browser's client
//! authentication.
//!
//! The back office accepts when: the certificate was issued by the CA's issuing CA (its
//! signature verifies), is valid today, is the authentication certificate the registry holds
//! for this card, still active, and the signature verifies with its key.

use crate::backoffice::{BackOffice, CertStatus};
use crate::client::KeyRole;
use crate::dates::Date;
use crate::pki::TestCa;
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use signature::Verifier;
use x509_cert::Certificate;

/// Separates this signature from every other use of the key (TLS 1.3 does the same with its
/// context strings).
pub const CONTEXT: &[u8] = b"firmalab back office, client authentication for a renewal order\0";

/// The back office's fresh challenge (the server random of the handshake).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge(pub [u8; 32]);

impl Challenge {
    /// 32 bytes from the operating system's randomness.
    pub fn random() -> Result<Self, String> {
        let mut c = [0u8; 32];
        let mut rng = firmalab_emulator::CardRng::from_os()?;
        rand_core::Rng::fill_bytes(&mut rng, &mut c);
        Ok(Challenge(c))
    }

    /// A reproducible challenge for tests and `--seed` runs (INSECURE: predictable).
    pub fn insecure_from_seed(seed: u64) -> Self {
        Challenge(Sha256::digest(format!("firmalab insecure challenge {seed}").as_bytes()).into())
    }
}

/// The digest the card signs for `certificate`.
pub fn signed_digest(challenge: &Challenge, certificate_der: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CONTEXT);
    h.update(challenge.0);
    h.update(Sha256::digest(certificate_der));
    h.finalize().into()
}

/// Why the back office refused the authentication.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthRefusal {
    #[error("the certificate does not parse: {0}")]
    NotACertificate(String),
    #[error("the certificate was not issued by this CA")]
    NotFromThisCa,
    #[error("the certificate is not valid on {0}")]
    NotValid(Date),
    #[error("certificate {serial} is not the authentication certificate enrolled for card {card}")]
    NotEnrolled { serial: String, card: String },
    #[error("certificate {serial} is {status:?}, not active")]
    NotActive { serial: String, status: CertStatus },
    #[error("the signature over the challenge does not verify with certificate {serial}")]
    BadSignature { serial: String },
}

/// Who the back office authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The certificate's serial, hex.
    pub certificate: String,
    pub codice_fiscale: String,
    /// The CDRL that issued the card.
    pub cdrl: String,
}

fn verifies(spki: &spki::SubjectPublicKeyInfoOwned, message: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = rsa::RsaPublicKey::try_from(spki.owned_to_ref()) else { return false };
    let Ok(sig) = Signature::try_from(sig) else { return false };
    VerifyingKey::<Sha256>::new(key).verify(message, &sig).is_ok()
}

/// Checks the card's answer to `challenge`: `signature` over [`signed_digest`] by the key of
/// `certificate_der`, which must be the active authentication certificate enrolled for
/// `card`.
pub fn verify(
    ca: &TestCa,
    bo: &BackOffice,
    card: &str,
    certificate_der: &[u8],
    challenge: &Challenge,
    signature: &[u8],
    now: Date,
) -> Result<Authenticated, AuthRefusal> {
    let cert = Certificate::from_der(certificate_der).map_err(|e| AuthRefusal::NotACertificate(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    let tbs_der = tbs.to_der().map_err(|e| AuthRefusal::NotACertificate(e.to_string()))?;
    let issuer = ca.issuing.tbs_certificate();
    if tbs.issuer() != issuer.subject()
        || !verifies(issuer.subject_public_key_info(), &tbs_der, cert.signature().raw_bytes())
    {
        return Err(AuthRefusal::NotFromThisCa);
    }
    let v = tbs.validity();
    let (from, until) = (Date::from_der(&v.not_before.to_date_time()), Date::from_der(&v.not_after.to_date_time()));
    if now < from || now >= until {
        return Err(AuthRefusal::NotValid(now));
    }
    let serial = crate::ca::serial_hex(&cert);
    let record = bo
        .cert(&serial)
        .filter(|r| r.card_serial == card && r.role == KeyRole::Authentication)
        .ok_or_else(|| AuthRefusal::NotEnrolled { serial: serial.clone(), card: card.to_owned() })?;
    if record.status != CertStatus::Active {
        return Err(AuthRefusal::NotActive { serial, status: record.status });
    }
    let key = rsa::RsaPublicKey::try_from(tbs.subject_public_key_info().owned_to_ref())
        .map_err(|_| AuthRefusal::BadSignature { serial: serial.clone() })?;
    let digest = signed_digest(challenge, certificate_der);
    if key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, signature).is_err() {
        return Err(AuthRefusal::BadSignature { serial });
    }
    let cdrl = bo.card(card).map(|c| c.cdrl.clone()).unwrap_or_default();
    Ok(Authenticated { certificate: serial, codice_fiscale: record.codice_fiscale.clone(), cdrl })
}
