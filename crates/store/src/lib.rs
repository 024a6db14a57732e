//! `valise-store`: the durable storage every part of a node writes through.
//!
//! | module | concept |
//! |---|---|
//! | [`engine`] | the [`Store`] trait: atomic batches, a sync that reaches stable storage, reads and scans |
//! | [`disk`] | [`DiskStore`]: a store in a folder, on whichever engine made it |
//! | [`fjall_engine`] | [`FjallStore`]: fjall, the engine every new store is made with |
//! | [`sled_engine`] | [`SledStore`]: sled 0.34.7, with the fsync its own flush leaves out, for stores made before |
//! | [`group_commit`] | [`GroupCommit`]: many writers share one sync, urgent ones first; a failed sync degrades the store until one succeeds |
//! | [`error`] | [`StoreError`], for every engine |
//!
//! The audit log, the relay's queues, its directory, enrolment codes and link state all sit on
//! this crate; none of them owns the engine.

#![forbid(unsafe_code)]
#![deny(unreachable_pub, missing_docs)]

pub mod disk;
pub mod engine;
pub mod error;
pub mod fjall_engine;
pub mod group_commit;
pub mod sled_engine;

pub use disk::DiskStore;
pub use engine::{KeyValue, Scan, Store, Write};
pub use error::StoreError;
pub use fjall_engine::FjallStore;
pub use group_commit::{Completion, GroupCommit, Lane};
pub use sled_engine::SledStore;
