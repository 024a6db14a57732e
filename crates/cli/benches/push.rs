//! Live delivery: how long after the node takes custody of a FLASH cable an open client's
//! handle reports it (`Event::Received`). Alice sends through the library; Bob's
//! `ClientHandle` holds a live subscription to the same node on loopback. The clock starts as
//! Alice submits and stops when Bob's handle has stored the cable and says so: it holds the
//! node's custody (one group commit with fsync, and its audit record), the push, and Bob's
//! checks and store, so custody → event is below it. DESIGN §12: within 1 s of custody.
//!
//! Run: `cargo bench -p valise-cli --bench push` (prints p50, p99 and max over 200 cables,
//! idle, then with Bob's queue busy with ROUTINE traffic).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use valise_client::client::{Client, Event};
use valise_client::compose::CableDraft;
use valise_client::enrol::{Invitation, enrol};
use valise_client::handle::ClientHandle;
use valise_client::sync::NoProgress;
use valise_crypto::at_rest::KdfParams;
use valise_devnet::local::{LocalPost, start_post};
use valise_proto::v1::{Classification, Precedence};
use valise_relay::enrolment::Invitation as Code;
use valise_relay::limits::Limits;

const CABLES: usize = 200;
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

fn draft(precedence: Precedence, i: usize) -> CableDraft {
    CableDraft {
        action: vec!["bob@paris".into()],
        info: vec![],
        classification: Classification::Secret,
        precedence,
        niact: false,
        caveats: vec![],
        tags: vec!["PREL".into()],
        subject: format!("Cable {i}"),
        text: "x".repeat(2_000),
        attachments: vec![],
        references: Vec::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
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
    runtime.block_on(async {
        let mut alice = diplomat(&post, &devices, "alice").await;
        let bob = diplomat(&post, &devices, "bob").await;
        alice.sync(&NoProgress).await.unwrap();
        let (_bob, mut events) = ClientHandle::spawn(bob);
        // Bob's first sync done and his subscription open.
        loop {
            if let Some(Event::SyncFinished { .. }) = events.next().await {
                break;
            }
        }
        // Each Received event, stamped the moment Bob's handle emits it.
        let (stamped_tx, mut stamped) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Event::Received { id, .. } = event {
                    let _ = stamped_tx.send((id, Instant::now()));
                }
            }
        });
        for (phase, background) in [("idle", 0), ("sent with 20 ROUTINE cables each", 20)] {
            let mut latencies = Vec::with_capacity(CABLES);
            for i in 0..CABLES {
                for j in 0..background {
                    alice.compose(&draft(Precedence::Routine, i * 100 + j)).unwrap();
                }
                let id = alice.compose(&draft(Precedence::Flash, i)).unwrap();
                let submitted = Instant::now();
                let report = alice.send_pending(&NoProgress).await.unwrap();
                assert!(report.sent.contains(&id), "custody taken");
                loop {
                    let (got, at) = stamped.recv().await.expect("the handle ended");
                    if got == id {
                        latencies.push(at - submitted);
                        break;
                    }
                }
            }
            latencies.sort();
            println!(
                "FLASH submit -> Bob's event (custody, push, store), {phase}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({CABLES} cables; target: within 1 s of custody)",
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                latencies.last().unwrap().as_secs_f64() * 1e3,
            );
        }
    });
}
