//! The host side of firmalab: the test PKI, fixture generation, and (in later layers) the
//! transports, card clients and management flows.

pub mod backoffice;
pub mod bench;
pub mod ca;
pub mod cades;
pub mod cf;
pub mod client;
pub mod console;
pub mod dates;
pub mod fixtures;
pub mod flows;
pub mod fuzz_corpus;
pub mod inspect;
pub mod pki;
pub mod report;
pub mod scenario;
pub mod signer;
pub mod stack;
pub mod trace;
pub mod transcript;
pub mod transport;
