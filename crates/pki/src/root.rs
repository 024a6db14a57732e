//! The ministry root: a self-signed Ed25519 CA that may certify one level of CAs below it (the
//! post CAs). It is created once, kept offline, and reloaded from its certificate and key to
//! issue nodes. What it issues is in [`crate::node`] and [`crate::post`]; how its key is kept
//! on disk, in [`crate::sealed`].

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ED25519,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use valise_crypto::identity::IdentityPublicKey;
use valise_crypto::tls::fingerprint;

use crate::CertifiedKey;
use crate::certificate::{CertificateError, issue_with};
use crate::validity::Validity;

/// The ministry's root certificate authority.
pub struct MinistryCa {
    pub(crate) ministry: String,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl MinistryCa {
    /// Creates a new root for `ministry`.
    pub fn generate(ministry: &str, validity: Validity) -> Result<Self, CertificateError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{ministry} Valise root"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, ministry);
        // One level of intermediates: the post CAs, which may not issue CAs themselves.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let cert_der = cert.der().clone();
        Ok(MinistryCa {
            ministry: ministry.to_owned(),
            cert_pem,
            cert_der,
            issuer: Issuer::new(params, key),
        })
    }

    /// Reloads a root from its certificate and unsealed key.
    pub fn from_pem(
        ministry: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, CertificateError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            CertificateError::Pem {
                what: "CA certificate",
                reason: e.to_string(),
            }
        })?;
        Ok(MinistryCa {
            ministry: ministry.to_owned(),
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
        })
    }

    /// The ministry's name, e.g. `mfa.example`.
    pub fn ministry(&self) -> &str {
        &self.ministry
    }

    /// The root certificate (PEM), to pin on every node and device.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The root's fingerprint: SHA-256 of its DER, as colon-free hex in groups of four, for
    /// operators and diplomats to compare out of band.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// The root's Ed25519 public key. It anchors the directory as well as TLS: clients take it
    /// from the pinned root certificate ([`valise_crypto::tls::directory_root`]).
    pub fn root_key(&self) -> Result<IdentityPublicKey, CertificateError> {
        IdentityPublicKey::from_slice(self.issuer.key().public_key_raw())
            .map_err(|e| CertificateError::RootKey(e.to_string()))
    }

    /// Signs `params` for `validity` with a fresh key; the chain ends with the root.
    pub(crate) fn issue(
        &self,
        params: CertificateParams,
        validity: Validity,
    ) -> Result<CertifiedKey, CertificateError> {
        issue_with(&self.issuer, &self.cert_pem, params, validity)
    }

    /// Signs `bytes` (a directory certificate's canonical form) with the root key.
    pub(crate) fn sign(&self, bytes: &[u8]) -> Result<Vec<u8>, CertificateError> {
        Ok(rcgen::SigningKey::sign(self.issuer.key(), bytes)?)
    }
}
