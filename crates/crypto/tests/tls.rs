//! The client side of TLS as a device sees it: a configuration pinned to the ministry root,
//! offering the right protocol, and the root checked against the fingerprint it was given.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use valise_crypto::tls::{
    ALPN, ALPN_ENROLL, CertifiedKey, TlsError, check_root_fingerprint, client_config,
    root_fingerprint,
};
use zeroize::Zeroizing;

/// A ministry root (PEM) and a device certificate it issued.
fn ministry() -> (String, CertifiedKey) {
    let root_key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut root = CertificateParams::default();
    root.distinguished_name
        .push(DnType::CommonName, "mfa.example Valise root");
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let root_pem = root.self_signed(&root_key).unwrap().pem();
    let issuer = Issuer::new(root, root_key);

    let device_key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut device = CertificateParams::new(vec!["0a1b.devices.paris.mfa.example".into()]).unwrap();
    device.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let device_pem = device.signed_by(&device_key, &issuer).unwrap().pem();
    let identity = CertifiedKey {
        chain_pem: format!("{device_pem}{root_pem}"),
        key_pem: Zeroizing::new(device_key.serialize_pem()),
    };
    (root_pem, identity)
}

#[test]
fn an_enrolled_device_presents_its_certificate_and_speaks_valise() {
    let (root, device) = ministry();
    let config = client_config(&root, Some(&device)).unwrap();
    assert_eq!(config.alpn_protocols, vec![ALPN.to_vec()]);
    assert!(config.client_auth_cert_resolver.has_certs());
    assert!(!config.enable_early_data);
}

#[test]
fn a_device_without_a_certificate_can_only_enrol() {
    let (root, _) = ministry();
    let config = client_config(&root, None).unwrap();
    assert_eq!(config.alpn_protocols, vec![ALPN_ENROLL.to_vec()]);
    assert!(!config.client_auth_cert_resolver.has_certs());
}

#[test]
fn a_malformed_root_or_key_is_named() {
    let (root, device) = ministry();
    assert!(matches!(
        client_config("not a certificate", None),
        Err(TlsError::Pem {
            what: "CA certificate",
            ..
        })
    ));
    let broken = CertifiedKey {
        chain_pem: device.chain_pem.clone(),
        key_pem: Zeroizing::new("not a key".into()),
    };
    let err = client_config(&root, Some(&broken)).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Pem {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_root_is_checked_against_the_fingerprint_handed_out() {
    let (root, _) = ministry();
    let fingerprint = root_fingerprint(&root).unwrap();
    // SHA-256 as 16 space-separated groups of four lower-case hex digits.
    let groups: Vec<&str> = fingerprint.split(' ').collect();
    assert_eq!(groups.len(), 16);
    assert!(groups.iter().all(|g| {
        g.len() == 4
            && g.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    }));

    check_root_fingerprint(&root, &fingerprint).unwrap();
    check_root_fingerprint(&root, &fingerprint.to_uppercase().replace(' ', ":")).unwrap();

    let (other, _) = ministry();
    let err = check_root_fingerprint(&other, &fingerprint).unwrap_err();
    assert!(
        matches!(&err, TlsError::FingerprintMismatch { expected, .. } if *expected == fingerprint),
        "{err}"
    );
    assert!(err.to_string().contains(&fingerprint), "{err}");
}
