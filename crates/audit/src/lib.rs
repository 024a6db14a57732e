//! Valise audit log: every node's signed, tamper-evident, witnessed record of what it did.
//!
//! | concept | module |
//! |---|---|
//! | RFC 9162 Merkle hashing, proofs, compact ranges (no I/O) | [`merkle`] |
//! | C2SP signed notes, checkpoints, cosignatures | [`note`] |
//! | checkpoint cadence (pure, time as argument) | [`policy`] |
//! | how entries, checkpoints and metadata are laid out in a `valise_store::Store` | `records` |
//! | the log: group-committed appends, checkpoints, proofs | [`log`] |
//! | offline verification of a whole log (streaming, no I/O in its core) | [`verify`] |
//! | the versioned export format | [`export`] |
//! | self-contained proof bundles for one entry | [`bundle`] |
//! | a witness: cosigning, refusals, evidence | [`witness`] |
//!
//! Entries are protobuf `AuditEvent`s: ids and digests, never content.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod export;
pub mod log;
pub mod merkle;
pub mod note;
pub mod policy;
mod records;
pub mod verify;
pub mod witness;

pub use log::{AuditLog, LogConfig, LogError};
pub use verify::{Inconsistency, Report, VerifyKeys};
pub use witness::{Witness, WitnessError};
