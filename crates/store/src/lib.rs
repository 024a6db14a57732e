//! `valise-store`: the durable storage every part of a node writes through.
//!
//! | module | concept |
//! |---|---|
//! | [`engine`] | the [`Store`] trait: atomic batches, a sync that reaches stable storage, reads and scans |
//! | [`sled_engine`] | [`SledStore`]: sled 0.34.7, with the fsync its own flush leaves out |
//! | [`group_commit`] | [`GroupCommit`]: many writers share one sync; a failed sync degrades the store until one succeeds |
//! | [`error`] | [`StoreError`], for every engine |
//!
//! The audit log, the relay's queues, its directory, enrolment codes and link state all sit on
//! this crate; none of them owns the engine.

#![forbid(unsafe_code)]
#![deny(unreachable_pub, missing_docs)]

pub mod engine;
pub mod error;
pub mod group_commit;
pub mod sled_engine;

pub use engine::{KeyValue, Scan, Store, Write};
pub use error::StoreError;
pub use group_commit::GroupCommit;
pub use sled_engine::SledStore;
