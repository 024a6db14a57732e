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
