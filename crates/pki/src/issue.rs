//! Everything the root issues for a new node, made in memory: its TLS certificate, its signing
//! key and the root's certificate of it, and for a post its enrolment key, the root's
//! certificate of that key, and its enrolment CA. The caller writes them where the node reads
//! them; nothing here touches a file. Time is an argument.

use time::OffsetDateTime;
use valise_crypto::identity::{IdentityError, IdentityKeyPair};
use valise_proto::v1::{EnrolmentCertificate, NodeKeyCertificate};

use crate::CertifiedKey;
use crate::certificate::CertificateError;
use crate::role::Role;
use crate::root::MinistryCa;
use crate::validity::Validity;

/// How long a node's TLS certificate is valid.
const NODE_CERTIFICATE_YEARS: u32 = 2;
/// How long the root's certificates of a node's signing key and of a post's enrolment key are
/// valid.
const KEY_CERTIFICATE_YEARS: u32 = 5;
/// How long a post's enrolment CA is valid.
const POST_CA_YEARS: u32 = 5;
const YEAR_MS: u64 = 365 * 86_400_000;

/// Why a node could not be issued. Nothing was issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The node's TLS certificate could not be issued (e.g. a host that is not a valid name).
    #[error("cannot issue the node certificate")]
    NodeCertificate(#[source] CertificateError),
    /// A key could not be generated.
    #[error("cannot generate {what}")]
    Key {
        /// Which key.
        what: &'static str,
        /// The cause.
        source: IdentityError,
    },
    /// The root could not certify the node's signing key.
    #[error("cannot certify the node signing key")]
    NodeKeyCertificate(#[source] CertificateError),
    /// The root could not certify the post's enrolment key.
    #[error("cannot certify the enrolment key")]
    EnrolmentCertificate(#[source] CertificateError),
    /// The post's enrolment CA could not be issued.
    #[error("cannot issue the post enrolment CA")]
    PostCa(#[source] CertificateError),
}

/// The node to issue.
#[derive(Debug, Clone, Copy)]
pub struct NodeRequest<'a> {
    /// Its name: `hq`, `paris`, `un-newyork`.
    pub name: &'a str,
    /// Hub or post; a post also gets what it needs to enrol devices.
    pub role: Role,
    /// The DNS names or IP addresses it is reached at, besides `<name>.<ministry>`.
    pub hosts: &'a [String],
}

/// What a post needs to enrol its devices.
pub struct IssuedDesk {
    /// The post's enrolment key: signs its device records.
    pub enrolment_key: IdentityKeyPair,
    /// The root's certificate of that key.
    pub enrolment_certificate: EnrolmentCertificate,
    /// The post's enrolment CA: issues its device certificates.
    pub post_ca: CertifiedKey,
}

/// Everything issued for a node.
pub struct IssuedNode {
    /// The root certificate (PEM), for the node to pin.
    pub ca_pem: String,
    /// The node's TLS chain and key.
    pub tls: CertifiedKey,
    /// The node's signing key: custody receipts, audit checkpoints.
    pub signing_key: IdentityKeyPair,
    /// The root's certificate of that key.
    pub signing_certificate: NodeKeyCertificate,
    /// Posts only.
    pub desk: Option<IssuedDesk>,
}

impl IssuedNode {
    /// Issues `request` from `ca` at `now`.
    pub fn issue(
        ca: &MinistryCa,
        request: NodeRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<Self, IssueError> {
        let name = request.name;
        let tls = ca
            .issue_node(
                name,
                request.role,
                request.hosts,
                Validity::years_from(now, NODE_CERTIFICATE_YEARS),
            )
            .map_err(IssueError::NodeCertificate)?;
        let (from_ms, until_ms) = key_certificate_window(now);
        let signing_key = generate("the node signing key")?;
        let signing_certificate = ca
            .certify_node_key(name, signing_key.public(), from_ms, until_ms)
            .map_err(IssueError::NodeKeyCertificate)?;
        let desk = match request.role {
            Role::Hub => None,
            Role::Post => {
                let enrolment_key = generate("the enrolment key")?;
                let enrolment_certificate = ca
                    .certify_enroller(name, enrolment_key.public(), from_ms, until_ms)
                    .map_err(IssueError::EnrolmentCertificate)?;
                let post_ca = ca
                    .issue_post_ca(name, Validity::years_from(now, POST_CA_YEARS))
                    .map_err(IssueError::PostCa)?;
                Some(IssuedDesk {
                    enrolment_key,
                    enrolment_certificate,
                    post_ca,
                })
            }
        };
        Ok(IssuedNode {
            ca_pem: ca.cert_pem().to_owned(),
            tls,
            signing_key,
            signing_certificate,
            desk,
        })
    }
}

fn generate(what: &'static str) -> Result<IdentityKeyPair, IssueError> {
    IdentityKeyPair::generate().map_err(|source| IssueError::Key { what, source })
}

/// From `now` for five years, in Unix milliseconds.
fn key_certificate_window(now: OffsetDateTime) -> (u64, u64) {
    let from = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let span = YEAR_MS.saturating_mul(u64::from(KEY_CERTIFICATE_YEARS));
    (from, from.saturating_add(span))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::inspect::{dns_names, first_certificate, permitted_dns};
    use crate::role::certified_role;

    #[test]
    fn a_post_gets_its_desk_and_a_hub_does_not() {
        let now = OffsetDateTime::now_utc();
        let ca = MinistryCa::generate("mfa.example", Validity::years_from(now, 20)).unwrap();
        let hosts = ["paris.mfa.example".to_owned()];
        let post = IssuedNode::issue(
            &ca,
            NodeRequest {
                name: "paris",
                role: Role::Post,
                hosts: &hosts,
            },
            now,
        )
        .unwrap();
        let cert = first_certificate(&post.tls.chain_pem).unwrap();
        assert_eq!(certified_role(&cert), Some(Role::Post));
        assert!(dns_names(&cert).contains(&"paris.mfa.example".to_owned()));
        assert_eq!(post.ca_pem, ca.cert_pem());
        assert_eq!(post.signing_certificate.node, "paris");
        assert_eq!(
            post.signing_certificate.public_key,
            post.signing_key.public().as_bytes()
        );
        let span = post.signing_certificate.valid_until_ms - post.signing_certificate.valid_from_ms;
        assert_eq!(span, 5 * YEAR_MS);
        let desk = post.desk.unwrap();
        assert_eq!(desk.enrolment_certificate.post, "paris");
        let post_ca = first_certificate(&desk.post_ca.chain_pem).unwrap();
        assert_eq!(permitted_dns(&post_ca), ["devices.paris.mfa.example"]);

        let hub = IssuedNode::issue(
            &ca,
            NodeRequest {
                name: "hq",
                role: Role::Hub,
                hosts: &[],
            },
            now,
        )
        .unwrap();
        let cert = first_certificate(&hub.tls.chain_pem).unwrap();
        assert_eq!(certified_role(&cert), Some(Role::Hub));
        assert!(hub.desk.is_none());
    }
}
