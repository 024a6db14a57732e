//! What an auditor observes when someone with disk access edits a stopped node's audit store.
//! Each edit is made at several positions, on a fresh copy each time, and must be detected
//! every time, with the entry index reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use valise_audit::verify::{Inconsistency, verify_dir};
use valise_audit::{AuditLog, note::Checkpoint};
use valise_store::{DiskStore, Store, StoreError, Write};

const N: u64 = 40;

fn entry_key(i: u64) -> Vec<u8> {
    [&b"e"[..], &i.to_be_bytes()].concat()
}

/// The stopped node's store opened directly, as an attacker with the disk would: the
/// engine's own reads and writes, past the log.
struct RawStore(DiskStore);

impl RawStore {
    fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key.as_ref())
    }
    fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        let (key, value) = (key.as_ref().to_vec(), value.as_ref().to_vec());
        self.0.apply(vec![Write::Put(key, value)])
    }
    fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), StoreError> {
        self.0.apply(vec![Write::Delete(key.as_ref().to_vec())])
    }
}

fn with_raw_store(path: &Path, edit: impl FnOnce(&RawStore)) {
    let db = RawStore(DiskStore::open(path).unwrap());
    edit(&db);
    db.0.sync().unwrap();
}

/// A fresh log of N entries and the checkpoint an auditor already trusts (its latest).
fn fresh() -> (tempfile::TempDir, std::path::PathBuf, Checkpoint) {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path(), N);
    let latest = AuditLog::open(config(&path, 8), node_key())
        .unwrap()
        .latest_checkpoint()
        .unwrap()
        .checkpoint;
    (dir, path, latest)
}

#[test]
fn an_untouched_log_verifies() {
    let (_d, path, latest) = fresh();
    let report = verify_dir(&path, &keys(), Some(latest)).unwrap();
    assert_eq!(report.entries, N);
    assert_eq!(report.checkpoints, N / 8);
}

#[test]
fn a_changed_entry_is_detected_at_its_index() {
    for index in [0, 17, N - 1] {
        let (_d, path, _) = fresh();
        with_raw_store(&path, |db| {
            let mut bytes = db.get(entry_key(index)).unwrap().unwrap().to_vec();
            // Rewrite the recorded reason: still a valid event, with different content.
            let at = bytes.windows(6).position(|w| w == b"reason").unwrap() + 7;
            bytes[at] ^= 0x01;
            db.insert(entry_key(index), bytes).unwrap();
        });
        assert_eq!(
            verify_dir(&path, &keys(), None),
            Err(Inconsistency::ChangedEntry { index })
        );
    }
}

#[test]
fn a_deleted_entry_is_detected_at_its_index() {
    for index in [0, 9, N - 2] {
        let (_d, path, _) = fresh();
        with_raw_store(&path, |db| {
            db.remove(entry_key(index)).unwrap();
        });
        assert_eq!(
            verify_dir(&path, &keys(), None),
            Err(Inconsistency::MissingEntry { index })
        );
    }
}

#[test]
fn swapped_entries_are_detected_at_the_first() {
    for (a, b) in [(0, 1), (5, 30), (N - 2, N - 1)] {
        let (_d, path, _) = fresh();
        with_raw_store(&path, |db| {
            let ea = db.get(entry_key(a)).unwrap().unwrap();
            let eb = db.get(entry_key(b)).unwrap().unwrap();
            db.insert(entry_key(a), eb).unwrap();
            db.insert(entry_key(b), ea).unwrap();
        });
        assert_eq!(
            verify_dir(&path, &keys(), None),
            Err(Inconsistency::MisplacedEntry {
                index: a,
                recorded: b
            })
        );
    }
}

#[test]
fn a_truncated_log_is_detected_at_the_first_missing_entry() {
    for keep in [0, 20, N - 1] {
        let (_d, path, _) = fresh();
        with_raw_store(&path, |db| {
            for i in keep..N {
                db.remove(entry_key(i)).unwrap();
            }
        });
        let err = verify_dir(&path, &keys(), None).unwrap_err();
        assert!(
            matches!(err, Inconsistency::Truncated { first_missing, .. } if first_missing == keep),
            "kept {keep}: {err}"
        );
    }
}

#[test]
fn an_entry_added_past_the_end_is_reported_at_its_index() {
    // The forger appends a well-formed event, with its own index and the right tree hashes,
    // after the last entry. No signature covers it; the store's recorded size exposes it.
    let (_d, path, _) = fresh();
    with_raw_store(&path, |db| {
        let mut range = valise_audit::merkle::CompactRange::new();
        for index in 0..N {
            let record = db.get(entry_key(index)).unwrap().unwrap();
            range.push(valise_audit::merkle::leaf_hash(payload(&record)));
        }
        let mut forged = event(N);
        forged.index = N;
        let bytes = prost::Message::encode_to_vec(&forged);
        let hashes: Vec<_> = range
            .push(valise_audit::merkle::leaf_hash(&bytes))
            .into_iter()
            .map(|(_, _, h)| h)
            .collect();
        let mut record = vec![hashes.len() as u8];
        hashes.iter().for_each(|h| record.extend_from_slice(h));
        record.extend_from_slice(&bytes);
        db.insert(entry_key(N), record).unwrap();
    });
    let err = verify_dir(&path, &keys(), None).unwrap_err();
    assert_eq!(
        err,
        Inconsistency::UnrecordedEntry {
            index: N,
            recorded: N
        }
    );
    assert!(err.to_string().contains("entry 40 lies past"), "{err}");
}

#[test]
fn a_careful_truncation_is_caught_by_the_trusted_checkpoint() {
    // The attacker also removes the later checkpoints and the size record: the store is
    // self-consistent, but the auditor's trusted checkpoint (from a witness) still catches it.
    let (_d, path, latest) = fresh();
    with_raw_store(&path, |db| {
        for i in 24..N {
            db.remove(entry_key(i)).unwrap();
        }
        for size in [32u64, 40] {
            db.remove([&b"c"[..], &size.to_be_bytes()].concat())
                .unwrap();
        }
        db.insert(b"msize", 24u64.to_be_bytes()).unwrap();
    });
    assert!(
        verify_dir(&path, &keys(), None).is_ok(),
        "self-consistent without outside reference"
    );
    assert_eq!(
        verify_dir(&path, &keys(), Some(latest)),
        Err(Inconsistency::RolledBack {
            trusted_size: N,
            log_size: 24
        })
    );
}

#[test]
fn an_older_copy_of_the_directory_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path(), 16);
    copy_dir(&path, &dir.path().join("old"));
    let log = AuditLog::open(config(&path, 8), node_key()).unwrap();
    for i in 16..N {
        log.append(event(i)).unwrap();
    }
    let latest = log.checkpoint_now().unwrap().checkpoint;
    log.close().unwrap();
    std::fs::remove_dir_all(&path).unwrap();
    copy_dir(&dir.path().join("old"), &path);
    let err = verify_dir(&path, &keys(), Some(latest)).unwrap_err();
    assert_eq!(
        err,
        Inconsistency::RolledBack {
            trusted_size: N,
            log_size: 16
        }
    );
    assert!(
        err.to_string()
            .contains("entries from index 16 are missing"),
        "{err}"
    );
}

/// Splits a stored entry record: `count ‖ count × 32-byte tree hashes ‖ entry bytes`.
fn payload(record: &[u8]) -> &[u8] {
    &record[1 + 32 * usize::from(record[0])..]
}

#[test]
fn a_partly_forged_record_is_caught_by_its_stored_hashes() {
    // The forger changes entry 11 and fixes its leaf hash, but not the subtree hashes that
    // entry 11 completed: the store would now serve proofs that fail.
    let (_d, path, _) = fresh();
    with_raw_store(&path, |db| {
        let mut record = db.get(entry_key(11)).unwrap().unwrap().to_vec();
        let start = 1 + 32 * usize::from(record[0]);
        let at = start
            + record[start..]
                .windows(6)
                .position(|w| w == b"reason")
                .unwrap()
            + 7;
        record[at] ^= 0x01;
        let leaf = valise_audit::merkle::leaf_hash(&record[start..]);
        record[1..33].copy_from_slice(&leaf);
        db.insert(entry_key(11), record).unwrap();
    });
    assert_eq!(
        verify_dir(&path, &keys(), None),
        Err(Inconsistency::DamagedHashes { index: 11 })
    );
}

#[test]
fn a_rewritten_history_fails_the_signed_roots() {
    // A thorough forger changes entry 11 and rebuilds every stored tree hash to match: the
    // store is self-consistent, but the signed checkpoint roots expose it, within the window of
    // the first checkpoint it breaks.
    let (_d, path, _) = fresh();
    with_raw_store(&path, |db| {
        let mut range = valise_audit::merkle::CompactRange::new();
        for index in 0..N {
            let record = db.get(entry_key(index)).unwrap().unwrap().to_vec();
            let mut entry = payload(&record).to_vec();
            if index == 11 {
                let at = entry.windows(6).position(|w| w == b"reason").unwrap() + 7;
                entry[at] ^= 0x01;
            }
            let hashes: Vec<_> = range
                .push(valise_audit::merkle::leaf_hash(&entry))
                .into_iter()
                .map(|(_, _, h)| h)
                .collect();
            let mut rebuilt = vec![hashes.len() as u8];
            hashes.iter().for_each(|h| rebuilt.extend_from_slice(h));
            rebuilt.extend_from_slice(&entry);
            db.insert(entry_key(index), rebuilt).unwrap();
        }
    });
    assert_eq!(
        verify_dir(&path, &keys(), None),
        Err(Inconsistency::RootMismatch { size: 16, from: 8 })
    );
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let (_d, path, _) = fresh();
    with_raw_store(&path, |db| {
        let key = [&b"c"[..], &16u64.to_be_bytes()].concat();
        let note = String::from_utf8(db.get(&key).unwrap().unwrap().to_vec()).unwrap();
        db.insert(&key, note.replacen("16\n", "17\n", 1).into_bytes())
            .unwrap();
    });
    assert!(matches!(
        verify_dir(&path, &keys(), None),
        Err(Inconsistency::BadCheckpoint { size: 16, .. })
    ));
}

#[test]
fn a_directory_that_is_not_a_store_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify_dir(dir.path(), &keys(), None).unwrap_err();
    assert!(err.to_string().contains("is not an audit store"), "{err}");
}

/// The node itself refuses to open, and so to append after, an entry edited in place: the
/// engine's own checksums are valid, so only the recorded hashes can tell.
#[test]
fn the_node_refuses_to_open_a_store_with_an_entry_edited_in_place() {
    for forge_leaf in [false, true] {
        let (_d, path, _) = fresh();
        with_raw_store(&path, |db| {
            let mut record = db.get(entry_key(23)).unwrap().unwrap().to_vec();
            let start = 1 + 32 * usize::from(record[0]);
            let at = start
                + record[start..]
                    .windows(6)
                    .position(|w| w == b"reason")
                    .unwrap()
                + 7;
            record[at] ^= 0x01;
            if forge_leaf {
                let leaf = valise_audit::merkle::leaf_hash(&record[start..]);
                record[1..33].copy_from_slice(&leaf);
            }
            db.insert(entry_key(23), record).unwrap();
        });
        let refused = AuditLog::open(config(&path, 8), node_key())
            .err()
            .expect("an edited store is refused");
        let message = refused.to_string();
        assert!(
            message.contains("entry 23 does not match the hashes recorded for it")
                && message.contains("edited in place"),
            "{message}"
        );
    }
}

/// A deleted anchor is not quietly written anew: the node refuses until the operator restores
/// it or chooses to recreate it.
#[test]
fn a_missing_anchor_is_refused_unless_recreated_deliberately() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("anchor.note");
    let mut cfg = config(&dir.path().join("audit"), 4);
    cfg.anchor = Some(anchor.clone());
    let log = AuditLog::open(cfg.clone(), node_key()).unwrap();
    for n in 0..8 {
        log.append(event(n)).unwrap();
    }
    log.close().unwrap();
    assert!(anchor.exists());
    std::fs::remove_file(&anchor).unwrap();
    let message = AuditLog::open(cfg.clone(), node_key())
        .err()
        .expect("refused without the anchor")
        .to_string();
    assert!(
        message.contains("anchor")
            && message.contains("is missing")
            && message.contains("recover --recreate-anchor"),
        "{message}"
    );
    assert!(!anchor.exists(), "nothing was written");
    cfg.recreate_anchor = true;
    AuditLog::open(cfg.clone(), node_key())
        .unwrap()
        .close()
        .unwrap();
    assert!(
        anchor.exists(),
        "recreated from the store's latest checkpoint"
    );
    cfg.recreate_anchor = false;
    AuditLog::open(cfg, node_key()).unwrap().close().unwrap();
}
