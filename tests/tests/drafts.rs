//! What a desktop front end relies on beyond sending and receiving, through the same
//! `ClientHandle` it holds, against a real post on loopback: a draft checked as it is typed
//! names the addressee who blocks it and seals nothing; a reply is filled from the cable it
//! answers; people, offices and posts are offered as addressees; a contact verified in person
//! is flagged when a device appears for them that was not compared; the wipe erases locally
//! and says so before the node is told.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_client::client::{Client, Event};
use valise_client::compose::CableDraft;
use valise_client::contacts::Verification;
use valise_client::handle::ClientHandle;
use valise_client::views::AddresseeKind;
use valise_devnet::inproc::{self, until};
use valise_devnet::local::LocalPost;
use valise_proto::v1::{Caveat, Classification, Precedence};

async fn diplomat(
    post: &LocalPost,
    dir: &std::path::Path,
    user: &str,
    clearance: Classification,
    office: &str,
) -> Client {
    inproc::diplomat(post, dir, user, clearance, &[office]).await
}

fn draft(to: &[&str], classification: Classification, subject: &str) -> CableDraft {
    CableDraft {
        action: to.iter().map(|a| (*a).to_owned()).collect(),
        info: vec![],
        classification,
        precedence: Precedence::Priority,
        niact: false,
        caveats: vec![],
        tags: vec!["PREL".into()],
        subject: subject.into(),
        text: "Text.".into(),
        attachments: vec![],
        references: vec![],
    }
}

struct Post {
    dir: tempfile::TempDir,
    post: LocalPost,
}

fn post() -> Post {
    let (dir, post) = inproc::post();
    Post { dir, post }
}

impl Post {
    async fn person(&self, user: &str, clearance: Classification, office: &str) -> Client {
        let dir = self.dir.path().join("devices").join(user);
        diplomat(&self.post, &dir, user, clearance, office).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_checked_as_it_is_typed_and_names_who_blocks_it() {
    let net = post();
    let _carol = net
        .person("carol", Classification::Confidential, "CONS")
        .await;
    let _alice = net.person("alice", Classification::Secret, "POL").await;
    let me = net.person("amb", Classification::TopSecret, "FRONT").await;
    let (me, _events) = ClientHandle::spawn(me);

    // Half typed: what is missing is listed, and nothing blocks it yet.
    let mut typing = draft(&["alice@paris"], Classification::Unspecified, "");
    let check = me.check(typing.clone()).await.unwrap();
    assert_eq!(check.missing, vec!["a classification", "a subject"]);
    assert_eq!(check.blocking, None);
    assert!(!check.is_ready());

    // A SECRET cable that reaches a CONFIDENTIAL colleague is blocked, naming her, even before
    // the subject is typed.
    typing.action.push("carol@paris".into());
    typing.classification = Classification::Secret;
    let check = me.check(typing.clone()).await.unwrap();
    let blocking = check.blocking.clone().expect("carol blocks it");
    assert!(
        blocking.starts_with("carol@paris is cleared CONFIDENTIAL only"),
        "{blocking}"
    );
    assert!(!check.is_ready());
    // An office under NODIS is named too.
    let mut nodis = typing.clone();
    nodis.action = vec!["POL@paris".into()];
    nodis.caveats = vec![Caveat::Nodis];
    let blocking = me.check(nodis).await.unwrap().blocking.unwrap();
    assert!(
        blocking.starts_with("POL@paris is an office mailbox"),
        "{blocking}"
    );

    // Checking sealed and queued nothing.
    assert!(me.sent().await.unwrap().is_empty());

    // Without Carol, and with a subject, it is ready, for Alice's one device.
    typing.action = vec!["alice@paris".into()];
    typing.subject = "Sanctions list".into();
    let check = me.check(typing).await.unwrap();
    assert!(check.is_ready(), "{check:?}");
    assert_eq!(check.recipients, vec!["alice@paris"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_filled_from_the_cable_and_addressees_offered() {
    let net = post();
    let alice = net.person("alice", Classification::Secret, "POL").await;
    let bob = net.person("bob", Classification::Secret, "POL").await;
    let me = net.person("amb", Classification::TopSecret, "FRONT").await;
    let (me, mut my_events) = ClientHandle::spawn(me);
    let (alice, _a) = ClientHandle::spawn(alice);
    let (_bob, _b) = ClientHandle::spawn(bob);
    alice.sync_now().await.unwrap();
    let mut original = draft(&["amb@paris"], Classification::Secret, "Fisheries");
    original.info = vec!["bob@paris".into()];
    original.caveats = vec![Caveat::Noforn];
    let id = alice.compose(original).await.unwrap();
    until(&mut my_events, |e| match e {
        Event::Received { id: got, .. } if *got == id => Some(()),
        _ => None,
    })
    .await;

    let reply = me.reply_draft(&id, false).await.unwrap();
    assert_eq!(reply.action, vec!["alice@paris"]);
    assert!(reply.info.is_empty());
    assert_eq!(reply.subject, "RE: Fisheries");
    assert_eq!(reply.classification, Classification::Secret);
    assert_eq!(reply.caveats, vec![Caveat::Noforn]);
    assert_eq!(reply.references[0].cable_id, hex_id(&id));
    let all = me.reply_draft(&id, true).await.unwrap();
    assert_eq!(
        all.action,
        vec!["alice@paris"],
        "I am not among my own addressees"
    );
    assert_eq!(all.info, vec!["bob@paris"]);

    // A reply marked below the cable it answers is refused before sealing.
    let mut lower = reply.clone();
    lower.classification = Classification::Confidential;
    let err = me.compose(lower).await.unwrap_err().to_string();
    assert!(err.contains("must be marked SECRET or higher"), "{err}");

    // People, offices and posts matching what is typed.
    let found = me.addressees("pol").await.unwrap();
    assert!(
        found
            .iter()
            .any(|a| a.address == "POL@paris" && a.kind == AddresseeKind::Office),
        "{found:?}"
    );
    let posts = me.addressees("paris").await.unwrap();
    assert!(
        posts
            .iter()
            .any(|a| a.address == "paris" && a.kind == AddresseeKind::Post)
    );
    assert!(
        posts
            .iter()
            .any(|a| a.address == "alice@paris" && a.kind == AddresseeKind::Person)
    );
}

fn hex_id(id: &str) -> Vec<u8> {
    (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_contact_with_a_new_device_is_flagged_keys_changed() {
    let net = post();
    let bob = net.person("bob", Classification::Secret, "POL").await;
    let me = net.person("amb", Classification::TopSecret, "FRONT").await;
    let (me, _events) = ClientHandle::spawn(me);
    let (_bob, _b) = ClientHandle::spawn(bob);

    let shown = |views: Vec<valise_client::views::DirectoryView>| {
        views
            .into_iter()
            .find(|v| v.address == "bob@paris")
            .unwrap()
    };
    let bob_view = shown(me.directory("bob").await.unwrap());
    assert_eq!(bob_view.verification, Verification::Unverified);
    assert_eq!(bob_view.safety_number.split(' ').count(), 12);
    let marked = me.set_verified("bob@paris", true).await.unwrap();
    assert!(
        matches!(marked, Verification::Verified { .. }),
        "{marked:?}"
    );

    // Someone enrols a second device as Bob: the directory lists a device never compared.
    let second = net.dir.path().join("devices").join("bob-second");
    let _other = diplomat(&net.post, &second, "bob", Classification::Secret, "POL").await;
    me.sync_now().await.unwrap();
    let changed = me
        .directory("bob")
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.address == "bob@paris")
        .map(|v| v.verification)
        .collect::<Vec<_>>();
    assert!(
        changed
            .iter()
            .all(|v| matches!(v, Verification::KeysChanged { .. })),
        "{changed:?}"
    );
    // Verified again, after comparing anew, it is verified.
    let again = me.set_verified("bob@paris", true).await.unwrap();
    assert!(matches!(again, Verification::Verified { .. }));
    me.set_verified("bob@paris", false).await.unwrap();
    assert_eq!(
        shown(me.directory("bob").await.unwrap()).verification,
        Verification::Unverified
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wipe_erases_locally_and_says_so_before_the_node_is_told() {
    let net = post();
    let me = net.person("amb", Classification::TopSecret, "FRONT").await;
    let dir = me.data_dir().to_owned();
    let (me, mut events) = ClientHandle::spawn(me);
    until(&mut events, |e| {
        matches!(e, Event::SyncFinished { .. }).then_some(())
    })
    .await;
    let wiping = tokio::spawn({
        let me = me.clone();
        async move { me.wipe().await }
    });
    until(&mut events, |e| matches!(e, Event::Wiped).then_some(())).await;
    assert!(
        !valise_client::store::LocalStore::exists(&dir),
        "the store is gone when Wiped is said"
    );
    let told = wiping.await.unwrap().unwrap();
    assert_eq!(told, Ok(()), "the node was told");
    assert!(me.inbox().await.is_err(), "the client's task has ended");
}
