//! What every certificate operation shares: its error, and signing a certificate's parameters
//! with an issuer's key under a validity window.

use rcgen::{CertificateParams, Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519};
use zeroize::Zeroizing;

use crate::CertifiedKey;
use crate::validity::Validity;

/// Why a certificate could not be issued or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Generating, signing or parsing a certificate, a key or a request failed.
    #[error("certificate error: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A PEM file is malformed.
    #[error(
        "malformed PEM ({what}): {reason}; check that the file is the one `valise-relay ca` wrote"
    )]
    Pem {
        /// What was being read.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// The root's key is not an Ed25519 key, so it cannot anchor the directory.
    #[error("the root key is not an Ed25519 key the directory can use: {0}")]
    RootKey(String),
    /// A directory certificate could not be put in the canonical form that is signed.
    #[error("cannot encode the {what} for signing: {reason}")]
    Canonical {
        /// Which certificate.
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },
}

/// Signs `params` with `issuer` for `validity`, with a fresh Ed25519 key, and returns the new
/// certificate followed by `issuer_chain_pem`, with its key.
pub(crate) fn issue_with(
    issuer: &Issuer<'static, KeyPair>,
    issuer_chain_pem: &str,
    mut params: CertificateParams,
    validity: Validity,
) -> Result<CertifiedKey, CertificateError> {
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    if params.key_usages.is_empty() {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ED25519)?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(CertifiedKey {
        chain_pem: format!("{}{issuer_chain_pem}", cert.pem()),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}
