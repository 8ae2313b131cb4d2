//! The host side of firmalab: the test PKI, fixture generation, and (in later layers) the
//! transports, card clients and management flows.

pub mod cades;
pub mod cf;
pub mod client;
pub mod console;
pub mod dates;
pub mod fixtures;
pub mod inspect;
pub mod pki;
pub mod signer;
pub mod stack;
pub mod transport;
