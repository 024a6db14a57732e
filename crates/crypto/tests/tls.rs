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

/// A fresh ministry root (PEM) and a certificate it issued for `name` with `usage`.
fn issued(name: &str, usage: ExtendedKeyUsagePurpose) -> (String, CertifiedKey) {
    let root_key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut root = CertificateParams::default();
    root.distinguished_name
        .push(DnType::CommonName, "mfa.example Valise root");
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let root_pem = root.self_signed(&root_key).unwrap().pem();
    let issuer = Issuer::new(root, root_key);

    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut leaf = CertificateParams::new(vec![name.into()]).unwrap();
    leaf.extended_key_usages = vec![usage];
    let leaf_pem = leaf.signed_by(&key, &issuer).unwrap().pem();
    let certified = CertifiedKey {
        chain_pem: format!("{leaf_pem}{root_pem}"),
        key_pem: Zeroizing::new(key.serialize_pem()),
    };
    (root_pem, certified)
}

/// A ministry root (PEM) and a device certificate it issued.
fn ministry() -> (String, CertifiedKey) {
    issued(
        "0a1b.devices.paris.mfa.example",
        ExtendedKeyUsagePurpose::ClientAuth,
    )
}

/// A fresh root (PEM) and the node `paris.mfa.example` it certified (chain + key).
fn node_of_fresh_ministry() -> (String, CertifiedKey) {
    issued("paris.mfa.example", ExtendedKeyUsagePurpose::ServerAuth)
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

/// Runs a TLS handshake in memory between a client configuration and a node serving `node`.
fn handshake(client: rustls::ClientConfig, node: &CertifiedKey) -> Result<(), rustls::Error> {
    let (chain, key) = node.to_der().unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(valise_crypto::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![ALPN_ENROLL.to_vec()];
    let name = rustls::pki_types::ServerName::try_from("paris.mfa.example").unwrap();
    let mut c = rustls::ClientConnection::new(std::sync::Arc::new(client), name).unwrap();
    let mut s = rustls::ServerConnection::new(std::sync::Arc::new(server)).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut buf.as_slice()).unwrap();
        // A server-side failure follows a client alert; the client's error is the one to show.
        let _ = s.process_new_packets();
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut buf.as_slice()).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() {
            return Ok(());
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn enrolment_pins_the_root_whose_fingerprint_was_handed_out() {
    let (root, node) = node_of_fresh_ministry();
    let fp = root_fingerprint(&root).unwrap().to_uppercase();
    let (config, captured) = valise_crypto::tls::enrolment_config(&fp).unwrap();
    assert_eq!(config.alpn_protocols, vec![ALPN_ENROLL.to_vec()]);
    handshake(config, &node).unwrap();
    let der = captured.get().expect("the root was captured");
    let pem = valise_crypto::tls::certificate_pem_in(&node.chain_pem, &der).unwrap();
    assert_eq!(pem.trim(), root.trim());
    // The pinned root's key is the directory root.
    valise_crypto::tls::directory_root(&pem).unwrap();
}

#[test]
fn enrolment_refuses_a_node_of_another_root() {
    let (_, node) = node_of_fresh_ministry();
    let (other_root, _) = node_of_fresh_ministry();
    let fp = root_fingerprint(&other_root).unwrap();
    let (config, captured) = valise_crypto::tls::enrolment_config(&fp).unwrap();
    let err = handshake(config, &node).unwrap_err();
    assert!(
        err.to_string().contains("ministry root fingerprint"),
        "{err}"
    );
    assert!(captured.get().is_none());
}

#[test]
fn enrolment_refuses_a_chain_that_names_the_root_but_is_not_signed_by_it() {
    // An attacker presents the real root in its chain, with a leaf from its own CA.
    let (real_root, _) = node_of_fresh_ministry();
    let (_, forged) = node_of_fresh_ministry();
    let leaf = forged
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .unwrap();
    let node = CertifiedKey {
        chain_pem: format!("{leaf}\n{real_root}"),
        key_pem: forged.key_pem.clone(),
    };
    let fp = root_fingerprint(&real_root).unwrap();
    let (config, captured) = valise_crypto::tls::enrolment_config(&fp).unwrap();
    assert!(handshake(config, &node).is_err());
    assert!(captured.get().is_none());
}
