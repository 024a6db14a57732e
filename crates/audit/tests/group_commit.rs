//! Group commit, as the disk sees it: concurrent appenders share one sync, and no append is
//! acknowledged before a sync that covers its entry has returned.
//!
//! The log runs on the store's engine through a wrapper that records, for each entry written, whether a
//! sync has completed since. The wrapper's sync also pauses 1 ms, as a slow disk's fsync
//! would: time enough for appenders to queue, not a measure of speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use valise_audit::AuditLog;
use valise_audit::verify::verify_dir;
use valise_store::Lane;
use valise_store::{DiskStore, Scan, Store, StoreError, Write};

const APPENDERS: u64 = 64;
const EACH: u64 = 16;

#[derive(Default)]
struct Disk {
    /// Entry keys written since the last completed sync.
    written: Vec<Vec<u8>>,
    /// Entry keys a completed sync covers.
    durable: HashSet<Vec<u8>>,
    /// Completed syncs that made at least one entry durable.
    entry_syncs: u64,
}

struct Observed {
    inner: DiskStore,
    disk: Mutex<Disk>,
}

#[derive(Clone)]
struct ObservedStore(Arc<Observed>);

impl Store for ObservedStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.inner.get(key)
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let keys: Vec<Vec<u8>> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Put(k, _) if k.first() == Some(&b'e') => Some(k.clone()),
                _ => None,
            })
            .collect();
        self.0.inner.apply(writes)?;
        self.0.disk.lock().unwrap().written.extend(keys);
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut self.0.disk.lock().unwrap().written);
        std::thread::sleep(Duration::from_millis(1));
        self.0.inner.sync()?;
        let mut disk = self.0.disk.lock().unwrap();
        if !pending.is_empty() {
            disk.entry_syncs += 1;
        }
        disk.durable.extend(pending);
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Scan<'_> {
        self.0.inner.scan(prefix)
    }
}

fn entry_key(index: u64) -> Vec<u8> {
    [&b"e"[..], &index.to_be_bytes()].concat()
}

#[test]
fn concurrent_appends_share_syncs_and_each_returns_only_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let store = ObservedStore(Arc::new(Observed {
        inner: DiskStore::open(&path).unwrap(),
        disk: Mutex::default(),
    }));
    let log = AuditLog::open_with_store(store.clone(), config(&path, 256), node_key()).unwrap();

    let mut acked: Vec<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..APPENDERS)
            .map(|t| {
                let (log, store) = (&log, &store);
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let index = log.append(event(t * 1000 + i)).unwrap();
                            assert!(
                                store
                                    .0
                                    .disk
                                    .lock()
                                    .unwrap()
                                    .durable
                                    .contains(&entry_key(index)),
                                "append {index} returned before a sync covered it"
                            );
                            index
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    acked.sort_unstable();
    let appends = APPENDERS * EACH;
    assert_eq!(acked, (0..appends).collect::<Vec<_>>());

    let syncs = store.0.disk.lock().unwrap().entry_syncs;
    assert!(
        syncs * 4 <= appends,
        "{appends} concurrent appends took {syncs} syncs: they are not sharing them"
    );

    log.close().unwrap();
    drop(store);
    let report = verify_dir(&path, &keys(), None).unwrap();
    assert_eq!(report.entries, appends);
}

#[test]
fn an_urgent_append_is_written_ahead_of_the_bulk_appends_waiting() {
    // A FLASH cable's custody record must not queue behind a backlog of routine records: it
    // goes in the next group, alone, and takes its place in the log there.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let store = ObservedStore(Arc::new(Observed {
        inner: DiskStore::open(&path).unwrap(),
        disk: Mutex::default(),
    }));
    let log = AuditLog::open_with_store(store.clone(), config(&path, 100_000), node_key()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tell = |name: &'static str| -> valise_audit::log::Appended {
        let tx = tx.clone();
        Box::new(move |r| tx.send((name, r.unwrap())).unwrap())
    };
    // Forty appends of a hundred routine records each, then one urgent record.
    for i in 0..40 {
        let events = (0..100).map(|n| event(i * 1000 + n)).collect();
        log.append_in(Lane::Bulk, events, tell("bulk"));
    }
    log.append_in(Lane::Urgent, vec![event(999_999)], tell("flash"));
    let done: Vec<(&str, u64)> = (0..41).map(|_| rx.recv().unwrap()).collect();
    let flash = done.iter().find(|(n, _)| *n == "flash").unwrap().1;
    let bulk_before = done
        .iter()
        .filter(|(n, first)| *n == "bulk" && *first < flash)
        .count();
    assert!(
        bulk_before <= 6,
        "the urgent record was written after {bulk_before} groups of routine ones"
    );
    // Every record is in the log once, in the order of the indices it was given.
    assert_eq!(log.size(), 40 * 100 + 1);
    assert_eq!(log.event(flash).unwrap().actor_id, event(999_999).actor_id);
    log.close().unwrap();
    drop(store);
    assert_eq!(verify_dir(&path, &keys(), None).unwrap().entries, 4001);
}
