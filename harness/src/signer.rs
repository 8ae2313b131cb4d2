//! A signer whose private key is on the card: the RustCrypto builders (`x509-cert`'s
//! certificate request, `cms`'s SignedData) hash and encode; the card signs the SHA-256
//! digest. The PIN is presented before every signature (the qualified key is
//! always-authenticate).

use crate::client::{CardClient, KeyRole, StagedKey};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use signature::{Keypair, Signer};
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SignatureAlgorithmIdentifier};
use std::cell::RefCell;

/// `sha256WithRSAEncryption`.
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

pub struct CardSigner<'a> {
    client: RefCell<&'a mut dyn CardClient>,
    role: KeyRole,
    staged: Option<StagedKey>,
    public: VerifyingKey<Sha256>,
    pin: String,
    /// The card's first error, for the caller (the `signature` error type carries no text).
    pub error: RefCell<Option<crate::client::ClientError>>,
}

impl<'a> CardSigner<'a> {
    pub fn new(
        client: &'a mut dyn CardClient,
        role: KeyRole,
        staged: Option<StagedKey>,
        public: RsaPublicKey,
        pin: &str,
    ) -> Self {
        CardSigner {
            client: RefCell::new(client),
            role,
            staged,
            public: VerifyingKey::new(public),
            pin: pin.to_owned(),
            error: RefCell::new(None),
        }
    }

    pub fn take_error(&self) -> Option<crate::client::ClientError> {
        self.error.borrow_mut().take()
    }
}

impl Keypair for CardSigner<'_> {
    type VerifyingKey = VerifyingKey<Sha256>;
    fn verifying_key(&self) -> Self::VerifyingKey {
        self.public.clone()
    }
}

impl SignatureAlgorithmIdentifier for CardSigner<'_> {
    type Params = der::asn1::AnyRef<'static>;
    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifierRef<'static> =
        AlgorithmIdentifierRef { oid: SHA256_WITH_RSA, parameters: Some(der::asn1::AnyRef::NULL) };
}

impl Signer<Signature> for CardSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<Signature, signature::Error> {
        let digest: [u8; 32] = Sha256::digest(msg).into();
        let mut client = self.client.borrow_mut();
        match client.sign_sha256(self.role, self.staged.as_ref(), &digest, &self.pin) {
            Ok(sig) => Signature::try_from(sig.as_slice()),
            Err(e) => {
                *self.error.borrow_mut() = Some(e);
                Err(signature::Error::new())
            }
        }
    }
}
