//! Personalisation: what an issuer writes onto a blank chip. [`Personalization::build`]
//! (in `profile/mod.rs`) asks the card's profile to turn it into a complete
//! [`CardImage`](crate::image::CardImage) with its own file layout; this module is only the
//! data, so profiles depend on it and it on none of them.
//!
//! X.509 knowledge stays with the caller (the harness's test CA): it passes the certificate
//! and, for the Oberthur info files, its subject, issuer and the key's public numbers.

use crate::image::{History, LifeCycle, ProfileKind};
use crate::keys::{Algorithm, KeyMaterial};

/// The PIN a reset or a failed issuance leaves on an Aruba card, whatever the chip
/// (spec/domain.md §0, FAQ CMS).
pub const DEFAULT_PIN: &str = "12345";

/// The public facts of a key and its certificate (what the Oberthur info files hold).
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    pub label: String,
    /// PKCS#15 ID linking key and certificate.
    pub id: Vec<u8>,
    /// DER subject and issuer Names of the certificate.
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    /// RSA modulus and public exponent, big endian.
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

/// One key with its certificate.
#[derive(Clone, Debug)]
pub struct KeySet {
    pub info: ObjectInfo,
    pub algorithm: Algorithm,
    pub material: KeyMaterial,
    /// DER certificate.
    pub certificate: Vec<u8>,
}

/// Everything an issuer decides about a card.
#[derive(Clone, Debug)]
pub struct Personalization {
    pub profile: ProfileKind,
    pub description: String,
    /// `None`: the profile's default ATR.
    pub atr: Option<Vec<u8>>,
    /// CNS: the 16 ASCII digits of EF_IDCarta. Oberthur: 8 hex digits, the CPLC IC serial.
    pub serial: String,
    pub pin: String,
    pub puk: String,
    /// Oberthur SO PIN (ignored on the CNS).
    pub so_pin: String,
    pub pin_tries: u8,
    pub puk_tries: u8,
    /// CNS EF_DatiPersonali content; Oberthur token label source.
    pub holder: Holder,
    /// The authentication (CNS0) key and certificate; `None` leaves the slot empty.
    pub auth: Option<KeySet>,
    /// The qualified signature (CNS1) key and certificate; `None` leaves the slot empty.
    pub sign: Option<KeySet>,
    pub life_cycle: LifeCycle,
    pub capacity: u32,
    pub history: History,
    pub p256: bool,
}

/// The holder data a card carries (CNS EF_DatiPersonali, spec/domain.md §1.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    pub issuer_code: String,
    /// Dates as `DDMMYYYY`, the way EF_DatiPersonali stores them.
    pub issue_date: String,
    pub expiry_date: String,
    pub last_name: String,
    pub first_name: String,
    pub birth_date: String,
    pub sex: String,
    pub codice_fiscale: String,
}
