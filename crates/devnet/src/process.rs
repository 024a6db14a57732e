//! Networks of processes, driving the built binaries as their users do: ministry IT runs
//! `valise-relay` (a CA, then nodes issued from it, each a child process), diplomats run
//! `valise`, each device with its own data folder. The harness of the end-to-end scenarios
//! (`tests/tests/`).
//!
//! These are test fixtures: a step that fails panics with what went wrong, as a failed
//! assertion does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;

/// The CA's and the node's passphrase in these scenarios.
pub const IT_PASSPHRASE: &str = "ministry it passphrase";
/// Every diplomat's passphrase in these scenarios.
pub const PASSPHRASE: &str = "diplomat passphrase 1";

/// The folder the workspace's binaries are built into, next to the running test's own
/// executable (whichever package's test it is: every package of the workspace builds into
/// the same target folder).
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
            // This crate's folder: any folder of the workspace builds into its target.
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

/// Writes `len` bytes that do not repeat in any short period to `path`, as a file to attach,
/// and returns them.
pub fn write_attachment(path: &Path, len: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path, &data).unwrap();
    data
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

/// A ministry's network as IT sets it up: a CA, then nodes issued from it, each in a folder
/// `<name>/` beside `ca/`.
pub struct Network {
    /// Holds `ca/` and each node's folder.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    /// The root's fingerprint, as handed to diplomats.
    pub fingerprint: String,
}

impl Network {
    /// Creates the CA.
    pub fn new() -> Network {
        let dir = tempfile::tempdir().unwrap();
        let init = relay(
            dir.path(),
            &["ca", "init", "--ministry", "mfa.example", "--out", "ca"],
        );
        assert!(init.status.success(), "{}", text(&init));
        let fingerprint = text(&init)
            .lines()
            .find_map(|l| {
                l.split_once("Root fingerprint:")
                    .map(|(_, fp)| fp.trim().to_owned())
            })
            .expect("ca init prints the root fingerprint");
        Network {
            dir: std::sync::Arc::new(dir),
            fingerprint,
        }
    }

    /// Issues the hub `name` on a free loopback port, kept across restarts.
    pub fn hub(&self, name: &str) -> Node {
        self.issue(name, "hub", None)
    }

    /// Issues post `name`, dialling `hub` if given.
    pub fn post(&self, name: &str, hub: Option<&Node>) -> Node {
        self.issue(name, "post", hub.map(|h| h.addr.as_str()))
    }

    fn issue(&self, name: &str, kind: &str, hub: Option<&str>) -> Node {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "ca",
            "issue-node",
            "--ca",
            "ca",
            "--name",
            name,
            "--kind",
            kind,
            "--addr",
            &addr,
            "--out",
            name,
        ];
        if let Some(hub) = hub {
            args.extend(["--hub", hub]);
        }
        let issue = relay(self.dir.path(), &args);
        assert!(issue.status.success(), "{}", text(&issue));
        let config = self.dir.path().join(name).join("node.toml");
        let mut toml = std::fs::read_to_string(&config).unwrap();
        // Scenarios run side by side: each node gets its own metrics port; links are checked
        // quickly.
        toml.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
        std::fs::write(&config, toml).unwrap();
        Node {
            dir: std::sync::Arc::clone(&self.dir),
            name: name.to_owned(),
            addr,
            fingerprint: self.fingerprint.clone(),
            node: None,
        }
    }
}

impl Default for Network {
    fn default() -> Self {
        Self::new()
    }
}

/// One node of a [`Network`], run as a child process.
pub struct Node {
    /// The network's folder.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    /// The node's name.
    pub name: String,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The root's fingerprint, as handed to diplomats.
    pub fingerprint: String,
    node: Option<Child>,
}

/// A lone post: a CA and the Paris node, with no hub.
pub type Post = Node;

impl Node {
    /// Creates a CA and issues the Paris node alone on a free loopback port.
    pub fn new() -> Node {
        Network::new().post("paris", None)
    }

    /// The node's configuration file, relative to the network's folder.
    pub fn config(&self) -> String {
        format!("{}/node.toml", self.name)
    }

    /// Appends `toml` to the node's configuration (before it starts).
    pub fn configure(&self, toml: &str) {
        let path = self.dir.path().join(self.config());
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push('\n');
        text.push_str(toml);
        std::fs::write(&path, text).unwrap();
    }

    /// Runs `valise-relay` with `args` in the network's folder.
    pub fn relay(&self, args: &[&str]) -> Output {
        relay(self.dir.path(), args)
    }

    /// Starts the node and waits until it listens.
    pub fn start(&mut self) {
        let mut node = Command::new(bin("valise-relay"))
            .args(["run", "--config", &self.config()])
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

    /// Kills the node outright (SIGKILL): nothing is flushed, nothing is said goodbye.
    pub fn kill(&mut self) {
        if let Some(mut node) = self.node.take() {
            node.kill().unwrap();
            node.wait().unwrap();
        }
    }

    /// Issues an enrolment code for `user`; returns it.
    pub fn invite(&self, user: &str, clearance: &str, offices: &[&str]) -> String {
        self.invite_with(user, clearance, offices, &[])
    }

    /// Issues an enrolment code for `user` with further `enroll` options; returns it.
    pub fn invite_with(
        &self,
        user: &str,
        clearance: &str,
        offices: &[&str],
        options: &[&str],
    ) -> String {
        let config = self.config();
        let mut args = vec![
            "enroll",
            "--config",
            &config,
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
        args.extend_from_slice(options);
        let out = self.relay(&args);
        assert!(out.status.success(), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["code"].as_str().unwrap().to_owned()
    }

    /// Revokes every device of `user`.
    pub fn revoke(&self, user: &str) {
        let out = self.relay(&[
            "revoke",
            "--config",
            &self.config(),
            "--user",
            user,
            "--reason",
            "test",
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Enrols a new diplomat and returns their device.
    pub fn enrol(&self, user: &str, clearance: &str, offices: &[&str]) -> Diplomat {
        self.enrol_with(user, clearance, offices, &[])
    }

    /// Enrols a new diplomat with further `enroll` options (e.g. `--foreign-national`).
    pub fn enrol_with(
        &self,
        user: &str,
        clearance: &str,
        offices: &[&str],
        options: &[&str],
    ) -> Diplomat {
        let code = self.invite_with(user, clearance, offices, options);
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

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Node {
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
