//! Witnessing: what a hub cosigning a post's checkpoints observes, honest or not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use valise_audit::merkle::Hash;
use valise_audit::note::{CosignatureSigner, Note, NoteSigner, SignedCheckpoint};
use valise_audit::verify::{VerifyKeys, verify_dir};
use valise_audit::{AuditLog, Witness, WitnessError};
use valise_crypto::identity::IdentityKeyPair;
use valise_store::DiskStore;

const NOW: u64 = 1_795_000_000;

fn witness(dir: &std::path::Path) -> Witness<DiskStore> {
    let store = DiskStore::open(&dir.join("witness")).unwrap();
    let signer = CosignatureSigner::new(
        "hq.mfa.example/witness",
        IdentityKeyPair::from_seed(&[5; 32]).unwrap(),
    )
    .unwrap();
    Witness::new(store, signer, [keys().log])
}

/// Signs a checkpoint as the post's log key would, over any (size, root): a forger's tool.
fn forge(size: u64, root: Hash) -> String {
    let signer = NoteSigner::new(&origin_of("paris"), node_key()).unwrap();
    let cp = valise_audit::note::Checkpoint {
        origin: origin_of("paris"),
        size,
        root,
    };
    signer.sign(&cp.to_text()).unwrap()
}

/// Presents the log's latest checkpoint to the witness, from the witness's last size.
fn present(log: &AuditLog, w: &Witness<DiskStore>) -> Result<String, WitnessError> {
    let cp = log.checkpoint_now().unwrap();
    let old = w.cosigned(log.origin()).unwrap().map_or(0, |c| c.size);
    let proof = if old == 0 {
        vec![]
    } else {
        log.consistency_proof(old, cp.checkpoint.size).unwrap()
    };
    w.add_checkpoint(old, &proof, &cp.note.to_text(), NOW)
}

#[test]
fn an_honest_log_is_cosigned_and_its_cosignatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(dir.path());
    let path = dir.path().join("log");
    let log = AuditLog::open(config(&path, 1000), node_key()).unwrap();
    for round in 0..3 {
        for i in 0..10 {
            log.append(event(round * 10 + i)).unwrap();
        }
        let line = present(&log, &w).unwrap();
        let size = log.size();
        log.add_cosignature(size, &line, &w.verifier()).unwrap();
    }
    assert_eq!(w.cosigned(log.origin()).unwrap().unwrap().size, 30);
    log.close().unwrap();
    let keys = VerifyKeys {
        witnesses: vec![w.verifier()],
        ..keys()
    };
    let report = verify_dir(&path, &keys, None).unwrap();
    assert_eq!(
        report.cosignatures["hq.mfa.example/witness"], 3,
        "every cosignature checked"
    );
}

#[test]
fn the_witness_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(&dir.path().join("log"), 1000), node_key()).unwrap();
    log.append(event(0)).unwrap();
    {
        let w = witness(dir.path());
        present(&log, &w).unwrap();
    }
    let w = witness(dir.path());
    assert_eq!(w.cosigned(log.origin()).unwrap().map(|c| c.size), Some(1));
}

#[test]
fn two_checkpoints_of_one_size_are_a_fork_and_both_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(dir.path());
    let log = AuditLog::open(config(&dir.path().join("log"), 1000), node_key()).unwrap();
    for i in 0..5 {
        log.append(event(i)).unwrap();
    }
    present(&log, &w).unwrap();
    let honest = w.cosigned(log.origin()).unwrap().unwrap();
    let forked = forge(5, [0xAB; 32]);
    let err = w.add_checkpoint(5, &[], &forked, NOW).unwrap_err();
    assert_eq!(
        err,
        WitnessError::Fork {
            origin: origin_of("paris"),
            size: 5
        }
    );
    let evidence = w.evidence(log.origin()).unwrap();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].reason, "fork");
    assert_eq!(evidence[0].cosigned_note, honest.note);
    assert_eq!(evidence[0].conflicting_note, forked);
    // Both notes in the evidence verify under the log's key: a self-contained proof of a fork.
    for note in [&evidence[0].cosigned_note, &evidence[0].conflicting_note] {
        SignedCheckpoint::verify(note, &keys().log).unwrap();
    }
    assert_eq!(
        w.cosigned(log.origin()).unwrap().unwrap(),
        honest,
        "the witness still holds the checkpoint it cosigned"
    );
}

#[test]
fn a_smaller_size_after_a_larger_one_is_a_rollback_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(dir.path());
    let log = AuditLog::open(config(&dir.path().join("log"), 1000), node_key()).unwrap();
    for i in 0..9 {
        log.append(event(i)).unwrap();
    }
    present(&log, &w).unwrap();
    let cosigned = w.cosigned(log.origin()).unwrap().unwrap();
    let older = forge(4, log.root(4).unwrap());
    let err = w.add_checkpoint(9, &[], &older, NOW).unwrap_err();
    assert_eq!(
        err,
        WitnessError::Rollback {
            origin: origin_of("paris"),
            witness_size: 9,
            new_size: 4
        }
    );
    let evidence = w.evidence(log.origin()).unwrap();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].reason, "rollback");
    assert_eq!(evidence[0].cosigned_note, cosigned.note);
    assert_eq!(evidence[0].conflicting_note, older);
    // Both notes verify under the log's key, and show the smaller size after the larger one.
    let sizes: Vec<u64> = [&evidence[0].cosigned_note, &evidence[0].conflicting_note]
        .into_iter()
        .map(|note| {
            SignedCheckpoint::verify(note, &keys().log)
                .unwrap()
                .checkpoint
                .size
        })
        .collect();
    assert_eq!(sizes, vec![9, 4]);
    assert_eq!(
        w.cosigned(log.origin()).unwrap().unwrap().size,
        9,
        "state unchanged"
    );
}

#[test]
fn a_tree_that_does_not_extend_the_cosigned_one_is_refused_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(dir.path());
    let log = AuditLog::open(config(&dir.path().join("log"), 1000), node_key()).unwrap();
    for i in 0..6 {
        log.append(event(i)).unwrap();
    }
    present(&log, &w).unwrap();
    // A rewritten log: same key, different history, larger size.
    let other_dir = tempfile::tempdir().unwrap();
    let rewritten =
        AuditLog::open(config(&other_dir.path().join("log"), 1000), node_key()).unwrap();
    for i in 100..110 {
        rewritten.append(event(i)).unwrap();
    }
    let cp = rewritten.checkpoint_now().unwrap();
    let proof = rewritten.consistency_proof(6, 10).unwrap();
    let err = w
        .add_checkpoint(6, &proof, &cp.note.to_text(), NOW)
        .unwrap_err();
    assert_eq!(
        err,
        WitnessError::BadProof {
            origin: origin_of("paris"),
            old: 6,
            new: 10
        }
    );
    assert_eq!(w.evidence(log.origin()).unwrap()[0].reason, "inconsistent");
}

#[test]
fn refusals_are_distinct_errors() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness(dir.path());
    let log = AuditLog::open(config(&dir.path().join("log"), 1000), node_key()).unwrap();
    log.append(event(0)).unwrap();
    let note = log.checkpoint_now().unwrap().note.to_text();

    // Unknown log: a checkpoint from a log the witness does not follow.
    let stranger = NoteSigner::new(
        "valise/mfa.example/rome/audit",
        IdentityKeyPair::generate().unwrap(),
    )
    .unwrap();
    let stranger_cp = valise_audit::note::Checkpoint {
        origin: "valise/mfa.example/rome/audit".into(),
        size: 1,
        root: [1; 32],
    };
    let err = w
        .add_checkpoint(0, &[], &stranger.sign(&stranger_cp.to_text()).unwrap(), NOW)
        .unwrap_err();
    assert!(matches!(err, WitnessError::UnknownLog(_)));

    // Bad signature: the right origin signed by another key.
    let impostor =
        NoteSigner::new(&origin_of("paris"), IdentityKeyPair::generate().unwrap()).unwrap();
    let err = w
        .add_checkpoint(
            0,
            &[],
            &impostor.sign(&Note::parse(&note).unwrap().text).unwrap(),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, WitnessError::BadSignature(_)));

    // Stale size: the log claims a different last-cosigned size than the witness holds.
    assert!(matches!(
        w.add_checkpoint(3, &[], &note, NOW),
        Err(WitnessError::StaleSize {
            witness_size: 0,
            claimed: 3
        })
    ));

    // Malformed.
    assert!(matches!(
        w.add_checkpoint(0, &[], "garbage", NOW),
        Err(WitnessError::Malformed(_))
    ));
    assert!(
        w.cosigned(log.origin()).unwrap().is_none(),
        "nothing was cosigned"
    );
}
