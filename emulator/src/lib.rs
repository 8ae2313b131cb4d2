//! firmalab's virtual smart card.
//!
//! A card that speaks the APDU sets of the Italian CNS (Incard) and of the Oberthur
//! AuthentIC v2 (AWP layout) faithfully enough that unmodified OpenSC drives it
//! (see `spec/cards.md` in the project's shared material).
//!
//! ```no_run
//! use firmalab_emulator::{Card, CardImage, CardRng};
//! let image = CardImage::load("fixtures/cards/cns-renewable.json".as_ref())?;
//! let mut card = Card::new(image, CardRng::from_os()?);
//! let response = card.transmit(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]);
//! assert_eq!(response, [0x90, 0x00]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod apdu;
pub mod card;
pub mod command;
#[cfg(feature = "openssl")]
pub mod fast;
pub mod fs;
pub mod hex;
pub mod hostile;
pub mod image;
pub mod invariants;
pub mod keys;
pub mod perso;
pub mod profile;
pub mod rng;
pub mod security;
pub mod storage;
pub mod sw;
pub mod timing;
pub mod vpcd;
#[cfg(feature = "vpicc")]
pub mod vpicc_card;

pub use card::{Card, Effect};
pub use image::{CardImage, ProfileKind};
pub use rng::CardRng;
pub use sw::Sw;
