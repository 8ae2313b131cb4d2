//! The harness's own knowledge of the wire: status words, hex, APDU framing and what each
//! command does to a card, ATR recognition and the table of known card lots.
//!
//! Everything here is written from the public specifications (spec/cards.md, spec/domain.md,
//! ISO 7816-3/-4), never taken from the emulator crate: the harness's clients, flows and
//! transcripts are independent witnesses of the card they talk to, so a wrong encoder or
//! decoder in the card cannot hide behind the same code on the host side. A test
//! (`harness/tests/independence.rs`) fails if any of these modules mentions the emulator.

pub mod apdu;
pub mod atr;
pub mod hex;
pub mod sw;

pub use apdu::Effect;
pub use atr::{CardModel, Profile};
pub use sw::Sw;
