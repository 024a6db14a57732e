//! `valise-relay` as ministry IT uses it: create the CA, issue a node, run it, stop it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

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

    let wrong = relay(ISSUE_PARIS, dir.path(), "not the passphrase");
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("wrong passphrase"),
        "{}",
        text(&wrong)
    );

    let out = relay(
        &[ISSUE_PARIS, &["--hub", "hq.mfa.example:4433"]].concat(),
        dir.path(),
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    for secret in [
        "node.key",
        "node-signing.key",
        "node-storage.key",
        "enrolment.key",
        "post-ca.key",
    ] {
        let mode = std::fs::metadata(dir.path().join("paris").join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{secret} is readable by others");
    }

    let config = dir.path().join("paris/node.toml");
    let toml = std::fs::read_to_string(&config).unwrap() + "\n[log]\nformat = \"json\"\n";
    std::fs::write(&config, toml).unwrap();
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

    // Operator logs: one JSON object per line, naming the audited start and stop.
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut logs).unwrap();
    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for kind in [
        "AUDIT_EVENT_KIND_NODE_STARTED",
        "AUDIT_EVENT_KIND_NODE_STOPPED",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == kind && e["actor"] == "paris"),
            "no {kind} in the log: {logs}"
        );
    }

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

    // The queue is sealed under the storage key: without it the node refuses to start
    // rather than serve a queue it cannot read.
    std::fs::remove_file(dir.path().join("paris/node-storage.key")).unwrap();
    let out = relay(
        &["run", "--config", "paris/node.toml"],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("node storage key is missing") && text(&out).contains("restore"),
        "{}",
        text(&out)
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

/// Enrols a device with `code`, then says hello with its new certificate.
async fn enrol_and_hello(
    dir: &Path,
    addr: std::net::SocketAddr,
    code: &str,
) -> (bool, Option<valise_pki::CertifiedKey>) {
    let Some(device) = enrol_device(dir, addr, code).await else {
        return (false, None);
    };
    let hello = valise_proto::v1::ClientFrame {
        frame: Some(valise_proto::v1::client_frame::Frame::Hello(
            Default::default(),
        )),
    };
    let welcomed = match connect(dir, addr, Some(&device.tls)).await {
        Some(conn) => matches!(
            exchange(&conn, &hello).await,
            Some(valise_proto::v1::NodeFrame {
                frame: Some(valise_proto::v1::node_frame::Frame::Welcome(_))
            })
        ),
        None => false,
    };
    (welcomed, Some(device.tls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_and_revocation_work_with_the_node_stopped_or_running() {
    let dir = paris();
    // Stopped: the code goes straight into the node's store.
    let offline = relay(
        &[
            "enroll",
            "--config",
            "paris/node.toml",
            "--user",
            "alice",
            "--name",
            "Alice Martin",
            "--clearance",
            "SECRET",
            "--office",
            "POL",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(offline.status.success(), "{}", text(&offline));
    let code = code_in(&offline);
    assert_eq!(code.len(), 24, "{code}");
    assert!(text(&offline).contains("fingerprint"));

    let (node, addr) = start_node(dir.path());
    // The device enrols with the code issued while the node was stopped.
    let (welcomed, alice_cert) = enrol_and_hello(dir.path(), addr, &code).await;
    assert!(welcomed, "the enrolled device was not served");

    // Running: through the admin socket, with the JSON contract.
    let online = relay(
        &[
            "enroll",
            "--config",
            "paris/node.toml",
            "--user",
            "bob",
            "--name",
            "Bob",
            "--clearance",
            "top secret",
            "--json",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(online.status.success(), "{}", text(&online));
    let json = String::from_utf8(online.stdout).unwrap();
    for field in ["\"code\":", "\"ca_fingerprint\":", "\"node\":\"paris\""] {
        assert!(json.contains(field), "{json}");
    }

    // Revoking Alice cuts her off at once.
    let revoked = relay(
        &[
            "revoke",
            "--config",
            "paris/node.toml",
            "--user",
            "alice",
            "--reason",
            "laptop lost",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert!(text(&revoked).contains("revoked device"));
    let again = relay(
        &[
            "revoke",
            "--config",
            "paris/node.toml",
            "--user",
            "nobody",
            "--reason",
            "x",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("no active device"),
        "{}",
        text(&again)
    );
    let hello_after = {
        use valise_proto::v1::{ClientFrame, client_frame};
        let ca_pem = std::fs::read_to_string(dir.path().join("paris/ca.pem")).unwrap();
        let config = valise_crypto::tls::client_config(&ca_pem, alice_cert.as_ref()).unwrap();
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
        match endpoint.connect(addr, "paris.mfa.example").unwrap().await {
            Err(_) => false,
            Ok(conn) => async {
                let (mut send, mut recv) = conn.open_bi().await.ok()?;
                send.write_all(&valise_proto::framing::encode(&ClientFrame {
                    frame: Some(client_frame::Frame::Hello(Default::default())),
                }))
                .await
                .ok()?;
                let _ = send.finish();
                recv.read_to_end(1 << 16).await.ok()
            }
            .await
            .is_some_and(|b| !b.is_empty()),
        }
    };
    assert!(!hello_after, "a revoked device was still served");
    stop_node(node);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn audit_commands_work_running_or_stopped_and_catch_a_rollback() {
    let dir = paris();
    let audit = |args: &[&str]| {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        relay(&all, dir.path(), PASSPHRASE)
    };
    // Run once, so the log has a start and a stop; keep a copy of the data as it was then.
    let (node, _) = start_node(dir.path());
    stop_node(node);
    copy_tree(&dir.path().join("paris/data"), &dir.path().join("old-data"));

    // Running: through the admin socket.
    let (node, _) = start_node(dir.path());
    let verified = audit(&["verify", "--config", "paris/node.toml"]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("verifies"), "{}", text(&verified));
    let shown = audit(&["show", "--config", "paris/node.toml"]);
    assert!(text(&shown).contains("NodeStarted"), "{}", text(&shown));
    let proof = audit(&["prove", "--config", "paris/node.toml", "--index", "0"]);
    assert!(
        text(&proof).starts_with("valise-audit-proof/v1"),
        "{}",
        text(&proof)
    );
    stop_node(node);

    // Stopped: directly on the store.
    let verified = audit(&["verify", "--config", "paris/node.toml"]);
    assert!(verified.status.success(), "{}", text(&verified));
    let exported = audit(&[
        "export",
        "--config",
        "paris/node.toml",
        "--out",
        "audit.export",
    ]);
    assert!(exported.status.success(), "{}", text(&exported));
    assert!(dir.path().join("audit.export").exists());
    let refused = audit(&[
        "export",
        "--config",
        "paris/node.toml",
        "--out",
        "audit.export",
    ]);
    assert!(
        text(&refused).contains("already exists"),
        "{}",
        text(&refused)
    );

    // The data directory replaced with its older copy: verify names the rollback.
    std::fs::remove_dir_all(dir.path().join("paris/data")).unwrap();
    copy_tree(&dir.path().join("old-data"), &dir.path().join("paris/data"));
    let rolled_back = audit(&["verify", "--config", "paris/node.toml"]);
    assert!(!rolled_back.status.success());
    assert!(
        text(&rolled_back).contains("rolled back"),
        "{}",
        text(&rolled_back)
    );
}

#[test]
fn destruction_stops_the_node_erases_keys_and_data_and_prevents_restart() {
    let dir = paris();
    let wrong = relay(
        &[
            "destroy",
            "--config",
            "paris/node.toml",
            "--confirm",
            "nairobi",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("--confirm must repeat the node's name (paris)"),
        "{}",
        text(&wrong)
    );

    // Destroyed while running: the node stops by itself.
    let (mut node, _) = start_node(dir.path());
    assert!(dir.path().join("paris/data/attachments").is_dir());
    let destroyed = relay(
        &[
            "destroy",
            "--config",
            "paris/node.toml",
            "--confirm",
            "paris",
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(destroyed.status.success(), "{}", text(&destroyed));
    assert!(node.wait().unwrap().success(), "the node stopped cleanly");
    for gone in [
        "node.key",
        "node-signing.key",
        "node-storage.key",
        "enrolment.key",
        "post-ca.key",
        "data/attachments",
        "data",
        "audit.anchor",
    ] {
        assert!(
            !dir.path().join("paris").join(gone).exists(),
            "{gone} survived destruction"
        );
    }
    let restart = relay(
        &["run", "--config", "paris/node.toml"],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!restart.status.success());
    assert!(
        text(&restart).contains("was destroyed (destroyed on 20"),
        "says when, as a date: {}",
        text(&restart)
    );
    assert!(
        text(&restart).contains("issue-node"),
        "says what to do: {}",
        text(&restart)
    );
}

/// An auditor holds only an export or a proof bundle and the keys `audit key` printed, on a
/// machine without the node: both verify, and a flipped byte in the export does not.
#[test]
fn an_auditor_checks_an_export_and_a_proof_with_only_the_files_and_keys() {
    let dir = paris();
    let (node, _) = start_node(dir.path());
    stop_node(node);
    let cfg = "paris/node.toml";
    let out = relay(&["audit", "key", "--config", cfg], dir.path(), PASSPHRASE);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    let key = printed
        .lines()
        .find_map(|l| l.strip_prefix("log key:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("valise/mfa.example/paris/audit+"), "{key}");
    assert!(
        printed.contains("witness key: valise/mfa.example/paris/witness+"),
        "{printed}"
    );
    let export = dir.path().join("paris.export");
    let out = relay(
        &[
            "audit",
            "export",
            "--config",
            cfg,
            "--out",
            export.to_str().unwrap(),
        ],
        dir.path(),
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    let proof = relay(
        &["audit", "prove", "--config", cfg, "--index", "0"],
        dir.path(),
        PASSPHRASE,
    );
    assert!(proof.status.success(), "{}", text(&proof));

    // The auditor's machine: a folder with the two files and nothing of the node's.
    let auditor = tempfile::tempdir().unwrap();
    std::fs::copy(&export, auditor.path().join("paris.export")).unwrap();
    std::fs::write(auditor.path().join("entry-0.proof"), &proof.stdout).unwrap();
    let out = relay(
        &["audit", "verify", "--export", "paris.export", "--key", &key],
        auditor.path(),
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("export of valise/mfa.example/paris/audit verifies"),
        "{}",
        text(&out)
    );
    let out = relay(
        &["audit", "verify", "--proof", "entry-0.proof", "--key", &key],
        auditor.path(),
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("entry 0 is in the log"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("NodeStarted"), "{}", text(&out));

    let mut bytes = std::fs::read(auditor.path().join("paris.export")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(auditor.path().join("flipped.export"), &bytes).unwrap();
    let out = relay(
        &[
            "audit",
            "verify",
            "--export",
            "flipped.export",
            "--key",
            &key,
        ],
        auditor.path(),
        PASSPHRASE,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("does not verify"), "{}", text(&out));

    // An entry past the end is named as such.
    let out = relay(
        &["audit", "prove", "--config", cfg, "--index", "99999"],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("entry 99999 (entries are numbered from 0) is outside the log"),
        "{}",
        text(&out)
    );
}

/// A node that cannot start (its metrics port is taken) says why and records no start in its
/// audit log: "started" is recorded only once it serves.
#[test]
fn a_node_that_fails_to_start_records_no_start() {
    let dir = paris();
    let (node, _) = start_node(dir.path());
    stop_node(node);
    let starts = || {
        let out = relay(
            &[
                "audit",
                "show",
                "--config",
                "paris/node.toml",
                "--last",
                "1000",
            ],
            dir.path(),
            PASSPHRASE,
        );
        text(&out).matches("NodeStarted").count()
    };
    assert_eq!(starts(), 1);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = dir.path().join("paris/node.toml");
    let toml = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, toml).unwrap();
    let out = relay(
        &["run", "--config", "paris/node.toml"],
        dir.path(),
        PASSPHRASE,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("change metrics.listen"),
        "{}",
        text(&out)
    );
    drop(taken);
    assert_eq!(starts(), 1, "the failed start left no NodeStarted");
}
