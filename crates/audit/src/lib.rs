//! Valise audit log (to be built by the audit-log issue).
//!
//! It will hold the RFC 9162 Merkle log on sled, C2SP `tlog-checkpoint` checkpoints signed as
//! C2SP `signed-note`s, `tlog-cosignature` witnessing, inclusion and consistency proofs, and the
//! offline verifier that `valise-relay audit verify` wraps. Nothing is implemented yet.
