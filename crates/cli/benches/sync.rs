//! The client's sync through a real node on loopback (`valise_devnet::local::start_post`):
//! how fast a device sends its outbox (seal → upload → custody receipt checked) and takes in
//! its queue (open → verify → store → acknowledge, then the delivered receipts).
//!
//! Run: `cargo bench -p valise-cli --bench sync`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use valise_client::client::Client;
use valise_client::compose::CableDraft;
use valise_client::enrol::{Invitation, enrol};
use valise_client::sync::NoProgress;
use valise_crypto::at_rest::KdfParams;
use valise_devnet::local::{LocalPost, start_post};
use valise_proto::v1::{Classification, Precedence};
use valise_relay::enrolment::Invitation as Code;
use valise_relay::limits::Limits;

/// Cables per measured batch.
const BATCH: u64 = 50;
/// Cheap key derivation: the bench measures sync, not unlocking.
const FAST: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

async fn diplomat(post: &LocalPost, root: &std::path::Path, user: &str) -> Client {
    let code = post
        .node
        .issue_code(Code {
            user: user.into(),
            display_name: user.into(),
            clearance: Classification::Secret,
            offices: vec![],
            foreign_national: false,
        })
        .unwrap();
    let invitation = Invitation {
        node_addr: post.addr.clone(),
        code,
        ca_fingerprint: post.fingerprint.clone(),
    };
    enrol(&root.join(user), b"bench passphrase", FAST, &invitation)
        .await
        .unwrap()
}

fn draft(i: u64) -> CableDraft {
    CableDraft {
        action: vec!["bob@paris".into()],
        info: vec![],
        classification: Classification::Secret,
        precedence: if i.is_multiple_of(10) {
            Precedence::Flash
        } else {
            Precedence::Routine
        },
        niact: false,
        caveats: vec![],
        tags: vec!["PREL".into()],
        subject: format!("Cable {i}"),
        text: "x".repeat(2_000),
        attachments: vec![],
        references: Vec::new(),
    }
}

fn sync(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let post = runtime
        .block_on(async {
            start_post(
                &dir.path().join("node"),
                "mfa.example",
                "paris",
                Limits::default(),
            )
        })
        .unwrap();
    let devices = dir.path().join("devices");
    let mut alice = runtime.block_on(diplomat(&post, &devices, "alice"));
    let mut bob = runtime.block_on(diplomat(&post, &devices, "bob"));
    runtime.block_on(alice.sync(&NoProgress)).unwrap();

    let mut group = c.benchmark_group("client_sync");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("send_outbox_50_cables", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for round in 0..iters {
                for i in 0..BATCH {
                    alice.compose(&draft(round * BATCH + i)).unwrap();
                }
                let start = Instant::now();
                let report = runtime.block_on(alice.sync(&NoProgress)).unwrap();
                total += start.elapsed();
                assert_eq!(report.sent.len() as u64, BATCH);
                // Keep bob's queue from growing without end.
                runtime.block_on(bob.sync(&NoProgress)).unwrap();
            }
            total
        })
    });
    group.bench_function("receive_queue_50_cables", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for round in 0..iters {
                for i in 0..BATCH {
                    alice.compose(&draft(round * BATCH + i)).unwrap();
                }
                runtime.block_on(alice.sync(&NoProgress)).unwrap();
                let start = Instant::now();
                let report = runtime.block_on(bob.sync(&NoProgress)).unwrap();
                total += start.elapsed();
                assert_eq!(report.received as u64, BATCH);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
