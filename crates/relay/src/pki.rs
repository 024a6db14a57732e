//! The ministry PKI ([`valise_pki`]) in the relay's terms: the role the root certified a node
//! for, as the [`NodeKind`] the configuration and routing speak of.

use valise_pki::Role;

use crate::config::NodeKind;

/// The role a node certificate (DER) was issued for, or `None` if it names none: only the
/// root issues node certificates, so this is the root's word, not the node's.
pub(crate) fn certified_role(cert_der: &[u8]) -> Option<NodeKind> {
    valise_pki::certified_role(cert_der).map(|role| match role {
        Role::Hub => NodeKind::Hub,
        Role::Post => NodeKind::Post,
    })
}
