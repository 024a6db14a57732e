//! Directory trust: the chain from the pinned ministry root to every device, and the verified
//! directory built from it.
//!
//! ```text
//! ministry root (Ed25519, offline)
//!   └─ EnrolmentCertificate: this key enrols for post P, from … until …
//!        ├─ DeviceRecord: user, post P, clearance, identity key, receive keys
//!        └─ Revocation: device D is revoked
//! ```
//!
//! A record is trusted only through this chain: signed by an enrolment key that the root
//! certified *for the record's own post*, within that certificate's validity. A post's key
//! cannot enrol or revoke devices of another post.
//!
//! | file | concept |
//! |---|---|
//! | `records.rs` | signing and checking one certificate, device record or revocation |
//! | `book.rs` | [`Directory`]: every record that passed, versioned for sync; address resolution |
//! | `address.rs` | [`Address`]: `alice@paris`, `POL@paris`, bare `paris` |
//!
//! The relay and the client hold the same [`Directory`]: a node applies what its post enrols
//! and what its peers send, a client applies what it syncs from its node. Neither trusts the
//! other's copy, because every update is checked again along the chain before it is applied.

mod address;
mod book;
mod records;

pub use address::{Address, FRONT_OFFICE, ResolveError};
pub use book::{Directory, Entry, UpdateError};
pub use records::{
    DirectoryError, Enroller, VerifiedDevice, sign_device_record, sign_revocation,
    verify_device_record, verify_revocation,
};
