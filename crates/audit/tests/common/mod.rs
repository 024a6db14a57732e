//! Shared fixtures for the audit tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use valise_audit::log::origin;
use valise_audit::note::NoteVerifier;
use valise_audit::policy::CheckpointPolicy;
use valise_audit::{AuditLog, LogConfig, VerifyKeys};
use valise_crypto::identity::IdentityKeyPair;
use valise_proto::v1::{ActorKind, AuditEvent, AuditEventKind, AuditObject, Outcome};

pub const NODE_SEED: [u8; 32] = [7; 32];

pub fn origin_of(node: &str) -> String {
    origin("mfa.example", node)
}

pub fn node_key() -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&NODE_SEED).unwrap()
}

/// A log in `dir` that checkpoints every `every` entries and never by time.
pub fn config(dir: &Path, every: u64) -> LogConfig {
    let mut c = LogConfig::new(dir, origin_of("paris"));
    c.policy = CheckpointPolicy {
        every_entries: every,
        every: Duration::from_secs(3600),
    };
    c
}

pub fn keys() -> VerifyKeys {
    let log = NoteVerifier::ed25519(&origin_of("paris"), *node_key().public()).unwrap();
    VerifyKeys {
        log,
        witnesses: vec![],
    }
}

/// A cable-submission event, with ids and digests only.
pub fn event(n: u64) -> AuditEvent {
    AuditEvent {
        time_ms: 1_795_000_000_000 + n,
        node: "paris".into(),
        kind: AuditEventKind::CableSubmitted as i32,
        actor_kind: ActorKind::Device as i32,
        actor_id: format!("{n:032x}"),
        source: "quic:127.0.0.1:4433".into(),
        objects: vec![AuditObject {
            kind: "cable".into(),
            id: n.to_be_bytes().to_vec(),
            sha256: vec![n as u8; 32],
        }],
        outcome: Outcome::Success as i32,
        reason: format!("reason-{n:06}"),
        ..Default::default()
    }
}

/// A closed log of `n` entries under `dir/log`, checkpointed every 8 and at close.
pub fn build_log(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("log");
    let log = AuditLog::open(config(&path, 8), node_key()).unwrap();
    for i in 0..n {
        assert_eq!(log.append(event(i)).unwrap(), i);
    }
    log.close().unwrap();
    path
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
