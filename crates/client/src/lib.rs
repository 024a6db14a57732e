//! Valise client core (to be built by the client issue).
//!
//! It will hold every piece of client logic that the front ends share: enrolment, the sealed
//! keystore and local store, sync with the home node, composing and reading cables, receipts,
//! key rotation and emergency wipe. Nothing is implemented yet.
