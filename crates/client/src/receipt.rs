//! Receipts: a recipient device's signed statement that it stored, read or acknowledged a
//! cable. They travel back to the sender in the body of a small envelope (a receipt envelope).

use valise_crypto::identity::{IdentityKeyPair, IdentityPublicKey};
use valise_proto::canonical;
use valise_proto::v1::{CableBody, Receipt, ReceiptKind};

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The receipt is malformed (field sizes, kind).
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// It names a device other than the key that is to have signed it.
    #[error("the receipt names another device than its signer")]
    WrongDevice,
    /// The signature does not verify.
    #[error("the receipt's signature does not verify")]
    BadSignature,
}

/// Signs a receipt of `kind` for `cable_id`, issued by `device` at `at_ms`.
pub fn sign(
    device: &IdentityKeyPair,
    cable_id: &[u8],
    kind: ReceiptKind,
    at_ms: u64,
) -> Result<Receipt, ReceiptError> {
    let mut receipt = Receipt {
        cable_id: cable_id.to_vec(),
        device_id: device.device_id().as_bytes().to_vec(),
        kind: kind as i32,
        at_ms,
        signature: Vec::new(),
    };
    let bytes = canonical::receipt(&receipt).map_err(|_| ReceiptError::Malformed("too large"))?;
    receipt.signature = device.sign(&bytes).to_vec();
    Ok(receipt)
}

/// Verifies `receipt` as issued by the device whose identity key is `issuer`.
pub fn verify(receipt: &Receipt, issuer: &IdentityPublicKey) -> Result<(), ReceiptError> {
    if receipt.cable_id.len() != 16 {
        return Err(ReceiptError::Malformed("cable id"));
    }
    if ReceiptKind::try_from(receipt.kind).map_or(true, |k| k == ReceiptKind::Unspecified) {
        return Err(ReceiptError::Malformed("kind"));
    }
    if receipt.device_id != issuer.device_id().as_bytes() {
        return Err(ReceiptError::WrongDevice);
    }
    let bytes = canonical::receipt(receipt).map_err(|_| ReceiptError::Malformed("too large"))?;
    issuer
        .verify(&bytes, &receipt.signature)
        .map_err(|_| ReceiptError::BadSignature)
}

/// The body of a receipt envelope.
pub fn body(receipts: Vec<Receipt>) -> CableBody {
    CableBody {
        receipts,
        ..Default::default()
    }
}

/// Whether `body` is a receipt envelope's: receipts, and no cable content.
pub fn is_receipt_body(body: &CableBody) -> bool {
    !body.receipts.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_receipt_verifies_and_any_change_is_caught() {
        let bob = IdentityKeyPair::generate().unwrap();
        let receipt = sign(&bob, &[7; 16], ReceiptKind::Read, 1_000).unwrap();
        verify(&receipt, bob.public()).unwrap();

        let mut later = receipt.clone();
        later.kind = ReceiptKind::Acknowledged as i32;
        assert_eq!(
            verify(&later, bob.public()),
            Err(ReceiptError::BadSignature)
        );
        let mut other_cable = receipt.clone();
        other_cable.cable_id = vec![8; 16];
        assert_eq!(
            verify(&other_cable, bob.public()),
            Err(ReceiptError::BadSignature)
        );

        let mallory = IdentityKeyPair::generate().unwrap();
        assert_eq!(
            verify(&receipt, mallory.public()),
            Err(ReceiptError::WrongDevice)
        );
        let forged = sign(&mallory, &[7; 16], ReceiptKind::Read, 1_000).unwrap();
        let mut claimed = forged;
        claimed.device_id = bob.device_id().as_bytes().to_vec();
        assert_eq!(
            verify(&claimed, bob.public()),
            Err(ReceiptError::BadSignature)
        );

        let mut no_kind = receipt;
        no_kind.kind = 0;
        assert_eq!(
            verify(&no_kind, bob.public()),
            Err(ReceiptError::Malformed("kind"))
        );
    }

    #[test]
    fn receipt_bodies_are_told_apart_from_cables() {
        let bob = IdentityKeyPair::generate().unwrap();
        let r = sign(&bob, &[1; 16], ReceiptKind::Delivered, 1).unwrap();
        assert!(is_receipt_body(&body(vec![r])));
        assert!(!is_receipt_body(&CableBody {
            subject: "s".into(),
            ..Default::default()
        }));
    }
}
