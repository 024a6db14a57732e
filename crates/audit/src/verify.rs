//! Offline verification of a whole log, from its directory or from an export.
//!
//! [`Verifier`] is the core: fed entries and checkpoints in order, it recomputes every root
//! with O(log n) memory and checks each checkpoint's signature, root and cosignatures. It does
//! no I/O. [`verify_dir`] and [`crate::export::verify_export`] feed it.

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;
use valise_proto::v1::AuditEvent;

use crate::merkle::{self, CompactRange, Hash};
use crate::note::{Checkpoint, NoteVerifier, SignedCheckpoint};
use crate::records;
use valise_store::{DiskStore, Store};

/// The keys an auditor trusts.
#[derive(Debug, Clone)]
pub struct VerifyKeys {
    /// The node's log key (its checkpoints' signer).
    pub log: NoteVerifier,
    /// Witnesses whose cosignatures are checked where present.
    pub witnesses: Vec<NoteVerifier>,
}

/// The first inconsistency found, with the entry index where it lies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// An entry is missing.
    #[error("entry {index} is missing (deleted, or the log was truncated)")]
    MissingEntry {
        /// The first missing index.
        index: u64,
    },
    /// An entry lies past the number of entries recorded: the size the log stored with its
    /// last append, or the size an export's header declares.
    #[error(
        "entry {index} lies past the {recorded} entries recorded: it was added afterwards, \
         behind the log's back"
    )]
    UnrecordedEntry {
        /// The first entry past the recorded size.
        index: u64,
        /// The recorded number of entries.
        recorded: u64,
    },
    /// An entry records another position than the one it is stored at.
    #[error("entry {index} records index {recorded}: entries were moved, swapped or deleted")]
    MisplacedEntry {
        /// Where it is stored.
        index: u64,
        /// Where it says it belongs.
        recorded: u64,
    },
    /// An entry is not an audit event.
    #[error("entry {index} is not a valid audit event: its bytes were changed")]
    UndecodableEntry {
        /// The entry's index.
        index: u64,
    },
    /// An entry's bytes no longer match the leaf hash stored when it was appended.
    #[error(
        "entry {index} was changed: its bytes no longer match the leaf hash recorded at append"
    )]
    ChangedEntry {
        /// The entry's index.
        index: u64,
    },
    /// The tree hashes stored with an entry are wrong, so proofs served from this store would
    /// not verify.
    #[error("the tree hashes stored with entry {index} are wrong: the store was altered")]
    DamagedHashes {
        /// The entry's index.
        index: u64,
    },
    /// A signed checkpoint's root differs from the root of the entries.
    #[error(
        "checkpoint {size}: the entries' root differs from the signed root, so an entry in \
         [{from}, {size}) was changed"
    )]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
        /// The previous verified checkpoint's size: the change lies at or after it.
        from: u64,
    },
    /// A signed checkpoint covers entries the log no longer holds.
    #[error(
        "checkpoint {size} was signed over entries from index {first_missing} that are gone: the log was truncated"
    )]
    Truncated {
        /// The checkpoint's size.
        size: u64,
        /// The first missing entry.
        first_missing: u64,
    },
    /// A stored checkpoint is malformed or its log signature does not verify.
    #[error("checkpoint {size} is not validly signed by the log: {reason}")]
    BadCheckpoint {
        /// The checkpoint's size (as stored).
        size: u64,
        /// What is wrong.
        reason: String,
    },
    /// A cosignature by a trusted witness does not verify.
    #[error("checkpoint {size}: the cosignature of witness {witness} does not verify")]
    BadCosignature {
        /// The checkpoint's size.
        size: u64,
        /// The witness's name.
        witness: String,
    },
    /// The log is smaller than a checkpoint the auditor trusts: it was rolled back.
    #[error(
        "the log holds {log_size} entries but a trusted checkpoint covers {trusted_size}: it was \
         rolled back or replaced with an older copy; entries from index {log_size} are missing"
    )]
    RolledBack {
        /// The trusted checkpoint's size.
        trusted_size: u64,
        /// The log's size.
        log_size: u64,
    },
    /// The log's root at a trusted checkpoint's size differs from it: history was rewritten.
    #[error(
        "the log's first {size} entries differ from the trusted checkpoint of that size: history was rewritten"
    )]
    Forked {
        /// The trusted checkpoint's size.
        size: u64,
    },
    /// The input is not a Valise audit store or export.
    #[error("{0}")]
    Unreadable(String),
}

/// What a successful verification checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries recomputed.
    pub entries: u64,
    /// The root of all entries.
    pub root: Hash,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// Cosignatures verified, per witness name.
    pub cosignatures: BTreeMap<String, u64>,
    /// The largest checkpoint checked.
    pub latest: Option<Checkpoint>,
}

/// Streaming verification state. Feed entries in index order, and each checkpoint right after
/// the entry that completes its size.
pub struct Verifier<'k> {
    keys: &'k VerifyKeys,
    trusted: Option<Checkpoint>,
    range: CompactRange,
    last_checkpoint: u64,
    report: Report,
}

impl<'k> Verifier<'k> {
    /// Starts verification. `trusted` is a checkpoint the auditor holds from elsewhere (a
    /// witness, an earlier audit): the log must extend it.
    pub fn new(keys: &'k VerifyKeys, trusted: Option<Checkpoint>) -> Self {
        let report = Report {
            entries: 0,
            root: merkle::empty_root(),
            checkpoints: 0,
            cosignatures: keys
                .witnesses
                .iter()
                .map(|w| (w.name().to_owned(), 0))
                .collect(),
            latest: None,
        };
        Verifier {
            keys,
            trusted,
            range: CompactRange::new(),
            last_checkpoint: 0,
            report,
        }
    }

    /// The number of entries fed so far.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// Feeds the next entry; returns the tree hashes it completes, its leaf hash first.
    pub fn entry(&mut self, bytes: &[u8]) -> Result<Vec<Hash>, Inconsistency> {
        let index = self.range.size();
        let event =
            AuditEvent::decode(bytes).map_err(|_| Inconsistency::UndecodableEntry { index })?;
        if event.index != index {
            return Err(Inconsistency::MisplacedEntry {
                index,
                recorded: event.index,
            });
        }
        let completed = self
            .range
            .push(merkle::leaf_hash(bytes))
            .into_iter()
            .map(|(_, _, h)| h)
            .collect();
        if let Some(t) = &self.trusted
            && t.size == self.range.size()
            && t.root != self.range.root()
        {
            return Err(Inconsistency::Forked { size: t.size });
        }
        Ok(completed)
    }

    /// Feeds a checkpoint note whose size must be the number of entries fed so far.
    pub fn checkpoint(&mut self, size: u64, note: &str) -> Result<(), Inconsistency> {
        let bad = |reason: String| Inconsistency::BadCheckpoint { size, reason };
        let signed =
            SignedCheckpoint::verify(note, &self.keys.log).map_err(|e| bad(e.to_string()))?;
        let checkpoint = signed.checkpoint;
        if checkpoint.size != size || checkpoint.origin != self.keys.log.name() {
            return Err(bad(format!(
                "it is stored as size {size} of {} but reads {checkpoint:?}",
                self.keys.log.name()
            )));
        }
        if size > self.range.size() {
            return Err(Inconsistency::Truncated {
                size,
                first_missing: self.range.size(),
            });
        }
        if checkpoint.root != self.range.root() {
            return Err(Inconsistency::RootMismatch {
                size,
                from: self.last_checkpoint,
            });
        }
        for witness in &self.keys.witnesses {
            let present = signed
                .note
                .signatures
                .iter()
                .any(|s| s.name == witness.name());
            if present {
                witness
                    .verify(&signed.note)
                    .map_err(|_| Inconsistency::BadCosignature {
                        size,
                        witness: witness.name().to_owned(),
                    })?;
                *self
                    .report
                    .cosignatures
                    .entry(witness.name().to_owned())
                    .or_default() += 1;
            }
        }
        self.last_checkpoint = size;
        self.report.checkpoints += 1;
        self.report.latest = Some(checkpoint);
        Ok(())
    }

    /// Ends verification: the log must not be behind the trusted checkpoint.
    pub fn finish(mut self) -> Result<Report, Inconsistency> {
        if let Some(t) = &self.trusted
            && t.size > self.range.size()
        {
            return Err(Inconsistency::RolledBack {
                trusted_size: t.size,
                log_size: self.range.size(),
            });
        }
        self.report.entries = self.range.size();
        self.report.root = self.range.root();
        Ok(self.report)
    }
}

/// Verifies a log directory (the node must be stopped: sled locks its store).
///
/// Besides recomputing every root, it checks each entry against the tree hashes stored with it
/// at append: a changed entry no longer matches its stored leaf hash, which pins it to its
/// exact index, and a damaged stored hash would make proofs from this store fail.
pub fn verify_dir(
    dir: &Path,
    keys: &VerifyKeys,
    trusted: Option<Checkpoint>,
) -> Result<Report, Inconsistency> {
    if !DiskStore::exists(dir) {
        return Err(Inconsistency::Unreadable(format!(
            "{} is not an audit store (no store in it)",
            dir.display()
        )));
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        Inconsistency::Unreadable(format!("cannot read {}: {e}", dir.display()))
    };
    let store = DiskStore::open(dir).map_err(|e| unreadable(&e))?;
    let recorded_size = match store
        .get(&records::meta_key("size"))
        .map_err(|e| unreadable(&e))?
    {
        Some(v) => records::be_u64(&v).ok_or_else(|| unreadable(&"malformed size record"))?,
        None => 0,
    };
    let mut checkpoints = BTreeMap::new();
    for item in store.scan(b"c") {
        let (k, v) = item.map_err(|e| unreadable(&e))?;
        let size =
            records::be_u64(&k[1..]).ok_or_else(|| unreadable(&"malformed checkpoint key"))?;
        checkpoints.insert(size, String::from_utf8_lossy(&v).into_owned());
    }

    let mut verifier = Verifier::new(keys, trusted);
    if let Some(note) = checkpoints.remove(&0) {
        verifier.checkpoint(0, &note)?;
    }
    for item in store.scan(b"e") {
        let (k, record) = item.map_err(|e| unreadable(&e))?;
        let index = verifier.size();
        let stored_at =
            records::be_u64(&k[1..]).ok_or_else(|| unreadable(&"malformed entry key"))?;
        if stored_at != index {
            return Err(Inconsistency::MissingEntry { index });
        }
        if index >= recorded_size {
            return Err(Inconsistency::UnrecordedEntry {
                index,
                recorded: recorded_size,
            });
        }
        let (stored, bytes) =
            records::decode_record(&record).ok_or(Inconsistency::DamagedHashes { index })?;
        let completed = verifier.entry(bytes)?;
        if stored.first() != completed.first() {
            return Err(Inconsistency::ChangedEntry { index });
        }
        if stored != completed {
            return Err(Inconsistency::DamagedHashes { index });
        }
        if let Some(note) = checkpoints.remove(&(index + 1)) {
            verifier.checkpoint(index + 1, &note)?;
        }
    }
    let found = verifier.size();
    if let Some((&size, note)) = checkpoints.iter().next() {
        // Signed over entries that are gone; the signature must still be the log's.
        SignedCheckpoint::verify(note, &keys.log).map_err(|e| Inconsistency::BadCheckpoint {
            size,
            reason: e.to_string(),
        })?;
        return Err(Inconsistency::Truncated {
            size,
            first_missing: found,
        });
    }
    if recorded_size > found {
        return Err(Inconsistency::MissingEntry { index: found });
    }
    verifier.finish()
}
