//! The relay's store of cables in transit, as custody requires: whatever it acknowledged
//! survives a crash, and each cable is delivered once per recipient.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use valise_crypto::at_rest::StorageKey;
use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_proto::v1::Precedence;
use valise_relay::attachments::AttachmentId;
use valise_relay::queue::QueueKey;
use valise_relay::routing::NextHop;
use valise_relay::store::{Custody, Enqueued, RelayStore};

/// One fixed key, so a reopened store (or the crash test's child) reads what was written.
fn storage_key() -> StorageKey {
    StorageKey::from_bytes(&[9; 32]).unwrap()
}

fn device(seed: u8) -> DeviceId {
    IdentityKeyPair::from_seed(&[seed; 32]).unwrap().device_id()
}

fn cable(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

#[test]
fn cables_are_queued_per_device_in_delivery_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    let (bob, carol) = (device(2), device(3));
    for (n, p) in [
        (0, Precedence::Routine),
        (1, Precedence::Flash),
        (2, Precedence::Priority),
        (3, Precedence::Flash),
    ] {
        let to: &[DeviceId] = if n == 2 { &[bob] } else { &[bob, carol] };
        assert!(matches!(
            store.enqueue(cable(n), p, b"envelope", to, 1000).unwrap(),
            Enqueued::Stored { .. }
        ));
    }
    let order: Vec<[u8; 16]> = store
        .queued(&bob, 100)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(
        order,
        vec![cable(1), cable(3), cable(2), cable(0)],
        "FLASH in arrival order, then PRIORITY, then ROUTINE"
    );
    assert_eq!(store.queued(&carol, 100).unwrap().len(), 3);
    assert_eq!(store.depth().unwrap(), [4, 0, 1, 2]);
    assert_eq!(
        store.envelope(&cable(2)).unwrap().as_deref(),
        Some(&b"envelope"[..])
    );
}

#[test]
fn a_resent_or_replayed_cable_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    assert!(matches!(
        store
            .enqueue(cable(7), Precedence::Flash, b"e", &[device(2)], 1)
            .unwrap(),
        Enqueued::Stored { .. }
    ));
    assert_eq!(
        store
            .enqueue(cable(7), Precedence::Flash, b"e", &[device(2)], 2)
            .unwrap(),
        Enqueued::Duplicate
    );
    assert_eq!(store.queued(&device(2), 10).unwrap().len(), 1);
    // Still a duplicate once delivered: the dedup set outlives the envelope.
    let (at, _) = store.queued(&device(2), 1).unwrap()[0];
    assert!(store.ack(&device(2), at).unwrap());
    assert_eq!(
        store
            .enqueue(cable(7), Precedence::Flash, b"e", &[device(2)], 3)
            .unwrap(),
        Enqueued::Duplicate
    );
    // Until the dedup TTL expires.
    assert_eq!(store.forget_seen_before(10).unwrap(), 1);
    assert!(matches!(
        store
            .enqueue(cable(7), Precedence::Flash, b"e", &[device(2)], 11)
            .unwrap(),
        Enqueued::Stored { .. }
    ));
}

#[test]
fn the_envelope_goes_once_every_recipient_has_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    store
        .enqueue(
            cable(1),
            Precedence::Immediate,
            b"e",
            &[device(2), device(3)],
            1,
        )
        .unwrap();
    let (bob_at, _) = store.queued(&device(2), 1).unwrap()[0];
    assert!(store.ack(&device(2), bob_at).unwrap());
    assert!(
        !store.ack(&device(2), bob_at).unwrap(),
        "a repeated ack is harmless"
    );
    assert!(
        store.envelope(&cable(1)).unwrap().is_some(),
        "carol still needs it"
    );
    let (carol_at, _) = store.queued(&device(3), 1).unwrap()[0];
    assert!(store.ack(&device(3), carol_at).unwrap());
    assert_eq!(store.envelope(&cable(1)).unwrap(), None);
    assert!(
        !store
            .ack(&device(3), QueueKey::new(Precedence::Flash, 999))
            .unwrap(),
        "an unknown key is ignored"
    );
}

#[test]
fn a_restarted_node_resumes_its_queues_and_numbering() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
        store
            .enqueue(cable(1), Precedence::Routine, b"e", &[device(2)], 1)
            .unwrap();
    }
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    let Enqueued::Stored { seq } = store
        .enqueue(cable(2), Precedence::Routine, b"e", &[device(2)], 2)
        .unwrap()
    else {
        panic!("not stored");
    };
    assert_eq!(seq, 1, "numbering continues after a restart");
    let queued: Vec<_> = store
        .queued(&device(2), 10)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(queued, vec![cable(1), cable(2)]);
}

const CHILD_ENV: &str = "VALISE_RELAY_STORE_CRASH_CHILD";

/// A node killed with SIGKILL while cables pour in: every cable whose enqueue returned (and
/// so could have had custody signed) is queued after restart, once, for every recipient.
#[test]
fn a_killed_node_keeps_every_cable_it_took_custody_of() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return store_until_killed(dir.as_ref());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_node_keeps_every_cable_it_took_custody_of",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut custody = BTreeSet::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(n) = line.unwrap().strip_prefix("custody ") {
            custody.insert(n.parse::<u64>().unwrap());
            if custody.len() == 3000 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(custody.len(), 3000, "the child stopped early");

    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    for recipient in [device(2), device(3)] {
        let mut seen = BTreeMap::new();
        for (_, id) in store.queued(&recipient, usize::MAX).unwrap() {
            *seen
                .entry(u64::from_be_bytes(id[8..].try_into().unwrap()))
                .or_insert(0) += 1;
        }
        for n in &custody {
            assert_eq!(
                seen.get(n),
                Some(&1),
                "cable {n} lost or duplicated for a recipient"
            );
        }
    }
}

fn store_until_killed(dir: &std::path::Path) {
    let store = Arc::new(RelayStore::open(dir, &storage_key()).unwrap());
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let store = Arc::clone(&store);
            s.spawn(move || {
                for i in 0.. {
                    let n = t * 1_000_000 + i;
                    let p = if n % 10 == 0 {
                        Precedence::Flash
                    } else {
                        Precedence::Routine
                    };
                    let outcome = store
                        .enqueue(cable(n), p, &[7u8; 512], &[device(2), device(3)], n)
                        .unwrap();
                    assert!(matches!(outcome, Enqueued::Stored { .. }));
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "custody {n}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// Every file under `dir`, concatenated: what someone holding the seized disk reads.
fn raw_bytes_under(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(raw_bytes_under(&path));
        } else {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

#[test]
fn queued_envelopes_are_sealed_on_disk_and_unreadable_without_the_storage_key() {
    let dir = tempfile::tempdir().unwrap();
    let envelope = b"ROUTING HEADER: alice@paris to POL@nairobi, SECRET NODIS".repeat(20);
    {
        let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
        store
            .enqueue(cable(1), Precedence::Flash, &envelope, &[device(2)], 1)
            .unwrap();
        store.sync().unwrap();
        assert_eq!(store.envelope(&cable(1)).unwrap().unwrap(), envelope);
    }
    let disk = raw_bytes_under(dir.path());
    assert!(
        !disk.windows(14).any(|w| w == b"ROUTING HEADER"),
        "the envelope is stored in clear"
    );

    // Another key (a destroyed one replaced, another node's, or a seized disk without the
    // key) opens nothing: the store refuses at once rather than serve cables it cannot read.
    let err = RelayStore::open(dir.path(), &StorageKey::from_bytes(&[8; 32]).unwrap())
        .err()
        .expect("another key is refused")
        .to_string();
    assert!(
        err.contains("sealed under another node storage key"),
        "{err}"
    );
    // The right key still opens it, with the cable.
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    assert_eq!(store.envelope(&cable(1)).unwrap().unwrap(), envelope);
}

#[test]
fn a_forwarded_cable_is_kept_until_every_hop_and_device_is_done_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (bob, nadia, omar) = (device(2), device(7), device(8));
    let nairobi = NextHop::Hub;
    let brussels = NextHop::Post("brussels".into());
    let annexes = [1u8, 2].map(|n| AttachmentId::from_slice(&[n; 32]).unwrap());
    {
        let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
        for (n, p) in [(0, Precedence::Routine), (1, Precedence::Flash)] {
            // The ROUTINE cable carries two attachments, to go with it to each hop.
            let carried = if n == 0 { &annexes[..] } else { &[] };
            let onward = [
                (nairobi.clone(), vec![nadia, omar]),
                (brussels.clone(), vec![omar]),
            ];
            let taken = store
                .take_custody(
                    Custody {
                        cable: cable(n),
                        precedence: p,
                        envelope: b"sealed cable",
                        local: &[bob],
                        onward: &onward,
                        accepted_at_ms: 500 + n,
                        attachments: carried,
                    },
                    1000,
                )
                .unwrap();
            assert!(matches!(taken, Enqueued::Stored { .. }));
        }
        // A resend after a lost receipt is recognised, not queued twice.
        let again = store
            .take_custody(
                Custody {
                    cable: cable(0),
                    precedence: Precedence::Routine,
                    envelope: b"sealed cable",
                    local: &[],
                    onward: &[(nairobi.clone(), vec![nadia])],
                    accepted_at_ms: 500,
                    attachments: &[],
                },
                1001,
            )
            .unwrap();
        assert_eq!(again, Enqueued::Duplicate);
    }
    // Everything was durable: a reopened store forwards the FLASH first.
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    let hub_queue = store.onward(&nairobi, 10).unwrap();
    assert_eq!(hub_queue.len(), 2);
    assert_eq!(hub_queue[0].1.cable, cable(1), "FLASH first");
    assert_eq!(hub_queue[0].1.devices, vec![nadia, omar]);
    assert_eq!(hub_queue[0].1.accepted_at_ms, 501);
    assert_eq!(store.attachments(&cable(0)).unwrap(), annexes);
    assert_eq!(store.attachments(&cable(1)).unwrap(), []);
    assert!(store.seen(&cable(0)).unwrap() && !store.seen(&cable(9)).unwrap());
    // One attachment expired here: the cable goes on carrying the other.
    store.set_attachments(&cable(0), &annexes[1..]).unwrap();
    assert_eq!(store.attachments(&cable(0)).unwrap(), &annexes[1..]);
    let depth = store.onward_depth().unwrap();
    assert_eq!(depth["hub"], [1, 0, 0, 1]);
    assert_eq!(depth["post:brussels"], [1, 0, 0, 1]);

    // The envelope stays until the local device and both hops are done with it.
    let (key, _) = hub_queue[1].clone();
    assert!(store.forwarded(&nairobi, key).unwrap());
    assert!(
        !store.forwarded(&nairobi, key).unwrap(),
        "a repeated receipt is harmless"
    );
    let (bob_key, _) = store.queued(&bob, 10).unwrap()[1];
    assert!(store.ack(&bob, bob_key).unwrap());
    assert!(
        store.envelope(&cable(0)).unwrap().is_some(),
        "brussels still needs it"
    );
    let (brussels_key, _) = store.onward(&brussels, 10).unwrap()[1].clone();
    assert!(store.forwarded(&brussels, brussels_key).unwrap());
    assert_eq!(
        store.envelope(&cable(0)).unwrap(),
        None,
        "all done: the envelope is gone"
    );
    assert_eq!(
        store.attachments(&cable(0)).unwrap(),
        [],
        "and so is its list of attachments"
    );
    store.set_attachments(&cable(0), &annexes).unwrap();
    assert_eq!(
        store.attachments(&cable(0)).unwrap(),
        [],
        "nothing is written for a cable no longer held"
    );
    assert!(store.envelope(&cable(1)).unwrap().is_some());
}

#[test]
fn a_cable_with_nobody_left_to_deliver_to_keeps_no_envelope_but_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    // Every recipient was revoked since sealing: custody is taken (the sender may let go), but
    // there is nothing to queue and so nothing that would ever release an envelope.
    let custody = Custody {
        cable: cable(3),
        precedence: Precedence::Priority,
        envelope: b"sealed cable",
        local: &[],
        onward: &[],
        accepted_at_ms: 500,
        attachments: &[],
    };
    assert!(matches!(
        store.take_custody(custody, 1000).unwrap(),
        Enqueued::Stored { .. }
    ));
    assert_eq!(store.envelope(&cable(3)).unwrap(), None);
    assert_eq!(store.depth().unwrap(), [0; 4]);
    assert_eq!(
        store.take_custody(custody, 1001).unwrap(),
        Enqueued::Duplicate,
        "a resend is recognised"
    );
}

#[test]
fn a_reused_cable_id_with_other_content_is_a_conflict_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    let bob = [device(2)];
    store
        .enqueue(cable(5), Precedence::Routine, b"the original", &bob, 1)
        .unwrap();
    assert_eq!(
        store
            .enqueue(cable(5), Precedence::Routine, b"the original", &bob, 2)
            .unwrap(),
        Enqueued::Duplicate,
        "the same bytes again: a resend, answered again"
    );
    assert_eq!(
        store
            .enqueue(cable(5), Precedence::Flash, b"a forgery", &bob, 3)
            .unwrap(),
        Enqueued::Conflict,
        "other bytes under a held id are never answered with custody"
    );
    assert_eq!(
        store.envelope(&cable(5)).unwrap().as_deref(),
        Some(&b"the original"[..]),
        "and change nothing held"
    );
    assert_eq!(store.queued(&bob[0], 10).unwrap().len(), 1);
    // Once delivered and its envelope gone, the dedup entry still knows the digest.
    let (key, _) = store.queued(&bob[0], 1).unwrap()[0];
    store.ack(&bob[0], key).unwrap();
    assert_eq!(
        store
            .enqueue(cable(5), Precedence::Routine, b"a forgery", &bob, 4)
            .unwrap(),
        Enqueued::Conflict
    );
    assert_eq!(
        store
            .enqueue(cable(5), Precedence::Routine, b"the original", &bob, 5)
            .unwrap(),
        Enqueued::Duplicate
    );
}

/// sled, with syncs failing while `full` is set: a disk with no space left.
struct FullDisk {
    inner: valise_store::DiskStore,
    full: std::sync::atomic::AtomicBool,
}

impl valise_store::Store for FullDisk {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, valise_store::StoreError> {
        self.inner.get(key)
    }
    fn apply(&self, writes: Vec<valise_store::Write>) -> Result<(), valise_store::StoreError> {
        self.inner.apply(writes)
    }
    fn sync(&self) -> Result<(), valise_store::StoreError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(valise_store::StoreError::Io(
                "No space left on device (os error 28)".into(),
            ));
        }
        self.inner.sync()
    }
    fn scan(&self, prefix: &[u8]) -> valise_store::Scan<'_> {
        self.inner.scan(prefix)
    }
}

/// The full-disk loss seen before: a failed sync left the cable's keys visible, the sender's
/// retry hit the dedup key and got a receipt for a cable that was never durable. Now the
/// retry is refused while the disk is full, the store says why, recovers by itself once space
/// is freed, and only then answers the retry, truthfully, as held.
#[test]
fn on_a_full_disk_nothing_is_acknowledged_that_is_not_durable() {
    use valise_store::StoreError;
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FullDisk {
        inner: valise_store::DiskStore::open(dir.path()).unwrap(),
        full: false.into(),
    });
    let store = RelayStore::open_on(disk.clone(), &storage_key()).unwrap();
    let bob = [device(2)];
    disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
    for attempt in 0..3 {
        let result = store.enqueue(cable(1), Precedence::Flash, b"urgent", &bob, attempt);
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: {result:?}"
        );
    }
    assert!(store.degraded().unwrap().contains("No space left"));
    // Another cable is refused too, without being applied.
    assert!(
        store
            .enqueue(cable(2), Precedence::Routine, b"bulk", &bob, 9)
            .is_err()
    );
    assert!(!store.seen(&cable(2)).unwrap());

    disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.degraded().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store never recovered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        store
            .enqueue(cable(1), Precedence::Flash, b"urgent", &bob, 10)
            .unwrap(),
        Enqueued::Duplicate,
        "what the failed group left visible is durable now, so the resend is held"
    );
    assert!(matches!(
        store
            .enqueue(cable(2), Precedence::Routine, b"bulk", &bob, 11)
            .unwrap(),
        Enqueued::Stored { .. }
    ));
    drop(store);
    drop(disk);
    // Reopened from disk: both cables are there.
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    assert_eq!(store.queued(&bob[0], 10).unwrap().len(), 2);
}

#[test]
fn a_revoked_devices_queue_is_purged_and_shared_envelopes_stay_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    let (bob, carol) = (device(2), device(3));
    store
        .enqueue(cable(1), Precedence::Routine, b"to both", &[bob, carol], 1)
        .unwrap();
    store
        .enqueue(cable(2), Precedence::Flash, b"to bob", &[bob], 2)
        .unwrap();
    let mut devices = store.queued_devices().unwrap();
    devices.sort();
    let mut expected = vec![bob, carol];
    expected.sort();
    assert_eq!(devices, expected);

    let dropped = store.purge_device(&bob).unwrap();
    assert_eq!(dropped.len(), 2);
    assert!(store.queued(&bob, 10).unwrap().is_empty());
    assert_eq!(store.queued_devices().unwrap(), vec![carol]);
    assert_eq!(
        store.envelope(&cable(1)).unwrap().as_deref(),
        Some(&b"to both"[..]),
        "carol still needs the shared cable"
    );
    assert_eq!(
        store.envelope(&cable(2)).unwrap(),
        None,
        "nobody else needed it"
    );
    // Its dedup entry stays: a resend is not queued for anyone again.
    assert_eq!(
        store
            .enqueue(cable(2), Precedence::Flash, b"to bob", &[bob], 3)
            .unwrap(),
        Enqueued::Duplicate
    );
}

/// Cables past their delivery objective, with time as an argument: a FLASH for a local device
/// after 10 minutes, a ROUTINE waiting for the hub after 6 hours (counted from custody in the
/// network), most overdue first.
#[test]
fn cables_past_their_objective_are_listed_for_the_operator() {
    const MIN: u64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let store = RelayStore::open(dir.path(), &storage_key()).unwrap();
    let t0 = 1_000 * MIN;
    store
        .enqueue(cable(1), Precedence::Flash, b"urgent", &[device(2)], t0)
        .unwrap();
    let onward = [(NextHop::Hub, vec![device(9)])];
    store
        .take_custody(
            Custody {
                cable: cable(2),
                precedence: Precedence::Routine,
                envelope: b"bulk",
                local: &[],
                onward: &onward,
                accepted_at_ms: t0 - 30 * MIN,
                attachments: &[],
            },
            t0,
        )
        .unwrap();
    assert!(store.past_objective(t0 + 9 * MIN).unwrap().is_empty());
    let at_11 = store.past_objective(t0 + 11 * MIN).unwrap();
    assert_eq!(at_11.len(), 1);
    assert_eq!(at_11[0].cable, cable(1));
    assert_eq!(at_11[0].waiting_for, format!("device {}", device(2)));
    let later = store.past_objective(t0 + 6 * 60 * MIN).unwrap();
    let order: Vec<[u8; 16]> = later.iter().map(|o| o.cable).collect();
    assert_eq!(order, vec![cable(1), cable(2)], "the FLASH was due first");
    assert_eq!(later[1].waiting_for, "hub");
    assert_eq!(later[1].since_ms, t0 - 30 * MIN);
}
