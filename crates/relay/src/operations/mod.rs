//! What an operator does to a post's users and devices: issue an enrolment code, revoke
//! devices, change a user. The running node (its admin socket, [`crate::node::RunningNode`])
//! and the commands that work on a stopped node's files ([`StoppedPost`]) call these same
//! functions, so a command does the same and leaves the same audit records whichever way it
//! came. They need only narrow state: the directory, the post's enrolment desk, the queue
//! store and somewhere to record; what is particular to a running node (closing a revoked
//! device's connections) is passed in by its shell.
//!
//! | module | operation |
//! |---|---|
//! | [`enrol`] | `issue_code`, and the `enroll` command |
//! | [`revoke`] | `revoke_devices`, and the `revoke` command |
//! | [`users`] | `update_user` |
//! | [`purge`] | dropping what is queued for revoked devices, or above a lowered clearance |
//! | [`stopped`] | a stopped post's stores, opened for the commands that work without it |

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use valise_crypto::identity::IdentityKeyPair;

use crate::enrolment::DurableCodes;
use crate::record::Record;
use crate::shared_directory::SharedDirectory;
use crate::store::RelayStore;

pub mod enrol;
pub mod purge;
pub mod revoke;
pub mod stopped;
pub mod users;

pub use enrol::IssueError;
pub use revoke::RevokeError;
pub use stopped::{StoppedError, StoppedPost};

/// Where the operations' audit records go: the running node's log, or a stopped node's.
pub(crate) trait Recorder {
    /// Appends `record`, stamped with the node and the time. A failure is the recorder's to
    /// report: the operation it describes has already been done.
    fn record(&self, record: Record);
}

/// The post's enrolment desk, as the operations use it.
#[derive(Clone, Copy)]
pub(crate) struct Desk<'a> {
    /// The post, e.g. `paris`.
    pub(crate) post: &'a str,
    /// The post's enrolment key: signs device records and revocations.
    pub(crate) enrolment_key: &'a IdentityKeyPair,
    /// Outstanding codes.
    pub(crate) codes: &'a Mutex<DurableCodes>,
}

/// The operator's view of a node: what the operations need of it, and nothing else.
pub struct Operator<'a> {
    desk: Option<Desk<'a>>,
    directory: &'a SharedDirectory,
    store: &'a RelayStore,
    recorder: &'a dyn Recorder,
}

impl<'a> Operator<'a> {
    /// The operations over `directory` and `store`, recording to `recorder`; `desk` is `None`
    /// for a node that enrols no devices (the hub).
    pub(crate) fn new(
        desk: Option<Desk<'a>>,
        directory: &'a SharedDirectory,
        store: &'a RelayStore,
        recorder: &'a dyn Recorder,
    ) -> Self {
        Operator {
            desk,
            directory,
            store,
            recorder,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
