//! A node on loopback QUIC, driven as devices would drive it: sealed cables in, custody
//! receipts out, deliveries in precedence order, and every bad request refused on its own
//! stream while the node keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use quinn::crypto::rustls::QuicClientConfig;
use time::OffsetDateTime;
use valise_audit::verify::{VerifyKeys, verify_dir};
use valise_audit::{AuditLog, LogConfig};
use valise_crypto::at_rest::StorageKey;
use valise_crypto::custody;
use valise_crypto::directory::{sign_device_record, sign_revocation};
use valise_crypto::envelope::{decode_envelope, new_cable_id, open, seal};
use valise_crypto::identity::{IdentityKeyPair, IdentityPublicKey};
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_crypto::tls::{client_config, directory_root};
use valise_pki::{CertifiedKey, MinistryCa, PostCa, Role, Validity, server_config};
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::directory_update::{self, Update};
use valise_proto::v1::{AuditEventKind, Outcome};
use valise_proto::v1::{
    CableBody, Caveat, Classification, ClientFrame, Delivery, DeliveryAck, DeliveryLane,
    DeviceRecord, DirectorySync, DirectoryUpdate, EnrolRequest, EnrolResponse, ErrorCode, Hello,
    NodeFrame, Precedence, Revocation, RoutingHeader, Submit, Subscribe, client_frame, node_frame,
};
use valise_relay::attachments::AttachmentStore;
use valise_relay::delivery::DeliveryConfig;
use valise_relay::directory::{Directory, DurableDirectory};
use valise_relay::enrolment::{Codes, DurableCodes, Invitation};
use valise_relay::limits::Limits;
use valise_relay::node::{EnrolmentDesk, NodeParams, RunningNode, start};
use valise_relay::store::RelayStore;

use common::{fetch, next_node_frame, noise, refusal, upload, upload_frame};

struct Diplomat {
    address: String,
    identity: IdentityKeyPair,
    keys: Vec<ReceiveKeyPair>,
    published: VerifiedReceiveKey,
    tls: CertifiedKey,
}

struct Net {
    ca: MinistryCa,
    node: RunningNode,
    node_key: IdentityKeyPair,
    paris_key: IdentityKeyPair,
    alice: Diplomat,
    bob: Diplomat,
    carol: Diplomat,
    audit: Arc<AuditLog>,
    dir: tempfile::TempDir,
}

fn year() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now - time::Duration::hours(1),
        not_after: now + time::Duration::days(365),
    }
}

fn diplomat(
    user: &str,
    clearance: Classification,
    post_ca: &PostCa,
    paris_key: &IdentityKeyPair,
    directory: &mut DurableDirectory,
) -> Diplomat {
    let identity = IdentityKeyPair::generate().unwrap();
    let key = ReceiveKeyPair::generate(0, u64::MAX).unwrap();
    let signed_key = key.to_signed_record(&identity).unwrap();
    let published = VerifiedReceiveKey::verify(&signed_key, identity.public()).unwrap();
    let mut record = DeviceRecord {
        device_id: identity.device_id().as_bytes().to_vec(),
        user: user.into(),
        post: "paris".into(),
        clearance: clearance as i32,
        identity_key: identity.public().as_bytes().to_vec(),
        receive_keys: vec![signed_key],
        enrolled_at_ms: 1,
        ..Default::default()
    };
    sign_device_record(&mut record, paris_key).unwrap();
    directory.apply(Update::Device(record)).unwrap();
    let tls = post_ca
        .issue_device(&identity.device_id().to_string(), year())
        .unwrap();
    Diplomat {
        address: format!("{user}@paris"),
        identity,
        keys: vec![key],
        published,
        tls,
    }
}

fn network(limits: Limits) -> Net {
    build(limits, None)
}

/// A node that also enrols devices, with codes valid for `code_ttl_ms`.
fn enrolling_network(code_ttl_ms: u64) -> Net {
    build(Limits::default(), Some(code_ttl_ms))
}

fn build(limits: Limits, code_ttl_ms: Option<u64>) -> Net {
    build_with(limits, code_ttl_ms, DeliveryConfig::default())
}

fn build_with(limits: Limits, code_ttl_ms: Option<u64>, delivery: DeliveryConfig) -> Net {
    let ca = MinistryCa::generate("mfa.example", year()).unwrap();
    let node_cert = ca
        .issue_node("paris", Role::Post, &["localhost".into()], year())
        .unwrap();
    let post_ca = PostCa::from_pem(
        "paris",
        "mfa.example",
        &ca.issue_post_ca("paris", year()).unwrap(),
    )
    .unwrap();
    let paris_key = IdentityKeyPair::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = directory_root(ca.cert_pem()).unwrap();
    let mut directory =
        DurableDirectory::open(&dir.path().join("directory"), "mfa.example", root).unwrap();
    let cert = ca
        .certify_enroller("paris", paris_key.public(), 0, u64::MAX)
        .unwrap();
    directory.apply(Update::Enroller(cert)).unwrap();
    let alice = diplomat(
        "alice",
        Classification::Secret,
        &post_ca,
        &paris_key,
        &mut directory,
    );
    let bob = diplomat(
        "bob",
        Classification::TopSecret,
        &post_ca,
        &paris_key,
        &mut directory,
    );
    let carol = diplomat(
        "carol",
        Classification::Confidential,
        &post_ca,
        &paris_key,
        &mut directory,
    );
    let node_key = IdentityKeyPair::generate().unwrap();
    let audit = Arc::new(
        AuditLog::open(
            LogConfig::new(
                dir.path().join("audit"),
                valise_audit::log::origin("mfa.example", "paris"),
            ),
            IdentityKeyPair::from_seed(&node_key.seed()[..]).unwrap(),
        )
        .unwrap(),
    );
    let node = start(NodeParams {
        name: "paris".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: server_config(ca.cert_pem(), &node_cert, code_ttl_ms.is_some()).unwrap(),
        node_key: IdentityKeyPair::from_seed(&node_key.seed()[..]).unwrap(),
        node_key_certificate: Some(
            ca.certify_node_key("paris", node_key.public(), 0, u64::MAX)
                .unwrap(),
        ),
        directory,
        store: RelayStore::open(&dir.path().join("store"), &StorageKey::generate().unwrap())
            .unwrap(),
        limits,
        audit: Arc::clone(&audit),
        enrolment: code_ttl_ms.map(|ttl| EnrolmentDesk {
            post: "paris".into(),
            enrolment_key: IdentityKeyPair::from_seed(&paris_key.seed()[..]).unwrap(),
            post_ca: PostCa::from_pem(
                "paris",
                "mfa.example",
                &ca.issue_post_ca("paris", year()).unwrap(),
            )
            .unwrap(),
            codes: DurableCodes::open(&dir.path().join("codes"), Codes::new(ttl, 100, 10), 0)
                .unwrap(),
            certificate_validity: Duration::from_secs(86_400 * 365),
        }),
        ca_fingerprint: ca.fingerprint(),
        attachments: AttachmentStore::open(
            &dir.path().join("attachments"),
            Duration::from_secs(30 * 86_400),
        )
        .unwrap(),
        federation: None,
        dedup_retention: Duration::from_secs(30 * 86_400),
        delivery,
        extra_tags: vec!["KVAL".into()],
    })
    .unwrap();
    node.serving();
    Net {
        ca,
        node,
        node_key,
        paris_key,
        alice,
        bob,
        carol,
        audit,
        dir,
    }
}

async fn connect(net: &Net, who: Option<&CertifiedKey>) -> Result<quinn::Connection, String> {
    let crypto =
        QuicClientConfig::try_from(client_config(net.ca.cert_pem(), who).unwrap()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = endpoint
        .connect(net.node.local_addr(), "paris.mfa.example")
        .map_err(|e| e.to_string())?;
    connecting.await.map_err(|e| e.to_string())
}

/// Sends one frame on a new stream and reads the node's one reply.
async fn exchange(conn: &quinn::Connection, frame: ClientFrame) -> Result<NodeFrame, String> {
    exchange_raw(conn, &encode(&frame)).await
}

async fn exchange_raw(conn: &quinn::Connection, bytes: &[u8]) -> Result<NodeFrame, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())?;
    let _ = send.finish();
    let reply = recv.read_to_end(1 << 20).await.map_err(|e| e.to_string())?;
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&reply);
    decoder
        .next_frame::<NodeFrame>()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no reply".to_owned())
}

fn cable(
    from: &Diplomat,
    to: &Diplomat,
    classification: Classification,
    precedence: Precedence,
    text: &str,
) -> Vec<u8> {
    cable_with(from, to, classification, precedence, text, |_| {})
}

/// A cable wrapped to `to`'s device, with its header adjusted by `edit` before sealing.
fn cable_with(
    from: &Diplomat,
    to: &Diplomat,
    classification: Classification,
    precedence: Precedence,
    text: &str,
    edit: impl FnOnce(&mut RoutingHeader),
) -> Vec<u8> {
    let mut header = RoutingHeader {
        cable_id: new_cable_id().unwrap().to_vec(),
        from: from.address.clone(),
        action_addressees: vec![to.address.clone()],
        classification: classification as i32,
        precedence: precedence as i32,
        created_at_ms: 10,
        ..Default::default()
    };
    edit(&mut header);
    let body = CableBody {
        subject: "Subject".into(),
        text: text.into(),
        ..Default::default()
    };
    seal(
        &from.identity,
        header,
        &body,
        std::slice::from_ref(&to.published),
    )
    .unwrap()
    .encode_to_vec()
}

/// Seals a cable from `from` to `to` and submits it on `conn`; returns the node's answer.
async fn send_cable(
    conn: &quinn::Connection,
    from: &Diplomat,
    to: &Diplomat,
    classification: Classification,
    precedence: Precedence,
    text: &str,
) -> NodeFrame {
    exchange(
        conn,
        submit(cable(from, to, classification, precedence, text)),
    )
    .await
    .unwrap()
}

/// Alice sends `count` cables to Bob at `precedence`, texts `"{label} {i}"`; each is accepted.
async fn alice_sends_bob(
    conn: &quinn::Connection,
    net: &Net,
    precedence: Precedence,
    label: &str,
    count: usize,
) {
    for i in 0..count {
        let reply = send_cable(
            conn,
            &net.alice,
            &net.bob,
            Classification::Secret,
            precedence,
            &format!("{label} {i}"),
        )
        .await;
        assert!(refusal(&reply).is_none(), "{reply:?}");
    }
}

fn submit(envelope: Vec<u8>) -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::Submit(Submit {
            envelope,
            attachments: vec![],
        })),
    }
}

fn hello() -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::Hello(Hello::default())),
    }
}

fn directory_sync(after_version: u64) -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::DirectorySync(DirectorySync {
            after_version,
            wait_ms: 0,
        })),
    }
}

/// Subscribes as `who` and returns the first `n` cables' texts, acknowledging each.
async fn receive(net: &Net, who: &Diplomat, n: usize) -> Vec<String> {
    let conn = connect(net, Some(&who.tls)).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&encode(&ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe::default())),
    }))
    .await
    .unwrap();
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut texts = Vec::new();
    while texts.len() < n {
        let Some(frame) = decoder.next_frame::<NodeFrame>().unwrap() else {
            let chunk =
                tokio::time::timeout(Duration::from_secs(10), recv.read_chunk(1 << 16, true))
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
            decoder.push(&chunk.bytes);
            continue;
        };
        let delivery = match frame.frame {
            Some(node_frame::Frame::Delivery(delivery)) => delivery,
            // Sent whenever the node has nothing more queued for now.
            Some(node_frame::Frame::CaughtUp(_)) => continue,
            _ => panic!("expected a delivery, got {frame:?}"),
        };
        let envelope = decode_envelope(&delivery.envelope).unwrap();
        let opened = open(
            &envelope,
            net.alice.identity.public(),
            &who.identity.device_id(),
            &who.keys,
        )
        .unwrap();
        texts.push(opened.body.text);
        let ack = ClientFrame {
            frame: Some(client_frame::Frame::DeliveryAck(DeliveryAck {
                queue_key: delivery.queue_key,
            })),
        };
        send.write_all(&encode(&ack)).await.unwrap();
    }
    // Keep the connection until the node has taken every acknowledgement.
    wait_for_empty_queue(net).await;
    texts
}

/// Whether the node turns this client away: at the handshake, or (since a TLS 1.3 client
/// finishes before the server has checked its certificate) at its first request.
async fn refused(net: &Net, who: Option<&CertifiedKey>) -> bool {
    match connect(net, who).await {
        Err(_) => true,
        Ok(conn) => exchange(&conn, hello()).await.is_err(),
    }
}

async fn wait_for_empty_queue(net: &Net) {
    for _ in 0..200 {
        if net.node.queue_depth().unwrap() == [0; 4] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the queue did not drain: {:?}",
        net.node.queue_depth().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cable_crosses_the_node_with_custody_and_is_delivered_once() {
    let net = network(Limits::default());
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let welcome = exchange(
        &alice,
        ClientFrame {
            frame: Some(client_frame::Frame::Hello(Hello {
                protocol_version: 1,
                software: "test".into(),
                ..Default::default()
            })),
        },
    )
    .await
    .unwrap();
    let Some(node_frame::Frame::Welcome(welcome)) = welcome.frame else {
        panic!("no welcome")
    };
    assert_eq!(welcome.node, "paris");

    let bytes = cable(
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Immediate,
        "the text",
    );
    let cable_id = decode_envelope(&bytes).unwrap().header.unwrap().cable_id;
    let reply = exchange(&alice, submit(bytes.clone())).await.unwrap();
    let Some(node_frame::Frame::CustodyReceipt(receipt)) = reply.frame else {
        panic!("no custody: {reply:?}")
    };
    // The welcome names the key that signs custody: a client checks receipts with it.
    let announced = IdentityPublicKey::from_slice(&welcome.node_key).unwrap();
    assert_eq!(&announced, net.node_key.public());
    custody::verify(&receipt, "paris", &announced, &cable_id, &bytes).unwrap();

    // A replay (or a resend after a lost receipt) gets custody again, but is queued once.
    let again = exchange(&alice, submit(bytes)).await.unwrap();
    assert!(matches!(
        again.frame,
        Some(node_frame::Frame::CustodyReceipt(_))
    ));
    assert_eq!(net.node.queue_depth().unwrap(), [0, 1, 0, 0]);

    assert_eq!(
        receive(&net, &net.bob, 1).await,
        vec!["the text".to_owned()]
    );
    wait_for_empty_queue(&net).await;
    net.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_overtakes_queued_routine_traffic() {
    let net = network(Limits::default());
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    alice_sends_bob(&alice, &net, Precedence::Routine, "routine", 1000).await;
    send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "flash",
    )
    .await;
    let texts = receive(&net, &net.bob, 1001).await;
    assert_eq!(texts[0], "flash");
    assert_eq!(
        texts[1..],
        (0..1000)
            .map(|i| format!("routine {i}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_the_node_keeps_serving() {
    let net = network(Limits {
        max_envelope_bytes: 64 * 1024,
        ..Limits::default()
    });
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();

    // A clearance violation: Carol is CONFIDENTIAL.
    let reply = send_cable(
        &alice,
        &net.alice,
        &net.carol,
        Classification::Secret,
        Precedence::Flash,
        "x",
    )
    .await;
    let (code, message) = refusal(&reply).unwrap();
    assert_eq!(code, ErrorCode::Clearance);
    assert!(
        message.contains("carol@paris is cleared for CONFIDENTIAL"),
        "{message}"
    );

    // A malformed frame.
    let reply = exchange_raw(&alice, &[0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_eq!(refusal(&reply).unwrap().0, ErrorCode::Malformed);
    // Envelope bytes that are not an envelope.
    let reply = exchange(&alice, submit(vec![1, 2, 3])).await.unwrap();
    assert_eq!(refusal(&reply).unwrap().0, ErrorCode::Malformed);

    // An oversized frame: refused from its length prefix.
    let reply = exchange(&alice, submit(vec![0u8; 200 * 1024]))
        .await
        .unwrap();
    assert_eq!(refusal(&reply).unwrap().0, ErrorCode::TooLarge);

    // A cable whose header claims another sender than the connected device.
    let forged = cable(
        &net.bob,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "x",
    );
    let reply = exchange(&alice, submit(forged)).await.unwrap();
    assert_eq!(refusal(&reply).unwrap().0, ErrorCode::Malformed);

    // An addressee the directory does not know.
    let stray = cable_with(
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "x",
        |h| h.action_addressees = vec!["nobody@paris".into()],
    );
    let (code, message) = refusal(&exchange(&alice, submit(stray)).await.unwrap()).unwrap();
    assert_eq!(code, ErrorCode::Malformed);
    assert!(
        message.contains("nobody@paris has no active device"),
        "{message}"
    );

    // A NODIS cable addressed to an office mailbox rather than a named person.
    let nodis = cable_with(
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "x",
        |h| {
            h.action_addressees = vec!["POL@paris".into()];
            h.caveats = vec![Caveat::Nodis as i32];
        },
    );
    let (code, message) = refusal(&exchange(&alice, submit(nodis)).await.unwrap()).unwrap();
    assert_eq!(code, ErrorCode::NodisToOffice);
    assert!(message.contains("POL@paris"), "{message}");

    // Throughout, the same connection still works.
    let reply = send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "fine",
    )
    .await;
    assert!(
        matches!(reply.frame, Some(node_frame::Frame::CustodyReceipt(_))),
        "{reply:?}"
    );
    assert_eq!(receive(&net, &net.bob, 1).await, vec!["fine".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_without_a_valid_certificate_or_enrolment_are_refused() {
    let net = network(Limits::default());
    assert!(refused(&net, None).await, "no client certificate");
    let rogue = MinistryCa::generate("mfa.example", year()).unwrap();
    let rogue_post = PostCa::from_pem(
        "paris",
        "mfa.example",
        &rogue.issue_post_ca("paris", year()).unwrap(),
    )
    .unwrap();
    let impostor = rogue_post
        .issue_device(&net.alice.identity.device_id().to_string(), year())
        .unwrap();
    assert!(
        refused(&net, Some(&impostor)).await,
        "a certificate from another CA"
    );
    let post_ca = PostCa::from_pem(
        "paris",
        "mfa.example",
        &net.ca.issue_post_ca("paris", year()).unwrap(),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let expired = Validity {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
    };
    let stale = post_ca
        .issue_device(&net.alice.identity.device_id().to_string(), expired)
        .unwrap();
    assert!(refused(&net, Some(&stale)).await, "an expired certificate");
    let stranger = post_ca
        .issue_device(
            &IdentityKeyPair::generate().unwrap().device_id().to_string(),
            year(),
        )
        .unwrap();
    assert!(
        refused(&net, Some(&stranger)).await,
        "a device the directory does not know"
    );
    assert!(
        !refused(&net, Some(&net.alice.tls)).await,
        "enrolled devices are unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_refused_at_once() {
    let net = network(Limits::default());
    let carol = connect(&net, Some(&net.carol.tls)).await.unwrap();
    assert!(exchange(&carol, hello()).await.is_ok());
    let mut revocation = Revocation {
        device_id: net.carol.identity.device_id().as_bytes().to_vec(),
        reason: "device lost".into(),
        revoked_at_ms: 5,
        signature: vec![],
    };
    sign_revocation(&mut revocation, &net.paris_key).unwrap();
    net.node
        .update_directory(|d| d.apply(Update::Revocation(revocation)))
        .unwrap();

    // Her submissions are refused on the open connection…
    let reply = send_cable(
        &carol,
        &net.carol,
        &net.bob,
        Classification::Confidential,
        Precedence::Flash,
        "x",
    )
    .await;
    assert_eq!(refusal(&reply).unwrap().0, ErrorCode::Revoked);
    // …and a new connection is turned away.
    if let Ok(conn) = connect(&net, Some(&net.carol.tls)).await {
        assert!(exchange(&conn, hello()).await.is_err());
    }
}

/// Pages of the node's directory after `after`, until the client has caught up.
async fn sync_directory(conn: &quinn::Connection, after: u64) -> Vec<DirectoryUpdate> {
    let mut updates = Vec::new();
    let mut version = after;
    loop {
        let reply = exchange(conn, directory_sync(version)).await.unwrap();
        let Some(node_frame::Frame::DirectoryPage(page)) = reply.frame else {
            panic!("expected a directory page, got {reply:?}");
        };
        assert!(page.updates.len() <= 64, "pages are bounded");
        for update in page.updates {
            assert_eq!(update.version, version + 1, "updates arrive in order");
            version = update.version;
            updates.push(update);
        }
        if version == page.version {
            return updates;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_syncs_the_directory_and_verifies_every_update() {
    let net = network(Limits::default());
    // Enough devices that the history spans more than one page.
    let mut extra = Vec::new();
    for i in 0..70 {
        let identity = IdentityKeyPair::generate().unwrap();
        let key = ReceiveKeyPair::generate(0, u64::MAX).unwrap();
        let mut record = DeviceRecord {
            device_id: identity.device_id().as_bytes().to_vec(),
            user: format!("staff{i}"),
            post: "paris".into(),
            clearance: Classification::Confidential as i32,
            identity_key: identity.public().as_bytes().to_vec(),
            receive_keys: vec![key.to_signed_record(&identity).unwrap()],
            enrolled_at_ms: 2,
            ..Default::default()
        };
        sign_device_record(&mut record, &net.paris_key).unwrap();
        net.node
            .update_directory(|d| d.apply(Update::Device(record)))
            .unwrap();
        extra.push(identity.device_id());
    }
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let root = directory_root(net.ca.cert_pem()).unwrap();

    // A new client starts from nothing and checks each update against the ministry root.
    let history = sync_directory(&bob, 0).await;
    assert_eq!(
        history.len(),
        1 + 3 + 70,
        "enroller, three diplomats, 70 staff"
    );
    let mut copy = Directory::new("mfa.example", root);
    for update in history.clone() {
        copy.apply_received(update).unwrap();
    }
    for id in extra.iter().chain([
        &net.alice.identity.device_id(),
        &net.carol.identity.device_id(),
    ]) {
        assert!(copy.is_active(id));
    }

    // A revocation reaches a client that asks from where it left off, and only it.
    let mut revocation = Revocation {
        device_id: net.carol.identity.device_id().as_bytes().to_vec(),
        reason: "device lost".into(),
        revoked_at_ms: 5,
        signature: vec![],
    };
    sign_revocation(&mut revocation, &net.paris_key).unwrap();
    net.node
        .update_directory(|d| d.apply(Update::Revocation(revocation)))
        .unwrap();
    let news = sync_directory(&bob, copy.version()).await;
    assert_eq!(news.len(), 1);
    copy.apply_received(news[0].clone()).unwrap();
    assert!(!copy.is_active(&net.carol.identity.device_id()));
    assert!(sync_directory(&bob, copy.version()).await.is_empty());

    // A node that alters a record in transit is caught by the client.
    let mut forged = history[1].clone();
    if let Some(directory_update::Update::Device(record)) = forged.update.as_mut() {
        record.clearance = Classification::TopSecret as i32;
    }
    let mut fresh = Directory::new("mfa.example", root);
    fresh.apply_received(history[0].clone()).unwrap();
    assert!(fresh.apply_received(forged).is_err());

    // A version the node never reached gets a clear refusal.
    let reply = exchange(&bob, directory_sync(10_000)).await.unwrap();
    let (code, message) = refusal(&reply).unwrap();
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("sync again from 0"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_what_happened_and_verifies() {
    let net = network(Limits::default());
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let accepted = send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "SECRET TEXT",
    )
    .await;
    assert!(matches!(
        accepted.frame,
        Some(node_frame::Frame::CustodyReceipt(_))
    ));
    let refused = send_cable(
        &alice,
        &net.alice,
        &net.carol,
        Classification::Secret,
        Precedence::Flash,
        "x",
    )
    .await;
    assert!(refusal(&refused).is_some());
    assert!(refused_connection(&net).await);
    receive(&net, &net.bob, 1).await;

    let Net {
        node,
        audit,
        dir,
        node_key,
        ..
    } = net;
    node.shutdown().await.unwrap();
    let log = wait_for_sole_owner(audit).await;
    let events: Vec<_> = (0..log.size()).map(|i| log.event(i).unwrap()).collect();
    let has = |kind: AuditEventKind, outcome: Outcome, reason: &str| {
        events
            .iter()
            .any(|e| e.kind == kind as i32 && e.outcome == outcome as i32 && e.reason == reason)
    };
    assert!(has(AuditEventKind::NodeStarted, Outcome::Success, ""));
    assert!(has(AuditEventKind::CustodyTaken, Outcome::Success, ""));
    assert!(has(
        AuditEventKind::CableSubmitted,
        Outcome::Refused,
        "clearance"
    ));
    assert!(has(
        AuditEventKind::RequestRefused,
        Outcome::Refused,
        "tls_handshake"
    ));
    assert!(has(AuditEventKind::CableDelivered, Outcome::Success, ""));
    assert!(has(AuditEventKind::NodeStopped, Outcome::Success, ""));
    for i in 0..log.size() {
        let bytes = log.entry(i).unwrap();
        assert!(
            !bytes.windows(11).any(|w| w == b"SECRET TEXT"),
            "entry {i} holds content"
        );
    }
    log.close().unwrap();
    let keys = VerifyKeys {
        log: valise_audit::note::NoteVerifier::ed25519(
            &valise_audit::log::origin("mfa.example", "paris"),
            *node_key.public(),
        )
        .unwrap(),
        witnesses: vec![],
    };
    let report = verify_dir(&dir.path().join("audit"), &keys, None).unwrap();
    assert_eq!(report.entries, events.len() as u64);
}

/// A connection attempt without a certificate, which the node refuses (and records).
async fn refused_connection(net: &Net) -> bool {
    refused(net, None).await
}

/// The log, once the node's tasks have let go of it.
async fn wait_for_sole_owner(mut audit: Arc<AuditLog>) -> AuditLog {
    for _ in 0..400 {
        match Arc::try_unwrap(audit) {
            Ok(log) => return log,
            Err(shared) => audit = shared,
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the node still holds its audit log");
}

/// What a new device does: make its keys, then redeem the code without a certificate.
async fn enrol(
    net: &Net,
    code: &str,
) -> (
    Result<EnrolResponse, (ErrorCode, String)>,
    IdentityKeyPair,
    ReceiveKeyPair,
    rcgen::KeyPair,
) {
    enrol_with(net, code, |_| {}).await
}

/// [`enrol`], with the request changed by `edit` before it is sent.
async fn enrol_with(
    net: &Net,
    code: &str,
    edit: impl FnOnce(&mut EnrolRequest),
) -> (
    Result<EnrolResponse, (ErrorCode, String)>,
    IdentityKeyPair,
    ReceiveKeyPair,
    rcgen::KeyPair,
) {
    let identity = IdentityKeyPair::generate().unwrap();
    let key = ReceiveKeyPair::generate(0, u64::MAX).unwrap();
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&tls_key)
        .unwrap();
    let mut request = EnrolRequest {
        code: code.into(),
        identity_key: identity.public().as_bytes().to_vec(),
        receive_keys: vec![key.to_signed_record(&identity).unwrap()],
        csr: csr.der().to_vec(),
    };
    edit(&mut request);
    let conn = connect(net, None).await.unwrap();
    let reply = exchange(
        &conn,
        ClientFrame {
            frame: Some(client_frame::Frame::Enrol(request)),
        },
    )
    .await
    .unwrap();
    let result = match reply.frame {
        Some(node_frame::Frame::Enrolled(response)) => Ok(response),
        _ => Err(refusal(&reply).unwrap()),
    };
    (result, identity, key, tls_key)
}

fn dave() -> Invitation {
    Invitation {
        user: "dave".into(),
        display_name: "Dave Okafor".into(),
        clearance: Classification::Secret,
        offices: vec!["ECON".into()],
        foreign_national: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_enrols_a_device_that_can_then_be_reached() {
    let net = enrolling_network(3_600_000);
    let code = net.node.issue_code(dave()).unwrap();
    let (result, identity, key, tls_key) = enrol(&net, &code).await;
    let response = result.unwrap();
    let record = response.record.unwrap();
    assert_eq!(
        (record.user.as_str(), record.post.as_str()),
        ("dave", "paris")
    );
    assert!(response.certificate_chain.contains("BEGIN CERTIFICATE"));

    // Dave connects with his new certificate.
    let dave_tls = CertifiedKey {
        chain_pem: response.certificate_chain,
        key_pem: zeroize::Zeroizing::new(tls_key.serialize_pem()),
    };
    let dave_conn = connect(&net, Some(&dave_tls)).await.unwrap();
    assert!(exchange(&dave_conn, hello()).await.is_ok());

    // Alice can send to him at once, using the keys in his signed record.
    let published = VerifiedReceiveKey::verify(&record.receive_keys[0], identity.public()).unwrap();
    let dave = Diplomat {
        address: "dave@paris".into(),
        identity,
        keys: vec![key],
        published,
        tls: dave_tls,
    };
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let reply = send_cable(
        &alice,
        &net.alice,
        &dave,
        Classification::Secret,
        Precedence::Flash,
        "welcome",
    )
    .await;
    assert!(
        matches!(reply.frame, Some(node_frame::Frame::CustodyReceipt(_))),
        "{reply:?}"
    );
    assert_eq!(receive(&net, &dave, 1).await, vec!["welcome".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_refused() {
    let net = enrolling_network(3_600_000);
    let code = net.node.issue_code(dave()).unwrap();
    assert!(enrol(&net, &code).await.0.is_ok());
    let (code_again, ..) = enrol(&net, &code).await;
    let (code_error, message) = code_again.unwrap_err();
    assert_eq!(code_error, ErrorCode::EnrolmentRefused);
    assert!(message.contains("already used"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_request_is_refused_without_spending_the_code() {
    let net = enrolling_network(3_600_000);
    let code = net.node.issue_code(dave()).unwrap();
    let (bad_csr, ..) = enrol_with(&net, &code, |r| r.csr = b"not a CSR".to_vec()).await;
    let (kind, message) = bad_csr.unwrap_err();
    assert_eq!(kind, ErrorCode::EnrolmentRefused);
    assert!(message.contains("certificate request"), "{message}");
    let (bad_key, ..) = enrol_with(&net, &code, |r| {
        r.receive_keys[0].signature[0] ^= 1;
    })
    .await;
    let (_, message) = bad_key.unwrap_err();
    assert!(message.contains("receive key"), "{message}");
    let (no_key, ..) = enrol_with(&net, &code, |r| r.receive_keys.clear()).await;
    assert!(no_key.unwrap_err().1.contains("no receive key"));
    // The code still works for a correct request.
    assert!(enrol(&net, &code).await.0.is_ok(), "the code was spent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_is_refused() {
    let net = enrolling_network(1);
    let code = net.node.issue_code(dave()).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (code_error, message) = enrol(&net, &code).await.0.unwrap_err();
    assert_eq!(code_error, ErrorCode::EnrolmentRefused);
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_only_enrolment_is_served() {
    let net = enrolling_network(3_600_000);
    // A client without a certificate asking for the authenticated protocol is turned away.
    let mut config = client_config(net.ca.cert_pem(), None).unwrap();
    config.alpn_protocols = vec![valise_crypto::tls::ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(config).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let outcome = match endpoint
        .connect(net.node.local_addr(), "paris.mfa.example")
        .unwrap()
        .await
    {
        Err(_) => true,
        Ok(conn) => exchange(
            &conn,
            ClientFrame {
                frame: Some(client_frame::Frame::Submit(Submit::default())),
            },
        )
        .await
        .is_err(),
    };
    assert!(
        outcome,
        "an unauthenticated client reached the authenticated protocol"
    );
    // On the enrolment path, anything but an enrolment request is refused.
    let conn = connect(&net, None).await.unwrap();
    let reply = exchange(&conn, hello()).await.unwrap();
    assert_eq!(refusal(&reply).unwrap().0, ErrorCode::EnrolmentRefused);
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_health_and_metrics() {
    let mut net = network(Limits::default());
    let metrics = net
        .node
        .serve_metrics("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "x",
    )
    .await;
    send_cable(
        &alice,
        &net.alice,
        &net.carol,
        Classification::Secret,
        Precedence::Flash,
        "x",
    )
    .await;
    let before = http_get(metrics, "/metrics").await;
    assert!(before.starts_with("HTTP/1.1 200 OK"), "{before}");
    assert!(
        before.contains("valise_queue_depth{precedence=\"flash\"} 1"),
        "{before}"
    );
    receive(&net, &net.bob, 1).await;
    let after = http_get(metrics, "/metrics").await;
    for line in [
        "valise_queue_depth{precedence=\"flash\"} 0",
        "valise_submissions_total 1",
        "valise_deliveries_total 1",
        "valise_refusals_total{reason=\"clearance\"} 1",
        "valise_custody_latency_seconds_count 1",
    ] {
        assert!(
            after.lines().any(|l| l == line),
            "missing {line:?} in\n{after}"
        );
    }
    assert!(
        http_get(metrics, "/healthz")
            .await
            .ends_with("\r\n\r\nok\n")
    );
    assert!(http_get(metrics, "/nope").await.starts_with("HTTP/1.1 404"));
    net.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_answered_busy_with_a_retry_delay() {
    // No room for any submission: every one is answered busy, and the node still serves.
    let net = network(Limits {
        max_concurrent_submissions: 0,
        ..Limits::default()
    });
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let reply = send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "x",
    )
    .await;
    let Some(node_frame::Frame::Error(busy)) = reply.frame else {
        panic!("expected busy, got {reply:?}")
    };
    assert_eq!(busy.code, ErrorCode::Busy as i32);
    assert!(busy.retry_after_ms > 0);
    assert!(busy.message.contains("retry"), "{}", busy.message);
    assert!(exchange(&alice, hello()).await.is_ok());
    assert_eq!(net.node.queue_depth().unwrap(), [0; 4], "nothing was taken");

    // No room for any connection: new peers are refused outright.
    let full = network(Limits {
        max_connections: 0,
        ..Limits::default()
    });
    assert!(refused(&full, Some(&full.alice.tls)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_arriving_mid_delivery_goes_next_and_nothing_is_sent_twice() {
    const ROUTINE: usize = 300;
    let net = network(Limits::default());
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    alice_sends_bob(&alice, &net, Precedence::Routine, "routine", ROUTINE).await;
    // Bob subscribes and reads them all without acknowledging any: more than one scan window.
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let (mut send, mut recv) = bob.open_bi().await.unwrap();
    send.write_all(&encode(&ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe::default())),
    }))
    .await
    .unwrap();
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut next_text = async || loop {
        if let Some(frame) = decoder.next_frame::<NodeFrame>().unwrap() {
            let d = match frame.frame {
                Some(node_frame::Frame::Delivery(d)) => d,
                Some(node_frame::Frame::CaughtUp(_)) => continue,
                _ => panic!("{frame:?}"),
            };
            let env = decode_envelope(&d.envelope).unwrap();
            return open(
                &env,
                net.alice.identity.public(),
                &net.bob.identity.device_id(),
                &net.bob.keys,
            )
            .unwrap()
            .body
            .text;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), recv.read_chunk(1 << 16, true))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        decoder.push(&chunk.bytes);
    };
    let mut texts = Vec::new();
    for _ in 0..ROUTINE {
        texts.push(next_text().await);
    }
    alice_sends_bob(&alice, &net, Precedence::Flash, "flash", 5).await;
    for _ in 0..5 {
        texts.push(next_text().await);
    }
    assert_eq!(
        texts[ROUTINE..],
        (0..5).map(|i| format!("flash {i}")).collect::<Vec<_>>(),
        "the FLASH cables came next"
    );
    let mut unique = texts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ROUTINE + 5,
        "nothing was sent twice before acknowledgement"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_comes_on_the_urgent_lane_while_the_routine_lane_is_full() {
    // Bob keeps a stream per lane and acknowledges nothing on the routine one: its window
    // fills, and whatever the node already sent there waits unread. A FLASH still reaches him
    // at once, on the urgent stream, and the routine stream never carries it.
    const ROUTINE: usize = 200;
    let net = network(Limits::default());
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    alice_sends_bob(&alice, &net, Precedence::Routine, "routine", ROUTINE).await;
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let welcome = exchange(&bob, hello()).await.unwrap();
    let Some(node_frame::Frame::Welcome(welcome)) = welcome.frame else {
        panic!("{welcome:?}")
    };
    assert!(welcome.delivery_lanes, "the node says it serves lanes");
    let subscribe = |lane: DeliveryLane| ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe {
            lane: lane as i32,
        })),
    };
    let (mut routine_send, mut routine_recv) = bob.open_bi().await.unwrap();
    routine_send
        .write_all(&encode(&subscribe(DeliveryLane::Other)))
        .await
        .unwrap();
    let (mut urgent_send, mut urgent_recv) = bob.open_bi().await.unwrap();
    urgent_send
        .write_all(&encode(&subscribe(DeliveryLane::Urgent)))
        .await
        .unwrap();
    let next = async |recv: &mut quinn::RecvStream, decoder: &mut FrameDecoder| loop {
        if let Some(frame) = decoder.next_frame::<NodeFrame>().unwrap() {
            return frame.frame;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), recv.read_chunk(1 << 16, true))
            .await
            .expect("nothing came within 10 s")
            .unwrap()
            .unwrap();
        decoder.push(&chunk.bytes);
    };
    let text = |delivery: &Delivery| {
        let env = decode_envelope(&delivery.envelope).unwrap();
        open(
            &env,
            net.alice.identity.public(),
            &net.bob.identity.device_id(),
            &net.bob.keys,
        )
        .unwrap()
        .body
        .text
    };
    // The urgent lane has nothing yet: it says so at once.
    let mut urgent_decoder = FrameDecoder::new(1 << 24);
    assert!(matches!(
        next(&mut urgent_recv, &mut urgent_decoder).await,
        Some(node_frame::Frame::CaughtUp(_))
    ));
    // The routine lane sends; Bob reads a few and acknowledges none.
    let mut routine_decoder = FrameDecoder::new(1 << 24);
    for _ in 0..5 {
        let Some(node_frame::Frame::Delivery(d)) =
            next(&mut routine_recv, &mut routine_decoder).await
        else {
            panic!("expected a routine delivery")
        };
        assert!(text(&d).starts_with("routine "));
    }
    alice_sends_bob(&alice, &net, Precedence::Flash, "flash", 1).await;
    let Some(node_frame::Frame::Delivery(flash)) =
        next(&mut urgent_recv, &mut urgent_decoder).await
    else {
        panic!("expected the FLASH on the urgent lane")
    };
    assert_eq!(text(&flash), "flash 0");
    // Acknowledged on its lane, it is gone from the queue; the routine stream carries only
    // routine cables, each once.
    urgent_send
        .write_all(&encode(&ack(flash.queue_key.clone())))
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    loop {
        match next(&mut routine_recv, &mut routine_decoder).await {
            Some(node_frame::Frame::Delivery(d)) => {
                let body = text(&d);
                assert!(body.starts_with("routine "), "{body} on the routine lane");
                assert!(seen.insert(body.clone()), "{body} sent twice");
                routine_send
                    .write_all(&encode(&ack(d.queue_key)))
                    .await
                    .unwrap();
            }
            Some(node_frame::Frame::CaughtUp(_)) if seen.len() + 5 >= ROUTINE => break,
            Some(node_frame::Frame::CaughtUp(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

// Sync completion, attachments, key publication and wipe notices.

fn subscribe_frame() -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe::default())),
    }
}

fn ack(queue_key: Vec<u8>) -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::DeliveryAck(DeliveryAck { queue_key })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_left_unacknowledged_is_sent_again_on_the_same_stream() {
    // The device's store may fail after the frame arrived: the node must not wait for a
    // reconnect. The timeout is shortened so the test need not wait 30 s.
    let net = build_with(
        Limits::default(),
        None,
        DeliveryConfig {
            redeliver_after: Duration::from_millis(300),
            ..DeliveryConfig::default()
        },
    );
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    alice_sends_bob(&alice, &net, Precedence::Immediate, "unacked", 1).await;

    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let (mut send, mut recv) = bob.open_bi().await.unwrap();
    send.write_all(&encode(&subscribe_frame())).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut deliveries = Vec::new();
    let mut caught_up = Vec::new();
    // Bob does not acknowledge: the cable comes again, and the node counts the resend.
    while deliveries.len() < 2 {
        let frame = next_node_frame(&mut recv, &mut decoder).await.unwrap();
        match frame.frame {
            Some(node_frame::Frame::Delivery(d)) => deliveries.push(d),
            Some(node_frame::Frame::CaughtUp(c)) => caught_up.push(c.sent),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        deliveries[0].queue_key, deliveries[1].queue_key,
        "the same entry"
    );
    assert_eq!(
        deliveries[0].envelope, deliveries[1].envelope,
        "the same cable"
    );
    assert_eq!(caught_up, vec![1], "caught up once, after the first send");
    let again = next_node_frame(&mut recv, &mut decoder).await.unwrap();
    assert!(
        matches!(again.frame, Some(node_frame::Frame::CaughtUp(ref c)) if c.sent == 2),
        "{again:?}"
    );

    // Once acknowledged it is done: the next delivery on the stream is the next cable.
    send.write_all(&encode(&ack(deliveries[0].queue_key.clone())))
        .await
        .unwrap();
    wait_for_empty_queue(&net).await;
    alice_sends_bob(&alice, &net, Precedence::Immediate, "next", 1).await;
    let next = loop {
        let frame = next_node_frame(&mut recv, &mut decoder).await.unwrap();
        if let Some(node_frame::Frame::Delivery(d)) = frame.frame {
            break d;
        }
    };
    assert_ne!(
        next.queue_key, deliveries[0].queue_key,
        "not the acknowledged one"
    );
    assert_eq!(net.node.queue_depth().unwrap(), [0, 1, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_ends_with_caught_up_and_every_acknowledgement_is_durable() {
    let net = network(Limits::default());
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    alice_sends_bob(&alice, &net, Precedence::Routine, "cable", 3).await;

    // Bob syncs: the deliveries, then CaughtUp; he acknowledges each and finishes his side.
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let (mut send, mut recv) = bob.open_bi().await.unwrap();
    send.write_all(&encode(&subscribe_frame())).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut delivered = 0;
    loop {
        let frame = next_node_frame(&mut recv, &mut decoder).await.unwrap();
        match frame.frame {
            Some(node_frame::Frame::Delivery(d)) => {
                delivered += 1;
                send.write_all(&encode(&ack(d.queue_key))).await.unwrap();
            }
            Some(node_frame::Frame::CaughtUp(caught_up)) => {
                assert_eq!(caught_up.sent, 3);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered, 3, "CaughtUp came after every delivery");
    send.finish().unwrap();
    // The node finishes its side only once it has processed every ack: nothing more arrives.
    assert!(next_node_frame(&mut recv, &mut decoder).await.is_none());
    assert_eq!(
        net.node.queue_depth().unwrap(),
        [0; 4],
        "every ack was durable when the stream ended"
    );

    // A new subscription has nothing to redeliver, and says so at once.
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let (mut send, mut recv) = bob.open_bi().await.unwrap();
    send.write_all(&encode(&subscribe_frame())).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 24);
    let first = next_node_frame(&mut recv, &mut decoder).await.unwrap();
    assert!(
        matches!(first.frame, Some(node_frame::Frame::CaughtUp(ref c)) if c.sent == 0),
        "{first:?}"
    );

    // A cable arriving later is delivered, then CaughtUp again, once: neither the ack's wake nor
    // an idle wake repeats it.
    send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "late",
    )
    .await;
    let late = next_node_frame(&mut recv, &mut decoder).await.unwrap();
    let Some(node_frame::Frame::Delivery(late)) = late.frame else {
        panic!("{late:?}")
    };
    let again = next_node_frame(&mut recv, &mut decoder).await.unwrap();
    assert!(
        matches!(again.frame, Some(node_frame::Frame::CaughtUp(ref c)) if c.sent == 1),
        "{again:?}"
    );
    send.write_all(&encode(&ack(late.queue_key))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    send.finish().unwrap();
    assert!(
        next_node_frame(&mut recv, &mut decoder).await.is_none(),
        "nothing after the last CaughtUp"
    );
    assert_eq!(net.node.queue_depth().unwrap(), [0; 4]);
}

fn stored_files(net: &Net) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(net.dir.path().join("attachments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_is_stored_by_its_hash_and_fetched_whole() {
    let net = network(Limits {
        max_attachment_bytes: 4 << 20,
        ..Limits::default()
    });
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let welcome = exchange(&alice, hello()).await.unwrap();
    let Some(node_frame::Frame::Welcome(welcome)) = welcome.frame else {
        panic!("{welcome:?}")
    };
    assert_eq!(welcome.limits.unwrap().max_attachment_bytes, 4 << 20);

    // Three MiB and a bit: not a multiple of any chunk size.
    let body = noise((3 << 20) + 12_345, 1);
    let hash = valise_crypto::sha256(&body);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let reply = upload(&alice, &hash, body.len() as u64, &body).await;
    let Some(node_frame::Frame::AttachmentStored(stored)) = reply.frame else {
        panic!("{reply:?}")
    };
    assert_eq!(stored.ciphertext_sha256, hash);
    let thirty_days = 30 * 86_400_000;
    assert!(
        (before + thirty_days - 5_000..before + thirty_days + 60_000)
            .contains(&stored.retained_until_ms),
        "kept 30 days from now: {}",
        stored.retained_until_ms
    );
    assert_eq!(stored_files(&net), vec![hex::encode(hash)]);

    // Another device fetches exactly the bytes uploaded.
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let (size, fetched) = fetch(&bob, &hash).await.unwrap();
    assert_eq!(size, body.len() as u64);
    assert!(fetched == body, "the fetched bytes differ from the upload");

    // The same attachment uploaded again is stored once.
    let again = upload(&bob, &hash, body.len() as u64, &body).await;
    assert!(
        matches!(again.frame, Some(node_frame::Frame::AttachmentStored(_))),
        "{again:?}"
    );
    assert_eq!(stored_files(&net), vec![hex::encode(hash)]);

    // The audit log names each upload and fetch by the attachment's hash, and who did it.
    let Net { node, audit, .. } = net;
    node.shutdown().await.unwrap();
    let log = wait_for_sole_owner(audit).await;
    let events: Vec<_> = (0..log.size()).map(|i| log.event(i).unwrap()).collect();
    let about = |kind: AuditEventKind| {
        events
            .iter()
            .filter(|e| e.kind == kind as i32 && e.objects.iter().any(|o| o.sha256 == hash))
            .count()
    };
    assert_eq!(about(AuditEventKind::AttachmentStored), 2);
    assert_eq!(about(AuditEventKind::AttachmentFetched), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_store_nothing_and_the_node_keeps_serving() {
    let net = network(Limits {
        max_attachment_bytes: 4 << 20,
        ..Limits::default()
    });
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let body = noise(300_001, 2);
    let hash = valise_crypto::sha256(&body);
    let size = body.len() as u64;

    // Bytes that do not hash as announced.
    let other = valise_crypto::sha256(b"another attachment");
    let (code, message) = refusal(&upload(&alice, &other, size, &body).await).unwrap();
    assert_eq!(code, ErrorCode::DigestMismatch);
    assert!(
        message.contains("do not hash to the announced SHA-256"),
        "{message}"
    );
    let (code, message) = fetch(&alice, &other).await.unwrap_err();
    assert_eq!(code, ErrorCode::NotFound);
    assert!(message.contains("ask the sender to resend it"), "{message}");
    assert!(message.contains("30 days"), "{message}");

    // A stream that ends early, and one that carries more than announced.
    let (code, message) = refusal(&upload(&alice, &hash, size, &body[..200_000]).await).unwrap();
    assert_eq!(code, ErrorCode::DigestMismatch);
    assert!(
        message.contains("ended after 200000 of the 300001 bytes"),
        "{message}"
    );
    let mut longer = body.clone();
    longer.extend_from_slice(b"trailing");
    let (code, message) = refusal(&upload(&alice, &hash, size, &longer).await).unwrap();
    assert_eq!(code, ErrorCode::DigestMismatch);
    assert!(message.contains("more than the 300001 bytes"), "{message}");

    // Over the limit: refused from the frame alone, before any byte is read.
    let (mut send, mut recv) = alice.open_bi().await.unwrap();
    send.write_all(&encode(&upload_frame(&hash, (4 << 20) + 1)))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
        .await
        .unwrap()
        .unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&reply);
    let (code, message) = refusal(&decoder.next_frame::<NodeFrame>().unwrap().unwrap()).unwrap();
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(message.contains("at most 4194304 bytes"), "{message}");

    // An upload behind another frame, and a hash of the wrong length.
    let mut bytes = encode(&hello());
    bytes.extend(encode(&upload_frame(&hash, 0)));
    let (mut send, mut recv) = alice.open_bi().await.unwrap();
    send.write_all(&bytes).await.unwrap();
    send.finish().unwrap();
    let replies = recv.read_to_end(1 << 20).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&replies);
    assert!(matches!(
        decoder.next_frame::<NodeFrame>().unwrap().unwrap().frame,
        Some(node_frame::Frame::Welcome(_))
    ));
    let (code, message) = refusal(&decoder.next_frame::<NodeFrame>().unwrap().unwrap()).unwrap();
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("only frame on its stream"), "{message}");
    let (code, _) = refusal(&upload(&alice, &hash[..16], size, &body).await).unwrap();
    assert_eq!(code, ErrorCode::Malformed);

    // Nothing was stored, no temporary file is left, and nothing can be fetched.
    assert!(stored_files(&net).is_empty(), "{:?}", stored_files(&net));
    assert_eq!(
        fetch(&alice, &hash).await.unwrap_err().0,
        ErrorCode::NotFound
    );

    // The node still serves the same connection, and a correct upload.
    assert!(exchange(&alice, hello()).await.is_ok());
    let reply = upload(&alice, &hash, size, &body).await;
    assert!(
        matches!(reply.frame, Some(node_frame::Frame::AttachmentStored(_))),
        "{reply:?}"
    );
    assert_eq!(fetch(&alice, &hash).await.unwrap().1, body);
}

fn publish(keys: Vec<valise_proto::v1::ReceiveKey>) -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::PublishReceiveKeys(
            valise_proto::v1::PublishReceiveKeys { receive_keys: keys },
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_receive_key_reaches_the_directory() {
    let net = enrolling_network(3_600_000);
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let root = directory_root(net.ca.cert_pem()).unwrap();
    let mut copy = Directory::new("mfa.example", root);
    for update in sync_directory(&bob, 0).await {
        copy.apply_received(update).unwrap();
    }
    let alice_id = net.alice.identity.device_id();
    assert_eq!(
        copy.verified(&alice_id).unwrap().receive_keys[0].id(),
        net.alice.published.id()
    );

    // A key signed by another identity (Bob's) is refused, and nothing changes.
    let foreign = ReceiveKeyPair::generate(0, u64::MAX)
        .unwrap()
        .to_signed_record(&net.bob.identity)
        .unwrap();
    let reply = exchange(&alice, publish(vec![foreign])).await.unwrap();
    let (code, message) = refusal(&reply).unwrap();
    assert_eq!(code, ErrorCode::EnrolmentRefused);
    assert!(message.contains("does not verify"), "{message}");
    let mut forged = ReceiveKeyPair::generate(0, u64::MAX)
        .unwrap()
        .to_signed_record(&net.bob.identity)
        .unwrap();
    forged.device_id = alice_id.as_bytes().to_vec();
    assert!(refusal(&exchange(&alice, publish(vec![forged])).await.unwrap()).is_some());
    assert!(refusal(&exchange(&alice, publish(vec![])).await.unwrap()).is_some());
    assert!(sync_directory(&bob, copy.version()).await.is_empty());

    // Alice's rotated key replaces the old one in her record, re-signed by the post.
    let rotated = ReceiveKeyPair::generate(0, u64::MAX).unwrap();
    let signed = rotated.to_signed_record(&net.alice.identity).unwrap();
    let reply = exchange(&alice, publish(vec![signed.clone()]))
        .await
        .unwrap();
    let Some(node_frame::Frame::ReceiveKeysPublished(published)) = reply.frame else {
        panic!("{reply:?}")
    };
    let record = published.record.unwrap();
    assert_eq!(record.receive_keys, vec![signed]);
    assert_eq!(
        (record.user.as_str(), record.post.as_str()),
        ("alice", "paris")
    );

    // Any device syncing sees it, verified from the ministry root.
    let news = sync_directory(&bob, copy.version()).await;
    assert_eq!(news.len(), 1);
    assert_eq!(news[0].version, published.directory_version);
    copy.apply_received(news[0].clone()).unwrap();
    let keys = &copy.verified(&alice_id).unwrap().receive_keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id(), rotated.id());
    assert!(copy.is_active(&alice_id));

    // A node that enrols nobody cannot re-sign records.
    let hub = network(Limits::default());
    let alice = connect(&hub, Some(&hub.alice.tls)).await.unwrap();
    let key = ReceiveKeyPair::generate(0, u64::MAX)
        .unwrap()
        .to_signed_record(&hub.alice.identity)
        .unwrap();
    let (code, message) = refusal(&exchange(&alice, publish(vec![key])).await.unwrap()).unwrap();
    assert_eq!(code, ErrorCode::EnrolmentRefused);
    assert!(message.contains("no enrolment key"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_device_is_revoked_and_turned_away() {
    let net = enrolling_network(3_600_000);
    let bob = connect(&net, Some(&net.bob.tls)).await.unwrap();
    let before = sync_directory(&bob, 0).await.len() as u64;
    let carol = connect(&net, Some(&net.carol.tls)).await.unwrap();
    let notice = ClientFrame {
        frame: Some(client_frame::Frame::WipeNotice(
            valise_proto::v1::WipeNotice {
                reason: "emergency\nevacuation".into(),
            },
        )),
    };
    let reply = exchange(&carol, notice).await.unwrap();
    let Some(node_frame::Frame::WipeConfirmed(confirmed)) = reply.frame else {
        panic!("{reply:?}")
    };
    assert_eq!(confirmed.directory_version, before + 1);

    // Her connection is closed as any revoked device's, and a new one is refused.
    let closed = tokio::time::timeout(Duration::from_secs(10), carol.closed())
        .await
        .unwrap();
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code == 3u32.into()),
        "{closed:?}"
    );
    assert!(refused(&net, Some(&net.carol.tls)).await);

    // Everyone's directory shows the revocation, with its reason on one line.
    let news = sync_directory(&bob, before).await;
    assert_eq!(news.len(), 1);
    let Some(directory_update::Update::Revocation(revocation)) = &news[0].update else {
        panic!("{news:?}")
    };
    assert_eq!(
        revocation.device_id,
        net.carol.identity.device_id().as_bytes()
    );
    assert_eq!(revocation.reason, "wiped by its user: emergency evacuation");
    assert!(
        !refused(&net, Some(&net.bob.tls)).await,
        "other devices are unaffected"
    );
}

/// The events the node's audit log holds once it has stopped.
async fn audited_events(net: Net) -> Vec<valise_proto::v1::AuditEvent> {
    let Net { node, audit, .. } = net;
    node.shutdown().await.unwrap();
    let log = wait_for_sole_owner(audit).await;
    let events = (0..log.size()).map(|i| log.event(i).unwrap()).collect();
    log.close().unwrap();
    events
}

fn refused_for(events: &[valise_proto::v1::AuditEvent], reason: &str) -> bool {
    events.iter().any(|e| {
        e.kind == AuditEventKind::CableSubmitted as i32
            && e.outcome == Outcome::Refused as i32
            && e.reason == reason
    })
}

/// An enrolled device that signs a cable in another person's name, an envelope altered after
/// signing, a cable marked above the sender's clearance, and a new envelope under a held cable
/// id: each is refused before custody with words that say why, and audited; nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_overclassified_and_id_reusing_cables_get_no_custody() {
    let net = network(Limits::default());
    // Carol's own device, cleared CONFIDENTIAL, signs a cable that says it is from alice.
    let carol = connect(&net, Some(&net.carol.tls)).await.unwrap();
    let forged = cable_with(
        &net.carol,
        &net.bob,
        Classification::Confidential,
        Precedence::Flash,
        "from the ambassador",
        |h| h.from = "alice@paris".into(),
    );
    let reply = exchange(&carol, submit(forged)).await.unwrap();
    let (code, message) = refusal(&reply).expect("a forged sender is refused");
    assert_eq!(code, ErrorCode::BadSignature);
    assert!(
        message
            .contains("says it is from alice@paris, but it is signed by a device of carol@paris"),
        "{message}"
    );

    // Alice's envelope with its body changed after she signed it.
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    let mut altered = decode_envelope(&cable(
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Routine,
        "the text",
    ))
    .unwrap();
    altered.body_ciphertext[0] ^= 1;
    let reply = exchange(&alice, submit(altered.encode_to_vec()))
        .await
        .unwrap();
    let (code, message) = refusal(&reply).expect("an altered envelope is refused");
    assert_eq!(code, ErrorCode::BadSignature);
    assert!(message.contains("signature does not verify"), "{message}");

    // Alice is cleared SECRET; bob, TOP SECRET, could read it, but she may not write it.
    let reply = send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::TopSecret,
        Precedence::Routine,
        "above her clearance",
    )
    .await;
    let (code, message) = refusal(&reply).expect("over the sender's clearance");
    assert_eq!(code, ErrorCode::Clearance);
    assert!(
        message.contains("alice@paris is cleared for SECRET and may not send a TOP SECRET cable"),
        "{message}"
    );

    // A cable taken into custody, then another envelope under its id.
    let original = cable(
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Routine,
        "original",
    );
    let id = decode_envelope(&original).unwrap().header.unwrap().cable_id;
    let reply = exchange(&alice, submit(original)).await.unwrap();
    assert!(matches!(
        reply.frame,
        Some(node_frame::Frame::CustodyReceipt(_))
    ));
    let impostor = cable_with(
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "replacement",
        |h| h.cable_id = id.clone(),
    );
    let reply = exchange(&alice, submit(impostor)).await.unwrap();
    let (code, message) = refusal(&reply).expect("a reused id gets no receipt");
    assert_eq!(code, ErrorCode::Conflict);
    assert!(
        message.contains("already holds a different cable with this id"),
        "{message}"
    );
    assert_eq!(
        net.node.queue_depth().unwrap(),
        [0, 0, 0, 1],
        "only the original is queued"
    );
    assert_eq!(
        receive(&net, &net.bob, 1).await,
        vec!["original".to_owned()]
    );

    let events = audited_events(net).await;
    for reason in [
        "forged_sender",
        "bad_signature",
        "sender_clearance",
        "id_conflict",
    ] {
        assert!(refused_for(&events, reason), "no {reason} refusal audited");
    }
}

/// A compromised post (Rome) mints a certificate naming a device of Paris. Under Rome's own
/// name the Paris node refuses it, since the directory says the device is Paris's; under
/// Paris's name the TLS handshake fails, since the root constrained Rome's CA to its devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_certificate_from_another_posts_ca_is_refused() {
    let net = network(Limits::default());
    let rome = net.ca.issue_post_ca("rome", year()).unwrap();
    let alice_id = net.alice.identity.device_id().to_string();
    let as_rome = PostCa::from_pem("rome", "mfa.example", &rome)
        .unwrap()
        .issue_device(&alice_id, year())
        .unwrap();
    let conn = connect(&net, Some(&as_rome)).await.unwrap();
    let answer = exchange(&conn, hello()).await;
    assert!(
        answer.is_err(),
        "a Rome certificate for a Paris device is refused"
    );
    let closed = conn.closed().await.to_string();
    assert!(
        closed.contains("issued by another post than the device's own"),
        "{closed}"
    );
    let outside_constraint = PostCa::from_pem("paris", "mfa.example", &rome)
        .unwrap()
        .issue_device(&alice_id, year())
        .unwrap();
    assert!(
        refused(&net, Some(&outside_constraint)).await,
        "a name outside Rome's constraint"
    );
    // Alice's own certificate still works, and nothing reached her queue from the impostor.
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    assert!(matches!(
        exchange(&alice, hello()).await.unwrap().frame,
        Some(node_frame::Frame::Welcome(_))
    ));
    let events = audited_events(net).await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == AuditEventKind::RequestRefused as i32
                && e.reason == "device_of_another_post"
                && e.actor_id == alice_id)
    );
}

/// Cables queued for a device that is then revoked are purged at once: nothing will ever take
/// them, and each drop is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_devices_queue_is_purged_and_audited() {
    let net = enrolling_network(3_600_000);
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    alice_sends_bob(&alice, &net, Precedence::Routine, "for bob", 3).await;
    assert_eq!(net.node.queue_depth().unwrap(), [0, 0, 0, 3]);
    let revoked = net
        .node
        .revoke(Some(net.bob.identity.device_id()), "", "laptop lost")
        .unwrap();
    assert_eq!(revoked, vec![net.bob.identity.device_id()]);
    assert_eq!(
        net.node.queue_depth().unwrap(),
        [0; 4],
        "nothing left queued"
    );
    let events = audited_events(net).await;
    let purged = events
        .iter()
        .filter(|e| {
            e.kind == AuditEventKind::CableDelivered as i32
                && e.outcome == Outcome::Refused as i32
                && e.reason == "recipient_revoked"
        })
        .count();
    assert_eq!(purged, 3);
}

/// Idle connections without a certificate, from `source`, as a flood would open them: each
/// completes its handshake (offering enrolment, the one path without a certificate) and then
/// sends nothing. Returns those the node let in, kept open.
async fn idle_unauthenticated(net: &Net, source: [u8; 4], count: usize) -> Vec<quinn::Connection> {
    let crypto =
        QuicClientConfig::try_from(client_config(net.ca.cert_pem(), None).unwrap()).unwrap();
    let mut endpoint = quinn::Endpoint::client(std::net::SocketAddr::from((source, 0))).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let mut handshaken = Vec::new();
    for _ in 0..count {
        let connecting = endpoint
            .connect(net.node.local_addr(), "paris.mfa.example")
            .unwrap();
        if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(2), connecting).await {
            handshaken.push(conn);
        }
    }
    // A refused connection finishes its handshake before the node closes it; on a busy
    // machine the close may take a moment to arrive. The gate's places are held for the
    // 10 s enrolment timeout, so those still open after a while are the ones it let in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    handshaken
        .into_iter()
        .filter(|conn| conn.close_reason().is_none())
        .collect()
}

/// 300 idle connections without a certificate, from one address and then from a few, take
/// only the places the unauthenticated gate has (per address, and in all); enrolled devices,
/// counted apart, are still served, and a device can still enrol from another address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_leaves_enrolled_devices_served() {
    let limits = Limits {
        max_unauthenticated_connections: 24,
        max_connections_per_source: 8,
        ..Limits::default()
    };
    let net = build(limits, Some(3_600_000));
    let from_one = idle_unauthenticated(&net, [127, 0, 0, 2], 300).await;
    assert_eq!(from_one.len(), 8, "one address gets its share, no more");
    let mut from_few = Vec::new();
    for last in 3..=6 {
        from_few.extend(idle_unauthenticated(&net, [127, 0, 0, last], 100).await);
    }
    assert_eq!(
        from_one.len() + from_few.len(),
        24,
        "the gate holds its total, no more"
    );

    // Alice, enrolled, is served as ever.
    let alice = connect(&net, Some(&net.alice.tls)).await.unwrap();
    assert!(matches!(
        exchange(&alice, hello()).await.unwrap().frame,
        Some(node_frame::Frame::Welcome(_))
    ));
    let reply = send_cable(
        &alice,
        &net.alice,
        &net.bob,
        Classification::Secret,
        Precedence::Flash,
        "during the flood",
    )
    .await;
    assert!(matches!(
        reply.frame,
        Some(node_frame::Frame::CustodyReceipt(_))
    ));
    // The flood's idle enrolment connections are closed after the enrolment timeout, and the
    // gate empties.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(from_one.iter().all(|c| c.close_reason().is_some()));
    let again = idle_unauthenticated(&net, [127, 0, 0, 2], 1).await;
    assert_eq!(
        again.len(),
        1,
        "places come back once the idle ones are gone"
    );
}

/// Guessing codes over many connections (each on a new port) spends one allowance: the rate
/// limit is keyed by address. After ten wrong codes in a minute, even the right one waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_codes_over_new_connections_is_rate_limited_by_address() {
    let net = enrolling_network(3_600_000);
    let code = net.node.issue_code(dave()).unwrap();
    for _ in 0..15 {
        let (wrong, ..) = enrol(&net, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA").await;
        assert!(wrong.is_err());
    }
    let (right, ..) = enrol(&net, &code).await;
    let (code_refused, message) = right.expect_err("rate limited, though right");
    assert_eq!(code_refused, ErrorCode::EnrolmentRefused);
    assert!(message.contains("too many enrolment attempts"), "{message}");
}
