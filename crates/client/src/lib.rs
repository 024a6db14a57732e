//! Valise client core: every piece of client logic that the front ends share (DESIGN §9).
//!
//! Following quinn's split, decisions live in modules that do no I/O and take time as an
//! argument; the network shell over them stays thin. So far:
//!
//! | module | concept |
//! |---|---|
//! | [`store`] | the local store: sled, every record sealed under a passphrase-wrapped key |
//! | [`keys`] | the device's identity, receive and TLS keys; receive keys erased 30 days after they were replaced |
//! | [`profile`] | who this device is and which node serves it |
//! | [`outbox`] | cables waiting for the node, and when to try each again |
//! | [`receipt`] | signed delivered, read and acknowledged receipts back to the sender |
//! | [`status`] | each recipient's state: queued, custody, delivered, read, acknowledged |
//! | [`objectives`] | delivery objectives per recipient (on time, late, overdue) and ACK OVERDUE |
//! | [`inbox`] | received cables in reading order: precedence first, then newest |
//! | [`contacts`] | contacts verified in person, and the warning when their keys change |
//! | [`compose`] | the cable draft, and the checks before sealing: addressees, clearance, NODIS |
//! | [`directory`] | the device's verified copy of the directory, kept in the store |
//! | [`attachments`] | attachment files encrypted for upload, checked and decrypted on fetch |
//! | [`evidence`] | evidence bundles: everything signed about a cable, exported and checked offline |
//! | [`passphrase`] | what a new device passphrase must be (15 characters, not well known) |
//! | [`present`] | how a cable is presented in every front end: marking, banner colours, precedence, DTG |
//! | [`views`] | what a front end shows, with real enums: inbox rows, a cable to read, sent cables, directory entries |
//! | [`text`] | untrusted text (subjects, bodies, names) made safe to show: no escape sequences |
//!
//! The shell: [`connection`] (QUIC to the node), [`client`] (the unlocked [`Client`]),
//! [`sync`] (directory, outbox, queue and receipts), [`enrol`] (a new device), and
//! [`handle`]: the [`ClientHandle`] front ends hold, the client on its own task, live.

#![forbid(unsafe_code)]

pub mod attachments;
pub mod client;
pub mod compose;
pub mod connection;
pub mod contacts;
pub mod directory;
pub mod enrol;
pub mod error;
pub mod evidence;
pub mod handle;
pub mod inbox;
pub mod keys;
pub mod objectives;
pub mod outbox;
pub mod passphrase;
pub mod present;
pub mod profile;
pub mod receipt;
pub mod status;
pub mod store;
pub mod sync;
pub mod text;
pub mod views;

pub use client::{Client, Event};
pub use compose::CableDraft;
pub use error::ClientError;
pub use handle::{ClientHandle, EventStream};
pub use valise_crypto::at_rest::KdfParams;
pub use valise_proto::v1::{Caveat, Classification, Precedence, Reference};
