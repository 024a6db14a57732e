//! The operator's commands on a stopped node do what the running node does: `revoke` and
//! `user update` on its files sign and apply the same changes, drop the same queued cables and
//! leave the same audit records as through the admin socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use prost::Message;
use valise_crypto::at_rest::StorageKey;
use valise_crypto::identity::DeviceId;
use valise_proto::v1::{AuditEvent, AuditEventKind, Classification, Outcome};
use valise_relay::store::RelayStore;

const CONFIG: &str = "paris/node.toml";

/// Every entry of the node's audit log, read from an export made with `audit export`.
fn audit_events(dir: &Path) -> Vec<AuditEvent> {
    let out = dir.join(format!("audit-{}.export", rand_suffix()));
    let exported = relay(
        &[
            "audit",
            "export",
            "--config",
            CONFIG,
            "--out",
            out.to_str().unwrap(),
        ],
        dir,
        PASSPHRASE,
    );
    assert!(exported.status.success(), "{}", text(&exported));
    let mut events = Vec::new();
    valise_audit::export::for_each_entry(std::fs::File::open(&out).unwrap(), |_, bytes| {
        events.push(AuditEvent::decode(bytes).unwrap());
    })
    .unwrap();
    std::fs::remove_file(out).unwrap();
    events
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn names(event: &AuditEvent, device: &DeviceId) -> bool {
    event
        .objects
        .iter()
        .any(|o| o.kind == "device" && o.id == device.as_bytes())
}

/// What a revocation of `device` left in the log: the events from its `DeviceRevoked` on that
/// name the device, and the `revoke` command recorded by `actor`, as (kind, outcome, reason).
fn revocation_records(
    events: &[AuditEvent],
    device: &DeviceId,
    actor: &str,
) -> Vec<(AuditEventKind, Outcome, String)> {
    let start = events
        .iter()
        .position(|e| e.kind == AuditEventKind::DeviceRevoked as i32 && names(e, device))
        .expect("the revocation is recorded");
    events[start..]
        .iter()
        .filter(|e| {
            names(e, device)
                || (e.kind == AuditEventKind::AdminCommand as i32
                    && e.reason == "revoke"
                    && e.actor_id == actor)
        })
        .map(|e| {
            (
                AuditEventKind::try_from(e.kind).unwrap(),
                Outcome::try_from(e.outcome).unwrap(),
                e.reason.clone(),
            )
        })
        .collect()
}

/// The cables queued for each of `devices`, read from the stopped node's queue store.
fn queued(dir: &Path, devices: &[DeviceId]) -> Vec<Vec<Vec<u8>>> {
    let key = std::fs::read(dir.join("paris/node-storage.key")).unwrap();
    let store = RelayStore::open(
        &dir.join("paris/data/queue"),
        &StorageKey::from_bytes(&key).unwrap(),
    )
    .unwrap();
    devices
        .iter()
        .map(|device| {
            store
                .queued(device, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(_, cable)| cable.to_vec())
                .collect()
        })
        .collect()
}

fn queue_lengths(dir: &Path, devices: &[DeviceId]) -> Vec<usize> {
    queued(dir, devices).iter().map(Vec::len).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_revoke_records_and_purges_what_an_online_revoke_does() {
    let dir = paris();
    let codes = ["alice", "bob", "carol"].map(|user| enroll_code(dir.path(), user, "SECRET"));
    let (node, addr) = start_node(dir.path());
    let mut devices = Vec::new();
    for code in &codes {
        devices.push(enrol_device(dir.path(), addr, code).await.unwrap());
    }
    let [alice, bob, carol] = <[Device; 3]>::try_from(devices).ok().unwrap();
    let (bob_id, carol_id) = (bob.identity.device_id(), carol.identity.device_id());
    let conn = connect(dir.path(), addr, Some(&alice.tls)).await.unwrap();
    for (to, address) in [(&bob, "bob@paris"), (&carol, "carol@paris")] {
        for _ in 0..2 {
            let (_, envelope) =
                sealed_cable(&alice, "alice@paris", to, address, Classification::Secret);
            submit(&conn, envelope).await;
        }
    }
    conn.close(0u32.into(), b"done");

    // Carol is revoked through the running node.
    let online = relay(
        &[
            "revoke",
            "--config",
            CONFIG,
            "--user",
            "carol",
            "--reason",
            "laptop lost",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(online.status.success(), "{}", text(&online));
    stop_node(node);
    assert_eq!(
        queue_lengths(dir.path(), &[bob_id, carol_id]),
        [2, 0],
        "Bob's cables wait; Carol's went with her revocation"
    );

    // Bob is revoked on the stopped node's files.
    let offline = relay(
        &[
            "revoke",
            "--config",
            CONFIG,
            "--user",
            "bob",
            "--reason",
            "laptop lost",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(offline.status.success(), "{}", text(&offline));
    assert_eq!(text(&offline), format!("revoked device {bob_id}\n"));

    // (b) What was queued for Bob is gone, as Carol's went.
    assert_eq!(queue_lengths(dir.path(), &[bob_id, carol_id]), [0, 0]);

    // (a) The log holds the same records for both revocations.
    let events = audit_events(dir.path());
    let expected = vec![
        (
            AuditEventKind::DeviceRevoked,
            Outcome::Success,
            "laptop lost".to_owned(),
        ),
        (
            AuditEventKind::CableDelivered,
            Outcome::Refused,
            "recipient_revoked".to_owned(),
        ),
        (
            AuditEventKind::CableDelivered,
            Outcome::Refused,
            "recipient_revoked".to_owned(),
        ),
        (
            AuditEventKind::AdminCommand,
            Outcome::Success,
            "revoke".to_owned(),
        ),
    ];
    assert_eq!(
        revocation_records(&events, &carol_id, "admin-socket"),
        expected
    );
    assert_eq!(
        revocation_records(&events, &bob_id, "offline-command"),
        expected
    );

    // `audit show` names the command line as the operator's channel.
    let shown = text(&relay(
        &["audit", "show", "--config", CONFIG, "--last", "4"],
        dir.path(),
        PASSPHRASE,
    ));
    assert!(
        shown.contains("AdminCommand  Success  operator offline-command  revoke"),
        "{shown}"
    );

    // A revocation that matches nothing is refused, and recorded as refused, as online.
    let nobody = relay(
        &[
            "revoke", "--config", CONFIG, "--user", "nobody", "--reason", "x",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!nobody.status.success());
    assert!(
        text(&nobody).contains("no active device"),
        "{}",
        text(&nobody)
    );
    let last = audit_events(dir.path()).pop().unwrap();
    assert_eq!(last.kind, AuditEventKind::AdminCommand as i32);
    assert_eq!(last.outcome, Outcome::Refused as i32);
    assert_eq!(
        (last.reason.as_str(), last.actor_id.as_str()),
        ("revoke", "offline-command")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_user_update_lowering_a_clearance_drops_what_is_queued_above_it() {
    let dir = paris();
    let codes = ["alice", "bob"].map(|user| enroll_code(dir.path(), user, "TOP SECRET"));
    let (node, addr) = start_node(dir.path());
    let alice = enrol_device(dir.path(), addr, &codes[0]).await.unwrap();
    let bob = enrol_device(dir.path(), addr, &codes[1]).await.unwrap();
    let bob_id = bob.identity.device_id();
    let conn = connect(dir.path(), addr, Some(&alice.tls)).await.unwrap();
    let (top_secret, envelope) = sealed_cable(
        &alice,
        "alice@paris",
        &bob,
        "bob@paris",
        Classification::TopSecret,
    );
    submit(&conn, envelope).await;
    let (secret, envelope) = sealed_cable(
        &alice,
        "alice@paris",
        &bob,
        "bob@paris",
        Classification::Secret,
    );
    submit(&conn, envelope).await;
    conn.close(0u32.into(), b"done");
    stop_node(node);
    let mut before = queued(dir.path(), &[bob_id]).remove(0);
    before.sort();
    let mut both = vec![top_secret.clone(), secret.clone()];
    both.sort();
    assert_eq!(before, both);

    let updated = relay(
        &[
            "user",
            "update",
            "--config",
            CONFIG,
            "--user",
            "bob",
            "--clearance",
            "SECRET",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(updated.status.success(), "{}", text(&updated));
    assert_eq!(
        text(&updated),
        format!("updated bob@paris on device {bob_id}\n")
    );

    // (c) The TOP SECRET cable is dropped; the SECRET one still waits for Bob.
    assert_eq!(queued(dir.path(), &[bob_id]), vec![vec![secret]]);
    let events = audit_events(dir.path());
    let changed = events
        .iter()
        .position(|e| e.kind == AuditEventKind::UserUpdated as i32 && names(e, &bob_id))
        .expect("the change is recorded");
    assert_eq!(events[changed].reason, "clearance=SECRET");
    assert_eq!(events[changed].actor_id, "offline-command");
    let dropped: Vec<&AuditEvent> = events[changed..]
        .iter()
        .filter(|e| e.reason == "recipient_clearance_lowered")
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].kind, AuditEventKind::CableDelivered as i32);
    assert_eq!(dropped[0].outcome, Outcome::Refused as i32);
    assert!(
        dropped[0]
            .objects
            .iter()
            .any(|o| o.kind == "envelope" && o.id == top_secret),
        "{dropped:?}"
    );
}
