//! What an operator meets after a mistake with a node's files: another node's keys or
//! certificates, a deleted store, a lost anchor. The node refuses to start, says what is wrong
//! and what to do, and serves again once the operator has put things right or accepted the
//! loss deliberately with `valise-relay recover` (which the audit log records).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASSPHRASE, paris, relay, start_node, stop_node, text};

/// A Paris post (started and stopped once, so its stores exist) and a Rome post issued by the
/// same root, in one folder.
fn paris_and_rome() -> tempfile::TempDir {
    let dir = paris();
    let out = relay(
        &[
            "ca",
            "issue-node",
            "--ca",
            "ca",
            "--name",
            "rome",
            "--kind",
            "post",
            "--addr",
            "localhost:0",
            "--out",
            "rome",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    let (node, _) = start_node(dir.path());
    stop_node(node);
    dir
}

/// Runs the Paris node and expects it to refuse to start within a few seconds; returns what
/// it said.
fn refused_start(dir: &Path) -> String {
    let mut node = Command::new(env!("CARGO_BIN_EXE_valise-relay"))
        .args(["run", "--config", "paris/node.toml"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            node.kill().unwrap();
            panic!("the node started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = node.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the node exited cleanly: {}",
        text(&out)
    );
    text(&out)
}

fn copy(dir: &Path, from: &str, to: &str) {
    std::fs::copy(dir.join(from), dir.join(to)).unwrap();
}

fn recover(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["recover", "--config", "paris/node.toml"];
    all.extend_from_slice(args);
    let out = relay(&all, dir, PASSPHRASE);
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

/// The node starts, serves and stops again.
fn starts(dir: &Path) {
    let (node, _) = start_node(dir);
    stop_node(node);
}

fn audit_shows(dir: &Path, word: &str) -> bool {
    let out = relay(
        &[
            "audit",
            "show",
            "--config",
            "paris/node.toml",
            "--last",
            "50",
        ],
        dir,
        PASSPHRASE,
    );
    text(&out).contains(word)
}

#[test]
fn another_nodes_storage_key_is_refused_at_start() {
    let dir = paris_and_rome();
    std::fs::copy(
        dir.path().join("paris/node-storage.key"),
        dir.path().join("paris-storage.key.saved"),
    )
    .unwrap();
    copy(
        dir.path(),
        "rome/node-storage.key",
        "paris/node-storage.key",
    );
    let said = refused_start(dir.path());
    assert!(
        said.contains("sealed under another node storage key than this node's node-storage.key"),
        "{said}"
    );
    copy(
        dir.path(),
        "paris-storage.key.saved",
        "paris/node-storage.key",
    );
    starts(dir.path());
}

#[test]
fn another_posts_certificates_and_enrolment_files_are_refused_at_start() {
    let dir = paris_and_rome();
    for (files, expected) in [
        (&["node.pem", "node.key"][..], "names rome.mfa.example"),
        (
            &["enrolment.cert", "enrolment.key"][..],
            "enrolment key of rome",
        ),
        (
            &["post-ca.pem", "post-ca.key"][..],
            "devices.rome.mfa.example",
        ),
    ] {
        for file in files {
            copy(
                dir.path(),
                &format!("paris/{file}"),
                &format!("paris/{file}.saved"),
            );
            copy(
                dir.path(),
                &format!("rome/{file}"),
                &format!("paris/{file}"),
            );
        }
        let said = refused_start(dir.path());
        assert!(
            said.contains("belongs to another node") && said.contains(expected),
            "{files:?}: {said}"
        );
        for file in files {
            copy(
                dir.path(),
                &format!("paris/{file}.saved"),
                &format!("paris/{file}"),
            );
        }
    }
    starts(dir.path());
}

#[test]
fn a_deleted_store_is_refused_until_restored_or_its_loss_accepted() {
    let dir = paris_and_rome();
    let data = dir.path().join("paris/data");
    for store in ["queue", "directory"] {
        let saved = dir.path().join(format!("{store}.saved"));
        std::fs::rename(data.join(store), &saved).unwrap();
        let said = refused_start(dir.path());
        assert!(
            said.contains(&format!("{store} is missing"))
                && said.contains(&format!("--start-empty {store}")),
            "{said}"
        );
        assert!(
            !data.join(store).exists(),
            "nothing was created in its place"
        );
        std::fs::rename(&saved, data.join(store)).unwrap();
    }
    starts(dir.path());

    // Lost for good: the operator says so, and the audit log keeps it.
    std::fs::remove_dir_all(data.join("queue")).unwrap();
    let said = recover(dir.path(), &["--start-empty", "queue"]);
    assert!(said.contains("queue: will start empty"), "{said}");
    starts(dir.path());
    assert!(audit_shows(dir.path(), "recover_start_empty:queue"));
    // Another store's folder swapped in is refused as well.
    std::fs::remove_dir_all(data.join("directory")).unwrap();
    std::fs::create_dir_all(data.join("directory")).unwrap();
    let said = refused_start(dir.path());
    assert!(
        said.contains("is not the store this node created"),
        "{said}"
    );
}

#[test]
fn a_deleted_anchor_is_refused_until_restored_or_recreated() {
    let dir = paris_and_rome();
    let anchor = dir.path().join("paris/audit.anchor");
    assert!(anchor.exists());
    std::fs::remove_file(&anchor).unwrap();
    let said = refused_start(dir.path());
    assert!(
        said.contains("audit.anchor is missing") && said.contains("--recreate-anchor"),
        "{said}"
    );
    assert!(!anchor.exists(), "the anchor was not quietly written anew");
    recover(dir.path(), &["--recreate-anchor"]);
    assert!(anchor.exists());
    starts(dir.path());
    assert!(audit_shows(dir.path(), "recover_recreate_anchor"));
}
