//! Audit log benchmarks (DESIGN §12): durable appends with group commit, proofs at 1 M
//! entries, and whole-log verification.
//!
//! Run: `cargo bench -p valise-audit --bench audit`
//! (`VALISE_BENCH_ENTRIES` sets the size of the large log; default 1,000,000.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use valise_audit::export::{export, verify_export};
use valise_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use valise_audit::note::NoteVerifier;
use valise_audit::verify::verify_dir;
use valise_audit::{AuditLog, LogConfig, VerifyKeys};
use valise_crypto::identity::IdentityKeyPair;
use valise_proto::v1::{ActorKind, AuditEvent, AuditEventKind, AuditObject, Outcome};

const ORIGIN: &str = "valise/mfa.example/paris/audit";

fn key() -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&[7; 32]).unwrap()
}

/// A typical event: a cable accepted from a device (~170 bytes encoded).
fn event(n: u64) -> AuditEvent {
    AuditEvent {
        time_ms: 1_795_000_000_000 + n,
        node: "paris".into(),
        kind: AuditEventKind::CustodyTaken as i32,
        actor_kind: ActorKind::Device as i32,
        actor_id: format!("{n:032x}"),
        source: "quic:192.0.2.10:51234".into(),
        objects: vec![AuditObject {
            kind: "cable".into(),
            id: n.to_be_bytes().repeat(2),
            sha256: vec![n as u8; 32],
        }],
        outcome: Outcome::Success as i32,
        ..Default::default()
    }
}

/// Appends `total` events from `threads` threads; returns the elapsed time.
fn append_concurrently(log: &Arc<AuditLog>, threads: u64, total: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = Arc::clone(log);
            s.spawn(move || {
                for i in (t..total).step_by(threads as usize) {
                    log.append(event(i)).unwrap();
                }
            });
        }
    });
    start.elapsed()
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_append");
    group.sample_size(10).throughput(Throughput::Elements(1));
    for threads in [1u64, 8, 64] {
        let dir = tempfile::tempdir().unwrap();
        // Default policy: a checkpoint every 256 entries or 1 s, as a node runs.
        let log = Arc::new(
            AuditLog::open(LogConfig::new(dir.path().join("log"), ORIGIN), key()).unwrap(),
        );
        group.bench_function(BenchmarkId::new("appenders", threads), |b| {
            b.iter_custom(|iters| append_concurrently(&log, threads, iters.max(threads)))
        });
    }
    group.finish();
}

fn large_log(c: &mut Criterion) {
    let entries: u64 = std::env::var("VALISE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = Arc::new(AuditLog::open(LogConfig::new(&path, ORIGIN), key()).unwrap());
    let took = append_concurrently(&log, 64, entries);
    eprintln!(
        "built a log of {entries} entries in {took:.1?} ({:.0} entries/s)",
        entries as f64 / took.as_secs_f64()
    );
    let checkpoint = log.checkpoint_now().unwrap().checkpoint;

    let mut group = c.benchmark_group(format!("proofs_at_{entries}"));
    let mut n = 0u64;
    group.bench_function("inclusion_generate", |b| {
        b.iter(|| {
            n = (n + 7919) % entries;
            log.inclusion_proof(n, entries).unwrap()
        })
    });
    let index = entries / 3;
    let proof = log.inclusion_proof(index, entries).unwrap();
    let leaf = leaf_hash(&log.entry(index).unwrap());
    group.bench_function("inclusion_verify", |b| {
        b.iter(|| {
            verify_inclusion(index, entries, black_box(&leaf), &proof, &checkpoint.root).unwrap()
        })
    });
    let old = entries / 2 + 1;
    let old_root = log.root(old).unwrap();
    group.bench_function("consistency_generate", |b| {
        b.iter(|| log.consistency_proof(old, entries).unwrap())
    });
    let cproof = log.consistency_proof(old, entries).unwrap();
    group.bench_function("consistency_verify", |b| {
        b.iter(|| verify_consistency(old, entries, &cproof, &old_root, &checkpoint.root).unwrap())
    });
    group.finish();

    let mut exported = Vec::new();
    export(&log, &mut exported).unwrap();
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    let keys = VerifyKeys {
        log: NoteVerifier::ed25519(ORIGIN, *key().public()).unwrap(),
        witnesses: vec![],
    };

    let mut group = c.benchmark_group("full_verification");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(entries));
    group.bench_function(BenchmarkId::new("export", entries), |b| {
        b.iter(|| verify_export(exported.as_slice(), &keys, Some(checkpoint.clone())).unwrap())
    });
    group.bench_function(BenchmarkId::new("directory", entries), |b| {
        b.iter(|| verify_dir(&path, &keys, Some(checkpoint.clone())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, durable_appends, large_log);
criterion_main!(benches);
