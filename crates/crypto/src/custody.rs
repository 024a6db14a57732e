//! Custody receipts: a node's signed statement that it holds a cable durably, so the previous
//! hop may drop its copy. The receipt names the exact envelope bytes by digest.

use valise_proto::canonical;
use valise_proto::v1::{CustodyReceipt, NodeKeyCertificate};

use crate::identity::{IdentityKeyPair, IdentityPublicKey};

/// Why a custody receipt is not accepted. Until one is, the sender keeps the cable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyError {
    /// Not signed by the node's key.
    #[error("the custody receipt is not validly signed by node {0}")]
    BadSignature(String),
    /// It is for another cable, node or envelope than the one sent.
    #[error("the custody receipt does not match the cable sent: {0}")]
    Mismatch(&'static str),
}

/// Why a node key certificate is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeKeyError {
    /// Not signed by the pinned root.
    #[error("the key certificate of node {0} is not signed by the ministry root")]
    BadSignature(String),
    /// For another ministry or node than expected.
    #[error("the key certificate names {found}, not {expected}")]
    Mismatch {
        /// What was expected.
        expected: String,
        /// What it names.
        found: String,
    },
    /// Not valid at the time that matters.
    #[error(
        "the key certificate of node {node} was not valid at {at_ms} (valid {from_ms}..={until_ms})"
    )]
    OutsideValidity {
        /// The node.
        node: String,
        /// The time checked.
        at_ms: u64,
        /// Start of validity.
        from_ms: u64,
        /// End of validity.
        until_ms: u64,
    },
    /// The key is malformed.
    #[error("the key certificate of node {0} holds a malformed key")]
    Malformed(String),
}

/// The node signing key `cert` certifies for `node` of `ministry`, checked against the root
/// key and valid at `at_ms` (when the receipt it checks was signed).
pub fn verify_node_key(
    cert: &NodeKeyCertificate,
    root: &IdentityPublicKey,
    ministry: &str,
    node: &str,
    at_ms: u64,
) -> Result<IdentityPublicKey, NodeKeyError> {
    let bytes = canonical::node_key_certificate(cert)
        .map_err(|_| NodeKeyError::Malformed(node.to_owned()))?;
    root.verify(&bytes, &cert.signature)
        .map_err(|_| NodeKeyError::BadSignature(node.to_owned()))?;
    if cert.ministry != ministry || cert.node != node {
        return Err(NodeKeyError::Mismatch {
            expected: format!("{node} of {ministry}"),
            found: format!("{} of {}", cert.node, cert.ministry),
        });
    }
    if !(cert.valid_from_ms..=cert.valid_until_ms).contains(&at_ms) {
        return Err(NodeKeyError::OutsideValidity {
            node: node.to_owned(),
            at_ms,
            from_ms: cert.valid_from_ms,
            until_ms: cert.valid_until_ms,
        });
    }
    IdentityPublicKey::from_slice(&cert.public_key)
        .map_err(|_| NodeKeyError::Malformed(node.to_owned()))
}

/// Signs a receipt for `envelope` (its bytes as received) with id `cable_id`.
pub fn sign(
    node_key: &IdentityKeyPair,
    node: &str,
    cable_id: &[u8],
    envelope: &[u8],
    at_ms: u64,
) -> CustodyReceipt {
    let mut receipt = CustodyReceipt {
        cable_id: cable_id.to_vec(),
        node: node.to_owned(),
        envelope_sha256: crate::sha256(envelope).to_vec(),
        accepted_at_ms: at_ms,
        signature: Vec::new(),
    };
    // Canonical encoding cannot fail for fields this small.
    if let Ok(bytes) = canonical::custody_receipt(&receipt) {
        receipt.signature = node_key.sign(&bytes).to_vec();
    }
    receipt
}

/// Checks that `receipt` is `node`'s custody of exactly the `envelope` bytes sent as
/// `cable_id`.
pub fn verify(
    receipt: &CustodyReceipt,
    node: &str,
    node_key: &IdentityPublicKey,
    cable_id: &[u8],
    envelope: &[u8],
) -> Result<(), CustodyError> {
    if receipt.node != node {
        return Err(CustodyError::Mismatch("another node"));
    }
    if receipt.cable_id != cable_id {
        return Err(CustodyError::Mismatch("another cable"));
    }
    if receipt.envelope_sha256 != crate::sha256(envelope) {
        return Err(CustodyError::Mismatch("other envelope bytes"));
    }
    let bytes =
        canonical::custody_receipt(receipt).map_err(|_| CustodyError::Mismatch("malformed"))?;
    node_key
        .verify(&bytes, &receipt.signature)
        .map_err(|_| CustodyError::BadSignature(node.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_vouches_for_exactly_the_bytes_sent() {
        let paris = IdentityKeyPair::generate().unwrap();
        let receipt = sign(&paris, "paris", &[1; 16], b"envelope bytes", 42);
        assert_eq!(
            verify(
                &receipt,
                "paris",
                paris.public(),
                &[1; 16],
                b"envelope bytes"
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &receipt,
                "paris",
                paris.public(),
                &[1; 16],
                b"envelope byteS"
            ),
            Err(CustodyError::Mismatch("other envelope bytes"))
        );
        assert_eq!(
            verify(
                &receipt,
                "paris",
                paris.public(),
                &[2; 16],
                b"envelope bytes"
            ),
            Err(CustodyError::Mismatch("another cable"))
        );
        assert_eq!(
            verify(&receipt, "hq", paris.public(), &[1; 16], b"envelope bytes"),
            Err(CustodyError::Mismatch("another node"))
        );
    }

    #[test]
    fn a_forged_or_altered_receipt_is_refused() {
        let paris = IdentityKeyPair::generate().unwrap();
        let mallory = IdentityKeyPair::generate().unwrap();
        let forged = sign(&mallory, "paris", &[1; 16], b"e", 42);
        assert_eq!(
            verify(&forged, "paris", paris.public(), &[1; 16], b"e"),
            Err(CustodyError::BadSignature("paris".into()))
        );
        let mut altered = sign(&paris, "paris", &[1; 16], b"e", 42);
        altered.accepted_at_ms += 1;
        assert!(verify(&altered, "paris", paris.public(), &[1; 16], b"e").is_err());
    }
}
