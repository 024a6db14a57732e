//! `valise-relay` as ministry IT uses it: create the CA, issue a node, run it, stop it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const PASSPHRASE: &str = "correct horse battery staple";

fn relay(args: &[&str], dir: &Path, passphrase: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_valise-relay"))
        .args(args)
        .current_dir(dir)
        .env("VALISE_PASSPHRASE", passphrase)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_command_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["ca", "--help"],
        &["ca", "init", "--help"],
        &["ca", "issue-node", "--help"],
        &["run", "--help"],
    ] {
        let out = relay(args, dir.path(), PASSPHRASE);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    for args in [
        &["ca", "init", "--help"][..],
        &["ca", "issue-node", "--help"],
        &["run", "--help"],
    ] {
        assert!(
            text(&relay(args, dir.path(), PASSPHRASE)).contains("Example"),
            "{args:?} has no example"
        );
    }
}

#[test]
fn a_ca_and_a_post_are_set_up_and_the_post_runs_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = relay(
        &["ca", "init", "--ministry", "mfa.example", "--out", "ca"],
        dir.path(),
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Root fingerprint:"));
    let sealed = std::fs::read(dir.path().join("ca/ca.key.sealed")).unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"),
        "the CA key is sealed"
    );

    let again = relay(
        &["ca", "init", "--ministry", "mfa.example", "--out", "ca"],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("refusing to overwrite"),
        "{}",
        text(&again)
    );

    let wrong = relay(
        &[
            "ca",
            "issue-node",
            "--ca",
            "ca",
            "--name",
            "paris",
            "--kind",
            "post",
            "--addr",
            "localhost:0",
            "--out",
            "paris",
        ],
        dir.path(),
        "not the passphrase",
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("wrong passphrase"),
        "{}",
        text(&wrong)
    );

    let out = relay(
        &[
            "ca",
            "issue-node",
            "--ca",
            "ca",
            "--name",
            "paris",
            "--kind",
            "post",
            "--addr",
            "localhost:0",
            "--hub",
            "hq.mfa.example:4433",
            "--out",
            "paris",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    for secret in [
        "node.key",
        "node-signing.key",
        "enrolment.key",
        "post-ca.key",
    ] {
        let mode = std::fs::metadata(dir.path().join("paris").join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{secret} is readable by others");
    }

    let mut node = Command::new(env!("CARGO_BIN_EXE_valise-relay"))
        .args(["run", "--config", "paris/node.toml"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("valise-relay paris listening on"),
        "{first}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let exit = node.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}, output {rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("stopped"));

    // The node's audit log verifies with the node's key and records its start and stop.
    let seed = std::fs::read(dir.path().join("paris/node-signing.key")).unwrap();
    let key = valise_crypto::identity::IdentityKeyPair::from_seed(&seed).unwrap();
    let keys = valise_audit::VerifyKeys {
        log: valise_audit::note::NoteVerifier::ed25519(
            "valise/mfa.example/paris/audit",
            *key.public(),
        )
        .unwrap(),
        witnesses: vec![],
    };
    let report =
        valise_audit::verify::verify_dir(&dir.path().join("paris/data/audit"), &keys, None)
            .unwrap();
    assert_eq!(report.entries, 2, "node started, node stopped");
    assert!(
        dir.path().join("paris/audit.anchor").exists(),
        "the anchor lives outside the data directory"
    );
}

#[test]
fn a_missing_or_broken_configuration_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = relay(&["run", "--config", "nowhere.toml"], dir.path(), PASSPHRASE);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("nowhere.toml"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"));
    std::fs::write(
        dir.path().join("bad.toml"),
        "[node]\nname = \"paris\"\nkind = \"post\"\nministry = \"mfa.example\"\ntypo = 1\n",
    )
    .unwrap();
    let out = relay(&["run", "--config", "bad.toml"], dir.path(), PASSPHRASE);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("unknown field `typo`"),
        "{}",
        text(&out)
    );
    let short = relay(
        &["ca", "init", "--ministry", "mfa.example", "--out", "ca"],
        dir.path(),
        "short",
    );
    assert!(
        text(&short).contains("at least 12 characters"),
        "{}",
        text(&short)
    );
}
