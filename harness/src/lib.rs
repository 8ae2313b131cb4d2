//! The host side of firmalab: the test PKI, fixture generation, the transports, the card
//! clients and the management flows.
//!
//! The clients, flows, transcripts and scenarios speak the cards' APDUs from their own
//! knowledge of the wire ([`wire`]); only the in-process transport, the fixtures and
//! personalisation, the fuzz corpus and image inspection use the emulator crate.

pub mod backoffice;
pub mod bench;
pub mod ca;
pub mod cades;
pub mod cf;
pub mod client;
pub mod cms;
pub mod console;
pub mod dates;
pub mod demo;
pub mod error;
pub mod files;
pub mod fixtures;
pub mod flows;
pub mod fuzz_corpus;
pub mod host;
pub mod inspect;
pub mod notices;
pub mod open;
pub mod outbox;
pub mod pki;
pub mod ra;
pub mod reason;
pub mod report;
pub mod revocation;
pub mod scenario;
pub mod signer;
pub mod stack;
pub mod transcript;
pub mod transport;
pub mod wire;

pub use error::Error;
pub use reason::Reason;
