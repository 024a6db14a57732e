//! Valise wire schema.
//!
//! The types in [`v1`] are generated at build time from `proto/valise/v1/*.proto` (prost, via
//! protox: no `protoc` needed). Their doc comments come from the `.proto` files.
//!
//! Signatures and AEAD associated data never cover protobuf encodings, which are not canonical.
//! They cover the bytes defined in [`canonical`], which this crate pins with tests.

#![forbid(unsafe_code)]

pub mod canonical;
mod names;

pub use names::UnknownName;

/// Version 1 of the wire schema (protobuf package `valise.v1`).
#[allow(missing_docs)] // prost's generated oneof modules carry no docs; messages and fields do.
#[allow(
    clippy::doc_lazy_continuation,
    clippy::doc_overindented_list_items,
    clippy::large_enum_variant
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/valise.v1.rs"));
}

/// The envelope format version that this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// The relay protocol version that this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
