//! The storage layer shared by the audit log and the relay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use valise_audit::store::{GroupCommit, SledStore, Store, Write};

#[test]
fn concurrent_commits_are_all_durable_and_deletes_apply() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let commit = Arc::new(GroupCommit::start(Arc::clone(&store)).unwrap());
        std::thread::scope(|s| {
            for t in 0..16u8 {
                let commit = Arc::clone(&commit);
                s.spawn(move || {
                    for i in 0..50u8 {
                        commit
                            .commit(vec![Write::Put(vec![b'k', t, i], vec![t, i])])
                            .unwrap();
                    }
                });
            }
        });
        commit
            .commit(vec![
                Write::Delete(vec![b'k', 0, 0]),
                Write::Put(b"last".to_vec(), b"x".to_vec()),
            ])
            .unwrap();
    }
    // Reopened from disk: everything committed is there, the deleted key is not.
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.scan(b"k").count(), 16 * 50 - 1);
    assert_eq!(store.get(&[b'k', 0, 0]).unwrap(), None);
    assert_eq!(store.get(&[b'k', 15, 49]).unwrap(), Some(vec![15, 49]));
    assert_eq!(store.get(b"last").unwrap(), Some(b"x".to_vec()));
}

#[test]
fn a_closed_store_reopens_at_once_with_its_data() {
    // sled lets go of its lock from a background thread; a restart in the same process (an
    // admin command right after the node stops) must not trip over that.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..40u8 {
        let store = SledStore::open(dir.path()).unwrap();
        if round > 0 {
            assert_eq!(store.get(b"round").unwrap(), Some(vec![round - 1]));
        }
        store
            .apply(vec![Write::Put(b"round".to_vec(), vec![round])])
            .unwrap();
        store.sync().unwrap();
    }
}

#[test]
fn a_store_held_by_another_owner_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path()).unwrap();
    let message = match SledStore::open(dir.path()) {
        Ok(_) => panic!("two owners of one store"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("no other process holds it"), "{message}");
}
