//! Files the harness reads and writes (transcripts, scenarios, JUnit, the renewal's signed form,
//! requests and certificates): one implementation for every file firmalab touches, the
//! emulator's storage module (bounded reads of regular files; atomic, exclusive, `0600` writes).
//! The harness's wire-level code (clients, flows, transcripts) reaches it only through here.

pub use firmalab_emulator::storage::{MAX_INPUT_BYTES, read_bounded, read_text, write_private};

/// Refuses JSON text with a key twice in one object (serde_json silently keeps the last), naming
/// the JSON path: every JSON file firmalab reads (images, the back office, transcripts,
/// scenarios) goes through it.
pub use firmalab_emulator::image::check_unique_keys;
