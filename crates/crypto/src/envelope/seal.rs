//! Sealing a cable for its recipient devices.

use std::collections::HashSet;

use valise_proto::{ENVELOPE_VERSION, canonical, v1};
use zeroize::Zeroizing;

use super::body::{self, BodyError, CONTENT_KEY_LEN, ContentKey};
use super::header::{self, HeaderError};
use super::{WRAP_PLAINTEXT_LEN, signed_message, wrap_info};
use crate::hpke::{self, HpkeError};
use crate::identity::{DeviceId, IdentityKeyPair};
use crate::random::RandomError;
use crate::receive_key::{ReceiveKeyId, VerifiedReceiveKey};

/// Why a cable could not be sealed. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The routing header is not well formed.
    #[error("the routing header is not valid: {0}")]
    Header(#[from] HeaderError),
    /// The recipient list is empty.
    #[error("the cable has no recipient devices")]
    NoRecipients,
    /// A device appears twice in the recipient list.
    #[error("device {0} appears twice among the recipients")]
    DuplicateRecipient(DeviceId),
    /// A recipient's receive key is outside its validity window at the cable's creation time.
    #[error(
        "receive key {key} of device {device} is not valid at the cable's creation time; sync the directory and retry"
    )]
    ReceiveKeyNotValid {
        /// The recipient device.
        device: DeviceId,
        /// Its receive key.
        key: ReceiveKeyId,
    },
    /// Wrapping the content key failed.
    #[error("wrapping the content key failed: {0}")]
    Hpke(#[from] HpkeError),
    /// Randomness failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The body could not be encrypted.
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// Seals `body` under `header` for each recipient device, signed by `sender`.
///
/// The header's `version` and `sender_device` are set here; every other field is the
/// caller's. Each recipient key must be valid at `header.created_at_ms`.
pub fn seal(
    sender: &IdentityKeyPair,
    mut header: v1::RoutingHeader,
    body: &v1::CableBody,
    recipients: &[VerifiedReceiveKey],
) -> Result<v1::Envelope, SealError> {
    header.version = ENVELOPE_VERSION;
    header.sender_device = sender.device_id().as_bytes().to_vec();
    header::validate(&header)?;
    check_recipients(recipients, header.created_at_ms)?;
    let header_bytes = canonical::routing_header(&header).map_err(|_| HeaderError::TooLarge)?;

    let cek = ContentKey::generate()?;
    let body_ciphertext = body::encrypt(&cek, &header_bytes, body)?;

    let mut wrap_plaintext = Zeroizing::new([0u8; WRAP_PLAINTEXT_LEN]);
    wrap_plaintext[..CONTENT_KEY_LEN].copy_from_slice(&cek.as_bytes()[..]);
    wrap_plaintext[CONTENT_KEY_LEN..].copy_from_slice(&crate::digest::sha256(&header_bytes));
    let key_wraps = recipients
        .iter()
        .map(|r| wrap_for(r, &header, &wrap_plaintext[..]))
        .collect::<Result<Vec<_>, _>>()?;

    let wraps_bytes = canonical::key_wraps(&key_wraps).map_err(|_| HeaderError::TooLarge)?;
    let key_commitment = cek.commitment().to_vec();
    let signature = sender.sign(&signed_message(
        &header_bytes,
        &body_ciphertext,
        &wraps_bytes,
        &key_commitment,
    ));
    Ok(v1::Envelope {
        header: Some(header),
        body_ciphertext,
        key_wraps,
        signature: signature.to_vec(),
        key_commitment,
    })
}

fn check_recipients(recipients: &[VerifiedReceiveKey], at_ms: u64) -> Result<(), SealError> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let mut seen = HashSet::with_capacity(recipients.len());
    for r in recipients {
        if !seen.insert(r.device_id()) {
            return Err(SealError::DuplicateRecipient(r.device_id()));
        }
        if !r.is_valid_at(at_ms) {
            return Err(SealError::ReceiveKeyNotValid {
                device: r.device_id(),
                key: r.id(),
            });
        }
    }
    Ok(())
}

fn wrap_for(
    recipient: &VerifiedReceiveKey,
    header: &v1::RoutingHeader,
    plaintext: &[u8],
) -> Result<v1::KeyWrap, SealError> {
    let info = wrap_info(
        header.version,
        &header.cable_id,
        &recipient.device_id(),
        &recipient.id(),
    );
    let (enc, mut ctx) = hpke::setup_sender(recipient.public(), &info)?;
    let wrapped_key = ctx.seal(b"", plaintext)?;
    Ok(v1::KeyWrap {
        device_id: recipient.device_id().as_bytes().to_vec(),
        receive_key_id: recipient.id().as_bytes().to_vec(),
        encapsulated_key: enc.to_vec(),
        wrapped_key,
    })
}

#[cfg(test)]
mod tests {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

    use super::*;
    use crate::envelope::{OpenError, open};
    use crate::receive_key::ReceiveKeyPair;

    /// A sender whose software signs a body that is not a `CableBody` (here a protobuf field with
    /// the invalid wire type 7). Every layer checks out, so the recipient is told the body is
    /// malformed, not that anyone tampered with it.
    #[test]
    fn a_signed_body_that_is_not_a_cable_body_is_reported_as_malformed() {
        let sender = IdentityKeyPair::generate().unwrap();
        let bob = IdentityKeyPair::generate().unwrap();
        let bob_key = ReceiveKeyPair::generate(0, u64::MAX).unwrap();
        let bob_pub =
            VerifiedReceiveKey::verify(&bob_key.to_signed_record(&bob).unwrap(), bob.public())
                .unwrap();
        let header = v1::RoutingHeader {
            version: ENVELOPE_VERSION,
            cable_id: vec![7; 16],
            sender_device: sender.device_id().as_bytes().to_vec(),
            from: "alice@paris".into(),
            action_addressees: vec!["bob@paris".into()],
            classification: v1::Classification::Secret as i32,
            precedence: v1::Precedence::Routine as i32,
            created_at_ms: 1,
            ..Default::default()
        };
        let header_bytes = canonical::routing_header(&header).unwrap();

        let cek = ContentKey::generate().unwrap();
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek.as_bytes()[..]).unwrap());
        let mut body_ciphertext = vec![0x0F, 0x01, 0x02];
        aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::from(&header_bytes),
            &mut body_ciphertext,
        )
        .unwrap();
        let mut wrap_plaintext = [0u8; WRAP_PLAINTEXT_LEN];
        wrap_plaintext[..CONTENT_KEY_LEN].copy_from_slice(&cek.as_bytes()[..]);
        wrap_plaintext[CONTENT_KEY_LEN..].copy_from_slice(&crate::digest::sha256(&header_bytes));
        let key_wraps = vec![wrap_for(&bob_pub, &header, &wrap_plaintext).unwrap()];
        let key_commitment = cek.commitment().to_vec();
        let signature = sender
            .sign(&signed_message(
                &header_bytes,
                &body_ciphertext,
                &canonical::key_wraps(&key_wraps).unwrap(),
                &key_commitment,
            ))
            .to_vec();
        let envelope = v1::Envelope {
            header: Some(header),
            body_ciphertext,
            key_wraps,
            signature,
            key_commitment,
        };

        let err = open(&envelope, sender.public(), &bob.device_id(), &[bob_key]).unwrap_err();
        assert_eq!(err, OpenError::MalformedBody);
        assert!(err.to_string().contains("not a valid cable body"), "{err}");
    }
}
