//! The client's error: what went wrong, and what the diplomat can do about it.

use crate::compose::ComposeError;
use crate::connection::NetError;
use crate::keys::KeyError;
use crate::store::StoreError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The local store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keystore failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The node could not be reached, or refused.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The draft cannot be sent as written.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// Not a cable id: too short, or not hex.
    #[error(
        "{0:?} is not a cable id: give at least 4 of its hex digits, as `valise inbox` or \
         `valise status` shows them"
    )]
    BadId(String),
    /// No cable with this id (or id prefix).
    #[error("no cable {0} here; list them with `valise inbox` (or check the id)")]
    NoSuchCable(String),
    /// The cable already left the device.
    #[error(
        "cable {0} is already in the node's custody and cannot be recalled; send a correction \
         or ask its recipients to disregard it"
    )]
    NotCancellable(String),
    /// The client was locked (or wiped): unlock it again.
    #[error("the device is locked; unlock it with its passphrase")]
    Locked,
    /// The operation was cancelled by the user.
    #[error("cancelled")]
    Cancelled,
    /// The id prefix matches several cables.
    #[error("{0} matches several cables; give more of the id")]
    AmbiguousId(String),
    /// An attachment could not be read, encrypted, fetched or decrypted.
    #[error("attachment {name}: {reason}")]
    Attachment {
        /// The attachment's name or path.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// Enrolment failed; nothing was stored.
    #[error("enrolment failed: {0}")]
    Enrolment(String),
    /// The directory held by this device is inconsistent.
    #[error("the local directory: {0}")]
    Directory(String),
    /// Sealing or opening failed.
    #[error("{0}")]
    Crypto(String),
    /// The operation needs the node, which could not be reached.
    #[error("{what} needs the node, which cannot be reached ({reason}); try again when online")]
    NeedsNode {
        /// The operation.
        what: &'static str,
        /// Why the node is unreachable.
        reason: String,
    },
}
