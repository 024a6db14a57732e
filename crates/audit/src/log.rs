//! The append-only audit log of one node: durable group-committed appends, signed checkpoints,
//! proofs, and refusal to continue after a rollback.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use prost::Message;
use valise_crypto::identity::IdentityKeyPair;
use valise_proto::v1::AuditEvent;

use crate::merkle::{self, CompactRange, Hash, NodeReader};
use crate::note::{Checkpoint, Note, NoteError, NoteSigner, NoteVerifier, SignedCheckpoint};
use crate::policy::CheckpointPolicy;
use crate::records;
use valise_store::{DiskStore, Lane, Store, StoreError, Write};

/// Most appends committed by one flush.
const MAX_GROUP: usize = 4096;

/// Why the log refused or failed. Every variant says what an operator should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Storage failed; the append was not made durable and was not acknowledged.
    #[error(
        "audit storage failed: {0}; check the disk (free space): the node retries each append \
         and recovers by itself once it can write"
    )]
    Store(String),
    /// A note or key is malformed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The store belongs to another log.
    #[error(
        "this audit store belongs to log {stored:?}, not {configured:?}; check the node's data directory"
    )]
    OriginMismatch {
        /// The origin recorded in the store.
        stored: String,
        /// The origin configured.
        configured: String,
    },
    /// The store holds fewer entries than a checkpoint this node already signed.
    #[error(
        "the audit store holds {store_size} entries, but this node already signed a checkpoint of \
         size {signed_size}: the store was rolled back or replaced with an older copy. Do not run \
         the node on it; restore the latest store and investigate"
    )]
    RolledBack {
        /// The size of the signed checkpoint.
        signed_size: u64,
        /// The number of entries in the store.
        store_size: u64,
    },
    /// The store's tree differs from one this node signed: history was rewritten.
    #[error(
        "the audit store's first {size} entries differ from the checkpoint this node signed at \
         that size: history was rewritten. The node refuses to sign; investigate before continuing"
    )]
    InconsistentWithSigned {
        /// The signed size whose root no longer matches.
        size: u64,
    },
    /// The store is damaged: a value the log wrote is missing or malformed.
    #[error("the audit store is damaged: {0}; run `audit verify` to locate the damage")]
    Corrupt(String),
    /// A requested entry or range is outside the log.
    #[error("{what} is outside the log of {size} entries")]
    OutOfRange {
        /// What was asked for.
        what: String,
        /// The log's size.
        size: u64,
    },
    /// The log is closed.
    #[error("the audit log is closed")]
    Closed,
    /// The anchor file is gone, though the store holds checkpoints this node signed: without
    /// it, a store restored from an older copy could no longer be told from the real one.
    #[error(
        "the anchor {path} is missing, but the audit store holds a checkpoint of size {size} \
         signed by this node. Restore the anchor from backup; if it is lost for good, \
         recreate it deliberately with `valise-relay recover --recreate-anchor` (audited)"
    )]
    AnchorMissing {
        /// Where the anchor should be.
        path: PathBuf,
        /// The size of the latest checkpoint in the store.
        size: u64,
    },
}

impl From<StoreError> for LogError {
    fn from(e: StoreError) -> Self {
        LogError::Store(e.to_string())
    }
}

/// Where and how a log runs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The sled directory.
    pub dir: PathBuf,
    /// The log's origin, e.g. `valise/mfa.example/paris/audit`; also its key name.
    pub origin: String,
    /// When to sign checkpoints.
    pub policy: CheckpointPolicy,
    /// A file outside `dir` that holds the latest signed checkpoint. If the directory is
    /// replaced with an older copy, the anchor still remembers, and the log refuses to open.
    pub anchor: Option<PathBuf>,
    /// Write a new anchor from the store when the anchor file is missing, instead of refusing
    /// to open: the operator's deliberate choice after losing it.
    pub recreate_anchor: bool,
}

impl LogConfig {
    /// A configuration with the default checkpoint policy and no anchor.
    pub fn new(dir: impl Into<PathBuf>, origin: impl Into<String>) -> Self {
        LogConfig {
            dir: dir.into(),
            origin: origin.into(),
            policy: CheckpointPolicy::default(),
            anchor: None,
            recreate_anchor: false,
        }
    }
}

/// The origin of a node's audit log: `valise/<ministry>/<node>/audit`.
pub fn origin(ministry: &str, node: &str) -> String {
    format!("valise/{ministry}/{node}/audit")
}

/// The name a node cosigns its neighbours' checkpoints under: `valise/<ministry>/<node>/witness`.
pub fn witness_name(ministry: &str, node: &str) -> String {
    format!("valise/{ministry}/{node}/witness")
}

/// What the committer calls once appended events are durable: with the index of the first.
pub type Appended = Box<dyn FnOnce(Result<u64, LogError>) + Send>;

enum Request {
    Append(Vec<AuditEvent>, Lane, Appended),
    Checkpoint(mpsc::Sender<Result<SignedCheckpoint, LogError>>),
}

/// Most events one bulk group appends: bounds how long an urgent append that arrives during
/// a group waits for it.
const MAX_BULK_EVENTS: usize = 128;

struct Shared {
    store: Box<dyn Store>,
    origin: String,
    verifier: NoteVerifier,
    size: AtomicU64,
    latest: Mutex<Option<SignedCheckpoint>>,
    last_error: Mutex<Option<LogError>>,
    /// Adding a cosignature reads, extends and rewrites a stored note: one at a time, so that
    /// witnesses cosigning the same checkpoint together do not overwrite each other.
    cosigning: Mutex<()>,
}

/// A node's audit log. Appends block until durable; a background committer groups them.
pub struct AuditLog {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<Request>>,
    committer: Option<JoinHandle<()>>,
}

impl AuditLog {
    /// Opens or creates the log in sled at `config.dir`, checking it against its latest signed
    /// checkpoint and anchor.
    pub fn open(config: LogConfig, key: IdentityKeyPair) -> Result<Self, LogError> {
        let signer = NoteSigner::new(&config.origin, key)?;
        let store = DiskStore::open(&config.dir)?;
        Self::start(config, signer, Box::new(store))
    }

    /// Opens or creates the log on a store already opened, another engine than sled or one
    /// that observes its calls; `config.dir` is not used. The store must keep the promises of
    /// [`Store`]: atomic batches, and durability once `sync` returns.
    pub fn open_with_store(
        store: impl Store,
        config: LogConfig,
        key: IdentityKeyPair,
    ) -> Result<Self, LogError> {
        let signer = NoteSigner::new(&config.origin, key)?;
        Self::start(config, signer, Box::new(store))
    }

    fn start(
        config: LogConfig,
        signer: NoteSigner,
        store: Box<dyn Store>,
    ) -> Result<Self, LogError> {
        let verifier = signer.verifier();
        match store.get(&records::meta_key("origin"))? {
            Some(stored) if stored != config.origin.as_bytes() => {
                return Err(LogError::OriginMismatch {
                    stored: String::from_utf8_lossy(&stored).into_owned(),
                    configured: config.origin,
                });
            }
            Some(_) => {}
            None => {
                store.apply(vec![Write::Put(
                    records::meta_key("origin"),
                    config.origin.as_bytes().to_vec(),
                )])?;
                store.sync()?;
            }
        }
        let size = match store.get(&records::meta_key("size"))? {
            Some(v) => records::be_u64(&v)
                .ok_or_else(|| LogError::Corrupt("the recorded size is malformed".into()))?,
            None => 0,
        };
        let shared = Shared {
            store,
            origin: config.origin.clone(),
            verifier,
            size: AtomicU64::new(size),
            latest: Mutex::new(None),
            last_error: Mutex::new(None),
            cosigning: Mutex::new(()),
        };
        let range = shared.compact_range(size)?;
        // Every entry against its recorded hashes, and every recorded hash against the tree
        // rebuilt from the entries: an entry edited in place is caught here, before anything
        // is appended after it.
        shared.check_records(&range)?;

        // The tree must extend both the latest checkpoint in the store and the anchor, each
        // checked on its own: a store whose own later checkpoint is larger than the anchor's
        // may still have rewritten the history the anchor signed.
        let stored = shared.latest_stored_checkpoint()?;
        let anchor = config
            .anchor
            .as_deref()
            .map(|p| read_anchor(p, &shared.verifier))
            .transpose()?
            .flatten();
        if let (Some(path), None, Some(stored)) = (&config.anchor, &anchor, &stored) {
            if !config.recreate_anchor {
                return Err(LogError::AnchorMissing {
                    path: path.clone(),
                    size: stored.checkpoint.size,
                });
            }
            write_anchor(path, &stored.note.to_text())?;
        }
        for signed in [&anchor, &stored].into_iter().flatten() {
            shared.check_extends(&signed.checkpoint)?;
        }
        let last_signed = match (stored, anchor) {
            (Some(s), Some(a)) if a.checkpoint.size > s.checkpoint.size => Some(a),
            (Some(s), _) => Some(s),
            (None, a) => a,
        };
        *shared.latest.lock().unwrap_or_else(PoisonError::into_inner) = last_signed.clone();

        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::channel();
        let committer = Committer {
            shared: Arc::clone(&shared),
            signer,
            range,
            last_signed: last_signed.map(|s| s.checkpoint),
            unsigned_since: (size > 0).then(Instant::now),
            policy: config.policy,
            anchor: config.anchor,
        };
        let handle = std::thread::Builder::new()
            .name("audit-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| LogError::Store(format!("cannot start the committer thread: {e}")))?;
        Ok(AuditLog {
            shared,
            requests: Some(tx),
            committer: Some(handle),
        })
    }

    /// Appends an event and returns its index once it is durable. The log sets `event.index`.
    pub fn append(&self, event: AuditEvent) -> Result<u64, LogError> {
        let (tx, rx) = mpsc::channel();
        self.append_then(
            vec![event],
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// Appends `events`, in order at consecutive indices, and calls `done` with the first
    /// index once they are all durable (or with why not: then none is). `done` runs on the
    /// committer's thread, so it must be quick; an async caller sends on a one-shot channel.
    pub fn append_then(&self, events: Vec<AuditEvent>, done: Appended) {
        self.append_in(Lane::Bulk, events, done);
    }

    /// As [`Self::append_then`], in `lane`: urgent appends (a FLASH cable's custody record)
    /// are committed in a group of their own, ahead of the bulk appends waiting.
    pub fn append_in(&self, lane: Lane, events: Vec<AuditEvent>, done: Appended) {
        let Some(requests) = &self.requests else {
            return done(Err(LogError::Closed));
        };
        if let Err(mpsc::SendError(Request::Append(_, _, done))) =
            requests.send(Request::Append(events, lane, done))
        {
            done(Err(LogError::Closed));
        }
    }

    /// Signs a checkpoint of everything appended so far, now, whatever the policy.
    pub fn checkpoint_now(&self) -> Result<SignedCheckpoint, LogError> {
        let (tx, rx) = mpsc::channel();
        self.send(Request::Checkpoint(tx))?;
        rx.recv().map_err(|_| LogError::Closed)?
    }

    fn send(&self, request: Request) -> Result<(), LogError> {
        self.requests
            .as_ref()
            .ok_or(LogError::Closed)?
            .send(request)
            .map_err(|_| LogError::Closed)
    }

    /// The number of durable entries.
    pub fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// The key that verifies this log's checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.shared.verifier
    }

    /// The latest signed checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last error the committer met outside an append (e.g. a failed scheduled checkpoint),
    /// for health reporting.
    pub fn last_error(&self) -> Option<LogError> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Entry bytes at `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        self.shared.entry(index, self.size())
    }

    /// The decoded event at `index`.
    pub fn event(&self, index: u64) -> Result<AuditEvent, LogError> {
        AuditEvent::decode(self.entry(index)?.as_slice())
            .map_err(|_| LogError::Corrupt(format!("entry {index} does not decode")))
    }

    /// The root hash at `size`.
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        self.shared.within(size, "a tree size")?;
        merkle::root(&*self.shared, size)
    }

    /// The inclusion proof of entry `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.shared.within(size, "a tree size")?;
        if index >= size {
            return Err(LogError::OutOfRange {
                what: format!("entry {index}"),
                size,
            });
        }
        merkle::inclusion_proof(&*self.shared, index, size)
    }

    /// The consistency proof from `old` to `new` entries.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.shared.within(new, "a tree size")?;
        if old > new {
            return Err(LogError::OutOfRange {
                what: format!("a consistency proof from {old} to {new}"),
                size: new,
            });
        }
        merkle::consistency_proof(&*self.shared, old, new)
    }

    /// Every stored checkpoint note, by size.
    pub fn checkpoint_notes(&self) -> Result<Vec<(u64, String)>, LogError> {
        self.shared.checkpoint_notes()
    }

    /// Attaches a witness's cosignature line to the stored checkpoint of `size`, after
    /// checking it with `witness`; returns the note with every signature it now carries.
    pub fn add_cosignature(
        &self,
        size: u64,
        line: &str,
        witness: &NoteVerifier,
    ) -> Result<String, LogError> {
        let _one = self
            .shared
            .cosigning
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = records::checkpoint_key(size);
        let stored = self
            .shared
            .store
            .get(&key)?
            .ok_or_else(|| LogError::OutOfRange {
                what: format!("a checkpoint of size {size}"),
                size: self.size(),
            })?;
        let stored = String::from_utf8(stored)
            .map_err(|_| LogError::Corrupt(format!("checkpoint {size} is not text")))?;
        let mut note = Note::parse(&stored)?;
        let line_note = Note::parse(&format!("{}\n{line}", note.text))?;
        witness.verify(&line_note)?;
        note.signatures
            .retain(|s| !line_note.signatures.contains(s));
        note.signatures.extend(line_note.signatures);
        let text = note.to_text();
        self.shared
            .store
            .apply(vec![Write::Put(key, text.clone().into_bytes())])?;
        self.shared.store.sync()?;
        Ok(text)
    }

    /// Stops the committer after it signs a final checkpoint, and closes the store.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown();
        match self.last_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) {
        self.requests.take();
        if let Some(handle) = self.committer.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn within(&self, size: u64, what: &str) -> Result<(), LogError> {
        let have = self.size.load(Ordering::Acquire);
        if size > have {
            return Err(LogError::OutOfRange {
                what: format!("{what} of {size}"),
                size: have,
            });
        }
        Ok(())
    }

    fn entry(&self, index: u64, size: u64) -> Result<Vec<u8>, LogError> {
        if index >= size {
            return Err(LogError::OutOfRange {
                what: format!("entry {index}"),
                size,
            });
        }
        let record = self.record(index)?;
        let (_, entry) = records::decode_record(&record)
            .ok_or_else(|| LogError::Corrupt(format!("entry {index} is malformed")))?;
        Ok(entry.to_vec())
    }

    fn record(&self, index: u64) -> Result<Vec<u8>, LogError> {
        self.store
            .get(&records::entry_key(index))?
            .ok_or_else(|| LogError::Corrupt(format!("entry {index} is missing")))
    }

    fn compact_range(&self, size: u64) -> Result<CompactRange, LogError> {
        let hashes = CompactRange::perfect_subtrees(size)
            .map(|(level, index)| self.perfect(level, index))
            .collect::<Result<Vec<_>, _>>()?;
        CompactRange::from_parts(size, hashes).ok_or_else(|| LogError::Corrupt("tree shape".into()))
    }

    /// Rebuilds the tree from the stored entries and checks each record: its entry hashes to
    /// its leaf hash, and its other hashes are the subtrees the rebuilt tree completes there.
    /// The rebuilt tree must end where the stored hashes say (`range`).
    fn check_records(&self, range: &CompactRange) -> Result<(), LogError> {
        let mut rebuilt = CompactRange::new();
        for item in self.store.scan(b"e") {
            let (key, record) = item?;
            let index = records::be_u64(&key[1..])
                .ok_or_else(|| LogError::Corrupt("an entry key is malformed".into()))?;
            if index != rebuilt.size() {
                return Err(LogError::Corrupt(format!(
                    "entry {} is missing from the audit store",
                    rebuilt.size()
                )));
            }
            let edited = || {
                LogError::Corrupt(format!(
                    "entry {index} does not match the hashes recorded for it: the audit store \
                     was edited in place. Do not run the node on it; keep it as evidence and \
                     restore the store from backup"
                ))
            };
            let (hashes, entry) = records::decode_record(&record).ok_or_else(edited)?;
            let completed: Vec<Hash> = rebuilt
                .push(merkle::leaf_hash(entry))
                .into_iter()
                .map(|(_, _, h)| h)
                .collect();
            if completed != hashes {
                return Err(edited());
            }
        }
        if rebuilt.size() != range.size() || rebuilt.root() != range.root() {
            return Err(LogError::Corrupt(format!(
                "the audit store holds {} entries, but records a log of {}: it was altered; \
                 restore it from backup",
                rebuilt.size(),
                range.size()
            )));
        }
        Ok(())
    }

    fn checkpoint_notes(&self) -> Result<Vec<(u64, String)>, LogError> {
        self.store
            .scan(b"c")
            .map(|r| {
                let (k, v) = r?;
                let size = records::be_u64(&k[1..])
                    .ok_or_else(|| LogError::Corrupt("checkpoint key".into()))?;
                let note = String::from_utf8(v)
                    .map_err(|_| LogError::Corrupt(format!("checkpoint {size} is not text")))?;
                Ok((size, note))
            })
            .collect()
    }

    fn latest_stored_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LogError> {
        let Some((size, note)) = self.checkpoint_notes()?.pop() else {
            return Ok(None);
        };
        let signed = SignedCheckpoint::verify(&note, &self.verifier).map_err(|e| {
            LogError::Corrupt(format!(
                "the stored checkpoint of size {size} does not verify under this node's \
                 signing key ({e}): node-signing.key may be another node's, or the store was \
                 altered"
            ))
        })?;
        Ok(Some(signed))
    }

    /// Checks that the current tree extends a checkpoint this log signed.
    fn check_extends(&self, signed: &Checkpoint) -> Result<(), LogError> {
        let size = self.size.load(Ordering::Acquire);
        if signed.size > size {
            return Err(LogError::RolledBack {
                signed_size: signed.size,
                store_size: size,
            });
        }
        if merkle::root(self, signed.size)? != signed.root {
            return Err(LogError::InconsistentWithSigned { size: signed.size });
        }
        Ok(())
    }
}

impl NodeReader for Shared {
    type Error = LogError;

    fn perfect(&self, level: u8, index: u64) -> Result<Hash, LogError> {
        let missing = || LogError::Corrupt(format!("tree node ({level}, {index}) is missing"));
        let leaf = records::completing_leaf(level, index).ok_or_else(missing)?;
        let record = self.record(leaf)?;
        let (hashes, _) = records::decode_record(&record).ok_or_else(missing)?;
        hashes.get(usize::from(level)).copied().ok_or_else(missing)
    }
}

/// The single writer. It owns the in-memory right edge of the tree.
struct Committer {
    shared: Arc<Shared>,
    signer: NoteSigner,
    range: CompactRange,
    last_signed: Option<Checkpoint>,
    unsigned_since: Option<Instant>,
    policy: CheckpointPolicy,
    anchor: Option<PathBuf>,
}

impl Committer {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        // Bulk appends taken from the channel and not yet committed, oldest first.
        let mut waiting: std::collections::VecDeque<(Vec<AuditEvent>, Appended)> =
            Default::default();
        loop {
            let first = if waiting.is_empty() {
                match self.policy.sleep_budget(self.unsigned(), self.waited()) {
                    Some(t) => rx.recv_timeout(t),
                    None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                }
            } else {
                rx.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => mpsc::RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => mpsc::RecvTimeoutError::Disconnected,
                })
            };
            let disconnected = matches!(first, Err(mpsc::RecvTimeoutError::Disconnected));
            let mut urgent = Vec::new();
            let mut checkpoints = Vec::new();
            let more = std::iter::from_fn(|| rx.try_recv().ok()).take(MAX_GROUP);
            for request in first.ok().into_iter().chain(more) {
                match request {
                    Request::Append(events, Lane::Urgent, done) => urgent.push((events, done)),
                    Request::Append(events, Lane::Bulk, done) => waiting.push_back((events, done)),
                    Request::Checkpoint(reply) => checkpoints.push(reply),
                }
            }
            if !urgent.is_empty() {
                self.commit(urgent);
            } else if !waiting.is_empty() {
                let mut group = Vec::new();
                let mut events = 0;
                while let Some(append) = waiting.pop_front() {
                    events += append.0.len();
                    group.push(append);
                    if events >= MAX_BULK_EVENTS {
                        break;
                    }
                }
                self.commit(group);
            }
            if !checkpoints.is_empty() {
                // Of everything appended before the request: what waits is committed first.
                while !waiting.is_empty() {
                    let group: Vec<_> = waiting.drain(..).collect();
                    self.commit(group);
                }
                let result = self.checkpoint();
                for reply in checkpoints {
                    let _ = reply.send(result.clone());
                }
            }
            if disconnected && waiting.is_empty() {
                if self.unsigned() > 0 {
                    let result = self.checkpoint();
                    self.record(result);
                }
                return;
            }
            if self.policy.due(self.unsigned(), self.waited()) {
                let result = self.checkpoint();
                self.record(result);
            }
        }
    }

    fn unsigned(&self) -> u64 {
        self.range.size() - self.last_signed.as_ref().map_or(0, |c| c.size)
    }

    fn waited(&self) -> std::time::Duration {
        self.unsigned_since
            .map_or_else(Default::default, |t| t.elapsed())
    }

    fn record<T>(&self, result: Result<T, LogError>) {
        if let Err(e) = result {
            *self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(e);
        }
    }

    /// A storage failure is over once a write succeeds again; other failures stay reported.
    fn clear_store_error(&self) {
        let mut last = self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if matches!(*last, Some(LogError::Store(_))) {
            *last = None;
        }
    }

    /// Group commit: one atomic batch and one durable sync for every append waiting.
    fn commit(&mut self, appends: Vec<(Vec<AuditEvent>, Appended)>) {
        let before = self.range.clone();
        let mut writes = Vec::with_capacity(appends.len() + 1);
        let mut replies = Vec::with_capacity(appends.len());
        for (events, done) in appends {
            let first = self.range.size();
            for mut event in events {
                let index = self.range.size();
                event.index = index;
                let bytes = event.encode_to_vec();
                let completed: Vec<Hash> = self
                    .range
                    .push(merkle::leaf_hash(&bytes))
                    .into_iter()
                    .map(|(_, _, h)| h)
                    .collect();
                writes.push(Write::Put(
                    records::entry_key(index),
                    records::encode_record(&completed, &bytes),
                ));
            }
            replies.push((first, done));
        }
        writes.push(Write::Put(
            records::meta_key("size"),
            self.range.size().to_be_bytes().to_vec(),
        ));
        let durable = self
            .shared
            .store
            .apply(writes)
            .and_then(|()| self.shared.store.sync());
        match durable {
            Ok(()) => {
                self.clear_store_error();
                self.shared.size.store(self.range.size(), Ordering::Release);
                self.unsigned_since.get_or_insert_with(Instant::now);
                for (first, done) in replies {
                    done(Ok(first));
                }
            }
            Err(e) => {
                // Nothing was acknowledged: forget the group, the next one reuses its indices.
                self.range = before;
                let e = LogError::from(e);
                self.record::<()>(Err(e.clone()));
                for (_, done) in replies {
                    done(Err(e.clone()));
                }
            }
        }
    }

    /// Signs a checkpoint of the current tree, if it extends the last one signed.
    fn checkpoint(&mut self) -> Result<SignedCheckpoint, LogError> {
        let checkpoint = Checkpoint {
            origin: self.shared.origin.clone(),
            size: self.range.size(),
            root: self.range.root(),
        };
        if let Some(last) = &self.last_signed {
            if checkpoint.size < last.size {
                return Err(LogError::RolledBack {
                    signed_size: last.size,
                    store_size: checkpoint.size,
                });
            }
            if merkle::root(&*self.shared, last.size)? != last.root {
                return Err(LogError::InconsistentWithSigned { size: last.size });
            }
            if checkpoint.size == last.size
                && let Some(latest) = self
                    .shared
                    .latest
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            {
                return Ok(latest);
            }
        }
        let note_text = self.signer.sign(&checkpoint.to_text())?;
        self.shared.store.apply(vec![Write::Put(
            records::checkpoint_key(checkpoint.size),
            note_text.clone().into_bytes(),
        )])?;
        self.shared.store.sync()?;
        if let Some(path) = &self.anchor {
            write_anchor(path, &note_text)?;
        }
        let signed = SignedCheckpoint {
            checkpoint: checkpoint.clone(),
            note: Note::parse(&note_text)?,
        };
        *self
            .shared
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(signed.clone());
        self.last_signed = Some(checkpoint);
        self.unsigned_since = None;
        Ok(signed)
    }
}

fn read_anchor(path: &Path, verifier: &NoteVerifier) -> Result<Option<SignedCheckpoint>, LogError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LogError::Store(format!(
                "cannot read the anchor {}: {e}",
                path.display()
            )));
        }
    };
    SignedCheckpoint::verify(&text, verifier)
        .map(Some)
        .map_err(|e| {
            LogError::Corrupt(format!(
                "the anchor {} does not verify under this node's signing key ({e}): \
                 node-signing.key may be another node's, or the anchor was altered",
                path.display()
            ))
        })
}

/// Replaces the anchor atomically: write, fsync, rename, fsync the directory.
fn write_anchor(path: &Path, note: &str) -> Result<(), LogError> {
    let io = |e: std::io::Error| {
        LogError::Store(format!("cannot write the anchor {}: {e}", path.display()))
    };
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(note.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}
