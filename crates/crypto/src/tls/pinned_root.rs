//! Enrolment's first connection. A new device holds no root certificate yet, only the root's
//! fingerprint, handed to the diplomat over a trusted channel. The node presents its chain with
//! the root at the end. This verifier looks for the certificate with that fingerprint in the
//! chain, checks the chain against it exactly as a pinned root would be checked, and keeps it,
//! so the device can pin it from then on.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{ALPN_ENROLL, TlsError, fingerprint, plain_fingerprint, provider};

/// The root a [`PinnedRootVerifier`] found and checked, once the handshake succeeded.
#[derive(Debug, Clone, Default)]
pub struct CapturedRoot(Arc<Mutex<Option<CertificateDer<'static>>>>);

impl CapturedRoot {
    /// The root certificate (DER), if the handshake found and checked it.
    pub fn get(&self) -> Option<CertificateDer<'static>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Accepts a node whose chain ends in the root with the expected fingerprint.
#[derive(Debug)]
struct PinnedRootVerifier {
    expected: String,
    captured: CapturedRoot,
}

impl ServerCertVerifier for PinnedRootVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let root = intermediates
            .iter()
            .find(|c| plain_fingerprint(&fingerprint(c)) == self.expected)
            .ok_or_else(|| {
                rustls::Error::General(
                    "no certificate presented by the node has the ministry root fingerprint you \
                     were given; check the fingerprint, and that this is your post's node"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(root.clone().into_owned())?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verified = webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        *self
            .captured
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(root.clone().into_owned());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configuration allows TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client configuration for redeeming an enrolment code: TLS 1.3, [`ALPN_ENROLL`], no
/// client certificate, and the node accepted only if its chain ends in the root whose
/// fingerprint is `expected`. The root found is left in the returned [`CapturedRoot`].
pub fn enrolment_config(expected: &str) -> Result<(ClientConfig, CapturedRoot), TlsError> {
    let captured = CapturedRoot::default();
    let verifier = PinnedRootVerifier {
        expected: plain_fingerprint(expected),
        captured: captured.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.enable_early_data = false;
    config.alpn_protocols = vec![ALPN_ENROLL.to_vec()];
    Ok((config, captured))
}
