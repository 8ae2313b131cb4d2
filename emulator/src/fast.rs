//! The OpenSSL crypto backend (feature `openssl`): the same operations as the RustCrypto
//! default, at OpenSSL speed, for signature-throughput benchmarks. Keys come from the same
//! image material; results are identical (PKCS#1 v1.5 is deterministic; ECDSA signatures
//! differ in value but verify the same).

use crate::keys::{KeyMaterial, PrivateKey, PublicKey, SignPadding};
use crate::rng::CardRng;
use crate::sw::Sw;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::Private;
use openssl::rsa::{Padding, Rsa};

/// A private key loaded into OpenSSL.
pub enum FastKey {
    Rsa(Rsa<Private>),
    EcP256(EcKey<Private>),
}

fn fail<E>(_: E) -> Sw {
    Sw::WrongData
}

impl PrivateKey for FastKey {
    fn public(&self) -> Result<PublicKey, Sw> {
        match self {
            FastKey::Rsa(k) => Ok(PublicKey::Rsa { modulus: k.n().to_vec(), exponent: k.e().to_vec() }),
            FastKey::EcP256(k) => {
                let mut ctx = BigNumContext::new().map_err(fail)?;
                let point = k.public_key().to_bytes(k.group(), PointConversionForm::UNCOMPRESSED, &mut ctx);
                Ok(PublicKey::EcP256 { point: point.map_err(fail)? })
            }
        }
    }

    /// OpenSSL draws its own randomness (blinding, ECDSA nonces): the card RNG is not used.
    fn sign(&self, input: &[u8], padding: SignPadding, _rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
        match (self, padding) {
            (FastKey::EcP256(_), _) => self.ecdsa_sign_prehash(input),
            (FastKey::Rsa(_), SignPadding::Raw) => self.rsa_raw(input),
            (FastKey::Rsa(_), SignPadding::Pkcs1) => self.rsa_sign_digest_info(input),
        }
    }

    fn decipher(&self, input: &[u8], unpad: bool, _rng: &mut CardRng) -> Result<Vec<u8>, Sw> {
        if unpad { self.rsa_decrypt_pkcs1(input) } else { self.rsa_raw(input) }
    }
}

impl FastKey {
    pub fn load(material: &KeyMaterial) -> Result<Self, Sw> {
        match material {
            KeyMaterial::Rsa { pkcs1 } => {
                Rsa::private_key_from_der(&pkcs1.0).map(FastKey::Rsa).map_err(|_| Sw::MemoryFailure)
            }
            KeyMaterial::EcP256 { scalar } => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(fail)?;
                let d = BigNum::from_slice(&scalar.0).map_err(fail)?;
                let mut ctx = BigNumContext::new().map_err(fail)?;
                let mut q = EcPoint::new(&group).map_err(fail)?;
                q.mul_generator2(&group, &d, &mut ctx).map_err(fail)?;
                EcKey::from_private_components(&group, &d, &q).map(FastKey::EcP256).map_err(|_| Sw::MemoryFailure)
            }
        }
    }

    fn rsa(&self) -> Result<&Rsa<Private>, Sw> {
        match self {
            FastKey::Rsa(k) => Ok(k),
            FastKey::EcP256(_) => Err(Sw::ConditionsNotSatisfied),
        }
    }

    fn private(&self, input: &[u8], padding: Padding, encrypt: bool) -> Result<Vec<u8>, Sw> {
        let k = self.rsa()?;
        let mut out = vec![0u8; k.size() as usize];
        let n = if encrypt {
            k.private_encrypt(input, &mut out, padding)
        } else {
            k.private_decrypt(input, &mut out, padding)
        }
        .map_err(fail)?;
        out.truncate(n);
        Ok(out)
    }

    /// Raw RSA on a modulus-length block (CNS).
    pub fn rsa_raw(&self, block: &[u8]) -> Result<Vec<u8>, Sw> {
        if block.len() != self.rsa()?.size() as usize {
            return Err(Sw::WrongLength);
        }
        self.private(block, Padding::NONE, true)
    }

    /// PKCS#1 v1.5 type-01 padding of a DigestInfo, then RSA (Oberthur).
    pub fn rsa_sign_digest_info(&self, digest_info: &[u8]) -> Result<Vec<u8>, Sw> {
        if digest_info.len() + 11 > self.rsa()?.size() as usize {
            return Err(Sw::WrongLength);
        }
        self.private(digest_info, Padding::PKCS1, true)
    }

    /// RSA then removal of type-02 padding (Oberthur decipher).
    pub fn rsa_decrypt_pkcs1(&self, cryptogram: &[u8]) -> Result<Vec<u8>, Sw> {
        if cryptogram.len() != self.rsa()?.size() as usize {
            return Err(Sw::WrongLength);
        }
        self.private(cryptogram, Padding::PKCS1, false)
    }

    /// ECDSA P-256 over a host-computed hash, `r || s`.
    pub fn ecdsa_sign_prehash(&self, hash: &[u8]) -> Result<Vec<u8>, Sw> {
        let FastKey::EcP256(k) = self else { return Err(Sw::ConditionsNotSatisfied) };
        let sig = EcdsaSig::sign(hash, k).map_err(fail)?;
        let mut out = sig.r().to_vec_padded(32).map_err(fail)?;
        out.extend(sig.s().to_vec_padded(32).map_err(fail)?);
        Ok(out)
    }
}
