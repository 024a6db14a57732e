//! The storage every part of a node writes through: batches, syncs, group commit, a failing disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use valise_store::{GroupCommit, SledStore, Store, Write};

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

/// A sled store whose syncs fail while `full` is set, as on a full disk.
struct FullDisk {
    inner: SledStore,
    full: std::sync::atomic::AtomicBool,
}

impl Store for FullDisk {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, valise_store::StoreError> {
        self.inner.get(key)
    }
    fn apply(&self, writes: Vec<Write>) -> Result<(), valise_store::StoreError> {
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

#[test]
fn a_failed_sync_refuses_every_commit_until_the_disk_recovers_by_itself() {
    use valise_store::StoreError;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FullDisk {
        inner: SledStore::open(dir.path()).unwrap(),
        full: false.into(),
    });
    let commit = GroupCommit::start(Arc::clone(&store)).unwrap();
    commit
        .commit(vec![Write::Put(b"a".to_vec(), b"1".to_vec())])
        .unwrap();
    assert_eq!(commit.degraded(), None);

    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = commit.commit(vec![Write::Put(b"b".to_vec(), b"2".to_vec())]);
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    let why = commit.degraded().expect("degraded after a failed sync");
    assert!(why.contains("No space left"), "{why}");
    // While degraded nothing is applied, and a barrier (an empty commit) fails too: nothing
    // visible may be taken for durable.
    let refused = commit.commit(vec![Write::Put(b"c".to_vec(), b"3".to_vec())]);
    assert!(matches!(refused, Err(StoreError::Unavailable(_))));
    assert_eq!(
        store.get(b"c").unwrap(),
        None,
        "nothing applied while degraded"
    );
    assert!(commit.commit(Vec::new()).is_err());

    // Space is freed: within the retry period the store is well again, with no call.
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while commit.degraded().is_some() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    commit.commit(Vec::new()).unwrap();
    commit
        .commit(vec![Write::Put(b"c".to_vec(), b"3".to_vec())])
        .unwrap();
    assert_eq!(store.get(b"c").unwrap(), Some(b"3".to_vec()));
}
