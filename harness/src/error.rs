//! [`Error`]: any failure of the harness, for the operations that span several of its parts
//! (the demo, the fuzz corpus, the vpcd host, the benchmark table, issuing an image file).
//! Each part has its own typed error (`ClientError`, `StoreError`, `FixtureError` …); this one
//! wraps them, keeping each message.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Open(#[from] crate::open::OpenError),
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    #[error(transparent)]
    Store(#[from] crate::backoffice::StoreError),
    #[error(transparent)]
    Cms(#[from] crate::cms::CmsError),
    #[error(transparent)]
    Fixture(#[from] crate::fixtures::FixtureError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Transcript(#[from] crate::transcript::TranscriptError),
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    #[error(transparent)]
    Revocation(#[from] crate::revocation::RevocationError),
    #[error(transparent)]
    Image(#[from] firmalab_emulator::image::ImageError),
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Choose(#[from] crate::flows::renewal::ChooseError),
    /// A flow name the fuzz corpus does not know.
    #[error("no flow {0}")]
    UnknownFlow(String),
}

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
