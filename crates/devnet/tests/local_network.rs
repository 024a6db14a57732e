//! `valise_devnet::local::start_network`: a hub and two posts in one process, one ministry root.
//! A device enrolled at one post sends a cable to a device enrolled at the other; it crosses
//! the hub and is delivered there once, and opens for its recipient.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use prost::Message;
use valise_crypto::custody;
use valise_crypto::envelope::{decode_envelope, new_cable_id, open, seal};
use valise_devnet::local::{LocalDevice, LocalFederation, start_network};
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{
    CableBody, Classification, ClientFrame, DeliveryAck, ErrorCode, Precedence, RoutingHeader,
    Submit, Subscribe, client_frame, node_frame,
};
use valise_relay::limits::Limits;

use common::{fetch, next_node_frame, noise, refusal, upload};

const WAIT: Duration = Duration::from_secs(30);

fn frame(frame: client_frame::Frame) -> Vec<u8> {
    encode(&ClientFrame { frame: Some(frame) })
}

/// Subscribes as `device`: every delivery until the first `CaughtUp` that follows at least
/// `wanted` of them, acknowledging each; then finishes and waits for the node to finish.
async fn collect(device: &LocalDevice, wanted: usize) -> Vec<Vec<u8>> {
    let conn = device.connect().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame(client_frame::Frame::Subscribe(Subscribe::default())))
        .await
        .unwrap();
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut delivered = Vec::new();
    loop {
        match next_node_frame(&mut recv, &mut decoder)
            .await
            .unwrap()
            .frame
        {
            Some(node_frame::Frame::Delivery(d)) => {
                delivered.push(d.envelope);
                send.write_all(&frame(client_frame::Frame::DeliveryAck(DeliveryAck {
                    queue_key: d.queue_key,
                })))
                .await
                .unwrap();
            }
            Some(node_frame::Frame::CaughtUp(_)) if delivered.len() >= wanted => break,
            Some(node_frame::Frame::CaughtUp(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    send.finish().unwrap();
    // The node finishes its side once it has processed every acknowledgement.
    assert!(next_node_frame(&mut recv, &mut decoder).await.is_none());
    delivered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cable_from_one_post_is_delivered_once_at_the_other_through_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let net = hq_paris_nairobi(dir.path());
    // One root for every node; only posts enrol.
    assert!(net.nodes().all(|n| n.fingerprint == net.fingerprint));
    let alice = net.enrol("paris", "alice", Classification::Secret).unwrap();
    let bob = net.enrol("nairobi", "bob", Classification::Secret).unwrap();
    let refused = net.enrol("hq", "carol", Classification::Secret);
    assert!(refused.is_err(), "the hub has no desk");
    net.wait_linked(WAIT).await.unwrap();
    net.wait_replicated(WAIT).await.unwrap();
    for node in net.nodes() {
        node.node.update_directory(|d| {
            assert!(d.view().is_active(&alice.id()), "{} knows alice", node.name);
            assert!(d.view().is_active(&bob.id()), "{} knows bob", node.name);
        });
    }

    // Alice, at Paris, seals a cable for Bob, at Nairobi, and hands it to her node.
    let body = CableBody {
        subject: "Across the network".into(),
        text: "From Paris to Nairobi, through headquarters.".into(),
        ..Default::default()
    };
    let (cable_id, envelope, reply) = submit(&alice, &bob, &body, &[]).await;
    let node_frame::Frame::CustodyReceipt(receipt) = reply else {
        panic!("Paris did not take custody: {reply:?}")
    };
    let paris = net.post("paris").unwrap();
    custody::verify(&receipt, "paris", &paris.node_key, &cable_id, &envelope).unwrap();

    // Bob, at Nairobi, receives it: the cable Alice sent, once, and it opens for him.
    let delivered = collect(&bob, 1).await;
    assert_eq!(delivered.len(), 1, "delivered once");
    let env = decode_envelope(&delivered[0]).unwrap();
    assert_eq!(env.header.as_ref().unwrap().cable_id, cable_id);
    let opened = open(&env, alice.identity.public(), &bob.id(), &bob.keys).unwrap();
    assert_eq!(opened.body, body);

    // Nothing is delivered again, and nothing is left queued at Nairobi.
    assert!(collect(&bob, 0).await.is_empty(), "no second delivery");
    let nairobi = net.post("nairobi").unwrap();
    assert_eq!(nairobi.node.queue_depth().unwrap(), [0; 4]);
    net.shutdown().await.unwrap();
}

/// Seals a cable with `body` from `from` to `to`, and submits it naming `attachments`: its id,
/// its envelope, and the node's answer.
async fn submit(
    from: &LocalDevice,
    to: &LocalDevice,
    body: &CableBody,
    attachments: &[[u8; 32]],
) -> (Vec<u8>, Vec<u8>, node_frame::Frame) {
    let header = RoutingHeader {
        cable_id: new_cable_id().unwrap().to_vec(),
        from: from.address.clone(),
        action_addressees: vec![to.address.clone()],
        classification: Classification::Secret as i32,
        precedence: Precedence::Immediate as i32,
        created_at_ms: 1,
        ..Default::default()
    };
    let cable_id = header.cable_id.clone();
    let envelope = seal(
        &from.identity,
        header,
        body,
        std::slice::from_ref(&to.published),
    )
    .unwrap()
    .encode_to_vec();
    let conn = from.connect().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame(client_frame::Frame::Submit(Submit {
        envelope: envelope.clone(),
        attachments: attachments.iter().map(|a| a.to_vec()).collect(),
    })))
    .await
    .unwrap();
    send.finish().unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    let reply = next_node_frame(&mut recv, &mut decoder).await.unwrap();
    (cable_id, envelope, reply.frame.unwrap())
}

/// The hub `hq` with the posts `paris` and `nairobi`, in this process, under `dir`.
fn hq_paris_nairobi(dir: &std::path::Path) -> LocalFederation {
    start_network(
        dir,
        "mfa.example",
        "hq",
        &["paris", "nairobi"],
        Limits::default(),
    )
    .unwrap()
}

/// A cable body with only a subject.
fn subject(subject: &str) -> CableBody {
    CableBody {
        subject: subject.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_travels_with_its_cable_and_is_fetched_at_the_recipients_post() {
    let dir = tempfile::tempdir().unwrap();
    let net = hq_paris_nairobi(dir.path());
    let alice = net.enrol("paris", "alice", Classification::Secret).unwrap();
    let bob = net.enrol("nairobi", "bob", Classification::Secret).unwrap();
    net.wait_linked(WAIT).await.unwrap();
    net.wait_replicated(WAIT).await.unwrap();
    let alice_conn = alice.connect().await.unwrap();
    let bob_conn = bob.connect().await.unwrap();

    // A cable naming an attachment its sender never uploaded is refused, before custody.
    let never = valise_crypto::sha256(b"never uploaded");
    let (_, _, refused) = submit(&alice, &bob, &subject("Missing annex"), &[never]).await;
    let refused = node_frame_refusal(refused);
    assert_eq!(refused.0, ErrorCode::NotFound);
    assert!(
        refused.1.contains("does not hold") && refused.1.contains("upload every attachment"),
        "{}",
        refused.1
    );

    // Alice uploads a 3 MiB attachment at Paris; Nairobi does not have it yet.
    let annex = noise((3 << 20) + 4321, 9);
    let hash = valise_crypto::sha256(&annex);
    let stored = upload(&alice_conn, &hash, annex.len() as u64, &annex).await;
    assert!(refusal(&stored).is_none(), "{stored:?}");
    assert_eq!(
        fetch(&bob_conn, &hash).await.unwrap_err().0,
        ErrorCode::NotFound
    );

    // The cable naming it crosses the hub; the attachment goes with it, hop by hop.
    let (_, _, taken) = submit(&alice, &bob, &subject("With annex"), &[hash]).await;
    assert!(
        matches!(taken, node_frame::Frame::CustodyReceipt(_)),
        "{taken:?}"
    );
    assert_eq!(collect(&bob, 1).await.len(), 1);
    let (size, bytes) = fetch(&bob_conn, &hash).await.unwrap();
    assert_eq!(size, annex.len() as u64);
    assert!(bytes == annex, "Bob fetches exactly what Alice uploaded");
    for node in ["hq", "nairobi"] {
        let file = dir
            .path()
            .join(node)
            .join("attachments")
            .join(hex::encode(hash));
        assert!(file.is_file(), "{node} holds the attachment");
    }

    // A second cable naming it crosses too; Nairobi already holds the attachment.
    let (_, _, again) = submit(&alice, &bob, &subject("Same annex"), &[hash]).await;
    assert!(
        matches!(again, node_frame::Frame::CustodyReceipt(_)),
        "{again:?}"
    );
    assert_eq!(collect(&bob, 1).await.len(), 1);
    assert_eq!(fetch(&bob_conn, &hash).await.unwrap().1, annex);
    net.shutdown().await.unwrap();
}

fn node_frame_refusal(frame: node_frame::Frame) -> (ErrorCode, String) {
    let frame = valise_proto::v1::NodeFrame { frame: Some(frame) };
    refusal(&frame).unwrap_or_else(|| panic!("expected a refusal, got {frame:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_revoked_at_nairobi_is_refused_by_the_paris_node_once_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let net = hq_paris_nairobi(dir.path());
    let alice = net.enrol("paris", "alice", Classification::Secret).unwrap();
    let bob = net.enrol("nairobi", "bob", Classification::Secret).unwrap();
    let carol = net
        .enrol("nairobi", "carol", Classification::Secret)
        .unwrap();
    net.wait_linked(WAIT).await.unwrap();
    net.wait_replicated(WAIT).await.unwrap();
    let (_, _, before) = submit(&alice, &bob, &subject("Before"), &[]).await;
    assert!(
        matches!(before, node_frame::Frame::CustodyReceipt(_)),
        "{before:?}"
    );
    assert_eq!(collect(&bob, 1).await.len(), 1, "Bob got it before");

    // Nairobi revokes Bob's device; the revocation replicates through the hub to Paris.
    let nairobi = net.post("nairobi").unwrap();
    let revoked = nairobi.node.revoke(None, "bob", "device lost").unwrap();
    assert_eq!(revoked, vec![bob.id()]);
    net.wait_replicated(WAIT).await.unwrap();
    let paris = net.post("paris").unwrap();
    paris
        .node
        .update_directory(|d| assert!(!d.view().is_active(&bob.id()), "Paris knows"));

    // Alice's client has not synced since and still seals for Bob's device: her own node
    // refuses the cable before taking custody, and says what to do.
    let (_, _, after) = submit(&alice, &bob, &subject("After"), &[]).await;
    let (code, message) = node_frame_refusal(after);
    assert_eq!(code, ErrorCode::Malformed, "{message}");
    assert!(
        message.contains("bob@nairobi") && message.contains("revoked"),
        "{message}"
    );
    assert!(message.contains("sync the directory"), "{message}");

    // Carol, at the same post, is still reached.
    let (_, _, to_carol) = submit(&alice, &carol, &subject("Still here"), &[]).await;
    assert!(
        matches!(to_carol, node_frame::Frame::CustodyReceipt(_)),
        "{to_carol:?}"
    );
    assert_eq!(collect(&carol, 1).await.len(), 1);
    net.shutdown().await.unwrap();
}
