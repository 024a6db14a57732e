//! The log as its node and an auditor use it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use valise_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use valise_audit::note::SignedCheckpoint;
use valise_audit::verify::verify_dir;
use valise_audit::{AuditLog, LogError};

#[test]
fn appended_entries_are_provably_in_each_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(&dir.path().join("log"), 4), node_key()).unwrap();
    for i in 0..10 {
        log.append(event(i)).unwrap();
    }
    // Every 4 entries: checkpoints at 4 and 8 exist; 9 and 10 are not yet signed.
    let sizes: Vec<u64> = log
        .checkpoint_notes()
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(sizes, vec![4, 8]);
    let cp = log.checkpoint_now().unwrap();
    assert_eq!(cp.checkpoint.size, 10);
    for i in 0..10 {
        let proof = log.inclusion_proof(i, 10).unwrap();
        verify_inclusion(
            i,
            10,
            &leaf_hash(&log.entry(i).unwrap()),
            &proof,
            &cp.checkpoint.root,
        )
        .unwrap();
        assert_eq!(
            log.event(i).unwrap().index,
            i,
            "the log records each entry's index"
        );
    }
    let four =
        SignedCheckpoint::verify(&log.checkpoint_notes().unwrap()[0].1, &keys().log).unwrap();
    let proof = log.consistency_proof(4, 10).unwrap();
    verify_consistency(4, 10, &proof, &four.checkpoint.root, &cp.checkpoint.root).unwrap();
}

#[test]
fn a_reopened_log_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path(), 13);
    let log = AuditLog::open(config(&path, 8), node_key()).unwrap();
    assert_eq!(log.size(), 13);
    // Closing signed a final checkpoint over everything.
    assert_eq!(log.latest_checkpoint().unwrap().checkpoint.size, 13);
    assert_eq!(log.append(event(13)).unwrap(), 13);
    log.close().unwrap();
    let report = verify_dir(&path, &keys(), None).unwrap();
    assert_eq!(report.entries, 14);
    assert_eq!(report.latest.unwrap().size, 14);
}

#[test]
fn concurrent_appenders_each_get_a_distinct_durable_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = Arc::new(AuditLog::open(config(&path, 64), node_key()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| log.append(event(t * 1000 + i)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut indices: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    indices.sort();
    assert_eq!(indices, (0..400).collect::<Vec<_>>());
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    assert_eq!(verify_dir(&path, &keys(), None).unwrap().entries, 400);
}

#[test]
fn the_time_rule_signs_a_checkpoint_without_more_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("log"), 1000);
    cfg.policy.every = std::time::Duration::from_millis(20);
    let log = AuditLog::open(cfg, node_key()).unwrap();
    log.append(event(0)).unwrap();
    // Wait (bounded) for the committer's timer: this checks the behaviour, not its speed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.latest_checkpoint().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(log.latest_checkpoint().map(|c| c.checkpoint.size), Some(1));
}

#[test]
fn another_nodes_key_or_origin_cannot_reuse_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path(), 3);
    let mut other = config(&path, 8);
    other.origin = origin_of("nairobi");
    assert!(matches!(
        AuditLog::open(other, node_key()),
        Err(LogError::OriginMismatch { .. })
    ));
    // A different key cannot verify the stored checkpoints: refused as damage, not ignored.
    let err = AuditLog::open(
        config(&path, 8),
        valise_crypto::identity::IdentityKeyPair::generate().unwrap(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, LogError::Corrupt(_)), "{err}");
}

#[test]
fn a_store_replaced_by_an_older_copy_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let anchor = dir.path().join("audit.anchor");
    let open = || {
        let mut c = config(&path, 8);
        c.anchor = Some(anchor.clone());
        AuditLog::open(c, node_key())
    };
    let log = open().unwrap();
    for i in 0..20 {
        log.append(event(i)).unwrap();
    }
    log.close().unwrap();
    copy_dir(&path, &dir.path().join("old"));
    let log = open().unwrap();
    for i in 20..30 {
        log.append(event(i)).unwrap();
    }
    log.close().unwrap();

    std::fs::remove_dir_all(&path).unwrap();
    copy_dir(&dir.path().join("old"), &path);
    let err = open().err().expect("a rolled-back store must be refused");
    assert_eq!(
        err,
        LogError::RolledBack {
            signed_size: 30,
            store_size: 20
        }
    );
    assert!(
        err.to_string()
            .contains("rolled back or replaced with an older copy")
    );
}

#[test]
fn a_store_with_a_longer_but_different_history_is_refused_at_open() {
    // The anchor holds size 20. The data directory is replaced with a store of this node's log
    // that holds more entries and its own later signed checkpoint, but a different history
    // (a copy run once without the anchor, say). Its latest checkpoint is larger than the
    // anchor's, yet its first 20 entries are not the ones the node signed: refused.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let anchor = dir.path().join("audit.anchor");
    let with_anchor = |path: &std::path::Path| {
        let mut c = config(path, 8);
        c.anchor = Some(anchor.clone());
        AuditLog::open(c, node_key())
    };
    let log = with_anchor(&path).unwrap();
    for i in 0..20 {
        log.append(event(i)).unwrap();
    }
    log.close().unwrap();

    let other = dir.path().join("other");
    let forked = AuditLog::open(config(&other, 8), node_key()).unwrap();
    for i in 100..130 {
        forked.append(event(i)).unwrap();
    }
    forked.close().unwrap();
    std::fs::remove_dir_all(&path).unwrap();
    copy_dir(&other, &path);

    let err = with_anchor(&path)
        .err()
        .expect("a store that contradicts the anchor must be refused");
    assert_eq!(err, LogError::InconsistentWithSigned { size: 20 });
    assert!(err.to_string().contains("history was rewritten"), "{err}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(&dir.path().join("log"), 8), node_key()).unwrap();
    log.append(event(0)).unwrap();
    assert!(matches!(log.entry(5), Err(LogError::OutOfRange { .. })));
    assert!(matches!(
        log.inclusion_proof(1, 1),
        Err(LogError::OutOfRange { .. })
    ));
    assert!(matches!(log.root(2), Err(LogError::OutOfRange { .. })));
    assert!(matches!(
        log.consistency_proof(1, 0),
        Err(LogError::OutOfRange { .. })
    ));
}
