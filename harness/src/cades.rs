//! CAdES-BES attached signatures (`.p7m`), as Italian qualified signatures are made
//! (spec/domain.md §3): SignedData with the document embedded, SHA-256, and the signed
//! attributes contentType, signingTime, messageDigest and signingCertificateV2 (ESSCertIDv2 with
//! the SHA-256 of the signer's certificate and its issuer/serial). `openssl cms -verify
//! -cades` accepts it; without signingCertificateV2 it would not, and neither does
//! [`verify_cades`].

use crate::dates::Date;
use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::referenced::OwnedToRef;
use der::{Decode, Encode, Sequence};
use sha2::{Digest, Sha256};
use signature::{Keypair, Signer};
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
pub const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");

/// `IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerSerial {
    pub issuer: Vec<GeneralName>,
    pub serial_number: SerialNumber,
}

/// `ESSCertIDv2` (RFC 5035), hashAlgorithm left at its SHA-256 default.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertIdV2 {
    pub cert_hash: OctetString,
    pub issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, ... }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
}

/// Why a SignedData could not be made, or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum CadesError {
    /// DER encoding or the CMS builder failed.
    #[error("{0}")]
    Encoding(String),
    #[error(transparent)]
    Date(#[from] crate::dates::DateError),
    /// The signer (the card) did not sign.
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("not CMS: {0}")]
    NotCms(String),
    #[error("not SignedData")]
    NotSignedData,
    #[error("detached: no content")]
    Detached,
    #[error("no signer")]
    NoSigner,
    #[error("signer not identified by issuer and serial")]
    SignerNotByIssuerSerial,
    #[error("signer certificate not included")]
    SignerCertificateMissing,
    #[error("no signed attributes")]
    NoSignedAttributes,
    #[error("no messageDigest")]
    NoMessageDigest,
    #[error("messageDigest does not match the content")]
    DigestMismatch,
    #[error("signer key: {0}")]
    SignerKey(String),
    #[error("signature does not verify")]
    BadSignature,
    /// Not CAdES: the signed attributes have no signingCertificateV2.
    #[error("missing signing certificate attribute (signingCertificateV2): not CAdES")]
    NoSigningCertificate,
    /// The signingCertificateV2 attribute names another certificate than the signer's.
    #[error("signingCertificateV2 names another certificate than the signer's")]
    SigningCertificateMismatch,
}

fn err(e: impl std::fmt::Display) -> CadesError {
    CadesError::Encoding(e.to_string())
}

fn attribute(oid: ObjectIdentifier, value: &impl Encode) -> Result<Attribute, CadesError> {
    let mut values = SetOfVec::new();
    values.insert(Any::from_der(&value.to_der().map_err(err)?).map_err(err)?).map_err(err)?;
    Ok(Attribute { oid, values })
}

pub fn sha256_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: ID_SHA256, parameters: None }
}

/// The signingCertificateV2 attribute for a certificate.
pub fn signing_certificate_v2(cert: &Certificate) -> Result<Attribute, CadesError> {
    let hash = Sha256::digest(cert.to_der().map_err(err)?);
    let tbs = cert.tbs_certificate();
    attribute(
        ID_SIGNING_CERTIFICATE_V2,
        &SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(hash.to_vec()).map_err(err)?,
                issuer_serial: Some(IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(tbs.issuer().clone())],
                    serial_number: tbs.serial_number().clone(),
                }),
            }],
        },
    )
}

/// Signs `content` as CAdES-BES attached, with `signer` (whose certificate is `cert`), at
/// `when` (signingTime; an injected clock keeps runs reproducible). Returns DER.
pub fn sign_attached<S>(content: &[u8], cert: &Certificate, signer: &S, when: Date) -> Result<Vec<u8>, CadesError>
where
    S: Keypair + DynSignatureAlgorithmIdentifier + Signer<rsa::pkcs1v15::Signature>,
    S::VerifyingKey: EncodePublicKey,
{
    signed_data(ID_DATA, content, cert, signer, Some(when), true)
}

/// SignedData over `content` of type `content_type`, signer identified by issuer and serial.
pub fn signed_data<S>(
    content_type: ObjectIdentifier,
    content: &[u8],
    cert: &Certificate,
    signer: &S,
    when: Option<Date>,
    cades: bool,
) -> Result<Vec<u8>, CadesError>
where
    S: Keypair + DynSignatureAlgorithmIdentifier + Signer<rsa::pkcs1v15::Signature>,
    S::VerifyingKey: EncodePublicKey,
{
    let econtent = Any::new(der::Tag::OctetString, content).map_err(err)?;
    let eci = EncapsulatedContentInfo { econtent_type: content_type, econtent: Some(econtent) };
    let tbs = cert.tbs_certificate();
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let mut si = SignerInfoBuilder::new(sid, sha256_algorithm(), &eci, None).map_err(err)?;
    if let Some(when) = when {
        let time = Time::from(when.to_der()?);
        si.add_signed_attribute(attribute(ID_SIGNING_TIME, &time)?).map_err(err)?;
    }
    if cades {
        si.add_signed_attribute(signing_certificate_v2(cert)?).map_err(err)?;
    }
    let mut builder = SignedDataBuilder::new(&eci);
    builder
        .add_digest_algorithm(sha256_algorithm())
        .map_err(err)?
        .add_certificate(CertificateChoices::Certificate(cert.clone()))
        .map_err(err)?
        .add_signer_info::<S, rsa::pkcs1v15::Signature>(si, signer)
        .map_err(|e| CadesError::Signing(e.to_string()))?;
    let ci: ContentInfo = builder.build().map_err(err)?;
    ci.to_der().map_err(err)
}

/// A parsed SignedData: its content, signer certificate, and whether the signature and the
/// messageDigest attribute hold. What the CA checks on an authorised renewal request.
pub struct Verified {
    pub content: Vec<u8>,
    pub signer: Certificate,
    pub signing_certificate_v2_hash: Option<Vec<u8>>,
}

/// Verifies a SignedData made by [`signed_data`]: one signer, RSA PKCS#1 v1.5 SHA-256 over
/// the signed attributes, messageDigest = SHA-256 of the content, signer certificate included.
pub fn verify(der_bytes: &[u8]) -> Result<Verified, CadesError> {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use signature::Verifier;
    let ci = ContentInfo::from_der(der_bytes).map_err(|e| CadesError::NotCms(e.to_string()))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CadesError::NotSignedData);
    }
    let sd: SignedData = ci.content.decode_as().map_err(err)?;
    let content = sd.encap_content_info.econtent.as_ref().ok_or(CadesError::Detached)?.value().to_vec();
    let si = sd.signer_infos.0.get(0).ok_or(CadesError::NoSigner)?;
    let SignerIdentifier::IssuerAndSerialNumber(isn) = &si.sid else {
        return Err(CadesError::SignerNotByIssuerSerial);
    };
    let signer = sd
        .certificates
        .as_ref()
        .and_then(|cs| {
            cs.0.iter().find_map(|c| match c {
                CertificateChoices::Certificate(c)
                    if c.tbs_certificate().serial_number() == &isn.serial_number
                        && c.tbs_certificate().issuer() == &isn.issuer =>
                {
                    Some(c.clone())
                }
                _ => None,
            })
        })
        .ok_or(CadesError::SignerCertificateMissing)?;
    let attrs = si.signed_attrs.as_ref().ok_or(CadesError::NoSignedAttributes)?;
    let find = |oid| attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.get(0).cloned());
    let md: OctetString = find(ID_MESSAGE_DIGEST).ok_or(CadesError::NoMessageDigest)?.decode_as().map_err(err)?;
    if md.as_bytes() != Sha256::digest(&content).as_slice() {
        return Err(CadesError::DigestMismatch);
    }
    let scv2 = match find(ID_SIGNING_CERTIFICATE_V2) {
        Some(v) => {
            let s: SigningCertificateV2 = v.decode_as().map_err(err)?;
            s.certs.first().map(|c| c.cert_hash.as_bytes().to_vec())
        }
        None => None,
    };
    let spki = signer.tbs_certificate().subject_public_key_info();
    let key = rsa::RsaPublicKey::try_from(spki.owned_to_ref()).map_err(|e| CadesError::SignerKey(e.to_string()))?;
    let signed = attrs.to_der().map_err(err)?;
    let sig = Signature::try_from(si.signature.as_bytes()).map_err(err)?;
    VerifyingKey::<Sha256>::new(key).verify(&signed, &sig).map_err(|_| CadesError::BadSignature)?;
    Ok(Verified { content, signer, signing_certificate_v2_hash: scv2 })
}

/// Verifies a CAdES-BES signature: [`verify`], and the signed signingCertificateV2 attribute
/// that binds the signature to its certificate, whose first ESSCertIDv2 must carry the SHA-256
/// of the signer's certificate (spec/domain.md §3, §6.5). What a renewal form must pass; `openssl
/// cms -verify -cades` refuses the same forms ("missing signing certificate attribute").
pub fn verify_cades(der_bytes: &[u8]) -> Result<Verified, CadesError> {
    let v = verify(der_bytes)?;
    let hash = v.signing_certificate_v2_hash.as_deref().ok_or(CadesError::NoSigningCertificate)?;
    if hash != Sha256::digest(v.signer.to_der().map_err(err)?).as_slice() {
        return Err(CadesError::SigningCertificateMismatch);
    }
    Ok(v)
}
