//! The test PKI: a root and an issuing CA shaped like the Italian qualified CA of
//! spec/domain.md §1.5 (RSA-2048, SHA-256), and the holder certificate profiles.
//!
//! Everything is built with the RustCrypto `x509-cert` / `der` types, no hand-written DER.
//! These keys are public test material: nothing signed by them is trusted anywhere.

use crate::dates::Date;
use const_oid::ObjectIdentifier;
use der::asn1::{Any, Ia5String, OctetString, PrintableString};
use der::{Decode, Encode, EncodePem, Sequence, Tag};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use std::path::Path;
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, profile::BuilderProfile};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// Object identifiers used by the profiles.
pub mod oid {
    use const_oid::ObjectIdentifier as O;
    pub const COUNTRY: O = O::new_unwrap("2.5.4.6");
    pub const LOCALITY: O = O::new_unwrap("2.5.4.7");
    pub const ORGANIZATION: O = O::new_unwrap("2.5.4.10");
    pub const ORGANIZATIONAL_UNIT: O = O::new_unwrap("2.5.4.11");
    pub const COMMON_NAME: O = O::new_unwrap("2.5.4.3");
    pub const SURNAME: O = O::new_unwrap("2.5.4.4");
    pub const GIVEN_NAME: O = O::new_unwrap("2.5.4.42");
    pub const SERIAL_NUMBER: O = O::new_unwrap("2.5.4.5");
    pub const DN_QUALIFIER: O = O::new_unwrap("2.5.4.46");
    pub const ORGANIZATION_IDENTIFIER: O = O::new_unwrap("2.5.4.97");
    pub const KEY_USAGE: O = O::new_unwrap("2.5.29.15");
    pub const SUBJECT_KEY_ID: O = O::new_unwrap("2.5.29.14");
    pub const AUTHORITY_KEY_ID: O = O::new_unwrap("2.5.29.35");
    pub const BASIC_CONSTRAINTS: O = O::new_unwrap("2.5.29.19");
    pub const CERTIFICATE_POLICIES: O = O::new_unwrap("2.5.29.32");
    pub const EXT_KEY_USAGE: O = O::new_unwrap("2.5.29.37");
    pub const QC_STATEMENTS: O = O::new_unwrap("1.3.6.1.5.5.7.1.3");
    pub const CLIENT_AUTH: O = O::new_unwrap("1.3.6.1.5.5.7.3.2");
    pub const EMAIL_PROTECTION: O = O::new_unwrap("1.3.6.1.5.5.7.3.4");
    /// ETSI EN 319 411-2 QCP-n-qscd.
    pub const QCP_N_QSCD: O = O::new_unwrap("0.4.0.194112.1.2");
    /// ArubaPEC's qualified-certificate policy arc (spec/domain.md §1.5).
    pub const ARUBA_QUALIFIED: O = O::new_unwrap("1.3.6.1.4.1.29741.1.7.2");
    /// AgID "agIDcert".
    pub const AGID_CERT: O = O::new_unwrap("1.3.76.16.6");
    /// AgID CNS authentication certificate policy.
    pub const AGID_CNS: O = O::new_unwrap("1.3.76.16.2.1");
    pub const QC_COMPLIANCE: O = O::new_unwrap("0.4.0.1862.1.1");
    pub const QC_RETENTION_PERIOD: O = O::new_unwrap("0.4.0.1862.1.3");
    pub const QC_SSCD: O = O::new_unwrap("0.4.0.1862.1.4");
    pub const QC_PDS: O = O::new_unwrap("0.4.0.1862.1.5");
    pub const AUTHORITY_INFO_ACCESS: O = O::new_unwrap("1.3.6.1.5.5.7.1.1");
    pub const CRL_DISTRIBUTION_POINTS: O = O::new_unwrap("2.5.29.31");
    pub const CRL_NUMBER: O = O::new_unwrap("2.5.29.20");
    pub const CRL_REASON: O = O::new_unwrap("2.5.29.21");
    /// id-ad-ocsp: the OCSP responder in an AIA.
    pub const AD_OCSP: O = O::new_unwrap("1.3.6.1.5.5.7.48.1");
    pub const OCSP_BASIC: O = O::new_unwrap("1.3.6.1.5.5.7.48.1.1");
    pub const OCSP_NONCE: O = O::new_unwrap("1.3.6.1.5.5.7.48.1.2");
    /// id-pkix-ocsp-nocheck: the responder's own certificate is not checked for revocation.
    pub const OCSP_NOCHECK: O = O::new_unwrap("1.3.6.1.5.5.7.48.1.5");
    pub const OCSP_SIGNING: O = O::new_unwrap("1.3.6.1.5.5.7.3.9");
    pub const SHA256_WITH_RSA: O = O::new_unwrap("1.2.840.113549.1.1.11");
    pub const SHA256: O = O::new_unwrap("2.16.840.1.101.3.4.2.1");
}

/// Where relying software checks revocation: the URLs every holder certificate carries (AIA
/// OCSP and CRL distribution point). Both default to loopback; `FIRMALAB_OCSP_URL` and
/// `FIRMALAB_CRL_URL` change them for `image new` and renewals (the fixtures always use the
/// defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationUrls {
    pub ocsp: String,
    pub crl: String,
}

/// The OCSP responder's default URL: `openssl ocsp -port 2560` on this machine.
pub const DEFAULT_OCSP_URL: &str = "http://127.0.0.1:2560";
/// The CRL's default URL: the file `ra crl` writes, served by any static HTTP server.
pub const DEFAULT_CRL_URL: &str = "http://127.0.0.1:2561/firmalab-test-ca.crl";

impl Default for RevocationUrls {
    fn default() -> Self {
        RevocationUrls { ocsp: DEFAULT_OCSP_URL.into(), crl: DEFAULT_CRL_URL.into() }
    }
}

impl RevocationUrls {
    /// The defaults, each replaced by `FIRMALAB_OCSP_URL` / `FIRMALAB_CRL_URL` when set.
    pub fn from_env() -> Self {
        let get = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| d.into());
        RevocationUrls {
            ocsp: get("FIRMALAB_OCSP_URL", DEFAULT_OCSP_URL),
            crl: get("FIRMALAB_CRL_URL", DEFAULT_CRL_URL),
        }
    }
}

/// `QCStatement ::= SEQUENCE { statementId OID, statementInfo ANY OPTIONAL }` (RFC 3739).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct QcStatement {
    pub statement_id: ObjectIdentifier,
    pub statement_info: Option<Any>,
}

/// `PdsLocation ::= SEQUENCE { url IA5String, language PrintableString }` (ETSI EN 319 412-5).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PdsLocation {
    pub url: Ia5String,
    pub language: PrintableString,
}

/// Why a name, an extension, a certificate or the test CA could not be built, read or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// DER encoding or the certificate builder failed.
    #[error("{0}")]
    Encoding(String),
    #[error(transparent)]
    Date(#[from] crate::dates::DateError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file of the test CA could not be read or written.
    #[error("{}: {why}", path.display())]
    File { path: std::path::PathBuf, why: String },
    /// A PEM file of the test CA does not parse.
    #[error("{name}: {why}")]
    Pem { name: String, why: String },
}

fn err(e: impl std::fmt::Display) -> PkiError {
    PkiError::Encoding(e.to_string())
}

/// An X.500 name from (attribute, value) pairs, most significant first.
pub fn name(attrs: &[(ObjectIdentifier, &str)]) -> Result<Name, PkiError> {
    let mut rdns = RdnSequence::default();
    for (oid, value) in attrs {
        let tag = match *oid {
            oid::COUNTRY | oid::SERIAL_NUMBER | oid::DN_QUALIFIER => Tag::PrintableString,
            _ => Tag::Utf8String,
        };
        let mut rdn = RelativeDistinguishedName::default();
        rdn.insert(AttributeTypeAndValue { oid: *oid, value: Any::new(tag, value.as_bytes()).map_err(err)? })
            .map_err(err)?;
        rdns.push(rdn);
    }
    Name::from_der(&rdns.to_der().map_err(err)?).map_err(err)
}

fn extension(id: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension, PkiError> {
    Ok(Extension { extn_id: id, critical, extn_value: OctetString::new(value.to_der().map_err(err)?).map_err(err)? })
}

/// RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the subjectPublicKey bits.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    Sha256::digest(spki.subject_public_key.raw_bytes()).get(..20).unwrap_or_default().to_vec()
}

/// The qcStatements of an ArubaPEC qualified certificate: QcCompliance, QcRetentionPeriod 20,
/// QcSSCD, QcPDS (it/en).
pub fn qc_statements() -> Result<Vec<QcStatement>, PkiError> {
    let pds = |url: &str, lang: &str| -> Result<PdsLocation, PkiError> {
        Ok(PdsLocation { url: Ia5String::new(url).map_err(err)?, language: PrintableString::new(lang).map_err(err)? })
    };
    let pds_list = vec![
        pds("https://ca.firmalab.test/pds/pds-it.pdf", "it")?,
        pds("https://ca.firmalab.test/pds/pds-en.pdf", "en")?,
    ];
    Ok(vec![
        QcStatement { statement_id: oid::QC_COMPLIANCE, statement_info: None },
        QcStatement {
            statement_id: oid::QC_RETENTION_PERIOD,
            statement_info: Some(Any::encode_from(&20u8).map_err(err)?),
        },
        QcStatement { statement_id: oid::QC_SSCD, statement_info: None },
        QcStatement { statement_id: oid::QC_PDS, statement_info: Some(Any::encode_from(&pds_list).map_err(err)?) },
    ])
}

/// Which certificate a card carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// The qualified signature certificate (CNS1 / DS): keyUsage critical nonRepudiation
    /// only, QCP-n-qscd + Aruba + AgID policies, qcStatements, no EKU.
    QualifiedSignature,
    /// The authentication ("CNS-like") certificate (CNS0): digitalSignature,
    /// keyEncipherment, dataEncipherment; EKU clientAuth + emailProtection.
    Authentication,
}

/// The certificate holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub first_name: String,
    pub last_name: String,
    pub codice_fiscale: String,
    /// The CA's reference for the holder (`dnQualifier=WSREF-<n>`).
    pub reference: String,
}

impl Holder {
    /// `C=IT, SN, GN, serialNumber=TINIT-<CF>, CN=<GN SN>, dnQualifier` (spec/domain.md §1.5).
    pub fn subject(&self) -> Result<Name, PkiError> {
        name(&[
            (oid::COUNTRY, "IT"),
            (oid::SURNAME, &self.last_name),
            (oid::GIVEN_NAME, &self.first_name),
            (oid::SERIAL_NUMBER, &format!("TINIT-{}", self.codice_fiscale)),
            (oid::COMMON_NAME, &format!("{} {}", self.first_name, self.last_name)),
            (oid::DN_QUALIFIER, &self.reference),
        ])
    }
}

/// A certificate request to the test CA.
pub struct Issue<'a> {
    pub kind: CertKind,
    pub holder: &'a Holder,
    pub public_key: SubjectPublicKeyInfoOwned,
    pub serial: u64,
    pub not_before: Date,
    pub not_after: Date,
}

/// A [`BuilderProfile`] that adds exactly the extensions we give it.
struct Fixed {
    issuer: Name,
    subject: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for Fixed {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

fn validity(from: Date, to: Date) -> Result<Validity, PkiError> {
    Ok(Validity::new(Time::from(from.to_der()?), Time::from(to.to_der()?)))
}

fn spki_of(key: &RsaPrivateKey) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    SubjectPublicKeyInfoOwned::from_key(key.as_public_key()).map_err(err)
}

fn sign(
    issuer_key: &RsaPrivateKey,
    issuer: Name,
    subject: Name,
    serial: u64,
    validity: Validity,
    spki: SubjectPublicKeyInfoOwned,
    extensions: Vec<Extension>,
) -> Result<Certificate, PkiError> {
    let profile = Fixed { issuer, subject, extensions };
    let builder = CertificateBuilder::new(profile, SerialNumber::from(serial), validity, spki).map_err(err)?;
    let signer = SigningKey::<Sha256>::new(issuer_key.clone());
    builder.build::<_, rsa::pkcs1v15::Signature>(&signer).map_err(err)
}

/// The test CA: a self-signed root, the issuing CA below it, and the issuing CA's OCSP
/// responder certificate.
pub struct TestCa {
    pub root: Certificate,
    pub root_key: RsaPrivateKey,
    pub issuing: Certificate,
    pub issuing_key: RsaPrivateKey,
    /// The OCSP signing certificate and key (`openssl ocsp -rsigner … -rkey …`).
    pub responder: Option<(Certificate, RsaPrivateKey)>,
    /// Written into every holder certificate issued.
    pub urls: RevocationUrls,
}

fn ca_extensions(
    spki: &SubjectPublicKeyInfoOwned,
    issuer_spki: &SubjectPublicKeyInfoOwned,
    path_len: Option<u8>,
) -> Result<Vec<Extension>, PkiError> {
    Ok(vec![
        extension(oid::BASIC_CONSTRAINTS, true, &BasicConstraints { ca: true, path_len_constraint: path_len })?,
        extension(oid::KEY_USAGE, true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?,
        extension(oid::SUBJECT_KEY_ID, false, &OctetString::new(key_identifier(spki)).map_err(err)?)?,
        extension(
            oid::AUTHORITY_KEY_ID,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(key_identifier(issuer_spki)).map_err(err)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
    ])
}

/// Subject of the root CA.
pub fn root_name() -> Result<Name, PkiError> {
    name(&[
        (oid::COUNTRY, "IT"),
        (oid::ORGANIZATION, "firmalab Test S.p.A."),
        (oid::COMMON_NAME, "firmalab Test Root CA (NOT TRUSTED)"),
    ])
}

/// Subject of the issuing CA, shaped like "ArubaPEC EU Qualified Certificates CA G1".
pub fn issuing_name() -> Result<Name, PkiError> {
    name(&[
        (oid::COUNTRY, "IT"),
        (oid::LOCALITY, "Arezzo"),
        (oid::ORGANIZATION, "firmalab Test S.p.A."),
        (oid::ORGANIZATION_IDENTIFIER, "VATIT-00000000000"),
        (oid::ORGANIZATIONAL_UNIT, "Qualified Trust Service Provider"),
        (oid::COMMON_NAME, "firmalab Test EU Qualified Certificates CA G1 (NOT TRUSTED)"),
    ])
}

impl TestCa {
    /// Builds the CA from its two keys (validity 2020-01-01 to 2045-01-01).
    pub fn from_keys(root_key: RsaPrivateKey, issuing_key: RsaPrivateKey) -> Result<Self, PkiError> {
        let (root_spki, ca_spki) = (spki_of(&root_key)?, spki_of(&issuing_key)?);
        let v = || validity(Date::new(2020, 1, 1), Date::new(2045, 1, 1));
        let root = sign(
            &root_key,
            root_name()?,
            root_name()?,
            1,
            v()?,
            root_spki.clone(),
            ca_extensions(&root_spki, &root_spki, None)?,
        )?;
        let issuing = sign(
            &root_key,
            root_name()?,
            issuing_name()?,
            2,
            v()?,
            ca_spki.clone(),
            ca_extensions(&ca_spki, &root_spki, Some(0))?,
        )?;
        Ok(TestCa { root, root_key, issuing, issuing_key, responder: None, urls: RevocationUrls::default() })
    }

    /// Adds the OCSP responder certificate (serial 3, 2020-01-01 to 2045-01-01): issued by the
    /// issuing CA, keyUsage digitalSignature, EKU OCSPSigning, id-pkix-ocsp-nocheck.
    pub fn with_responder(mut self, key: RsaPrivateKey) -> Result<Self, PkiError> {
        let spki = spki_of(&key)?;
        let ca_spki = self.issuing.tbs_certificate().subject_public_key_info().clone();
        let subject = name(&[
            (oid::COUNTRY, "IT"),
            (oid::ORGANIZATION, "firmalab Test S.p.A."),
            (oid::COMMON_NAME, "firmalab Test OCSP Responder (NOT TRUSTED)"),
        ])?;
        let cert = sign(
            &self.issuing_key,
            issuing_name()?,
            subject,
            3,
            validity(Date::new(2020, 1, 1), Date::new(2045, 1, 1))?,
            spki.clone(),
            vec![
                extension(oid::BASIC_CONSTRAINTS, true, &BasicConstraints { ca: false, path_len_constraint: None })?,
                extension(oid::KEY_USAGE, true, &KeyUsage(KeyUsages::DigitalSignature.into()))?,
                extension(oid::EXT_KEY_USAGE, false, &ExtendedKeyUsage(vec![oid::OCSP_SIGNING]))?,
                extension(oid::OCSP_NOCHECK, false, &der::asn1::Null)?,
                extension(oid::SUBJECT_KEY_ID, false, &OctetString::new(key_identifier(&spki)).map_err(err)?)?,
                extension(
                    oid::AUTHORITY_KEY_ID,
                    false,
                    &AuthorityKeyIdentifier {
                        key_identifier: Some(OctetString::new(key_identifier(&ca_spki)).map_err(err)?),
                        authority_cert_issuer: None,
                        authority_cert_serial_number: None,
                    },
                )?,
            ],
        )?;
        self.responder = Some((cert, key));
        Ok(self)
    }

    /// The same CA issuing certificates that point to other revocation URLs.
    pub fn with_urls(mut self, urls: RevocationUrls) -> Self {
        self.urls = urls;
        self
    }

    /// Issues a holder certificate.
    pub fn issue(&self, req: &Issue<'_>) -> Result<Certificate, PkiError> {
        let ca_spki = self.issuing.tbs_certificate().subject_public_key_info().clone();
        let mut exts = vec![
            extension(oid::SUBJECT_KEY_ID, false, &OctetString::new(key_identifier(&req.public_key)).map_err(err)?)?,
            extension(
                oid::AUTHORITY_KEY_ID,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(OctetString::new(key_identifier(&ca_spki)).map_err(err)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            )?,
        ];
        let uri = |u: &str| Ia5String::new(u).map(GeneralName::UniformResourceIdentifier).map_err(err);
        exts.push(extension(
            oid::AUTHORITY_INFO_ACCESS,
            false,
            &AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: oid::AD_OCSP,
                access_location: uri(&self.urls.ocsp)?,
            }]),
        )?);
        exts.push(extension(
            oid::CRL_DISTRIBUTION_POINTS,
            false,
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(&self.urls.crl)?])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?);
        let policy = |p| PolicyInformation { policy_identifier: p, policy_qualifiers: None };
        match req.kind {
            CertKind::QualifiedSignature => {
                exts.push(extension(oid::KEY_USAGE, true, &KeyUsage(KeyUsages::NonRepudiation.into()))?);
                exts.push(extension(
                    oid::CERTIFICATE_POLICIES,
                    false,
                    &CertificatePolicies(vec![
                        policy(oid::QCP_N_QSCD),
                        policy(oid::ARUBA_QUALIFIED),
                        policy(oid::AGID_CERT),
                    ]),
                )?);
                exts.push(extension(oid::QC_STATEMENTS, false, &qc_statements()?)?);
            }
            CertKind::Authentication => {
                exts.push(extension(
                    oid::KEY_USAGE,
                    true,
                    &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment | KeyUsages::DataEncipherment),
                )?);
                exts.push(extension(
                    oid::EXT_KEY_USAGE,
                    false,
                    &ExtendedKeyUsage(vec![oid::CLIENT_AUTH, oid::EMAIL_PROTECTION]),
                )?);
                exts.push(extension(
                    oid::CERTIFICATE_POLICIES,
                    false,
                    &CertificatePolicies(vec![policy(oid::AGID_CNS)]),
                )?);
            }
        }
        sign(
            &self.issuing_key,
            issuing_name()?,
            req.holder.subject()?,
            req.serial,
            validity(req.not_before, req.not_after)?,
            req.public_key.clone(),
            exts,
        )
    }

    /// Writes the CA into a folder: certificates as PEM (and the chain), keys as PKCS#1 PEM.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        use pkcs1::EncodeRsaPrivateKey;
        std::fs::create_dir_all(dir)?;
        let pem = |c: &Certificate| c.to_pem(der::pem::LineEnding::LF).map_err(err);
        let key = |k: &RsaPrivateKey| k.to_pkcs1_pem(der::pem::LineEnding::LF).map(|s| s.to_string()).map_err(err);
        let write = |name: &str, text: String| {
            firmalab_emulator::image::write_atomically(&dir.join(name), text.as_bytes())
                .map_err(|e| PkiError::File { path: dir.join(name), why: e.to_string() })
        };
        write("root.pem", pem(&self.root)?)?;
        write("issuing-ca.pem", pem(&self.issuing)?)?;
        write("chain.pem", format!("{}{}", pem(&self.issuing)?, pem(&self.root)?))?;
        write("root.key.pem", key(&self.root_key)?)?;
        write("issuing-ca.key.pem", key(&self.issuing_key)?)?;
        if let Some((cert, k)) = &self.responder {
            write("ocsp.pem", pem(cert)?)?;
            write("ocsp.key.pem", key(k)?)?;
        }
        Ok(())
    }

    /// Loads the CA written by [`TestCa::save`] (the responder when its files are there), with
    /// the revocation URLs of [`RevocationUrls::from_env`].
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        use der::DecodePem;
        use pkcs1::DecodeRsaPrivateKey;
        let read = |name: &str| {
            crate::files::read_text(&dir.join(name))
                .map_err(|e| PkiError::File { path: dir.join(name), why: e.to_string() })
        };
        let cert = |name: &str| {
            Certificate::from_pem(read(name)?).map_err(|e| PkiError::Pem { name: name.into(), why: e.to_string() })
        };
        let key = |name: &str| {
            RsaPrivateKey::from_pkcs1_pem(&read(name)?)
                .map_err(|e| PkiError::Pem { name: name.into(), why: e.to_string() })
        };
        let responder =
            if dir.join("ocsp.pem").is_file() { Some((cert("ocsp.pem")?, key("ocsp.key.pem")?)) } else { None };
        Ok(TestCa {
            root: cert("root.pem")?,
            root_key: key("root.key.pem")?,
            issuing: cert("issuing-ca.pem")?,
            issuing_key: key("issuing-ca.key.pem")?,
            responder,
            urls: RevocationUrls::from_env(),
        })
    }
}

/// DER of a certificate.
pub fn der_of(c: &Certificate) -> Result<Vec<u8>, PkiError> {
    c.to_der().map_err(err)
}

/// The SubjectPublicKeyInfo of an RSA key.
pub fn rsa_spki(key: &RsaPrivateKey) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    spki_of(key)
}

/// Modulus and exponent of an RSA key, big endian.
pub fn rsa_public_numbers(key: &RsaPrivateKey) -> (Vec<u8>, Vec<u8>) {
    (key.n().to_be_bytes_trimmed_vartime().to_vec(), key.e().to_be_bytes_trimmed_vartime().to_vec())
}
