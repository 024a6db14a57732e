//! The two storage engines side by side, on what a node writes most: a group of custodies (a
//! sealed 4 KiB envelope, its recipient count, its dedup entry, the arrival number and a queue
//! entry each), applied as one batch and made durable with one sync.
//!
//! Run: `cargo bench -p valise-store --bench engines`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use valise_store::{FjallStore, SledStore, Store, Write};

/// Custodies per group: about what 128 concurrent submissions put in one group commit.
const GROUP: u64 = 50;

fn group(n: u64) -> Vec<Write> {
    (0..GROUP)
        .flat_map(|i| {
            let id = (n * GROUP + i).to_be_bytes();
            [
                Write::Put([b"v".as_slice(), &id].concat(), vec![7u8; 4200]),
                Write::Put([b"r".as_slice(), &id].concat(), vec![1, 0, 0, 0]),
                Write::Put([b"d".as_slice(), &id].concat(), vec![2u8; 40]),
                Write::Put(b"mseq".to_vec(), id.to_vec()),
                Write::Put([b"q".as_slice(), &[9u8; 16], &id].concat(), id.to_vec()),
            ]
        })
        .collect()
}

fn bench_engine(c: &mut Criterion, name: &str, store: &dyn Store) {
    let mut g = c.benchmark_group("custody_group");
    g.throughput(Throughput::Elements(GROUP));
    g.sample_size(30);
    let mut n = 0;
    g.bench_function(BenchmarkId::new("apply", name), |b| {
        b.iter(|| {
            n += 1;
            store.apply(black_box(group(n))).unwrap();
        })
    });
    g.bench_function(BenchmarkId::new("apply_and_sync", name), |b| {
        b.iter(|| {
            n += 1;
            store.apply(black_box(group(n))).unwrap();
            store.sync().unwrap();
        })
    });
    g.finish();
}

fn engines(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let fjall = FjallStore::open(&dir.path().join("fjall")).unwrap();
    bench_engine(c, "fjall", &fjall);
    drop(fjall);
    let sled = SledStore::open(&dir.path().join("sled")).unwrap();
    bench_engine(c, "sled", &sled);
}

criterion_group!(benches, engines);
criterion_main!(benches);
