//! Key objects and the card's cryptographic operations.
//!
//! Private key material stays inside [`KeyObject::material`]: no command ever copies it into a
//! response. RSA-512/768/1024/2048 (the sizes below 1024 only for cards that had them: the
//! Incrypto34); ECDSA P-256 only on images whose capabilities enable it.
//!
//! Private-key operations go through one interface, [`PrivateKey`], whatever computes them: a
//! [`Backend`] loads key material into it (RustCrypto's [`LoadedKey`] by default, OpenSSL's
//! `FastKey` with the `openssl` feature), and the card only ever calls the trait.

use crate::hex::{Bytes, Hex8};
use crate::rng::CardRng;
use crate::sw::Sw;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey};
use serde::{Deserialize, Serialize};

/// Pre-generated RSA-2048 keys (PKCS#1 DER hex, one a line) for deterministic mode only.
const RSA2048_POOL: &str = include_str!("../../fixtures/keys/rsa2048-pool.txt");
/// Pre-generated RSA-1024 keys, likewise.
const RSA1024_POOL: &str = include_str!("../../fixtures/keys/rsa1024-pool.txt");

/// RSA public exponent of every generated key.
pub const RSA_EXPONENT: u32 = 65_537;

/// Which implementation computes private-key operations.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// Pure Rust (the `rsa` and `p256` crates): the default.
    #[default]
    RustCrypto,
    /// OpenSSL (feature `openssl`), for throughput.
    #[cfg(feature = "openssl")]
    OpenSsl,
}

impl Backend {
    /// Parses key material into this backend; `6581` when the stored material is unusable.
    pub fn load(self, material: &KeyMaterial) -> Result<Box<dyn PrivateKey>, Sw> {
        #[cfg(feature = "fuzzing")]
        return memo::load(self, material);
        #[cfg(not(feature = "fuzzing"))]
        self.load_uncached(material)
    }

    fn load_uncached(self, material: &KeyMaterial) -> Result<Box<dyn PrivateKey>, Sw> {
        match self {
            Backend::RustCrypto => Ok(Box::new(material.load()?)),
            #[cfg(feature = "openssl")]
            Backend::OpenSsl => Ok(Box::new(crate::fast::FastKey::load(material)?)),
        }
    }
}

/// Feature `fuzzing`, for the fuzz targets only (never a product build): parsed keys and the
/// results of private-key operations are kept per process, by key material and input, so a
/// fuzz target replaying the same signature thousands of times computes it once. Results are
/// the backend's own (PKCS#1 v1.5 and raw RSA are deterministic; an ECDSA signature is a
/// valid one computed earlier); everything the card checks before the operation still runs.
#[cfg(feature = "fuzzing")]
mod memo {
    use super::{Backend, KeyMaterial, PrivateKey, PublicKey, SignPadding};
    use crate::rng::CardRng;
    use crate::sw::Sw;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// Most results kept; the cache starts over beyond.
    const KEPT: usize = 1 << 16;

    /// Backend, key material, operation, input.
    type Op = (Backend, Vec<u8>, u8, Vec<u8>);
    type SharedKey = Arc<dyn PrivateKey + Sync>;
    type Results = HashMap<Op, Result<Vec<u8>, Sw>>;
    static KEYS: Mutex<Vec<(Backend, Vec<u8>, SharedKey)>> = Mutex::new(Vec::new());
    static RESULTS: Mutex<Option<Results>> = Mutex::new(None);

    struct Memo {
        backend: Backend,
        material: Vec<u8>,
        key: SharedKey,
    }

    fn bytes(m: &KeyMaterial) -> Vec<u8> {
        match m {
            KeyMaterial::Rsa { pkcs1 } => [&[0u8][..], &pkcs1.0].concat(),
            KeyMaterial::EcP256 { scalar } => [&[1u8][..], &scalar.0].concat(),
        }
    }

    pub(super) fn load(backend: Backend, material: &KeyMaterial) -> Result<Box<dyn PrivateKey>, Sw> {
        let id = bytes(material);
        let cached =
            KEYS.lock().ok().and_then(|k| k.iter().find(|(b, m, _)| *b == backend && *m == id).map(|e| e.2.clone()));
        let key = match cached {
            Some(k) => k,
            None => {
                let k: SharedKey = Arc::new(Mutex::new(backend.load_uncached(material)?));
                if let Ok(mut keys) = KEYS.lock() {
                    if keys.len() >= 256 {
                        keys.clear();
                    }
                    keys.push((backend, id.clone(), k.clone()));
                }
                k
            }
        };
        Ok(Box::new(Memo { backend, material: id, key }))
    }

    /// A loaded key shared by every card of the process.
    impl PrivateKey for Mutex<Box<dyn PrivateKey>> {
        fn public(&self) -> Result<PublicKey, Sw> {
            self.lock().map_err(|_| Sw::Unknown)?.public()
        }
        fn sign(&self, input: &[u8], padding: SignPadding, rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
            self.lock().map_err(|_| Sw::Unknown)?.sign(input, padding, rng)
        }
        fn decipher(&self, input: &[u8], unpad: bool, rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
            self.lock().map_err(|_| Sw::Unknown)?.decipher(input, unpad, rng)
        }
    }

    impl Memo {
        fn cached(&self, op: u8, input: &[u8], compute: impl FnOnce() -> Result<Vec<u8>, Sw>) -> Result<Vec<u8>, Sw> {
            let k = (self.backend, self.material.clone(), op, input.to_vec());
            if let Ok(r) = RESULTS.lock()
                && let Some(hit) = r.as_ref().and_then(|m| m.get(&k))
            {
                return hit.clone();
            }
            let result = compute();
            if let Ok(mut r) = RESULTS.lock() {
                let m = r.get_or_insert_with(HashMap::new);
                if m.len() >= KEPT {
                    m.clear();
                }
                m.insert(k, result.clone());
            }
            result
        }
    }

    impl PrivateKey for Memo {
        fn public(&self) -> Result<PublicKey, Sw> {
            self.key.public()
        }
        fn sign(&self, input: &[u8], padding: SignPadding, rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
            let op = match padding {
                SignPadding::Raw => 0,
                SignPadding::Pkcs1 => 1,
            };
            self.cached(op, input, || self.key.sign(input, padding, rng))
        }
        fn decipher(&self, input: &[u8], unpad: bool, rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
            self.cached(2 + u8::from(unpad), input, || self.key.decipher(input, unpad, rng))
        }
    }
}

/// Who pads a signature input.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SignPadding {
    /// The host sent the whole PKCS#1 block; the card does the raw RSA operation (CNS).
    Raw,
    /// The host sent a DigestInfo; the card adds PKCS#1 v1.5 type-01 padding (Oberthur).
    Pkcs1,
}

/// A private key loaded into a backend: the operations PSO COMPUTE DIGITAL SIGNATURE and PSO
/// DECIPHER perform. Errors are status words (`6700` wrong input length, `6A80` input the key
/// cannot process, `6985` an operation the key type does not have).
pub trait PrivateKey: Send {
    /// The public half, in the form profiles encode it.
    fn public(&self) -> Result<PublicKey, Sw>;
    /// ECDSA P-256 over a host-computed hash (`r || s`), whatever the padding; RSA: the raw
    /// private operation on a modulus-length block ([`SignPadding::Raw`]) or PKCS#1 v1.5
    /// type-01 padding of a DigestInfo, then RSA ([`SignPadding::Pkcs1`]).
    fn sign(&self, input: &[u8], padding: SignPadding, rng: &mut CardRng) -> Result<Vec<u8>, Sw>;
    /// RSA on a modulus-length cryptogram; with `unpad`, PKCS#1 v1.5 type-02 padding removed.
    fn decipher(&self, input: &[u8], unpad: bool, rng: &mut CardRng) -> Result<Vec<u8>, Sw>;
}

/// What a key may be used for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUsage {
    /// PSO COMPUTE DIGITAL SIGNATURE.
    pub sign: bool,
    /// PSO DECIPHER.
    pub decipher: bool,
}

/// The algorithm a key slot holds or will generate.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Legacy sizes of the Incrypto34 (OpenSC registers 512, 768 and 1024 for it).
    Rsa512,
    Rsa768,
    Rsa1024,
    Rsa2048,
    EcP256,
}

impl Algorithm {
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            Algorithm::Rsa512 => Some(512),
            Algorithm::Rsa768 => Some(768),
            Algorithm::Rsa1024 => Some(1024),
            Algorithm::Rsa2048 => Some(2048),
            Algorithm::EcP256 => None,
        }
    }
    pub fn from_rsa_bits(bits: usize) -> Option<Self> {
        match bits {
            512 => Some(Algorithm::Rsa512),
            768 => Some(Algorithm::Rsa768),
            1024 => Some(Algorithm::Rsa1024),
            2048 => Some(Algorithm::Rsa2048),
            _ => None,
        }
    }
    /// EEPROM bytes the private and public halves occupy.
    pub fn eeprom_bytes(self) -> u32 {
        match self.rsa_bits() {
            // CRT private key (p, q, dP, dQ, qInv = 5 half-size values) + modulus + exponent.
            Some(bits) => {
                let k = bits as u32 / 8;
                k * 5 / 2 + k + 4
            }
            None => 32 + 65,
        }
    }
}

/// Key material as the image stores it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyMaterial {
    /// An RSA private key, PKCS#1 `RSAPrivateKey` DER.
    Rsa { pkcs1: Bytes },
    /// A P-256 private scalar, 32 bytes big endian.
    EcP256 { scalar: Bytes },
}

impl core::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeyMaterial::Rsa { .. } => f.write_str("Rsa(<private>)"),
            KeyMaterial::EcP256 { .. } => f.write_str("EcP256(<private>)"),
        }
    }
}

/// A key slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyObject {
    /// Key reference: the CNS security-environment number (`01` CNS0, `10` CNS1) or the
    /// Oberthur object index `nn` of file `30nn`.
    pub reference: Hex8,
    pub label: String,
    pub algorithm: Algorithm,
    pub usage: KeyUsage,
    /// The PIN that must be verified before the key is used or replaced.
    pub pin: Hex8,
    /// One operation per PIN verification (PKCS#11 CKA_ALWAYS_AUTHENTICATE): the qualified
    /// signature key.
    pub always_authenticate: bool,
    /// `None` for an empty slot (erased, or not generated yet).
    pub material: Option<KeyMaterial>,
    /// A key generated for renewal and not committed yet (CNS): usable only through
    /// `84 01 kk`, it replaces `material` on commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<KeyMaterial>,
    /// The EF holding this key's certificate (path from the MF), written by the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Vec<crate::hex::Hex16>>,
}

/// A parsed private key, kept between operations so a signature does not re-parse DER.
pub enum LoadedKey {
    Rsa(Box<RsaPrivateKey>),
    EcP256(Box<p256::ecdsa::SigningKey>),
}

/// The public half, in the form profiles encode it.
pub enum PublicKey {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    /// Uncompressed SEC1 point `04 || X || Y`.
    EcP256 {
        point: Vec<u8>,
    },
}

impl KeyMaterial {
    pub fn load(&self) -> Result<LoadedKey, Sw> {
        match self {
            KeyMaterial::Rsa { pkcs1 } => RsaPrivateKey::from_pkcs1_der(&pkcs1.0)
                .map(|k| LoadedKey::Rsa(Box::new(k)))
                .map_err(|_| Sw::MemoryFailure),
            KeyMaterial::EcP256 { scalar } => p256::ecdsa::SigningKey::from_slice(&scalar.0)
                .map(|k| LoadedKey::EcP256(Box::new(k)))
                .map_err(|_| Sw::MemoryFailure),
        }
    }

    pub fn from_rsa(key: &RsaPrivateKey) -> Result<Self, String> {
        let der = key.to_pkcs1_der().map_err(|e| format!("RSA key encoding failed: {e}"))?;
        Ok(KeyMaterial::Rsa { pkcs1: Bytes(der.as_bytes().to_vec()) })
    }

    pub fn from_p256(key: &p256::ecdsa::SigningKey) -> Self {
        KeyMaterial::EcP256 { scalar: Bytes(key.to_bytes().to_vec()) }
    }

    /// Generates a key on the card. In deterministic (test) mode an RSA-2048 or RSA-1024 key
    /// is drawn from a pool of pre-generated keys (`fixtures/keys/rsa2048-pool.txt`,
    /// `rsa1024-pool.txt`), chosen by the seeded RNG, never the same one twice for one card:
    /// runs stay reproducible and tests never wait on key generation (RSA-512 and 768 are
    /// generated, seeded, in milliseconds). These keys are public. Otherwise the key is
    /// generated for real.
    pub fn generate(alg: Algorithm, rng: &mut CardRng) -> Result<Self, Sw> {
        let pool = match alg {
            Algorithm::Rsa2048 => RSA2048_POOL,
            Algorithm::Rsa1024 => RSA1024_POOL,
            _ => "",
        };
        if rng.is_deterministic() {
            static POOLS: [std::sync::OnceLock<Vec<Vec<u8>>>; 2] =
                [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
            let parse = |text: &str| -> Vec<Vec<u8>> {
                text.lines().filter(|l| !l.trim().is_empty()).filter_map(|l| crate::hex::decode(l).ok()).collect()
            };
            let empty = Vec::new();
            let pool = match alg {
                Algorithm::Rsa2048 => POOLS[0].get_or_init(|| parse(pool)),
                Algorithm::Rsa1024 => POOLS[1].get_or_init(|| parse(pool)),
                _ => &empty,
            };
            if !pool.is_empty() {
                let pick = pool.get(rng.draw_from_pool(pool.len())).ok_or(Sw::MemoryFailure)?;
                return Ok(KeyMaterial::Rsa { pkcs1: Bytes(pick.clone()) });
            }
        }
        match alg.rsa_bits() {
            // The rsa crate refuses to generate below 1024 bits unless asked explicitly: the
            // legacy sizes exist only because the card being emulated had them.
            Some(bits) if bits < 1024 => {
                let key = RsaPrivateKey::new_unchecked(rng, bits).map_err(|_| Sw::MemoryFailure)?;
                Self::from_rsa(&key).map_err(|_| Sw::MemoryFailure)
            }
            Some(bits) => {
                let key = RsaPrivateKey::new(rng, bits).map_err(|_| Sw::MemoryFailure)?;
                Self::from_rsa(&key).map_err(|_| Sw::MemoryFailure)
            }
            None => {
                use p256::elliptic_curve::Generate;
                let key = p256::ecdsa::SigningKey::generate_from_rng(rng);
                Ok(Self::from_p256(&key))
            }
        }
    }
}

impl PrivateKey for LoadedKey {
    fn public(&self) -> Result<PublicKey, Sw> {
        Ok(LoadedKey::public(self))
    }

    fn sign(&self, input: &[u8], padding: SignPadding, rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
        match (self, padding) {
            (LoadedKey::EcP256(_), _) => self.ecdsa_sign_prehash(input),
            (LoadedKey::Rsa(_), SignPadding::Raw) => self.rsa_raw(input, rng),
            (LoadedKey::Rsa(_), SignPadding::Pkcs1) => self.rsa_sign_digest_info(input, rng),
        }
    }

    fn decipher(&self, input: &[u8], unpad: bool, rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
        if unpad { self.rsa_decrypt_pkcs1(input, rng) } else { self.rsa_raw(input, rng) }
    }
}

impl LoadedKey {
    /// Modulus length in bytes (RSA) or 32 (P-256).
    pub fn size(&self) -> usize {
        match self {
            LoadedKey::Rsa(k) => k.size(),
            LoadedKey::EcP256(_) => 32,
        }
    }

    pub fn public(&self) -> PublicKey {
        match self {
            LoadedKey::Rsa(k) => PublicKey::Rsa {
                modulus: k.n().to_be_bytes_trimmed_vartime().to_vec(),
                exponent: k.e().to_be_bytes_trimmed_vartime().to_vec(),
            },
            LoadedKey::EcP256(k) => {
                PublicKey::EcP256 { point: k.verifying_key().to_sec1_point(false).as_bytes().to_vec() }
            }
        }
    }

    /// The raw RSA private-key operation on a block of exactly the modulus length (the CNS
    /// signs and deciphers this way: OpenSC does the padding, spec/cards.md §3.7).
    /// Blinded with the card RNG.
    pub fn rsa_raw(&self, block: &[u8], rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
        let LoadedKey::Rsa(k) = self else {
            return Err(Sw::ConditionsNotSatisfied);
        };
        let size = k.size();
        if block.len() != size {
            return Err(Sw::WrongLength);
        }
        let precision = k.n().as_ref().bits_precision();
        let c = BoxedUint::from_be_slice(block, precision).map_err(|_| Sw::WrongData)?;
        let m = rsa::hazmat::rsa_decrypt_and_check(k.as_ref(), Some(rng), &c).map_err(|_| Sw::WrongData)?;
        Ok(left_pad(&m.to_be_bytes(), size))
    }

    /// PKCS#1 v1.5 type-01 padding of a DigestInfo the host sent, then RSA (Oberthur).
    pub fn rsa_sign_digest_info(&self, digest_info: &[u8], rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
        let LoadedKey::Rsa(k) = self else {
            return Err(Sw::ConditionsNotSatisfied);
        };
        if digest_info.len() + 11 > k.size() {
            return Err(Sw::WrongLength);
        }
        k.sign_with_rng(rng, Pkcs1v15Sign::new_unprefixed(), digest_info).map_err(|_| Sw::WrongData)
    }

    /// RSA then removal of PKCS#1 v1.5 type-02 padding (Oberthur decipher).
    pub fn rsa_decrypt_pkcs1(&self, cryptogram: &[u8], rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
        let LoadedKey::Rsa(k) = self else {
            return Err(Sw::ConditionsNotSatisfied);
        };
        if cryptogram.len() != k.size() {
            return Err(Sw::WrongLength);
        }
        k.decrypt_blinded(rng, Pkcs1v15Encrypt, cryptogram).map_err(|_| Sw::WrongData)
    }

    /// ECDSA P-256 over a hash the host computed; the signature as `r || s` (64 bytes).
    pub fn ecdsa_sign_prehash(&self, hash: &[u8]) -> Result<Vec<u8>, Sw> {
        let LoadedKey::EcP256(k) = self else {
            return Err(Sw::ConditionsNotSatisfied);
        };
        let sig: p256::ecdsa::Signature = k.sign_prehash(hash).map_err(|_| Sw::WrongData)?;
        Ok(sig.to_bytes().to_vec())
    }
}

fn left_pad(bytes: &[u8], size: usize) -> Vec<u8> {
    if bytes.len() >= size {
        return bytes[bytes.len() - size..].to_vec();
    }
    let mut out = vec![0u8; size - bytes.len()];
    out.extend_from_slice(bytes);
    out
}
