//! The host side of firmalab: the test PKI, fixture generation, the transports, the card
//! clients and the management flows.
//!
//! Where to start:
//! * [`persona`]: a fixture card in-process, powered on, in one line: APDUs in, answers out
//!   (`examples/in_process_card.rs`).
//! * [`lab::PcscLab`]: a private pcscd with vpcd readers and virtual cards for a test, torn
//!   down with it; PC/SC programs and OpenSC's PKCS#11 module see the cards
//!   (`examples/pcsc_lab.rs`).
//! * [`open`]: a card from an image file or `reader:NAME` ([`open::CardSpec`]), behind the
//!   gate it needs; [`open::OpenCard::runner`] gives the [`flows::Runner`] a flow runs on.
//! * [`flows`]: the flows, each a function from a runner to a [`flows::FlowReport`]:
//!   [`flows::diagnostic::run`], [`flows::pin::change`], [`flows::pin::unblock`],
//!   [`flows::pin::change_puk`], [`flows::reset::reset`], [`flows::renewal::run`]. A refusal
//!   carries a [`Reason`]; [`report`] shows reports as lines, JSON or JUnit.
//! * [`client`]: the card clients the flows use ([`client::open`] picks one by ATR).
//! * [`fixtures`] (the fixture cards and the test CA), [`backoffice`] and [`cms`] (the back
//!   office), [`transcript`] and [`scenario`] (recorded and scripted APDUs), [`demo`].
//!
//! Every part has its own typed error; [`Error`] wraps them for the operations that span
//! several.
//!
//! The clients, flows, transcripts and scenarios speak the cards' APDUs from their own
//! knowledge of the wire ([`wire`]) and never use the emulator crate
//! (`tests/independence.rs` checks it); the in-process transport, [`open`], the vpcd
//! [`host`], the fixtures and personalisation, the fuzz corpus, benchmarks, the APDU
//! [`console`] and image inspection do.

pub mod backoffice;
pub mod bench;
pub mod bundle;
pub mod ca;
pub mod cades;
pub mod capture;
pub mod cf;
pub mod client;
pub mod client_auth;
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
pub mod lab;
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
pub mod trace;
pub mod transcript;
pub mod transport;
pub mod twin;
pub mod variant;
pub mod wire;

pub use error::Error;
pub use fixtures::persona;
pub use reason::Reason;
