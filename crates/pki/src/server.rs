//! The node's TLS server configuration: rustls on ring, TLS 1.3 only, no early data, client
//! certificates verified against the pinned ministry root. The protocols it offers are the
//! ALPNs the client side defines ([`valise_crypto::tls::ALPN`] and its siblings).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use valise_crypto::tls::{ALPN, ALPN_ENROLL, ALPN_LINK, TlsError, provider, root_store};

use crate::CertifiedKey;

/// Why the server configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerConfigError {
    /// The root certificate or the node's chain or key is malformed PEM.
    #[error(
        "malformed PEM ({what}): {reason}; check that the file is the one `valise-relay ca` wrote"
    )]
    Pem {
        /// What was being read.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the root.
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(String),
    /// Any other refusal from the shared client side ([`valise_crypto::tls`]).
    #[error(transparent)]
    Transport(TlsError),
}

impl From<TlsError> for ServerConfigError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Pem { what, reason } => ServerConfigError::Pem { what, reason },
            TlsError::Tls(e) => ServerConfigError::Tls(e),
            other => ServerConfigError::Transport(other),
        }
    }
}

/// The node's TLS server configuration: TLS 1.3 only, client certificates verified against
/// the ministry root. With `allow_enrolment`, a client without a certificate may connect, and
/// the connection code must confine it to [`ALPN_ENROLL`].
pub fn server_config(
    ca_pem: &str,
    node: &CertifiedKey,
    allow_enrolment: bool,
) -> Result<ServerConfig, ServerConfigError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca_pem)?), provider());
    let verifier = if allow_enrolment {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    let verifier = verifier
        .build()
        .map_err(|e| ServerConfigError::Verifier(e.to_string()))?;
    let (chain, key) = node.to_der()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // Early data can be replayed: never accept it.
    config.max_early_data_size = 0;
    config.alpn_protocols = if allow_enrolment {
        vec![ALPN.to_vec(), ALPN_LINK.to_vec(), ALPN_ENROLL.to_vec()]
    } else {
        vec![ALPN.to_vec(), ALPN_LINK.to_vec()]
    };
    Ok(config)
}
