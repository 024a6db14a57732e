//! Cross-crate end-to-end scenarios (to be filled as the relay and client land).
//!
//! They will run several nodes and clients together and inject faults: killed relays,
//! partitions, revocations and tampered storage. Nothing is implemented yet.
