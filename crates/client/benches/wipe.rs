//! The emergency wipe's local half: from the order to the moment nothing of the device can be
//! read and its files are gone. The store is closed (as `Client::wipe_local` drops the client),
//! then `wipe_files` erases the storage key, the store and the attachment folders. The device
//! holds 2,000 sealed cables of 8 KiB and 64 MiB of attachments; an empty store is the baseline
//! beside it. The node is told afterwards, over the network, and is not part of this.
//!
//! `cargo bench -p valise-client --bench wipe`

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use valise_client::attachments::{INCOMING_DIR, OUTGOING_DIR};
use valise_client::store::{LocalStore, Table};
use valise_client::sync::wipe_files;
use valise_crypto::at_rest::KdfParams;

const FAST: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// A device folder with `cables` sealed records and `attachment_mib` MiB of attachment files.
fn device(dir: &Path, cables: usize, attachment_mib: usize) -> LocalStore {
    let store = LocalStore::create(dir, b"wipe bench passphrase", FAST).unwrap();
    let body = vec![7u8; 8 * 1024];
    for i in 0..cables {
        store
            .put(Table::Inbox, &(i as u64).to_be_bytes(), &body)
            .unwrap();
    }
    for sub in [OUTGOING_DIR, INCOMING_DIR] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let mib = vec![1u8; 1 << 20];
    for i in 0..attachment_mib {
        let sub = if i % 2 == 0 {
            OUTGOING_DIR
        } else {
            INCOMING_DIR
        };
        std::fs::write(dir.join(sub).join(format!("{i:064x}")), &mib).unwrap();
    }
    store
}

fn wipe(c: &mut Criterion) {
    let mut group = c.benchmark_group("wipe");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(20));
    for (name, cables, mib) in [("empty store", 0, 0), ("2000 cables, 64 MiB", 2000, 64)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let store = device(dir.path(), cables, mib);
                    (dir, store)
                },
                |(dir, store)| {
                    drop(store);
                    assert!(wipe_files(dir.path()).unwrap());
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, wipe);
criterion_main!(benches);
