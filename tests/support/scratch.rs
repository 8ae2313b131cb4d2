//! A test's own folder in the temporary folder, removed with its contents when dropped, so a
//! test run leaves nothing behind in /tmp. Keep the value alive while the folder is used:
//! `let dir = scratch("x"); … dir.join("f")`, never `scratch("x").join("f")`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

pub struct Scratch(tempfile::TempDir);

impl Scratch {
    /// A new, empty folder named `PREFIX…` (a random suffix: never an earlier run's folder).
    pub fn new(prefix: &str) -> Scratch {
        Scratch(tempfile::Builder::new().prefix(&format!("{prefix}-")).tempdir().unwrap())
    }

    /// Keeps the folder (for a look after a failure) and returns its path.
    pub fn keep(self) -> std::path::PathBuf {
        self.0.keep()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}
