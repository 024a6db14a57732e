//! Device certificates: issued by a post's CA, named `<device id>.devices.<post>.<ministry>`,
//! for client authentication only. A real device sends a certificate signing request and keeps
//! its key; the post decides everything else.

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType};

use crate::CertifiedKey;
use crate::certificate::{CertificateError, issue_with};
use crate::post::{PostCa, device_domain};
use crate::validity::Validity;

impl PostCa {
    fn device_params(
        &self,
        device: &str,
        validity: Validity,
    ) -> Result<CertificateParams, CertificateError> {
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
    ) -> Result<String, CertificateError> {
        let der = rustls_pki_types::CertificateSigningRequestDer::from(csr_der.to_vec());
        let mut csr = rcgen::CertificateSigningRequestParams::from_der(&der)?;
        csr.params = self.device_params(device, validity)?;
        let cert = csr.signed_by(&self.issuer)?;
        Ok(format!("{}{}", cert.pem(), self.chain_pem))
    }

    /// Issues a device certificate with a key generated here (for tools and tests; a real
    /// device sends a request and keeps its key).
    pub fn issue_device(
        &self,
        device: &str,
        validity: Validity,
    ) -> Result<CertifiedKey, CertificateError> {
        issue_with(
            &self.issuer,
            &self.chain_pem,
            self.device_params(device, validity)?,
            validity,
        )
    }
}
