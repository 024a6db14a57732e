//! What can go wrong with storage: one error for every engine and every user of it.

use std::path::PathBuf;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened.
    #[error(
        "cannot open the store at {path}: {source}; check the path and that no other process holds it"
    )]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The cause, as the engine reported it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read or write failed.
    #[error("audit store I/O failed: {0}")]
    Io(String),
    /// The store's records are sealed under another key than the one given: the wrong key
    /// file, or another node's store.
    #[error("{0}")]
    Sealed(String),
    /// The store cannot make writes durable right now (a full or failing disk): nothing was
    /// accepted, and nothing will be until a sync succeeds again, which is retried by itself.
    #[error(
        "the store cannot make writes durable ({0}); nothing was accepted. Free disk space or \
         fix the disk: the node retries every second; if it does not resume, restart it \
         (nothing acknowledged is lost)"
    )]
    Unavailable(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}
