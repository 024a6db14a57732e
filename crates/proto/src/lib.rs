//! Valise wire schema.
//!
//! The types in [`v1`] are generated at build time from `proto/valise/v1/*.proto` (prost, via
//! protox: no `protoc` needed). Their doc comments come from the `.proto` files.
//!
//! Signatures and AEAD associated data never cover protobuf encodings, which are not canonical.
//! They cover the bytes defined in [`canonical`], which this crate pins with tests.

#![forbid(unsafe_code)]

pub mod canonical;
pub mod framing;
mod names;
pub mod tags;

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

/// Most attachments one cable may carry: `Submit.attachments` and `Forward.attachments` are
/// bounded by it, and the client refuses a draft with more.
pub const MAX_ATTACHMENTS_PER_CABLE: usize = 64;

#[cfg(test)]
mod tests {
    /// The `.proto` comments are the schema's documentation: they must reach the Rust docs.
    #[test]
    fn proto_comments_become_rust_doc_comments() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/valise.v1.rs"));
        for doc in [
            "/// The cleartext part of a cable that relays need for routing, precedence and policy.",
            "/// NIACT: act at any hour; the named action addressee must acknowledge it.",
            "/// One enrolled device, signed by its post's enrolment key.",
            "/// The node is overloaded; retry after `retry_after_ms`.",
        ] {
            assert!(generated.contains(doc), "missing doc comment: {doc}");
        }
    }
}
