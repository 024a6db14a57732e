//! The ministry's transport PKI and the rustls configurations every connection uses (ring
//! provider, TLS 1.3 only, mutual TLS with client certificates checked against the pinned
//! ministry root). The client side of a connection, which devices share, is
//! [`valise_crypto::tls`]; it is re-exported here.
//!
//! ```text
//! ministry root (offline, Ed25519, path length 1)
//!   ├─ node certificate         paris.mfa.example, OU=post (or OU=hub), server + client auth
//!   └─ post CA for paris        path length 0, DNS names only under devices.paris.mfa.example
//!        └─ device certificate  <device id>.devices.paris.mfa.example, client auth
//! ```
//!
//! The post CA lives on the post's node, so it can enrol devices while the root stays offline.
//! Its name constraint means a compromised post can mint certificates for its own devices
//! only. A node's role (hub or post) is in its certificate's organisational unit, set by the
//! root at issue: a post cannot pass itself off as the hub by saying so.

use std::sync::Arc;

use crate::config::NodeKind;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PKCS_ED25519, SanType,
};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use valise_crypto::at_rest::{KdfParams, SealedStorageKey, StorageKey};
use valise_crypto::directory::Enroller;
use valise_crypto::identity::IdentityPublicKey;
use valise_crypto::tls::{TlsError, provider, root_store};
use valise_proto::canonical;
use valise_proto::v1::EnrolmentCertificate;
use zeroize::Zeroizing;

pub use valise_crypto::tls::{
    ALPN, ALPN_ENROLL, ALPN_LINK, CertifiedKey, client_config, directory_root, fingerprint,
    link_client_config, root_fingerprint,
};

const SEALED_KEY_LEN: usize = 93;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Certificate generation or parsing failed.
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
    /// rustls refused the configuration.
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(String),
    /// A key is not of the expected kind.
    #[error("key error: {0}")]
    Key(String),
    /// The sealed CA key did not open.
    #[error("cannot open the CA key: {0}")]
    Sealed(#[from] valise_crypto::at_rest::AtRestError),
    /// Any other refusal from the shared client side ([`valise_crypto::tls`]).
    #[error(transparent)]
    Transport(TlsError),
}

impl From<TlsError> for PkiError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Pem { what, reason } => PkiError::Pem { what, reason },
            TlsError::Tls(e) => PkiError::Tls(e),
            other => PkiError::Transport(other),
        }
    }
}

/// Validity window of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before.
    pub not_before: OffsetDateTime,
    /// Not valid after.
    pub not_after: OffsetDateTime,
}

/// The ministry's root certificate authority.
pub struct MinistryCa {
    ministry: String,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl MinistryCa {
    /// Creates a new root for `ministry`.
    pub fn generate(ministry: &str, validity: Validity) -> Result<Self, PkiError> {
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
    pub fn from_pem(ministry: &str, cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| PkiError::Pem {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        Ok(MinistryCa {
            ministry: ministry.to_owned(),
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
        })
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

    /// The CA key sealed under a passphrase (Argon2id), safe to write to disk.
    pub fn seal_key(&self, passphrase: &[u8], params: KdfParams) -> Result<Vec<u8>, PkiError> {
        let storage = StorageKey::generate().map_err(valise_crypto::at_rest::AtRestError::from)?;
        let sealed = storage.seal_with_passphrase(passphrase, params)?;
        let record = storage.record_sealer()?.seal(
            "ca",
            b"key",
            self.issuer.key().serialize_pem().as_bytes(),
        )?;
        Ok([sealed.as_bytes(), &record].concat())
    }

    /// Opens a key sealed by [`Self::seal_key`] and reloads the root.
    pub fn open_sealed(
        ministry: &str,
        cert_pem: &str,
        sealed: &[u8],
        passphrase: &[u8],
    ) -> Result<Self, PkiError> {
        let (key_file, record) =
            sealed
                .split_at_checked(SEALED_KEY_LEN)
                .ok_or(PkiError::Sealed(
                    valise_crypto::at_rest::AtRestError::BadKeyFile(
                        "the sealed CA key file is too short",
                    ),
                ))?;
        let storage = SealedStorageKey::from_bytes(key_file)?.unseal(passphrase)?;
        let pem = storage.record_sealer()?.open("ca", b"key", record)?;
        let pem = std::str::from_utf8(&pem).map_err(|_| PkiError::Pem {
            what: "CA key",
            reason: "not UTF-8".into(),
        })?;
        Self::from_pem(ministry, cert_pem, pem)
    }

    /// Issues a node's TLS certificate. Nodes both accept and open connections, so it is valid
    /// for server and client authentication. `hosts` are the DNS names or IP addresses the node
    /// is reached at; the node's own name, `<node>.<ministry>`, is always included. The role
    /// goes in the subject's organisational unit ([`node_role_unit`]).
    pub fn issue_node(
        &self,
        node: &str,
        role: NodeKind,
        hosts: &[String],
        validity: Validity,
    ) -> Result<CertifiedKey, PkiError> {
        let mut names = vec![format!("{node}.{}", self.ministry)];
        names.extend(hosts.iter().cloned());
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("node {node}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, &self.ministry);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, node_role_unit(role));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params, validity)
    }

    /// The root's Ed25519 public key. It anchors the directory as well as TLS: clients take it
    /// from the pinned root certificate ([`directory_root`]).
    pub fn root_key(&self) -> Result<IdentityPublicKey, PkiError> {
        IdentityPublicKey::from_slice(self.issuer.key().public_key_raw())
            .map_err(|e| PkiError::Key(e.to_string()))
    }

    /// Certifies a post's enrolment key, for that post only, from `valid_from_ms` to
    /// `valid_until_ms`: the directory half of issuing a node.
    pub fn certify_enroller(
        &self,
        post: &str,
        key: &IdentityPublicKey,
        valid_from_ms: u64,
        valid_until_ms: u64,
    ) -> Result<EnrolmentCertificate, PkiError> {
        let mut cert = Enroller::unsigned_certificate(
            &self.ministry,
            post,
            key,
            valid_from_ms,
            valid_until_ms,
        );
        let bytes =
            canonical::enrolment_certificate(&cert).map_err(|e| PkiError::Key(e.to_string()))?;
        cert.signature = rcgen::SigningKey::sign(self.issuer.key(), &bytes)?;
        Ok(cert)
    }

    /// Certifies a node's signing key (custody receipts, checkpoints), so that anyone holding
    /// the root can check what it signs.
    pub fn certify_node_key(
        &self,
        node: &str,
        key: &IdentityPublicKey,
        valid_from_ms: u64,
        valid_until_ms: u64,
    ) -> Result<valise_proto::v1::NodeKeyCertificate, PkiError> {
        let mut cert = valise_proto::v1::NodeKeyCertificate {
            ministry: self.ministry.clone(),
            node: node.to_owned(),
            public_key: key.as_bytes().to_vec(),
            valid_from_ms,
            valid_until_ms,
            signature: Vec::new(),
        };
        let bytes =
            canonical::node_key_certificate(&cert).map_err(|e| PkiError::Key(e.to_string()))?;
        cert.signature = rcgen::SigningKey::sign(self.issuer.key(), &bytes)?;
        Ok(cert)
    }

    /// Issues the CA a post's node uses to enrol that post's devices.
    pub fn issue_post_ca(&self, post: &str, validity: Validity) -> Result<CertifiedKey, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{post} enrolment CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, &self.ministry);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName(device_domain(post, &self.ministry))],
            excluded_subtrees: Vec::new(),
        });
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        self.issue(params, validity)
    }

    fn issue(
        &self,
        params: CertificateParams,
        validity: Validity,
    ) -> Result<CertifiedKey, PkiError> {
        issue_with(&self.issuer, &self.cert_pem, params, validity)
    }
}

/// The organisational unit a node certificate carries for its role.
pub fn node_role_unit(role: NodeKind) -> &'static str {
    match role {
        NodeKind::Hub => "valise hub",
        NodeKind::Post => "valise post",
    }
}

/// The role a node certificate (DER) was issued for, or `None` if it names none: only the
/// root issues node certificates, so this is the root's word, not the node's.
pub fn certified_role(cert_der: &[u8]) -> Option<NodeKind> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let units: Vec<&str> = cert
        .subject()
        .iter_organizational_unit()
        .filter_map(|u| u.as_str().ok())
        .collect();
    match units.as_slice() {
        [unit] if *unit == node_role_unit(NodeKind::Hub) => Some(NodeKind::Hub),
        [unit] if *unit == node_role_unit(NodeKind::Post) => Some(NodeKind::Post),
        _ => None,
    }
}

/// The DNS names in a certificate (DER), for checking which node a file belongs to.
pub fn dns_names(cert_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

/// The DNS subtrees a CA certificate (DER) is constrained to: for a post CA,
/// `devices.<post>.<ministry>`.
pub fn permitted_dns(cert_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return Vec::new();
    };
    let Ok(Some(constraints)) = cert.name_constraints() else {
        return Vec::new();
    };
    constraints
        .value
        .permitted_subtrees
        .iter()
        .flatten()
        .filter_map(|subtree| match &subtree.base {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

/// The first certificate of a PEM chain, as DER.
pub fn first_certificate(chain_pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .and_then(Result::ok)
}

/// The domain under which a post's devices are named: `devices.<post>.<ministry>`.
pub fn device_domain(post: &str, ministry: &str) -> String {
    format!("devices.{post}.{ministry}")
}

/// A post's enrolment CA, held by its node.
pub struct PostCa {
    post: String,
    ministry: String,
    chain_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl PostCa {
    /// Loads the post CA from the chain and key written by [`MinistryCa::issue_post_ca`].
    pub fn from_pem(post: &str, ministry: &str, issued: &CertifiedKey) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(&issued.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&issued.chain_pem, key)?;
        Ok(PostCa {
            post: post.to_owned(),
            ministry: ministry.to_owned(),
            chain_pem: issued.chain_pem.clone(),
            issuer,
        })
    }

    fn device_params(
        &self,
        device: &str,
        validity: Validity,
    ) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("device {device}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, &self.ministry);
        let name = format!("{device}.{}", device_domain(&self.post, &self.ministry));
        params.subject_alt_names = vec![SanType::DnsName(name.try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    /// Issues a device certificate for the key in a device's certificate signing request
    /// (PKCS#10, DER). Everything the request asks for except its key is ignored: the name,
    /// usage and validity are the post's to decide. Returns the chain: device, post CA, root.
    pub fn issue_device_from_csr(
        &self,
        device: &str,
        csr_der: &[u8],
        validity: Validity,
    ) -> Result<String, PkiError> {
        let der = rustls_pki_types::CertificateSigningRequestDer::from(csr_der.to_vec());
        let mut csr = rcgen::CertificateSigningRequestParams::from_der(&der)?;
        csr.params = self.device_params(device, validity)?;
        let cert = csr.signed_by(&self.issuer)?;
        Ok(format!("{}{}", cert.pem(), self.chain_pem))
    }

    /// Issues a device certificate with a key generated here (for tools and tests; a real
    /// device sends a CSR and keeps its key).
    pub fn issue_device(&self, device: &str, validity: Validity) -> Result<CertifiedKey, PkiError> {
        issue_with(
            &self.issuer,
            &self.chain_pem,
            self.device_params(device, validity)?,
            validity,
        )
    }
}

fn issue_with(
    issuer: &Issuer<'static, KeyPair>,
    issuer_chain_pem: &str,
    mut params: CertificateParams,
    validity: Validity,
) -> Result<CertifiedKey, PkiError> {
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

/// The node's TLS server configuration: TLS 1.3 only, client certificates verified against
/// the ministry root. With `allow_enrolment`, a client without a certificate may connect, and
/// the connection code must confine it to [`ALPN_ENROLL`].
pub fn server_config(
    ca_pem: &str,
    node: &CertifiedKey,
    allow_enrolment: bool,
) -> Result<ServerConfig, PkiError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca_pem)?), provider());
    let verifier = if allow_enrolment {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    let verifier = verifier
        .build()
        .map_err(|e| PkiError::Verifier(e.to_string()))?;
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
