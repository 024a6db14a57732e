//! The TLS client side of every connection to a node, for devices and for nodes alike: rustls
//! on ring (no aws-lc), TLS 1.3 only, no early data, the ministry root as the only trust anchor,
//! and the caller's certificate presented when it has one. The node's server configuration and
//! the certificate authorities live in the relay.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::identity::IdentityPublicKey;

mod pinned_root;
pub use pinned_root::{CapturedRoot, enrolment_config};

/// ALPN of authenticated traffic.
pub const ALPN: &[u8] = b"valise/1";
/// ALPN of the one unauthenticated path: redeeming an enrolment code.
pub const ALPN_ENROLL: &[u8] = b"valise-enroll/1";
/// ALPN of a link between two nodes, each presenting its node certificate.
pub const ALPN_LINK: &[u8] = b"valise-link/1";

/// Why a TLS configuration could not be built, or a root not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM text is malformed or holds nothing of the kind expected.
    #[error(
        "malformed PEM ({what}): {reason}; check that the file holds the {what} and is complete"
    )]
    Pem {
        /// What was being read.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// rustls refused the certificate, the key or the configuration.
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
    /// The root certificate is not the one whose fingerprint the operator handed out.
    #[error(
        "the ministry root's fingerprint is {found}, not the {expected} you were given; do not use this root, and check with ministry IT"
    )]
    FingerprintMismatch {
        /// The fingerprint given.
        expected: String,
        /// The root's.
        found: String,
    },
}

/// A certificate chain and its private key, as PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate chain: the leaf, then the root.
    pub chain_pem: String,
    /// The private key (PKCS#8). Wiped on drop; write it with owner-only permissions.
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("chain_pem", &self.chain_pem)
            .finish_non_exhaustive()
    }
}

impl CertifiedKey {
    /// The chain and key as DER, as rustls takes them.
    pub fn to_der(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let chain = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: "certificate chain",
                reason: e.to_string(),
            })?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| TlsError::Pem {
                what: "private key",
                reason: e.to_string(),
            })?;
        Ok((chain, key))
    }
}

/// The rustls crypto provider every Valise connection uses: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A root store holding the ministry root certificate (PEM) and nothing else.
pub fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(root_der(ca_pem)?)?;
    Ok(roots)
}

/// A client configuration (device or node) pinned to the ministry root, presenting `identity`
/// if given. Without one it offers only [`ALPN_ENROLL`], the path for redeeming an enrolment
/// code; with one, only [`ALPN`].
pub fn client_config(
    ca_pem: &str,
    identity: Option<&CertifiedKey>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(root_store(ca_pem)?);
    let mut config = match identity {
        Some(id) => {
            let (chain, key) = id.to_der()?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.enable_early_data = false;
    config.alpn_protocols = vec![if identity.is_some() {
        ALPN.to_vec()
    } else {
        ALPN_ENROLL.to_vec()
    }];
    Ok(config)
}

/// A node's client configuration for dialling another node: its node certificate presented,
/// the ministry root as the only anchor, and only [`ALPN_LINK`] offered.
pub fn link_client_config(ca_pem: &str, node: &CertifiedKey) -> Result<ClientConfig, TlsError> {
    let mut config = client_config(ca_pem, Some(node))?;
    config.alpn_protocols = vec![ALPN_LINK.to_vec()];
    Ok(config)
}

/// The fingerprint of a DER certificate: its SHA-256 in lower-case hex, in space-separated
/// groups of four, for people to compare out of band.
pub fn fingerprint(der: &[u8]) -> String {
    let hex = hex::encode(crate::sha256(der));
    hex.as_bytes()
        .chunks(4)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fingerprint of a root certificate given as PEM, as `valise-relay ca init` prints it.
pub fn root_fingerprint(ca_pem: &str) -> Result<String, TlsError> {
    Ok(fingerprint(&root_der(ca_pem)?))
}

/// Checks a root certificate (PEM) against the fingerprint an operator handed out. Case,
/// spaces and colons in `expected` do not matter.
pub fn check_root_fingerprint(ca_pem: &str, expected: &str) -> Result<(), TlsError> {
    let found = root_fingerprint(ca_pem)?;
    if plain_fingerprint(expected) == plain_fingerprint(&found) {
        Ok(())
    } else {
        Err(TlsError::FingerprintMismatch {
            expected: expected.trim().to_owned(),
            found,
        })
    }
}

/// A fingerprint as compared: lower case, without spaces or colons.
fn plain_fingerprint(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The PEM block of `chain_pem` that holds certificate `der`, e.g. the root at the end of the
/// chain a post issued, so a device can pin the root it checked during enrolment.
pub fn certificate_pem_in(chain_pem: &str, der: &[u8]) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    chain_pem
        .split_inclusive(END)
        .map(str::trim)
        .find(|block| {
            CertificateDer::from_pem_slice(block.as_bytes()).is_ok_and(|c| c.as_ref() == der)
        })
        .map(|block| format!("{block}\n"))
}

/// The directory root pinned by a root certificate (PEM): the certificate's Ed25519 public
/// key. The same key anchors TLS and signs the posts' enrolment certificates.
pub fn directory_root(ca_pem: &str) -> Result<IdentityPublicKey, TlsError> {
    let der = root_der(ca_pem)?;
    let not_ed25519 = || TlsError::Pem {
        what: "CA certificate",
        reason: "it does not hold an Ed25519 key".into(),
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| TlsError::Pem {
        what: "CA certificate",
        reason: e.to_string(),
    })?;
    IdentityPublicKey::from_slice(&cert.public_key().subject_public_key.data)
        .map_err(|_| not_ed25519())
}

fn root_der(ca_pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "CA certificate",
        reason: e.to_string(),
    })
}
