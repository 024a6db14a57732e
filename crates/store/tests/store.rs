//! The storage every part of a node writes through: batches, syncs, group commit, a failing disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use valise_store::{DiskStore, GroupCommit, SledStore, Store, Write};

#[test]
fn concurrent_commits_are_all_durable_and_deletes_apply() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(DiskStore::open(dir.path()).unwrap());
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
    let store = DiskStore::open(dir.path()).unwrap();
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
        let store = DiskStore::open(dir.path()).unwrap();
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
    let _held = DiskStore::open(dir.path()).unwrap();
    let message = match DiskStore::open(dir.path()) {
        Ok(_) => panic!("two owners of one store"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("no other process holds it"), "{message}");
}

/// A store whose syncs fail while `full` is set, as on a full disk.
struct FullDisk {
    inner: DiskStore,
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
        inner: DiskStore::open(dir.path()).unwrap(),
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

#[test]
fn new_stores_are_made_on_fjall_and_ranges_read_from_where_they_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path()).unwrap();
    assert_eq!(store.engine(), "fjall");
    let writes = (0..10u8)
        .map(|i| Write::Put(vec![b'q', i], vec![i]))
        .chain([Write::Put(b"r".to_vec(), b"other".to_vec())])
        .collect();
    store.apply(writes).unwrap();
    store.sync().unwrap();
    let from: Vec<u8> = store
        .scan_from(b"q", &[b'q', 7])
        .map(|item| item.unwrap().1[0])
        .collect();
    assert_eq!(
        from,
        vec![7, 8, 9],
        "from the start key, within the prefix only"
    );
    assert_eq!(
        store.scan_from(b"q", b"a").count(),
        10,
        "a start before the prefix"
    );
    assert_eq!(store.scan_from(b"q", b"z").count(), 0);
    assert!(DiskStore::exists(dir.path()));
    assert!(!DiskStore::exists(&dir.path().join("none")));
}

#[test]
fn a_store_an_earlier_version_made_on_sled_opens_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    {
        let old = SledStore::open(dir.path()).unwrap();
        old.apply(vec![
            Write::Put(b"q1".to_vec(), b"kept".to_vec()),
            Write::Put(b"q2".to_vec(), b"too".to_vec()),
        ])
        .unwrap();
        old.sync().unwrap();
    }
    let store = DiskStore::open(dir.path()).unwrap();
    assert_eq!(
        store.engine(),
        "sled",
        "never converted behind the operator's back"
    );
    assert_eq!(store.get(b"q1").unwrap(), Some(b"kept".to_vec()));
    assert_eq!(store.scan_from(b"q", b"q2").count(), 1);
    store.apply(vec![Write::Delete(b"q1".to_vec())]).unwrap();
    store.sync().unwrap();
    drop(store);
    let again = DiskStore::open(dir.path()).unwrap();
    assert_eq!(again.get(b"q1").unwrap(), None);
    assert!(DiskStore::exists(dir.path()));
}

/// A store whose syncs take a while, as a busy disk's, and that remembers the order of the
/// batches it applied (by their first key).
struct SlowDisk {
    inner: DiskStore,
    applied: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl Store for SlowDisk {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, valise_store::StoreError> {
        self.inner.get(key)
    }
    fn apply(&self, writes: Vec<Write>) -> Result<(), valise_store::StoreError> {
        let keys = writes.iter().map(|w| match w {
            Write::Put(k, _) | Write::Delete(k) => k.clone(),
        });
        self.applied.lock().unwrap().extend(keys);
        self.inner.apply(writes)
    }
    fn sync(&self) -> Result<(), valise_store::StoreError> {
        std::thread::sleep(std::time::Duration::from_millis(30));
        self.inner.sync()
    }
    fn scan(&self, prefix: &[u8]) -> valise_store::Scan<'_> {
        self.inner.scan(prefix)
    }
}

#[test]
fn an_urgent_commit_goes_ahead_of_the_bulk_commits_waiting() {
    use valise_store::Lane;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SlowDisk {
        inner: DiskStore::open(dir.path()).unwrap(),
        applied: Default::default(),
    });
    let commit = Arc::new(GroupCommit::start(Arc::clone(&store)).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let put = |key: &str| vec![Write::Put(key.as_bytes().to_vec(), b"1".to_vec())];
    // A first bulk commit holds the disk; sixty more wait behind it, then a FLASH comes.
    let tell = |tx: &std::sync::mpsc::Sender<String>, name: String| -> valise_store::Completion {
        let tx = tx.clone();
        Box::new(move |r| {
            r.unwrap();
            tx.send(name).unwrap();
        })
    };
    commit.commit_in(
        Lane::Bulk,
        put("bulk-0-first"),
        tell(&tx, "bulk-0-first".into()),
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    for i in 0..60 {
        // Each bulk commit large enough that they cannot all go in one group.
        let writes = (0..40)
            .map(|k| Write::Put(format!("bulk-{i:02}-{k:02}").into_bytes(), vec![0; 64]))
            .collect();
        commit.commit_in(Lane::Bulk, writes, tell(&tx, format!("bulk-{i:02}")));
    }
    commit.commit_in(Lane::Urgent, put("flash"), tell(&tx, "flash".into()));
    let order: Vec<String> = (0..62).map(|_| rx.recv().unwrap()).collect();
    let flash_at = order.iter().position(|n| n == "flash").unwrap();
    assert!(
        flash_at <= 2,
        "the FLASH waited behind {flash_at} bulk commits: {order:?}"
    );
    let bulk: Vec<&String> = order.iter().filter(|n| n.starts_with("bulk-")).collect();
    let mut sorted = bulk.clone();
    sorted.sort();
    assert_eq!(bulk, sorted, "bulk commits keep their order");
    // Every commit is durable and present, in the store the engine reopens.
    drop(commit);
    let applied = store.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 2 + 60 * 40);
    assert!(store.get(b"flash").unwrap().is_some());
    assert!(store.get(b"bulk-59-39").unwrap().is_some());
}
