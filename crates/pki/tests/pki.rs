//! Mutual TLS as an attacker at the door observes it: handshakes run in memory between rustls
//! endpoints built from the node's own configurations, no sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use time::{Duration, OffsetDateTime};
use valise_crypto::at_rest::KdfParams;
use valise_crypto::tls::{ALPN, ALPN_ENROLL, client_config, directory_root};
use valise_pki::{CertifiedKey, MinistryCa, PostCa, Role, Validity, certified_role, server_config};

fn year() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(365),
    }
}

fn ca(name: &str) -> MinistryCa {
    MinistryCa::generate(name, year()).unwrap()
}

fn post_ca(ca: &MinistryCa, post: &str) -> PostCa {
    PostCa::from_pem(
        post,
        "mfa.example",
        &ca.issue_post_ca(post, year()).unwrap(),
    )
    .unwrap()
}

/// A Paris device certificate, issued by the Paris post CA.
fn device(ca: &MinistryCa, validity: Validity) -> CertifiedKey {
    post_ca(ca, "paris")
        .issue_device("00112233445566778899aabbccddeeff", validity)
        .unwrap()
}

/// Runs a TLS 1.3 handshake to completion; returns the negotiated ALPN, or the first error.
/// The peer's certificate was refused (wrong CA, wrong name, expired…).
fn assert_invalid_certificate(err: &rustls::Error) {
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
    name: &str,
) -> Result<Vec<u8>, rustls::Error> {
    let mut c = ClientConnection::new(
        Arc::new(client),
        ServerName::try_from(name.to_owned()).unwrap(),
    )?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    for _ in 0..20 {
        flight(&mut c, &mut s)?;
        flight(&mut s, &mut c)?;
        if !c.is_handshaking() && !s.is_handshaking() {
            // TLS 1.3 clients finish before the server has checked their certificate: let the
            // server see the client's last flight.
            flight(&mut c, &mut s)?;
            return Ok(s.alpn_protocol().unwrap_or_default().to_vec());
        }
    }
    panic!("handshake did not finish");
}

/// Carries everything `from` wants to send to `to`, and lets `to` process it.
fn flight<A, B>(
    from: &mut rustls::ConnectionCommon<A>,
    to: &mut rustls::ConnectionCommon<B>,
) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    to.read_tls(&mut buf.as_slice()).unwrap();
    to.process_new_packets().map(drop)
}

#[test]
fn an_enrolled_device_and_its_node_authenticate_each_other() {
    let ca = ca("mfa.example");
    let node = ca
        .issue_node("paris", Role::Post, &["localhost".into()], year())
        .unwrap();
    let device = device(&ca, year());
    let alpn = handshake(
        client_config(ca.cert_pem(), Some(&device)).unwrap(),
        server_config(ca.cert_pem(), &node, false).unwrap(),
        "paris.mfa.example",
    )
    .unwrap();
    assert_eq!(alpn, ALPN);
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let ca = ca("mfa.example");
    let node = ca.issue_node("paris", Role::Post, &[], year()).unwrap();
    let err = handshake(
        client_config(ca.cert_pem(), None).unwrap(),
        server_config(ca.cert_pem(), &node, false).unwrap(),
        "paris.mfa.example",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::NoCertificatesPresented | rustls::Error::NoApplicationProtocol
        ),
        "{err:?}"
    );
}

#[test]
fn without_a_certificate_only_enrolment_is_possible() {
    let ca = ca("mfa.example");
    let node = ca.issue_node("paris", Role::Post, &[], year()).unwrap();
    let alpn = handshake(
        client_config(ca.cert_pem(), None).unwrap(),
        server_config(ca.cert_pem(), &node, true).unwrap(),
        "paris.mfa.example",
    )
    .unwrap();
    assert_eq!(
        alpn, ALPN_ENROLL,
        "an anonymous client is confined to the enrolment protocol"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let ours = ca("mfa.example");
    let theirs = ca("mfa.example");
    let node = ours.issue_node("paris", Role::Post, &[], year()).unwrap();
    let impostor = device(&theirs, year());
    let err = handshake(
        client_config(ours.cert_pem(), Some(&impostor)).unwrap(),
        server_config(ours.cert_pem(), &node, false).unwrap(),
        "paris.mfa.example",
    )
    .unwrap_err();
    assert_invalid_certificate(&err);
    // And a device refuses a node certified by another CA.
    let fake_node = theirs.issue_node("paris", Role::Post, &[], year()).unwrap();
    let device = device(&ours, year());
    let err = handshake(
        client_config(ours.cert_pem(), Some(&device)).unwrap(),
        server_config(theirs.cert_pem(), &fake_node, false).unwrap(),
        "paris.mfa.example",
    )
    .unwrap_err();
    assert_invalid_certificate(&err);
}

#[test]
fn an_expired_certificate_is_refused() {
    let ca = ca("mfa.example");
    let node = ca.issue_node("paris", Role::Post, &[], year()).unwrap();
    let now = OffsetDateTime::now_utc();
    let expired = Validity {
        not_before: now - Duration::days(30),
        not_after: now - Duration::days(1),
    };
    let device = device(&ca, expired);
    let err = handshake(
        client_config(ca.cert_pem(), Some(&device)).unwrap(),
        server_config(ca.cert_pem(), &node, false).unwrap(),
        "paris.mfa.example",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
}

#[test]
fn a_node_is_only_trusted_under_its_own_name() {
    let ca = ca("mfa.example");
    let node = ca.issue_node("paris", Role::Post, &[], year()).unwrap();
    let device = device(&ca, year());
    let err = handshake(
        client_config(ca.cert_pem(), Some(&device)).unwrap(),
        server_config(ca.cert_pem(), &node, false).unwrap(),
        "nairobi.mfa.example",
    )
    .unwrap_err();
    assert_invalid_certificate(&err);
}

#[test]
fn the_ca_key_is_sealed_under_its_passphrase() {
    let ca = ca("mfa.example");
    let fast = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let sealed = ca.seal_key(b"correct horse", fast).unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"),
        "no plaintext key on disk"
    );
    let reopened =
        MinistryCa::open_sealed("mfa.example", ca.cert_pem(), &sealed, b"correct horse").unwrap();
    assert_eq!(reopened.fingerprint(), ca.fingerprint());
    // The reopened CA still issues certificates the node accepts.
    let node = reopened
        .issue_node("paris", Role::Post, &[], year())
        .unwrap();
    let device = device(&reopened, year());
    assert!(
        handshake(
            client_config(ca.cert_pem(), Some(&device)).unwrap(),
            server_config(ca.cert_pem(), &node, false).unwrap(),
            "paris.mfa.example"
        )
        .is_ok()
    );
    let err = MinistryCa::open_sealed("mfa.example", ca.cert_pem(), &sealed, b"wrong")
        .err()
        .unwrap();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    assert!(MinistryCa::open_sealed("mfa.example", ca.cert_pem(), &sealed[..10], b"x").is_err());
}

#[test]
fn fingerprints_are_grouped_hex() {
    let fp = ca("mfa.example").fingerprint();
    assert_eq!(fp.len(), 64 + 15);
    assert!(
        fp.split(' ')
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_hexdigit()))
    );
}

#[test]
fn a_device_certificate_is_issued_from_its_own_request() {
    let ca = ca("mfa.example");
    let node = ca.issue_node("paris", Role::Post, &[], year()).unwrap();
    // The device keeps its key and asks, cheekily, to be named as the hub.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr = rcgen::CertificateParams::new(vec!["hq.mfa.example".to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let chain = post_ca(&ca, "paris")
        .issue_device_from_csr("0011", csr.der(), year())
        .unwrap();
    assert!(!chain.contains("hq.mfa.example"));
    let device = CertifiedKey {
        chain_pem: chain,
        key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
    };
    let alpn = handshake(
        client_config(ca.cert_pem(), Some(&device)).unwrap(),
        server_config(ca.cert_pem(), &node, false).unwrap(),
        "paris.mfa.example",
    )
    .unwrap();
    assert_eq!(alpn, ALPN);
    assert!(
        post_ca(&ca, "paris")
            .issue_device_from_csr("0011", b"not a csr", year())
            .is_err()
    );
}

/// A certificate for `name`, signed by the Paris post CA by hand (as a compromised Paris node
/// could), outside the API that always uses Paris's own namespace.
fn signed_by_paris(ca: &MinistryCa, name: &str) -> CertifiedKey {
    let paris = ca.issue_post_ca("paris", year()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &paris.chain_pem,
        rcgen::KeyPair::from_pem(&paris.key_pem).unwrap(),
    )
    .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).unwrap();
    CertifiedKey {
        chain_pem: format!("{}{}", cert.pem(), paris.chain_pem),
        key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
    }
}

#[test]
fn a_post_ca_cannot_certify_another_posts_devices() {
    let ca = ca("mfa.example");
    let node = ca.issue_node("nairobi", Role::Post, &[], year()).unwrap();
    let connect = |device: &CertifiedKey| {
        handshake(
            client_config(ca.cert_pem(), Some(device)).unwrap(),
            server_config(ca.cert_pem(), &node, false).unwrap(),
            "nairobi.mfa.example",
        )
    };
    // Control: the same hand-made certificate inside Paris's namespace is accepted.
    assert!(connect(&signed_by_paris(&ca, "0011.devices.paris.mfa.example")).is_ok());
    // In Nairobi's namespace it violates the Paris CA's name constraint.
    let err = connect(&signed_by_paris(&ca, "0011.devices.nairobi.mfa.example")).unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    assert!(format!("{err:?}").contains("NameConstraint"), "{err:?}");
}

#[test]
fn the_ministry_root_anchors_the_directory_too() {
    let ca = ca("mfa.example");
    let post = valise_crypto::identity::IdentityKeyPair::generate().unwrap();
    let cert = ca
        .certify_enroller("paris", post.public(), 0, u64::MAX)
        .unwrap();
    // A client holding only the pinned root certificate checks the enrolment key with it.
    let root = directory_root(ca.cert_pem()).unwrap();
    assert_eq!(root, ca.root_key().unwrap());
    let enroller = valise_crypto::directory::Enroller::verify(&cert, &root, "mfa.example").unwrap();
    assert_eq!(enroller.post, "paris");
    // Another ministry root does not vouch for it.
    let rogue = directory_root(self::ca("mfa.example").cert_pem()).unwrap();
    assert!(valise_crypto::directory::Enroller::verify(&cert, &rogue, "mfa.example").is_err());
    assert!(directory_root("not a certificate").is_err());
}

/// A node's role is the root's word in its certificate: a post's certificate says post, the
/// hub's says hub, and a device certificate names no role at all.
#[test]
fn a_node_certificate_carries_the_role_the_root_gave_it() {
    use rustls_pki_types::pem::PemObject;
    let ca = ca("mfa.example");
    let first = |pem: &str| {
        rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    };
    let hub = ca.issue_node("hq", Role::Hub, &[], year()).unwrap();
    let post = ca.issue_node("rome", Role::Post, &[], year()).unwrap();
    assert_eq!(certified_role(&first(&hub.chain_pem)), Some(Role::Hub));
    assert_eq!(certified_role(&first(&post.chain_pem)), Some(Role::Post));
    let device = device(&ca, year());
    assert_eq!(certified_role(&first(&device.chain_pem)), None);
}
