//! Valise relay node: the server run by ministry IT. It holds the QUIC listener, PKI and
//! enrolment, the directory, durable precedence queues with custody transfer, the links
//! between the hub and the posts, and the node's audit log. Following quinn's split, decisions
//! move into `valise-relay-core`, a crate with no runtime, network, storage or clock, so that
//! the compiler holds the split; modules marked *core* below are that crate's, re-exported
//! here under their old paths:
//!
//! | module | concept |
//! |---|---|
//! | [`attachments`] | attachment ciphertexts by SHA-256: upload checks, retention, the blob store |
//! | [`config`] | the TOML configuration, its defaults and checks |
//! | [`devices`] (core) | what a device may change about itself: its receive keys, its revocation on wipe |
//! | [`directory`] | the verified directory (`valise_crypto::directory`) as the policy sees it, and kept durably |
//! | [`enrolment`] | one-time enrolment codes kept durably (their rules are the core's) |
//! | [`gate`] (core) | how many unauthenticated connections may wait, in all and per source address |
//! | [`limits`] (core) | every configurable bound on what the network may send |
//! | [`logging`] | operator logs as text or JSON lines, ids and reasons only |
//! | [`manifest`] | which stores the data folder must hold: a missing or swapped store refuses the start |
//! | [`operations`] | what an operator does to a post's users and devices (enrol, revoke, update), shared by the admin socket and the commands on a stopped node |
//! | [`outbound`] (core) | which queued cables a link forwards next; retry and redial delays |
//! | [`policy`] (core) | whether a submitted cable is accepted, and for which devices |
//! | [`routing`] (core) | the next hop for each recipient device: here, a peer post, or the hub (federation) |
//! | [`queue`] (core) | delivery order (precedence, then arrival) and at-least-once redelivery |
//! | [`store`] | durable envelopes, per-device queues and the dedup set (group commit) |
//! | [`users`] | one person, one identity: a new device matches its user's others; deliberate changes to all |
//!
//! The ministry's transport PKI (root, post CAs, node and device certificates, the server
//! configuration) is `valise_pki`; the client side of TLS is `valise_crypto::tls`.
//!
//! The network shell over them is [`node`]: QUIC on tokio, serving hello, submission with
//! custody, delivery with acknowledgements, attachments, key publication and wipe notices.

#![forbid(unsafe_code)]

pub mod admin;
pub mod attachments;
pub mod config;
pub mod directory;
pub mod enrolment;
pub mod files;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod node;
pub mod operations;
mod pki;
mod shared_directory;
pub mod status;
pub mod store;
pub mod users;
pub mod witnessed;

// The decisions live in the core crate; these paths stay so that callers need not change.
pub use valise_relay_core::{
    admission, attachment, delivery, devices, gate, limits, outbound, policy, queue, reason,
    record, routing,
};
