//! A post's enrolment CA: issued by the root, held by the post's node, constrained to the DNS
//! names under `devices.<post>.<ministry>`, so the post enrols devices while the root stays
//! offline and a compromised post can certify its own devices only. The root also certifies
//! the post's enrolment key, which signs the post's device records in the directory.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints,
};
use valise_crypto::directory::Enroller;
use valise_crypto::identity::IdentityPublicKey;
use valise_proto::canonical;
use valise_proto::v1::EnrolmentCertificate;

use crate::CertifiedKey;
use crate::certificate::CertificateError;
use crate::root::MinistryCa;
use crate::validity::Validity;

/// The domain under which a post's devices are named: `devices.<post>.<ministry>`.
pub fn device_domain(post: &str, ministry: &str) -> String {
    format!("devices.{post}.{ministry}")
}

impl MinistryCa {
    /// Issues the CA a post's node uses to enrol that post's devices.
    pub fn issue_post_ca(
        &self,
        post: &str,
        validity: Validity,
    ) -> Result<CertifiedKey, CertificateError> {
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

    /// Certifies a post's enrolment key, for that post only, from `valid_from_ms` to
    /// `valid_until_ms` (Unix milliseconds): the directory half of issuing a post.
    pub fn certify_enroller(
        &self,
        post: &str,
        key: &IdentityPublicKey,
        valid_from_ms: u64,
        valid_until_ms: u64,
    ) -> Result<EnrolmentCertificate, CertificateError> {
        let mut cert = Enroller::unsigned_certificate(
            &self.ministry,
            post,
            key,
            valid_from_ms,
            valid_until_ms,
        );
        let bytes =
            canonical::enrolment_certificate(&cert).map_err(|e| CertificateError::Canonical {
                what: "enrolment certificate",
                reason: e.to_string(),
            })?;
        cert.signature = self.sign(&bytes)?;
        Ok(cert)
    }
}

/// A post's enrolment CA, held by its node.
pub struct PostCa {
    pub(crate) post: String,
    pub(crate) ministry: String,
    pub(crate) chain_pem: String,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl PostCa {
    /// Loads the post CA from the chain and key written by [`MinistryCa::issue_post_ca`].
    pub fn from_pem(
        post: &str,
        ministry: &str,
        issued: &CertifiedKey,
    ) -> Result<Self, CertificateError> {
        let key = KeyPair::from_pem(&issued.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&issued.chain_pem, key)?;
        Ok(PostCa {
            post: post.to_owned(),
            ministry: ministry.to_owned(),
            chain_pem: issued.chain_pem.clone(),
            issuer,
        })
    }

    /// The post, e.g. `paris`.
    pub fn post(&self) -> &str {
        &self.post
    }
}
