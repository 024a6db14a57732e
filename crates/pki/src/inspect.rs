//! What a certificate says, for checking that a file belongs where it is: its DNS names, the
//! names a CA may certify, the first certificate of a chain. Unreadable input reads as
//! nothing, which every caller refuses.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;

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
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
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
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
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
