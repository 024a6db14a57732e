//! The ministry's transport PKI: the offline root, the post enrolment CAs, node and device
//! certificates, and the TLS server configuration every node serves with (ring provider,
//! TLS 1.3 only, mutual TLS with client certificates checked against the pinned root). The
//! client side of a connection, which devices share, is [`valise_crypto::tls`].
//!
//! ```text
//! ministry root (offline, Ed25519, path length 1)
//!   ├─ node certificate         paris.mfa.example, OU=valise post (or hub), server + client auth
//!   └─ post CA for paris        path length 0, DNS names only under devices.paris.mfa.example
//!        └─ device certificate  <device id>.devices.paris.mfa.example, client auth
//! ```
//!
//! The post CA lives on the post's node, so it can enrol devices while the root stays offline.
//! Its name constraint means a compromised post can mint certificates for its own devices
//! only. A node's role (hub or post) is in its certificate's organisational unit, set by the
//! root at issue: a post cannot pass itself off as the hub by saying so.
//!
//! The same root key also anchors the directory: it certifies each post's enrolment key and
//! each node's signing key ([`MinistryCa::certify_enroller`], [`MinistryCa::certify_node_key`]).
//!
//! | module | concern |
//! |---|---|
//! | [`validity`] | a certificate's validity window |
//! | [`root`] | the ministry root: created, reloaded, its key and fingerprint |
//! | [`sealed`] | the root key sealed under a passphrase, for the offline CA's disk |
//! | [`folder`] | the CA folder `ca init` writes and `ca issue-node` reads |
//! | [`node`] | node certificates, and the root's certificate of a node's signing key |
//! | [`role`] | a node's role (hub or post) as its certificate carries it |
//! | [`post`] | a post's enrolment CA, and the root's certificate of its enrolment key |
//! | [`device`] | device certificates, issued by a post CA from a device's request |
//! | [`inspect`] | what a certificate says: its DNS names, its name constraint |
//! | [`issue`] | everything the root issues for a new node, in memory |
//! | [`server`] | the node's TLS server configuration |
//! | [`certificate`] | the error every certificate operation shares |

#![forbid(unsafe_code)]
#![deny(unreachable_pub, missing_docs)]

pub mod certificate;
pub mod device;
pub mod folder;
pub mod inspect;
pub mod issue;
pub mod node;
pub mod post;
pub mod role;
pub mod root;
pub mod sealed;
pub mod server;
pub mod validity;

pub use certificate::CertificateError;
pub use folder::{FolderError, RootFolder};
pub use inspect::{dns_names, first_certificate, permitted_dns};
pub use issue::{IssueError, IssuedDesk, IssuedNode, NodeRequest};
pub use post::{PostCa, device_domain};
pub use role::{Role, certified_role};
pub use root::MinistryCa;
pub use sealed::SealedKeyError;
pub use server::{ServerConfigError, server_config};
pub use validity::Validity;
/// A certificate chain and its private key, as every issuing function here returns it (the
/// type is shared with the client side, which presents it).
pub use valise_crypto::tls::CertifiedKey;
