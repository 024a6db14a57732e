//! Exports and proof bundles, checked offline by an auditor who holds only public keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use valise_audit::bundle::{BundleError, prove, verify_bundle};
use valise_audit::export::{export, verify_export};
use valise_audit::note::CosignatureSigner;
use valise_audit::verify::{Inconsistency, VerifyKeys};
use valise_audit::{AuditLog, Witness};
use valise_crypto::identity::IdentityKeyPair;
use valise_store::DiskStore;

fn log_with(dir: &std::path::Path, n: u64) -> AuditLog {
    let log = AuditLog::open(config(&dir.join("log"), 8), node_key()).unwrap();
    for i in 0..n {
        log.append(event(i)).unwrap();
    }
    log.checkpoint_now().unwrap();
    log
}

fn exported(log: &AuditLog) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(export(log, &mut out).unwrap(), log.size());
    out
}

#[test]
fn an_export_verifies_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 37);
    let report = verify_export(
        exported(&log).as_slice(),
        &keys(),
        log.latest_checkpoint().map(|c| c.checkpoint),
    )
    .unwrap();
    assert_eq!(report.entries, 37);
    assert_eq!(report.checkpoints, 5, "sizes 8, 16, 24, 32 and 37");
    assert_eq!(report.root, log.root(37).unwrap());
}

#[test]
fn any_changed_byte_in_an_export_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 12);
    let bytes = exported(&log);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x20;
        // The header's informative key is not trusted, so its bytes may change harmlessly;
        // every other byte must be caught.
        let result = verify_export(bad.as_slice(), &keys(), None);
        let in_header_key = {
            let key = log.verifier().to_vkey();
            let start = bytes
                .windows(key.len())
                .position(|w| w == key.as_bytes())
                .unwrap();
            (start..start + key.len()).contains(&i)
        };
        assert!(
            result.is_err() || in_header_key,
            "byte {i} changed unnoticed"
        );
    }
}

#[test]
fn a_truncated_export_reports_the_first_missing_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 12);
    let bytes = exported(&log);
    let err = verify_export(&bytes[..bytes.len() / 2], &keys(), None).unwrap_err();
    assert!(
        matches!(
            err,
            Inconsistency::MissingEntry { .. } | Inconsistency::Unreadable(_)
        ),
        "{err}"
    );
}

#[test]
fn an_entry_appended_to_an_export_is_reported_at_its_index() {
    // A well-formed event with the next index, appended after the last record: no signature
    // covers it, and the header's size exposes it.
    use prost::Message;
    use valise_proto::v1::{AuditExportRecord, audit_export_record::Record};
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 12);
    let mut bytes = exported(&log);
    let mut forged = event(12);
    forged.index = 12;
    bytes.extend(
        AuditExportRecord {
            record: Some(Record::Entry(forged.encode_to_vec())),
        }
        .encode_length_delimited_to_vec(),
    );
    assert_eq!(
        verify_export(bytes.as_slice(), &keys(), None),
        Err(Inconsistency::UnrecordedEntry {
            index: 12,
            recorded: 12
        })
    );
}

#[test]
fn an_export_of_another_log_or_format_is_refused_clearly() {
    let err = verify_export(&b"not an export"[..], &keys(), None).unwrap_err();
    assert!(
        err.to_string().contains("not a valid audit export"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut other = config(&dir.path().join("log"), 8);
    other.origin = origin_of("nairobi");
    let log = AuditLog::open(other, node_key()).unwrap();
    log.append(event(0)).unwrap();
    let err = verify_export(exported(&log).as_slice(), &keys(), None).unwrap_err();
    assert!(err.to_string().contains("nairobi"), "{err}");
}

#[test]
fn a_proof_bundle_verifies_alone_with_cosignatures() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 21);
    let w = Witness::new(
        DiskStore::open(&dir.path().join("w")).unwrap(),
        CosignatureSigner::new(
            "hq.mfa.example/witness",
            IdentityKeyPair::from_seed(&[5; 32]).unwrap(),
        )
        .unwrap(),
        [keys().log],
    );
    let note = log.latest_checkpoint().unwrap().note.to_text();
    let line = w.add_checkpoint(0, &[], &note, 1_795_000_000).unwrap();
    log.add_cosignature(21, &line, &w.verifier()).unwrap();

    let bundle = prove(&log, 13).unwrap();
    let keys = VerifyKeys {
        witnesses: vec![w.verifier()],
        ..keys()
    };
    let verified = verify_bundle(&bundle, &keys).unwrap();
    assert_eq!(verified.index, 13);
    assert_eq!(verified.event.reason, "reason-000013");
    assert_eq!(verified.checkpoint.size, 21);
    assert_eq!(
        verified.cosigners,
        vec!["hq.mfa.example/witness".to_owned()]
    );
}

#[test]
fn a_tampered_bundle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 21);
    let bundle = prove(&log, 5).unwrap();
    verify_bundle(&bundle, &keys()).unwrap();

    let other_entry = prove(&log, 6).unwrap();
    let swapped_entry = bundle.replace(
        bundle.lines().nth(2).unwrap(),
        other_entry.lines().nth(2).unwrap(),
    );
    assert!(matches!(
        verify_bundle(&swapped_entry, &keys()),
        Err(BundleError::NotIncluded(_))
    ));
    let wrong_index = bundle.replacen("index 5", "index 6", 1);
    assert!(matches!(
        verify_bundle(&wrong_index, &keys()),
        Err(BundleError::NotIncluded(_))
    ));
    let lines: Vec<&str> = bundle.lines().collect();
    let bad_proof = bundle.replace(lines[3], lines[4]);
    assert!(verify_bundle(&bad_proof, &keys()).is_err());
    let bad_root = bundle.replacen("\n21\n", "\n22\n", 1);
    assert!(matches!(
        verify_bundle(&bad_root, &keys()),
        Err(BundleError::BadCheckpoint(_))
    ));
    assert!(matches!(
        verify_bundle("nonsense", &keys()),
        Err(BundleError::Malformed(_))
    ));
    // A witness that has not cosigned is reported by name.
    let w = CosignatureSigner::new("w2", IdentityKeyPair::generate().unwrap())
        .unwrap()
        .verifier();
    let keys = VerifyKeys {
        witnesses: vec![w],
        ..keys()
    };
    assert_eq!(
        verify_bundle(&bundle, &keys).err(),
        Some(BundleError::BadCosignature("w2".into()))
    );
}

#[test]
fn an_entry_past_the_latest_checkpoint_cannot_be_proved_yet() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 3);
    log.append(event(3)).unwrap();
    let err = prove(&log, 3).unwrap_err();
    assert!(
        err.to_string()
            .contains("newer than the latest; try again in a second"),
        "{err}"
    );
    // An entry that does not exist at all is named as such.
    let err = prove(&log, 99).unwrap_err();
    assert!(
        err.to_string()
            .contains("entry 99 (entries are numbered from 0) is outside the log of 4 entries"),
        "{err}"
    );
}
