//! Cross-crate end-to-end scenarios, driving the built binaries as their users do: ministry IT
//! runs `valise-relay`, diplomats run `valise`. This library is the harness the scenarios in
//! `tests/tests/` share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;

/// The CA's and the node's passphrase in these scenarios.
pub const IT_PASSPHRASE: &str = "ministry it passphrase";
/// Every diplomat's passphrase in these scenarios.
pub const PASSPHRASE: &str = "diplomat passphrase 1";

/// The folder the workspace's binaries are built into, next to this test's own executable.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent().unwrap().parent().unwrap().to_owned()
}

/// The path of a workspace binary, brought up to date first: when only this package's tests
/// run, cargo does not rebuild other packages' binaries.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--profile",
                "test",
                "--offline",
                "-p",
                "valise-cli",
                "-p",
                "valise-relay",
                "--bins",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "building the binaries failed");
    });
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Stdout and stderr together, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A free UDP port on loopback, so a node can come back on the same address after a restart.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A post as ministry IT set it up: a CA and the Paris node, in a folder of their own.
pub struct Post {
    /// Holds `ca/` and `paris/`.
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The root's fingerprint, as handed to diplomats.
    pub fingerprint: String,
    node: Option<Child>,
}

impl Post {
    /// Creates the CA and issues the Paris node on a fixed loopback port.
    pub fn new() -> Post {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let init = relay(
            dir.path(),
            &["ca", "init", "--ministry", "mfa.example", "--out", "ca"],
        );
        assert!(init.status.success(), "{}", text(&init));
        let addr = format!("127.0.0.1:{port}");
        let issue = relay(
            dir.path(),
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
                &addr,
                "--out",
                "paris",
            ],
        );
        assert!(issue.status.success(), "{}", text(&issue));
        let config = dir.path().join("paris/node.toml");
        let mut toml = std::fs::read_to_string(&config).unwrap();
        // Scenarios run side by side: each node gets its own metrics port.
        toml.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
        std::fs::write(&config, toml).unwrap();
        let fingerprint = text(&init)
            .lines()
            .find_map(|l| {
                l.split_once("Root fingerprint:")
                    .map(|(_, fp)| fp.trim().to_owned())
            })
            .expect("ca init prints the root fingerprint");
        Post {
            dir,
            addr,
            fingerprint,
            node: None,
        }
    }

    /// Starts the node and waits until it listens.
    pub fn start(&mut self) {
        let mut node = Command::new(bin("valise-relay"))
            .args(["run", "--config", "paris/node.toml"])
            .current_dir(self.dir.path())
            .env("VALISE_PASSPHRASE", IT_PASSPHRASE)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(node.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.contains("listening on"),
            "the node did not start: {line}"
        );
        self.node = Some(node);
    }

    /// Stops the node cleanly (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            Command::new("kill")
                .args(["-TERM", &node.id().to_string()])
                .status()
                .unwrap();
            assert!(node.wait().unwrap().success());
        }
    }

    /// Issues an enrolment code for `user`; returns it.
    pub fn invite(&self, user: &str, clearance: &str, offices: &[&str]) -> String {
        let mut args = vec![
            "enroll",
            "--config",
            "paris/node.toml",
            "--user",
            user,
            "--name",
            user,
            "--clearance",
            clearance,
            "--json",
        ];
        for office in offices {
            args.extend(["--office", office]);
        }
        let out = relay(self.dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["code"].as_str().unwrap().to_owned()
    }

    /// Revokes every device of `user`.
    pub fn revoke(&self, user: &str) {
        let out = relay(
            self.dir.path(),
            &[
                "revoke",
                "--config",
                "paris/node.toml",
                "--user",
                user,
                "--reason",
                "test",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Enrols a new diplomat and returns their device.
    pub fn enrol(&self, user: &str, clearance: &str, offices: &[&str]) -> Diplomat {
        let code = self.invite(user, clearance, offices);
        let diplomat = Diplomat {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = diplomat.valise(&[
            "enroll",
            "--node",
            &self.addr,
            "--code",
            &code,
            "--ca-fingerprint",
            &self.fingerprint,
        ]);
        assert!(out.status.success(), "enrolling {user}: {}", text(&out));
        diplomat
    }
}

impl Default for Post {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Post {
    fn drop(&mut self) {
        if let Some(mut node) = self.node.take() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

fn relay(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("valise-relay"))
        .args(args)
        .current_dir(dir)
        .env("VALISE_PASSPHRASE", IT_PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A diplomat's device: its own data folder.
pub struct Diplomat {
    /// The data folder.
    pub dir: tempfile::TempDir,
}

impl Diplomat {
    /// Runs `valise` with this device's folder and passphrase.
    pub fn valise(&self, args: &[&str]) -> Output {
        self.valise_with(args, PASSPHRASE)
    }

    /// Runs `valise` with another passphrase.
    pub fn valise_with(&self, args: &[&str], passphrase: &str) -> Output {
        Command::new(bin("valise"))
            .args(args)
            .env("VALISE_DATA_DIR", self.dir.path())
            .env("VALISE_PASSPHRASE", passphrase)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `valise … --json`, asserts success, and parses the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.valise(&[args, &["--json"]].concat());
        assert!(out.status.success(), "valise {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("valise {args:?} printed no JSON ({e}): {}", text(&out)))
    }

    /// Sends a cable and returns its id.
    pub fn send(&self, args: &[&str]) -> String {
        let json = self.json(&[&["send"], args].concat());
        json["id"].as_str().unwrap().to_owned()
    }
}
