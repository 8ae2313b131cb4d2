//! Files the harness writes (transcripts, JUnit, the renewal's signed form, requests and
//! certificates): replaced atomically, with the same hardening as card images (one
//! implementation for every file firmalab writes).

pub use firmalab_emulator::image::write_atomically;
