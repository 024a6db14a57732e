//! What the root issues a node: its TLS certificate, named `<node>.<ministry>` and carrying its
//! [`Role`], and a certificate of its Ed25519 signing key (custody receipts, audit
//! checkpoints), so that anyone holding the root can check what the node signs.

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose};
use valise_crypto::identity::IdentityPublicKey;
use valise_proto::canonical;
use valise_proto::v1::NodeKeyCertificate;

use crate::CertifiedKey;
use crate::certificate::CertificateError;
use crate::role::Role;
use crate::root::MinistryCa;
use crate::validity::Validity;

impl MinistryCa {
    /// Issues a node's TLS certificate. Nodes both accept and open connections, so it is valid
    /// for server and client authentication. `hosts` are the DNS names or IP addresses the node
    /// is reached at; the node's own name, `<node>.<ministry>`, is always included. The role
    /// goes in the subject's organisational unit ([`Role::unit`]).
    pub fn issue_node(
        &self,
        node: &str,
        role: Role,
        hosts: &[String],
        validity: Validity,
    ) -> Result<CertifiedKey, CertificateError> {
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
            .push(DnType::OrganizationalUnitName, role.unit());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params, validity)
    }

    /// Certifies a node's signing key (custody receipts, checkpoints) from `valid_from_ms` to
    /// `valid_until_ms` (Unix milliseconds).
    pub fn certify_node_key(
        &self,
        node: &str,
        key: &IdentityPublicKey,
        valid_from_ms: u64,
        valid_until_ms: u64,
    ) -> Result<NodeKeyCertificate, CertificateError> {
        let mut cert = NodeKeyCertificate {
            ministry: self.ministry.clone(),
            node: node.to_owned(),
            public_key: key.as_bytes().to_vec(),
            valid_from_ms,
            valid_until_ms,
            signature: Vec::new(),
        };
        let bytes =
            canonical::node_key_certificate(&cert).map_err(|e| CertificateError::Canonical {
                what: "node key certificate",
                reason: e.to_string(),
            })?;
        cert.signature = self.sign(&bytes)?;
        Ok(cert)
    }
}
