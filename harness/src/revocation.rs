//! Revocation that relying software checks with its own code, served by existing engines:
//!
//! * [`crl_der`]: the CRL of the issuing CA, signed by it (CRL number, authority key id, a
//!   reason per entry: certificateHold for a suspended certificate), for `openssl verify
//!   -crl_check` or any HTTP server at the certificates' CRL distribution point;
//! * [`write_ocsp_dir`]: the `index.txt` (and the CA, responder certificate and key) that
//!   `openssl ocsp -index … -rsigner … -rkey … -CA …` serves as a real OCSP responder;
//! * [`query`]: an OCSP client (RFC 6960 over HTTP POST) that checks the response's signature
//!   and the responder's authorisation, for the diagnostic's `--ocsp URL`.
//!
//! The back office is the source of truth; both views are derived from it on demand.

use crate::backoffice::{BackOffice, CertRecord, CertStatus, RevocationReason};
use crate::dates::Date;
use crate::pki::{TestCa, oid};
use der::asn1::{Any, BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::referenced::OwnedToRef;
use der::{Decode, Encode, EncodePem, Tag, Tagged};
use sha2::{Digest, Sha256};
use signature::{SignatureEncoding, Signer, Verifier};
use spki::AlgorithmIdentifierOwned;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, ExtendedKeyUsage};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

/// Why a CRL or the OCSP files could not be made, or an OCSP responder could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// DER encoding or signing failed.
    #[error("{0}")]
    Encoding(String),
    #[error(transparent)]
    Date(#[from] crate::dates::DateError),
    /// A registry serial that is not hex.
    #[error("serial {serial}: {why}")]
    Serial { serial: String, why: String },
    #[error(
        "the CA folder has no OCSP responder (ocsp.pem, ocsp.key.pem): run `firmalab fixtures regenerate` or use fixtures/ca"
    )]
    NoResponder,
    #[error(transparent)]
    Outbox(#[from] crate::outbox::OutboxError),
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No randomness for the nonce.
    #[error("{0}")]
    Rng(String),
    /// The built-in test CA (the issuer the diagnostic asks about).
    #[error(transparent)]
    Fixture(#[from] crate::fixtures::FixtureError),
    /// An HTTP exchange with `url` failed.
    #[error("{url}: {why}")]
    Http { url: String, why: String },
    /// The OCSP answer is not one to trust or use ([`read_response`]).
    #[error("{0}")]
    Response(String),
    /// Asking the OCSP responder at `url` failed (unreachable, bad answer, unknown certificate).
    #[error("OCSP responder {url}: {why}")]
    Responder { url: String, why: String },
}

fn err(e: impl std::fmt::Display) -> RevocationError {
    RevocationError::Encoding(e.to_string())
}

/// A certificate as CRL and OCSP publish it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Uppercase hex, as the registry and `index.txt` write it.
    pub serial: String,
    pub not_after: Date,
    /// When and why it stopped being good; `None`: good.
    pub revoked: Option<(Date, RevocationReason)>,
    /// For `index.txt`'s subject column.
    pub subject: String,
}

/// When and why a registry record is not good. A renewal's certificate waiting for the CDRL is
/// on hold since its issuance; a version 1 record without a date counts from `now`.
pub fn revocation_of(c: &CertRecord, now: Date) -> Option<(Date, RevocationReason)> {
    let when = |fallback: Date| c.change.as_ref().and_then(|ch| ch.date.parse().ok()).unwrap_or(fallback);
    let reason = |fallback| c.change.as_ref().map_or(fallback, |ch| ch.reason);
    match c.status {
        CertStatus::Active => None,
        CertStatus::Suspended => Some((when(c.not_before.parse().unwrap_or(now)), RevocationReason::CertificateHold)),
        CertStatus::Superseded => Some((when(now), reason(RevocationReason::Superseded))),
        CertStatus::Revoked => Some((when(now), reason(RevocationReason::Unspecified))),
    }
}

/// Every certificate of the registry, in registry order.
pub fn entries(b: &BackOffice, now: Date) -> Vec<Entry> {
    b.certificates
        .iter()
        .map(|c| Entry {
            serial: c.serial.to_uppercase(),
            not_after: c.not_after.parse().unwrap_or(now),
            revoked: revocation_of(c, now),
            subject: format!("/C=IT/serialNumber=TINIT-{}/CN={:?} {}", c.codice_fiscale, c.role, c.serial),
        })
        .collect()
}

fn sha256_with_rsa() -> Result<AlgorithmIdentifierOwned, RevocationError> {
    Ok(AlgorithmIdentifierOwned { oid: oid::SHA256_WITH_RSA, parameters: Some(Any::new(Tag::Null, []).map_err(err)?) })
}

fn time(d: Date) -> Result<Time, RevocationError> {
    Ok(Time::from(d.to_der()?))
}

fn ext(id: ObjectIdentifier, value: &impl Encode) -> Result<Extension, RevocationError> {
    Ok(Extension {
        extn_id: id,
        critical: false,
        extn_value: OctetString::new(value.to_der().map_err(err)?).map_err(err)?,
    })
}

fn crl_reason(r: RevocationReason) -> CrlReason {
    match r {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
    }
}

/// The issuing CA's CRL (v2, SHA-256 with RSA): every certificate of the registry that is not
/// good, with its date and reason; thisUpdate `now`, nextUpdate `now + next_days`; CRL number
/// `number`; the issuing CA's key identifier.
pub fn crl_der(
    ca: &TestCa,
    b: &BackOffice,
    now: Date,
    next_days: i64,
    number: u64,
) -> Result<Vec<u8>, RevocationError> {
    let mut revoked: Vec<RevokedCert> = vec![];
    for e in entries(b, now) {
        let Some((date, reason)) = e.revoked else { continue };
        let bytes = firmalab_emulator::hex::decode(&e.serial)
            .map_err(|m| RevocationError::Serial { serial: e.serial.clone(), why: m.to_string() })?;
        revoked.push(RevokedCert {
            serial_number: SerialNumber::new(&bytes).map_err(err)?,
            revocation_date: time(date)?,
            crl_entry_extensions: Some(vec![ext(oid::CRL_REASON, &crl_reason(reason))?]),
        });
    }
    let ca_spki = ca.issuing.tbs_certificate().subject_public_key_info();
    let extensions: Extensions = vec![
        ext(
            oid::AUTHORITY_KEY_ID,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(crate::pki::key_identifier(ca_spki)).map_err(err)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        ext(oid::CRL_NUMBER, &number)?,
    ];
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: sha256_with_rsa()?,
        issuer: ca.issuing.tbs_certificate().subject().clone(),
        this_update: time(now)?,
        next_update: Some(time(now.add_days(next_days))?),
        revoked_certificates: if revoked.is_empty() { None } else { Some(revoked) },
        crl_extensions: Some(extensions),
    };
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(ca.issuing_key.clone());
    let sig = signer.try_sign(&tbs.to_der().map_err(err)?).map_err(err)?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: sha256_with_rsa()?,
        signature: BitString::from_bytes(&sig.to_vec()).map_err(err)?,
    };
    crl.to_der().map_err(err)
}

/// A DER CRL as PEM (`-----BEGIN X509 CRL-----`).
pub fn crl_pem(der: &[u8]) -> Result<String, RevocationError> {
    CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
        .map_err(err)?
        .to_pem(der::pem::LineEnding::LF)
        .map_err(err)
}

/// A date as OpenSSL's `index.txt` writes it: UTCTime before 2050, GeneralizedTime after.
fn index_time(d: Date) -> String {
    if d.year < 2050 {
        format!("{:02}{:02}{:02}000000Z", d.year % 100, d.month, d.day)
    } else {
        format!("{:04}{:02}{:02}000000Z", d.year, d.month, d.day)
    }
}

/// OpenSSL's CA database (`index.txt`): `V`/`R`, expiry, revocation date and reason, serial,
/// file (`unknown`), subject; tab-separated, one line per certificate.
pub fn ocsp_index(b: &BackOffice, now: Date) -> String {
    let mut out = String::new();
    for e in entries(b, now) {
        let (flag, revocation) = match e.revoked {
            None => ('V', String::new()),
            Some((date, reason)) => ('R', format!("{},{}", index_time(date), reason.openssl_name())),
        };
        let subject = e.subject.replace(['\t', '\n', '\r'], " ");
        out.push_str(&format!("{flag}\t{}\t{revocation}\t{}\tunknown\t{subject}\n", index_time(e.not_after), e.serial));
    }
    out
}

/// What [`write_ocsp_dir`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OcspFiles {
    pub index: PathBuf,
    pub ca: PathBuf,
    pub chain: PathBuf,
    pub rsigner: PathBuf,
    pub rkey: PathBuf,
    pub certificates: usize,
    pub revoked: usize,
    /// The responder's command line.
    pub command: String,
}

/// The port of an `http://host:port/…` URL (80 when none is given).
pub fn url_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => port.parse().ok(),
        _ => Some(80),
    }
}

/// Writes into `dir` what `openssl ocsp` needs to answer for the issuing CA: `index.txt` (and
/// `index.txt.attr`), `ca.pem` (the issuing CA), `chain.pem` (issuing + root, for clients),
/// `ocsp.pem` and `ocsp.key.pem` (the responder). Files `0600`, replaced atomically.
pub fn write_ocsp_dir(ca: &TestCa, b: &BackOffice, dir: &Path, now: Date) -> Result<OcspFiles, RevocationError> {
    use der::pem::LineEnding::LF;
    use pkcs1::EncodeRsaPrivateKey;
    let (rsigner, rkey) = ca.responder.as_ref().ok_or(RevocationError::NoResponder)?;
    crate::outbox::ensure_dir(dir)?;
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, RevocationError> {
        let p = dir.join(name);
        firmalab_emulator::storage::write_private(&p, bytes)
            .map_err(|source| RevocationError::Write { path: p.clone(), source })?;
        Ok(p)
    };
    let pem = |c: &Certificate| c.to_pem(LF).map_err(err);
    let index = write("index.txt", ocsp_index(b, now).as_bytes())?;
    write("index.txt.attr", b"unique_subject = no\n")?;
    let ca_pem = write("ca.pem", pem(&ca.issuing)?.as_bytes())?;
    let chain = write("chain.pem", format!("{}{}", pem(&ca.issuing)?, pem(&ca.root)?).as_bytes())?;
    let rsigner_path = write("ocsp.pem", pem(rsigner)?.as_bytes())?;
    let rkey_path = write("ocsp.key.pem", rkey.to_pkcs1_pem(LF).map_err(err)?.as_bytes())?;
    let all = entries(b, now);
    let port = url_port(&ca.urls.ocsp).unwrap_or(2560);
    let command = format!(
        "openssl ocsp -index {} -port {port} -rsigner {} -rkey {} -CA {} -ignore_err",
        index.display(),
        rsigner_path.display(),
        rkey_path.display(),
        ca_pem.display()
    );
    Ok(OcspFiles {
        index,
        ca: ca_pem,
        chain,
        rsigner: rsigner_path,
        rkey: rkey_path,
        certificates: all.len(),
        revoked: all.iter().filter(|e| e.revoked.is_some()).count(),
        command,
    })
}

/// RFC 6960 structures (the subset a client sends and reads).
mod asn1 {
    use der::asn1::{Any, BitString, GeneralizedTime, ObjectIdentifier, OctetString};
    use der::{Enumerated, Sequence};
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::Certificate;
    use x509_cert::ext::Extensions;
    use x509_cert::ext::pkix::crl::CrlReason;
    use x509_cert::serial_number::SerialNumber;

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct CertId {
        pub hash_algorithm: AlgorithmIdentifierOwned,
        pub issuer_name_hash: OctetString,
        pub issuer_key_hash: OctetString,
        pub serial_number: SerialNumber,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct Request {
        pub req_cert: CertId,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct TbsRequest {
        pub request_list: Vec<Request>,
        #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
        pub request_extensions: Option<Extensions>,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct OcspRequest {
        pub tbs_request: TbsRequest,
    }

    #[derive(Copy, Clone, Debug, Eq, PartialEq, Enumerated)]
    #[repr(u32)]
    pub enum ResponseStatus {
        Successful = 0,
        MalformedRequest = 1,
        InternalError = 2,
        TryLater = 3,
        SigRequired = 5,
        Unauthorized = 6,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct ResponseBytes {
        pub response_type: ObjectIdentifier,
        pub response: OctetString,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct OcspResponse {
        pub response_status: ResponseStatus,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub response_bytes: Option<ResponseBytes>,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct BasicOcspResponse {
        /// Kept as received: the signature covers these bytes.
        pub tbs_response_data: Any,
        pub signature_algorithm: AlgorithmIdentifierOwned,
        pub signature: BitString,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub certs: Option<Vec<Certificate>>,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct ResponseData {
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub version: Option<u8>,
        pub responder_id: Any,
        pub produced_at: GeneralizedTime,
        pub responses: Vec<SingleResponse>,
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
        pub response_extensions: Option<Extensions>,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct SingleResponse {
        pub cert_id: CertId,
        /// `good [0] NULL | revoked [1] RevokedInfo | unknown [2] NULL`, implicit tags.
        pub cert_status: Any,
        pub this_update: GeneralizedTime,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub next_update: Option<GeneralizedTime>,
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
        pub single_extensions: Option<Extensions>,
    }

    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    pub struct RevokedInfo {
        pub revocation_time: GeneralizedTime,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub revocation_reason: Option<CrlReason>,
    }
}

/// What an OCSP responder said about a certificate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OcspStatus {
    Good,
    Revoked {
        date: String,
        /// The CRLReason name (`certificateHold` for a suspension), when given.
        reason: Option<String>,
    },
    Unknown,
}

fn reason_name(r: CrlReason) -> &'static str {
    match r {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
}

fn cert_id(cert: &Certificate, issuer: &Certificate) -> Result<asn1::CertId, RevocationError> {
    let name = issuer.tbs_certificate().subject().to_der().map_err(err)?;
    let key = issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
    Ok(asn1::CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: oid::SHA256,
            parameters: Some(Any::new(Tag::Null, []).map_err(err)?),
        },
        issuer_name_hash: OctetString::new(Sha256::digest(&name).to_vec()).map_err(err)?,
        issuer_key_hash: OctetString::new(Sha256::digest(key).to_vec()).map_err(err)?,
        serial_number: cert.tbs_certificate().serial_number().clone(),
    })
}

/// An OCSP request for one certificate, with a nonce (RFC 8954: 32 bytes).
fn request(cert: &Certificate, issuer: &Certificate, nonce: &[u8]) -> Result<Vec<u8>, RevocationError> {
    let nonce_ext = ext(oid::OCSP_NONCE, &OctetString::new(nonce).map_err(err)?)?;
    asn1::OcspRequest {
        tbs_request: asn1::TbsRequest {
            request_list: vec![asn1::Request { req_cert: cert_id(cert, issuer)? }],
            request_extensions: Some(vec![nonce_ext]),
        },
    }
    .to_der()
    .map_err(err)
}

fn verifies(signer: &Certificate, tbs: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = rsa::RsaPublicKey::try_from(signer.tbs_certificate().subject_public_key_info().owned_to_ref()) else {
        return false;
    };
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else { return false };
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(tbs, &sig).is_ok()
}

fn ocsp_signing(c: &Certificate) -> bool {
    c.tbs_certificate().extensions().into_iter().flatten().any(|e| {
        e.extn_id == oid::EXT_KEY_USAGE
            && ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).is_ok_and(|eku| eku.0.contains(&oid::OCSP_SIGNING))
    })
}

/// Checks a DER OCSP response for `cert` (issued by `issuer`) and returns the status: status
/// successful, a basic response, signed (SHA-256 with RSA) by the issuer or by a certificate
/// the issuer signed for OCSP signing, our nonce echoed when the responder echoes one, and a
/// single response for this certificate.
pub fn read_response(
    der: &[u8],
    cert: &Certificate,
    issuer: &Certificate,
    nonce: &[u8],
) -> Result<OcspStatus, RevocationError> {
    let resp = asn1::OcspResponse::from_der(der)
        .map_err(|e| RevocationError::Response(format!("not an OCSP response: {e}")))?;
    if resp.response_status != asn1::ResponseStatus::Successful {
        return Err(RevocationError::Response(format!("the responder answered {:?}", resp.response_status)));
    }
    let bytes =
        resp.response_bytes.ok_or_else(|| RevocationError::Response("a successful response without a body".into()))?;
    if bytes.response_type != oid::OCSP_BASIC {
        return Err(RevocationError::Response(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let basic = asn1::BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| RevocationError::Response(format!("basic response: {e}")))?;
    if basic.signature_algorithm.oid != oid::SHA256_WITH_RSA {
        return Err(RevocationError::Response(format!(
            "signature algorithm {} is not sha256WithRSAEncryption",
            basic.signature_algorithm.oid
        )));
    }
    let tbs = basic.tbs_response_data.to_der().map_err(err)?;
    let sig = basic.signature.raw_bytes();
    let authorised = |c: &Certificate| -> bool {
        if c == issuer {
            return true;
        }
        let Ok(c_tbs) = c.tbs_certificate().to_der() else { return false };
        c.tbs_certificate().issuer() == issuer.tbs_certificate().subject()
            && verifies(issuer, &c_tbs, c.signature().raw_bytes())
            && ocsp_signing(c)
    };
    let signer_ok = match &basic.certs {
        Some(certs) if !certs.is_empty() => certs.iter().any(|c| verifies(c, &tbs, sig) && authorised(c)),
        _ => verifies(issuer, &tbs, sig),
    };
    if !signer_ok {
        return Err(RevocationError::Response(
            "the response is not signed by the CA or by a responder the CA authorised".into(),
        ));
    }
    let data =
        asn1::ResponseData::from_der(&tbs).map_err(|e| RevocationError::Response(format!("response data: {e}")))?;
    if let Some(echo) = data
        .response_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oid::OCSP_NONCE)
        .map(|e| e.extn_value.as_bytes())
    {
        let ours = OctetString::new(nonce).map_err(err)?.to_der().map_err(err)?;
        if echo != ours.as_slice() {
            return Err(RevocationError::Response("the response's nonce is not the request's".into()));
        }
    }
    let id = cert_id(cert, issuer)?;
    let single = data
        .responses
        .iter()
        .find(|r| {
            r.cert_id.serial_number == id.serial_number
                && r.cert_id.issuer_name_hash == id.issuer_name_hash
                && r.cert_id.issuer_key_hash == id.issuer_key_hash
        })
        .ok_or_else(|| RevocationError::Response("the response does not answer for this certificate".into()))?;
    let date = |t: &GeneralizedTime| Date::from_der(&t.to_date_time()).to_string();
    match single.cert_status.tag() {
        Tag::ContextSpecific { number, .. } if number.value() == 0 => Ok(OcspStatus::Good),
        Tag::ContextSpecific { number, .. } if number.value() == 2 => Ok(OcspStatus::Unknown),
        Tag::ContextSpecific { number, .. } if number.value() == 1 => {
            let seq = Any::new(Tag::Sequence, single.cert_status.value()).map_err(err)?.to_der().map_err(err)?;
            let info = asn1::RevokedInfo::from_der(&seq)
                .map_err(|e| RevocationError::Response(format!("revoked info: {e}")))?;
            Ok(OcspStatus::Revoked {
                date: date(&info.revocation_time),
                reason: info.revocation_reason.map(|r| reason_name(r).to_owned()),
            })
        }
        other => Err(RevocationError::Response(format!("certificate status with tag {other}"))),
    }
}

/// How long [`query`] waits to connect and for the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest OCSP answer read.
const MAX_RESPONSE: u64 = 1024 * 1024;

/// POSTs `body` to an `http://` URL and returns the response body of a 200 answer.
pub fn http_post(url: &str, content_type: &str, body: &[u8], timeout: Duration) -> Result<Vec<u8>, RevocationError> {
    use std::net::ToSocketAddrs;
    let http = |why: String| RevocationError::Http { url: url.to_owned(), why };
    let rest = url.strip_prefix("http://").ok_or_else(|| http("only http:// URLs (OCSP is plain HTTP)".into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port = url_port(url).ok_or_else(|| http("bad port".into()))?;
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => authority,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (bare, port).to_socket_addrs().map_err(|e| http(e.to_string()))?.collect();
    let mut last = http("no address".into());
    let mut stream = None;
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = http(e.to_string()),
        }
    }
    let mut s = stream.ok_or(last)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(body)).map_err(|e| http(e.to_string()))?;
    let mut answer = vec![];
    s.take(MAX_RESPONSE + 1).read_to_end(&mut answer).map_err(|e| http(e.to_string()))?;
    if answer.len() as u64 > MAX_RESPONSE {
        return Err(http(format!("answer larger than {MAX_RESPONSE} bytes")));
    }
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| http("not an HTTP answer".into()))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(http(status.to_owned()));
    }
    let mut body = answer[split + 4..].to_vec();
    if let Some(len) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
    }) {
        body.truncate(len);
    }
    Ok(body)
}

/// Asks the OCSP responder at `url` about `cert` (issued by `issuer`) and checks the answer
/// ([`read_response`]).
pub fn query(url: &str, cert: &Certificate, issuer: &Certificate) -> Result<OcspStatus, RevocationError> {
    let mut nonce = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut firmalab_emulator::CardRng::from_os().map_err(RevocationError::Rng)?, &mut nonce);
    let responder = |why: String| RevocationError::Responder { url: url.to_owned(), why };
    let body =
        http_post(url, "application/ocsp-request", &request(cert, issuer, &nonce)?, TIMEOUT).map_err(|e| match e {
            RevocationError::Http { why, .. } => responder(why),
            other => responder(other.to_string()),
        })?;
    read_response(&body, cert, issuer, &nonce).map_err(|e| responder(e.to_string()))
}

/// The diagnostic's "not revoked": the certificate's status from the OCSP responder at `ocsp`
/// when given (issuer: the built-in test CA), else from the back office. A responder that does
/// not know the certificate, or cannot be asked, is an error.
pub fn status_for_diagnostic(
    cert: &Certificate,
    bo: &BackOffice,
    ocsp: Option<&str>,
) -> Result<Option<CertStatus>, RevocationError> {
    let Some(url) = ocsp else { return Ok(bo.cert(&crate::ca::serial_hex(cert)).map(|c| c.status)) };
    let issuer = crate::fixtures::builtin_ca()?.issuing;
    Ok(Some(match query(url, cert, &issuer)? {
        OcspStatus::Good => CertStatus::Active,
        OcspStatus::Revoked { reason, .. } => match reason.as_deref() {
            Some("certificateHold") => CertStatus::Suspended,
            Some("superseded") => CertStatus::Superseded,
            _ => CertStatus::Revoked,
        },
        OcspStatus::Unknown => {
            return Err(RevocationError::Responder {
                url: url.to_owned(),
                why: format!(
                    "status unknown for certificate {}: the CA's responder does not know it",
                    crate::ca::serial_hex(cert)
                ),
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_times_switch_to_generalized_time_in_2050() {
        assert_eq!(index_time(Date::new(2026, 7, 1)), "260701000000Z");
        assert_eq!(index_time(Date::new(2051, 1, 2)), "20510102000000Z");
    }

    #[test]
    fn url_ports() {
        assert_eq!(url_port("http://127.0.0.1:2560"), Some(2560));
        assert_eq!(url_port("http://127.0.0.1:2561/x.crl"), Some(2561));
        assert_eq!(url_port("http://ca.example/ocsp"), Some(80));
        assert_eq!(url_port("http://[::1]:9/"), Some(9));
        assert_eq!(url_port("https://x/"), None);
    }
}
