//! The sender's signature over an envelope, checked without opening it. Everything it covers
//! is public (header, body ciphertext, key wraps, key commitment), so a relay checks it before
//! taking custody, and a third party checks it in an evidence bundle, with no key of any
//! recipient.

use valise_proto::{ENVELOPE_VERSION, canonical, v1};

use super::header;
use super::open::OpenError;
use super::signed_message;
use crate::identity::IdentityPublicKey;

/// The bytes the sender signed for `envelope`: a domain label and the digests of its header,
/// body ciphertext and key wraps, and its key commitment.
pub fn signed_bytes(envelope: &v1::Envelope) -> Result<Vec<u8>, OpenError> {
    let header = envelope
        .header
        .as_ref()
        .ok_or(OpenError::Malformed("no routing header"))?;
    if header.version != ENVELOPE_VERSION {
        return Err(OpenError::UnsupportedVersion(header.version));
    }
    header::validate(header).map_err(OpenError::MalformedHeader)?;
    let header_bytes = canonical::routing_header(header)
        .map_err(|_| OpenError::MalformedHeader(header::HeaderError::TooLarge))?;
    let wraps_bytes = canonical::key_wraps(&envelope.key_wraps)
        .map_err(|_| OpenError::Malformed("key wraps too large"))?;
    Ok(signed_message(
        &header_bytes,
        &envelope.body_ciphertext,
        &wraps_bytes,
        &envelope.key_commitment,
    ))
}

/// Checks that `sender` (the identity key the directory lists for the header's
/// `sender_device`) signed `envelope` as it stands.
pub fn verify_signature(
    envelope: &v1::Envelope,
    sender: &IdentityPublicKey,
) -> Result<(), OpenError> {
    let signed = signed_bytes(envelope)?;
    let claimed = envelope
        .header
        .as_ref()
        .map(|h| h.sender_device.as_slice())
        .unwrap_or_default();
    if claimed != sender.device_id().as_bytes() {
        return Err(OpenError::SenderMismatch {
            claimed: hex::encode(claimed),
            given: sender.device_id(),
        });
    }
    sender
        .verify(&signed, &envelope.signature)
        .map_err(|_| OpenError::BadSignature)
}
