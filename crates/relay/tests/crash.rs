//! A relay process killed with SIGKILL while 10,000 cables are being submitted: after a
//! restart, every cable that got a custody receipt is delivered, exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use prost::Message;
use valise_crypto::custody;
use valise_crypto::envelope::{decode_envelope, new_cable_id, open, seal};
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{
    CableBody, Classification, ClientFrame, DeliveryAck, NodeFrame, Precedence, RoutingHeader,
    Submit, Subscribe, client_frame, node_frame,
};

const CABLES: usize = 10_000;
const KILL_AFTER: usize = 3_000;

fn sealed(from: &Device, to: &Device, n: usize) -> (Vec<u8>, Vec<u8>) {
    let header = RoutingHeader {
        cable_id: new_cable_id().unwrap().to_vec(),
        from: "alice@paris".into(),
        action_addressees: vec!["bob@paris".into()],
        classification: Classification::Secret as i32,
        precedence: if n.is_multiple_of(10) {
            Precedence::Flash
        } else {
            Precedence::Routine
        } as i32,
        created_at_ms: 1,
        ..Default::default()
    };
    let id = header.cable_id.clone();
    let body = CableBody {
        text: format!("cable {n}"),
        ..Default::default()
    };
    (
        id,
        seal(
            &from.identity,
            header,
            &body,
            std::slice::from_ref(&to.published),
        )
        .unwrap()
        .encode_to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_delivers_every_cable_it_took_custody_of_exactly_once() {
    let dir = paris();
    let (alice_code, bob_code) = (
        enroll_code(dir.path(), "alice", "SECRET"),
        enroll_code(dir.path(), "bob", "SECRET"),
    );
    let (mut node, addr) = start_node(dir.path());
    let alice = Arc::new(enrol_device(dir.path(), addr, &alice_code).await.unwrap());
    let bob = enrol_device(dir.path(), addr, &bob_code).await.unwrap();
    let node_key = {
        let seed = std::fs::read(dir.path().join("paris/node-signing.key")).unwrap();
        *valise_crypto::identity::IdentityKeyPair::from_seed(&seed)
            .unwrap()
            .public()
    };

    // Seal everything first, so the kill lands in the middle of submissions, not sealing.
    let cables: Vec<(Vec<u8>, Vec<u8>)> = (0..CABLES).map(|n| sealed(&alice, &bob, n)).collect();
    let cables = Arc::new(cables);
    let custody_taken = Arc::new(Mutex::new(BTreeSet::new()));
    let conn = connect(dir.path(), addr, Some(&alice.tls)).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (conn, cables, custody_taken) = (
            conn.clone(),
            Arc::clone(&cables),
            Arc::clone(&custody_taken),
        );
        tasks.push(tokio::spawn(async move {
            for n in (worker..CABLES).step_by(16) {
                let (id, bytes) = &cables[n];
                let frame = ClientFrame {
                    frame: Some(client_frame::Frame::Submit(Submit {
                        envelope: bytes.clone(),
                        attachments: vec![],
                    })),
                };
                let Some(NodeFrame {
                    frame: Some(node_frame::Frame::CustodyReceipt(receipt)),
                }) = exchange(&conn, &frame).await
                else {
                    return;
                };
                // Only a verified receipt counts: that is what lets a sender drop its copy.
                custody::verify(&receipt, "paris", &node_key, id, bytes).unwrap();
                custody_taken.lock().unwrap().insert(id.clone());
            }
        }));
    }
    while custody_taken.lock().unwrap().len() < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill().unwrap(); // SIGKILL
    node.wait().unwrap();
    // The dead node cannot close the connection; drop it rather than wait for the idle timeout.
    conn.close(0u32.into(), b"node killed");
    for task in tasks {
        let _ = task.await;
    }
    let custody_taken = custody_taken.lock().unwrap().clone();
    assert!(
        custody_taken.len() >= KILL_AFTER && custody_taken.len() < CABLES,
        "killed mid-way: {}",
        custody_taken.len()
    );

    // Restart and deliver everything to Bob, counting each cable.
    let (node, addr) = start_node(dir.path());
    let conn = connect(dir.path(), addr, Some(&bob.tls)).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&encode(&ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe::default())),
    }))
    .await
    .unwrap();
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    while !custody_taken.iter().all(|id| seen.contains_key(id)) {
        let Some(frame) = decoder.next_frame::<NodeFrame>().unwrap() else {
            let chunk =
                tokio::time::timeout(Duration::from_secs(30), recv.read_chunk(1 << 16, true))
                    .await
                    .unwrap()
                    .unwrap();
            decoder.push(&chunk.unwrap().bytes);
            continue;
        };
        let delivery = match frame.frame {
            Some(node_frame::Frame::Delivery(delivery)) => delivery,
            Some(node_frame::Frame::CaughtUp(_)) => continue,
            _ => panic!("{frame:?}"),
        };
        let envelope = decode_envelope(&delivery.envelope).unwrap();
        open(
            &envelope,
            alice.identity.public(),
            &bob.identity.device_id(),
            &bob.keys,
        )
        .unwrap();
        *seen.entry(envelope.header.unwrap().cable_id).or_default() += 1;
        let ack = ClientFrame {
            frame: Some(client_frame::Frame::DeliveryAck(DeliveryAck {
                queue_key: delivery.queue_key,
            })),
        };
        send.write_all(&encode(&ack)).await.unwrap();
    }
    for id in &custody_taken {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "a cable with a custody receipt was lost or duplicated"
        );
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "no cable was delivered twice"
    );
    drop(send);
    stop_node(node);
}
