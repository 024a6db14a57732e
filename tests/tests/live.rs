//! The client handle as a desktop front end holds it, against a real node on loopback in this
//! process (`valise_devnet::local::start_post`): the node pushes each cable and receipt to an
//! open client as soon as it takes custody, requests are served without blocking, events say
//! what happens, and a listener that falls behind is told to reload.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_client::client::{Client, Event};
use valise_client::compose::CableDraft;
use valise_client::handle::ClientHandle;
use valise_client::status::DeliveryState;
use valise_client::sync::NoProgress;
use valise_devnet::inproc::{self, GIVE_UP, until};
use valise_devnet::local::LocalPost;
use valise_proto::v1::{Classification, Precedence};

async fn diplomat(post: &LocalPost, root: &std::path::Path, user: &str) -> Client {
    inproc::diplomat(post, &root.join(user), user, Classification::Secret, &[]).await
}

fn draft(to: &str, precedence: Precedence, subject: &str) -> CableDraft {
    CableDraft {
        action: vec![to.into()],
        info: vec![],
        classification: Classification::Secret,
        precedence,
        niact: false,
        caveats: vec![],
        tags: vec!["PREL".into()],
        subject: subject.into(),
        text: "Text.".into(),
        attachments: vec![],
        references: Vec::new(),
    }
}

async fn network() -> (tempfile::TempDir, LocalPost) {
    inproc::post()
}

/// A cable waiting before Bob opens his client is reported by its first sync; a FLASH sent
/// while it is open is pushed by the node and reported without Bob asking; his read and
/// acknowledgement reach Alice's open client as status changes, live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cables_and_receipts_reach_open_clients_as_the_node_takes_custody() {
    let (dir, post) = network().await;
    let devices = dir.path().join("devices");
    let alice = diplomat(&post, &devices, "alice").await;
    let bob = diplomat(&post, &devices, "bob").await;
    let (alice, mut alice_events) = ClientHandle::spawn(alice);
    until(&mut alice_events, |e| {
        matches!(e, Event::SyncFinished { .. }).then_some(())
    })
    .await;
    let early = alice
        .compose(draft("bob@paris", Precedence::Routine, "Before Bob looks"))
        .await
        .unwrap();

    let (bob, mut bob_events) = ClientHandle::spawn(bob);
    let first = until(&mut bob_events, |e| match e {
        Event::Received { id, .. } => Some(id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(first, early, "what the first sync brought is reported");
    until(&mut bob_events, |e| {
        matches!(e, Event::SyncFinished { .. }).then_some(())
    })
    .await;

    let flash = alice
        .compose(draft("bob@paris", Precedence::Flash, "Now"))
        .await
        .unwrap();
    let (pushed, precedence) = until(&mut bob_events, |e| match e {
        Event::Received { id, precedence } => Some((id.clone(), *precedence)),
        _ => None,
    })
    .await;
    assert_eq!(
        (pushed.as_str(), precedence),
        (flash.as_str(), Precedence::Flash)
    );
    let inbox = bob.inbox().await.unwrap();
    assert_eq!(inbox[0].id, flash, "FLASH first");
    assert!(inbox[0].ack_required);
    assert_eq!(inbox[0].from, "alice@paris");

    let view = bob.acknowledge(&flash).await.unwrap();
    assert!(view.acknowledged && view.read);
    let changed = until(&mut alice_events, |e| match e {
        Event::StatusChanged { id } if *id == flash => Some(id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(changed, flash);
    // Receipts may cross one by one: wait until the acknowledgement is in.
    let state = tokio::time::timeout(GIVE_UP, async {
        loop {
            let sent = alice.sent().await.unwrap();
            let cable = sent.iter().find(|s| s.id == flash).unwrap();
            if cable.recipients[0].state == DeliveryState::Acknowledged {
                return cable.recipients[0].state;
            }
            until(&mut alice_events, |e| {
                matches!(e, Event::StatusChanged { .. }).then_some(())
            })
            .await;
        }
    })
    .await
    .unwrap();
    assert_eq!(state, DeliveryState::Acknowledged);
    bob.lock().await;
    assert!(matches!(
        bob.inbox().await,
        Err(valise_client::ClientError::Locked)
    ));
    alice.lock().await;
    post.node.shutdown().await.unwrap();
}

/// With the node gone the handle says so and when it tries again, and still answers from the
/// store; a cable written meanwhile waits in the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_is_retried_and_requests_are_served_meanwhile() {
    let (dir, post) = network().await;
    let devices = dir.path().join("devices");
    let mut alice = diplomat(&post, &devices, "alice").await;
    let _bob = diplomat(&post, &devices, "bob").await;
    alice.sync(&NoProgress).await.unwrap();
    post.node.shutdown().await.unwrap();
    let (alice, mut events) = ClientHandle::spawn(alice);
    let wait = until(&mut events, |e| match e {
        Event::Retrying { in_ms, reason } => Some((*in_ms, reason.clone())),
        _ => None,
    })
    .await;
    assert_eq!(wait.0, 1000, "the first retry after a second");
    assert!(wait.1.contains("cannot reach the node"), "{}", wait.1);
    let id = alice
        .compose(draft("bob@paris", Precedence::Routine, "While away"))
        .await
        .unwrap();
    let waiting = until(&mut events, |e| match e {
        Event::OutboxChanged { waiting } => Some(*waiting),
        _ => None,
    })
    .await;
    assert_eq!(waiting, 1);
    let sent = alice.sent().await.unwrap();
    assert_eq!(sent[0].id, id);
    assert_eq!(sent[0].recipients[0].state, DeliveryState::Queued);
    alice.lock().await;
}

/// A listener that stops reading while many events pass is told to reload when it reads
/// again, instead of missing them silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_falls_behind_is_told_to_reload() {
    let (dir, post) = network().await;
    let devices = dir.path().join("devices");
    let mut alice = diplomat(&post, &devices, "alice").await;
    let _bob = diplomat(&post, &devices, "bob").await;
    alice.sync(&NoProgress).await.unwrap();
    post.node.shutdown().await.unwrap();
    let (alice, mut events) = ClientHandle::spawn(alice);
    let mut behind = alice.events();
    for i in 0..300 {
        alice
            .compose(draft(
                "bob@paris",
                Precedence::Routine,
                &format!("Cable {i}"),
            ))
            .await
            .unwrap();
        // The attentive listener keeps up.
        while events.try_next().is_some() {}
    }
    let missed = until(&mut behind, |e| match e {
        Event::Reload { missed } => Some(*missed),
        _ => None,
    })
    .await;
    assert!(missed > 0);
    alice.lock().await;
}
