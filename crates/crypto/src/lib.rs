//! Valise cryptography, shared by the relay and the client.
//!
//! | concept | module |
//! |---|---|
//! | device identity keys (Ed25519) and device ids | [`identity`] |
//! | X-Wing KEM (ML-KEM-768 + X25519) | [`xwing`] |
//! | HPKE base mode, X-Wing / HKDF-SHA256 / ChaCha20-Poly1305 | [`hpke`] |
//! | receive keys: ids, validity, signed publication | [`receive_key`] |
//! | directory trust: root → enrolment certificate → device records, revocations; the verified directory and its addresses | [`directory`] |
//! | custody receipts: a node's signed hold of exact envelope bytes | [`custody`] |
//! | cable envelopes: seal and open | [`envelope`] |
//! | attachments: streaming chunked AEAD | [`attachment`] |
//! | at rest: passphrase-sealed storage key, record sealing | [`at_rest`] |
//! | safety numbers | [`fingerprint`] |
//! | TLS to a node: ALPN, the client configuration pinned to the ministry root, root fingerprints | [`tls`] |
//!
//! ring provides AES-256-GCM, ChaCha20-Poly1305, HKDF, HMAC, SHA-2, Ed25519 and randomness,
//! and is rustls's provider for TLS; libcrux and x25519-dalek provide the two halves of X-Wing,
//! which ring lacks. Secrets are wiped on drop. Nothing here logs.

#![forbid(unsafe_code)]

pub mod at_rest;
pub mod attachment;
pub mod custody;
mod digest;
pub mod directory;
pub mod envelope;
pub mod fingerprint;
pub mod hpke;
pub mod identity;
mod length;
mod random;
pub mod receive_key;
pub mod tls;
pub mod xwing;

pub use digest::{sha256, sha256_parts};
pub use length::LengthError;
pub use random::RandomError;
