//! The engine new stores are made with: fjall, a log-structured merge tree. A write batch is
//! appended to its journal and inserted in memory; a sync is one `fsync` of the journal. It
//! does about a tenth of sled's work per write (docs/benchmarks.md), which is most of what a
//! node spends on storage.
//!
//! After a failed sync fjall refuses every further write until the store is opened again:
//! what reached the disk is then unknown, and retrying the sync could report success for
//! writes the disk dropped. The node says so and keeps refusing custody (its group commit
//! stays degraded); a restart recovers from the journal.

use std::path::Path;
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::{Scan, Store, StoreError, Write};

/// The one keyspace each store keeps its keys in.
const KEYSPACE: &str = "kv";
/// Block cache per store: queues and logs are read soon after they are written, mostly from
/// the memtable, so a small cache serves them.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Memtable per store before it is flushed to disk: bounds memory, not durability (the journal
/// holds every synced write).
const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;
/// Journals kept before memtables are flushed to make room: bounds the disk they take.
const JOURNAL_BYTES: u64 = 64 * 1024 * 1024;
/// Past this pause, a held lock is taken to belong to another live process.
const LOCK_WAIT_LIMIT: Duration = Duration::from_millis(640);

/// Whether `dir` holds a fjall store.
pub(crate) fn is_fjall(dir: &Path) -> bool {
    dir.join("version").is_file() && dir.join("keyspaces").is_dir()
}

/// A store on fjall.
pub struct FjallStore {
    db: Database,
    keys: Keyspace,
}

impl FjallStore {
    /// Opens (or creates) a fjall store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let open_error = |source: fjall::Error| StoreError::Open {
            path: dir.to_owned(),
            source: Box::new(source),
        };
        // A store closed a moment ago may still hold its lock while its workers wind down:
        // wait for that, boundedly; one held by a running process still fails.
        let mut pause = Duration::from_millis(5);
        let db = loop {
            let opened = Database::builder(dir)
                .cache_size(CACHE_BYTES)
                .worker_threads(1)
                .max_journaling_size(JOURNAL_BYTES)
                .open();
            match opened {
                Ok(db) => break db,
                Err(fjall::Error::Locked) if pause < LOCK_WAIT_LIMIT => {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => return Err(open_error(e)),
            }
        };
        let keys = db
            .keyspace(KEYSPACE, || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
            })
            .map_err(open_error)?;
        // The directory entries of a new store must be durable too.
        db.persist(PersistMode::SyncAll).map_err(open_error)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(FjallStore { db, keys })
    }
}

impl Store for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.keys.get(key)?.map(|v| v.to_vec()))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for write in writes {
            match write {
                Write::Put(k, v) => batch.insert(&self.keys, k, v),
                Write::Delete(k) => batch.remove(&self.keys, k),
            }
        }
        Ok(batch.commit()?)
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    fn scan(&self, prefix: &[u8]) -> Scan<'_> {
        Box::new(self.keys.prefix(prefix).map(pair))
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Scan<'_> {
        let prefix = prefix.to_vec();
        let from = start.max(prefix.as_slice()).to_vec();
        Box::new(
            self.keys.range(from..).map(pair).take_while(move |item| {
                item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix))
            }),
        )
    }
}

fn pair(guard: fjall::Guard) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let (k, v) = guard.into_inner()?;
    Ok((k.to_vec(), v.to_vec()))
}
