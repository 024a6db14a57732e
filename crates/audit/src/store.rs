//! Storage behind a small trait, so the engine can be replaced; sled is the one in use.
//!
//! Keys (one keyspace, so one atomic batch covers an append group):
//!
//! | key | value |
//! |---|---|
//! | `e` ‖ index (u64 BE) | entry record: the tree hashes this entry completed, then its bytes |
//! | `c` ‖ size (u64 BE) | checkpoint note (log signature, then cosignatures) |
//! | `m` ‖ name | metadata: `size`, `origin` |
//!
//! Leaf `j` completes the perfect subtrees whose last leaf it is: its own leaf hash (level 0)
//! and one more per trailing one bit of `j`. Storing them in the entry's own record means an
//! append writes one key, yet any stored subtree hash is still one read away: the subtree at
//! (level, index) is completed by leaf `((index + 1) << level) - 1`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened.
    #[error(
        "cannot open the audit store at {path}: {source}; check the path and that no other process holds it"
    )]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The cause.
        source: sled::Error,
    },
    /// A read or write failed.
    #[error("audit store I/O failed: {0}")]
    Io(String),
    /// The store's records are sealed under another key than the one given: the wrong key
    /// file, or another node's store.
    #[error("{0}")]
    Sealed(String),
    /// The store cannot make writes durable right now (a full or failing disk): nothing was
    /// accepted, and nothing will be until a sync succeeds again, which is retried by itself.
    #[error(
        "the store cannot make writes durable ({0}); nothing was accepted. Free disk space or \
         fix the disk: the node retries every second and resumes by itself"
    )]
    Unavailable(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One change in an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Sets a key.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a key (absent keys are fine).
    Delete(Vec<u8>),
}

impl From<KeyValue> for Write {
    fn from((key, value): KeyValue) -> Self {
        Write::Put(key, value)
    }
}

/// Keys and values in key order, as [`Store::scan`] yields them.
pub type Scan<'a> = Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + 'a>;

/// What the log needs from storage.
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies all writes atomically: after a crash, all or none are present.
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Makes every applied write durable (survives power loss) before returning.
    fn sync(&self) -> Result<(), StoreError>;
    /// All keys with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Scan<'_>;
}

/// A shared store is a store: one sled database can back several users (e.g. a witness and
/// the state beside it).
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        (**self).apply(writes)
    }
    fn sync(&self) -> Result<(), StoreError> {
        (**self).sync()
    }
    fn scan(&self, prefix: &[u8]) -> Scan<'_> {
        (**self).scan(prefix)
    }
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
    /// Opens (or creates) the store in `dir`.
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
                        source,
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
}

/// Key of entry `index`.
pub(crate) fn entry_key(index: u64) -> Vec<u8> {
    [&b"e"[..], &index.to_be_bytes()].concat()
}

/// An entry record: `count (u8) ‖ count × 32-byte hashes (level 0 first) ‖ entry bytes`.
pub(crate) fn encode_record(hashes: &[crate::merkle::Hash], entry: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + hashes.len() * 32 + entry.len());
    // A leaf completes at most 64 levels, so the count fits a byte.
    out.push(hashes.len() as u8);
    for h in hashes {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(entry);
    out
}

/// Splits an entry record into its hashes and entry bytes.
pub(crate) fn decode_record(record: &[u8]) -> Option<(Vec<crate::merkle::Hash>, &[u8])> {
    let (&count, rest) = record.split_first()?;
    let (hashes, entry) = rest.split_at_checked(usize::from(count) * 32)?;
    let hashes = hashes
        .chunks_exact(32)
        .map(|h| h.try_into().ok())
        .collect::<Option<Vec<_>>>()?;
    (!hashes.is_empty()).then_some((hashes, entry))
}

/// The leaf whose record holds the perfect subtree at (`level`, `index`).
pub(crate) fn completing_leaf(level: u8, index: u64) -> Option<u64> {
    index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(u32::from(level))?)?
        .checked_sub(1)
}

/// Key of the checkpoint of `size`.
pub(crate) fn checkpoint_key(size: u64) -> Vec<u8> {
    [&b"c"[..], &size.to_be_bytes()].concat()
}

/// Key of a metadata value.
pub(crate) fn meta_key(name: &str) -> Vec<u8> {
    [&b"m"[..], name.as_bytes()].concat()
}

/// Reads a big-endian u64 key suffix.
pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// One caller's writes and where to send the outcome.
type CommitRequest = (Vec<Write>, std::sync::mpsc::Sender<Result<(), StoreError>>);

/// How often a degraded store tries to sync again on its own.
const RECOVERY_EVERY: Duration = Duration::from_secs(1);

/// Group commit over any [`Store`]: each caller's writes are applied atomically and made
/// durable before `commit` returns, and every caller waiting when a sync starts shares it.
///
/// A failed apply or sync leaves the store *degraded*: writes of the failed group may be
/// visible to readers without being durable. Until a sync succeeds again, every commit fails
/// at once with [`StoreError::Unavailable`] and applies nothing; the committer retries the sync
/// every second by itself, so the store recovers when the disk does. An empty commit is
/// therefore a durability barrier: it returns `Ok` only once everything visible before it is
/// durable.
pub struct GroupCommit {
    requests: Option<std::sync::mpsc::Sender<CommitRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
    degraded: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl GroupCommit {
    /// Starts the committer thread for `store`.
    pub fn start<S: Store + ?Sized>(store: std::sync::Arc<S>) -> Result<Self, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel::<CommitRequest>();
        let degraded = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let state = std::sync::Arc::clone(&degraded);
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || commit_loop(&*store, &rx, &state))
            .map_err(|e| StoreError::Io(format!("cannot start the group-commit thread: {e}")))?;
        Ok(GroupCommit {
            requests: Some(tx),
            thread: Some(thread),
            degraded,
        })
    }

    /// Applies `writes` atomically and returns once they are durable.
    pub fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let closed = || StoreError::Io("the store is closed".into());
        self.requests
            .as_ref()
            .ok_or_else(closed)?
            .send((writes, tx))
            .map_err(|_| closed())?;
        rx.recv().map_err(|_| closed())?
    }

    /// Why the store is degraded (it cannot make writes durable), or `None` when it is well.
    pub fn degraded(&self) -> Option<String> {
        self.degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn commit_loop<S: Store + ?Sized>(
    store: &S,
    rx: &std::sync::mpsc::Receiver<CommitRequest>,
    state: &std::sync::Mutex<Option<String>>,
) {
    let set = |value: Option<String>| {
        *state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    };
    let mut degraded: Option<String> = None;
    loop {
        let first = if degraded.is_some() {
            match rx.recv_timeout(RECOVERY_EVERY) {
                Ok(request) => Some(request),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(request) => Some(request),
                Err(_) => return,
            }
        };
        if degraded.is_some() {
            // Whatever a failed group left visible becomes durable with this sync, or not.
            match store.sync() {
                Ok(()) => {
                    degraded = None;
                    set(None);
                }
                Err(e) => {
                    degraded = Some(e.to_string());
                    set(degraded.clone());
                }
            }
        }
        let Some(first) = first else { continue };
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        if let Some(why) = &degraded {
            for (_, reply) in group {
                let _ = reply.send(Err(StoreError::Unavailable(why.clone())));
            }
            continue;
        }
        let writes: Vec<Write> = group
            .iter_mut()
            .flat_map(|(w, _)| std::mem::take(w))
            .collect();
        let result = if writes.is_empty() {
            store.sync()
        } else {
            store.apply(writes).and_then(|()| store.sync())
        };
        let result = result.map_err(|e| {
            let why = e.to_string();
            degraded = Some(why.clone());
            set(Some(why.clone()));
            StoreError::Unavailable(why)
        });
        for (_, reply) in group {
            let _ = reply.send(match &result {
                Ok(()) => Ok(()),
                Err(StoreError::Unavailable(why)) => Err(StoreError::Unavailable(why.clone())),
                Err(e) => Err(StoreError::Io(e.to_string())),
            });
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
