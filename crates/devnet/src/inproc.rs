//! In-process fixtures for scenarios that hold the client library directly (as the desktop
//! does) against a real post on loopback: a cheap key derivation, a diplomat enrolled with a
//! one-time code, and waiting for an event.
//!
//! These are test fixtures: a step that fails panics with what went wrong, as a failed
//! assertion does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use valise_client::client::{Client, Event};
use valise_client::enrol::{Invitation, enrol};
use valise_client::handle::EventStream;
use valise_crypto::at_rest::KdfParams;
use valise_proto::v1::Classification;
use valise_relay::enrolment::Invitation as Code;
use valise_relay::limits::Limits;

use crate::local::{LocalPost, start_post};

/// A cheap Argon2id for throwaway stores.
pub const FAST: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// Only so that a broken push fails a test instead of hanging it; nothing is timed.
pub const GIVE_UP: Duration = Duration::from_secs(60);

/// The passphrase of every in-process diplomat.
pub const INPROC_PASSPHRASE: &[u8] = b"in-process passphrase, tests";

/// A post named `paris` of `mfa.example` on loopback, with a fresh root, in a temporary folder
/// (devices go in its `devices` folder).
pub fn post() -> (tempfile::TempDir, LocalPost) {
    let dir = tempfile::tempdir().unwrap();
    let post = start_post(
        &dir.path().join("node"),
        "mfa.example",
        "paris",
        Limits::default(),
    )
    .unwrap();
    (dir, post)
}

/// Enrols `user` at `post` with a one-time code, into `dir`.
pub async fn diplomat(
    post: &LocalPost,
    dir: &Path,
    user: &str,
    clearance: Classification,
    offices: &[&str],
) -> Client {
    let code = post
        .node
        .issue_code(Code {
            user: user.into(),
            display_name: format!("{user} (full name)"),
            clearance,
            offices: offices.iter().map(|o| (*o).to_owned()).collect(),
            foreign_national: false,
        })
        .unwrap();
    let invitation = Invitation {
        node_addr: post.addr.clone(),
        code,
        ca_fingerprint: post.fingerprint.clone(),
    };
    enrol(dir, INPROC_PASSPHRASE, FAST, &invitation)
        .await
        .unwrap()
}

/// Waits for the first event that `pick` accepts, and returns what it picked.
pub async fn until<T>(events: &mut EventStream, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    tokio::time::timeout(GIVE_UP, async {
        loop {
            let event = events.next().await.expect("the handle ended");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the event never came")
}
