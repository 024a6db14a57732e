//! The engine in use: sled, pinned at 0.34.7 (its on-disk format is not stable across
//! releases), with the fsync that sled's own flush leaves out.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use crate::{Scan, Store, StoreError, Write};

/// Whether `dir` holds a sled store.
pub(crate) fn is_sled(dir: &Path) -> bool {
    dir.join("conf").is_file() && dir.join("db").is_file()
}

/// sled 0.34, made durable: `flush` uses `sync_file_range`, which does not reach stable storage
/// (sled issue #1452), so [`Store::sync`] follows it with an `fsync` of the database file.
pub struct SledStore {
    db: sled::Db,
    db_file: File,
}

/// Past this pause, a held lock is taken to belong to another live process (5 ms doubling up
/// to it: about 0.6 s of waiting in all).
const LOCK_WAIT_LIMIT: Duration = Duration::from_millis(640);

/// sled (pinned at 0.34.7) reports a held lock only in its message, under `ErrorKind::Other`.
fn lock_is_held(e: &std::io::Error) -> bool {
    e.to_string().starts_with("could not acquire lock")
}

impl SledStore {
    /// Opens (or creates) a sled store in `dir`. New stores are made with
    /// [`DiskStore::open`](crate::DiskStore::open), which keeps this engine only for stores
    /// made before.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // HighThroughput trades disk space for write speed: it doubles durable appends here
        // (docs/benchmarks.md), and an append-only log rarely rewrites anything to compact.
        let config = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput);
        // sled 0.34 releases its file lock from a background thread after the last handle
        // drops (sled issues #1234, #1289), so reopening right after a close can briefly find
        // it held. Wait for that, boundedly; a store really held by a running process still
        // fails, after about 0.6 s.
        let mut pause = Duration::from_millis(5);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if lock_is_held(&e) && pause < LOCK_WAIT_LIMIT => {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: dir.to_owned(),
                        source: Box::new(source),
                    });
                }
            }
        };
        let db_file = File::open(dir.join("db"))?;
        // The directory entry of a new database must be durable too.
        File::open(dir)?.sync_all()?;
        Ok(SledStore { db, db_file })
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for write in writes {
            match write {
                Write::Put(k, v) => batch.insert(k, v),
                Write::Delete(k) => batch.remove(k),
            }
        }
        Ok(self.db.apply_batch(batch)?)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.db_file.sync_all()?;
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Scan<'_> {
        Box::new(self.db.scan_prefix(prefix).map(|r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        }))
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Scan<'_> {
        let prefix = prefix.to_vec();
        let from = start.max(prefix.as_slice()).to_vec();
        Box::new(
            self.db
                .range(from..)
                .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
                .map(|r| {
                    r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(StoreError::from)
                }),
        )
    }
}
