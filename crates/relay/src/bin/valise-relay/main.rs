//! `valise-relay`: the relay node ministry IT runs, and its administration commands. This file
//! holds the command line and sends each command to the module named after it:
//!
//! | command | module |
//! |---|---|
//! | `ca init`, `ca issue-node` | [`ca`] |
//! | `run` | [`run`] |
//! | `enroll` | [`enroll`] |
//! | `revoke` | [`revoke`] |
//! | `user update` | [`users`] |
//! | `status` | [`status`] |
//! | `audit verify`, `audit export`, `audit prove`, `audit show`, `audit key` | [`audit`] |
//! | `recover` | [`recover`] |
//! | `destroy` | [`destroy`] |
//!
//! Commands that work whether the node runs or not ask it first over its admin socket
//! ([`admin_client`]), and otherwise open its stores directly ([`stopped`]).

#![forbid(unsafe_code)]

mod admin_client;
mod audit;
mod ca;
mod clock;
mod destroy;
mod enroll;
mod recover;
mod revoke;
mod run;
mod status;
mod stopped;
mod users;

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use valise_relay::enrolment::Invitation;

/// The Valise relay node and its administration.
#[derive(Parser)]
#[command(name = "valise-relay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The ministry's offline certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issues a one-time enrolment code for a diplomat at this post.
    ///
    /// Works whether the node runs (through its admin socket) or not (directly on its data).
    /// Example: valise-relay enroll --config paris/node.toml --user alice --name "Alice Martin"
    ///          --clearance SECRET --office POL
    Enroll {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The user's name at the post, e.g. alice.
        #[arg(long)]
        user: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// UNCLASSIFIED, CONFIDENTIAL, SECRET or TOP SECRET.
        #[arg(long)]
        clearance: String,
        /// An office mailbox the user belongs to, e.g. POL (repeatable).
        #[arg(long = "office")]
        offices: Vec<String>,
        /// The user is not a national (locally employed staff): NOFORN cables never reach
        /// their devices.
        #[arg(long)]
        foreign_national: bool,
        /// Print {"code", "ca_fingerprint", "node"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Users at this post.
    #[command(subcommand)]
    User(UserCommand),
    /// Revokes a device, or every device of a user, at once.
    ///
    /// Works whether the node runs (its connections close at once) or not.
    /// Example: valise-relay revoke --config paris/node.toml --user alice --reason "laptop lost"
    Revoke {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The device id (32 hex digits).
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        device: Option<String>,
        /// The user whose devices to revoke.
        #[arg(long)]
        user: Option<String>,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
    /// Shows each link (up or down, since when, its last problem), the cables queued per link
    /// and precedence, and the last checkpoint each neighbour witnessed.
    ///
    /// A stopped node's queues and witnessed checkpoints are read from its files.
    /// Example: valise-relay status --config paris/node.toml
    Status {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The node's audit log: verify, export, prove, show.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Emergency destruction, for an evacuation: stops the node, overwrites and deletes its
    /// storage key (queued cables become unreadable at once) and its other keys, then deletes
    /// its data. Afterwards `run` refuses to start.
    ///
    /// Example: valise-relay destroy --config paris/node.toml --confirm paris
    Destroy {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The node's name, repeated, to confirm.
        #[arg(long)]
        confirm: String,
    },
    /// After a fault, accepts a loss deliberately so a stopped node can start again: a store
    /// lost for good starts empty, or a lost anchor is written anew from the audit store.
    /// Each choice is recorded in the audit log. Use it only once restoring from backup has
    /// proved impossible.
    ///
    /// Example: valise-relay recover --config paris/node.toml --start-empty queue
    Recover {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// A store lost for good, to start empty: queue, directory, links, attachments or
        /// enrolment (repeatable).
        #[arg(long = "start-empty")]
        start_empty: Vec<String>,
        /// Write a new anchor from the audit store's latest checkpoint.
        #[arg(long)]
        recreate_anchor: bool,
    },
    /// Runs a node until SIGTERM or Ctrl-C, then shuts down cleanly.
    ///
    /// Example: valise-relay run --config /etc/valise/paris/node.toml
    Run {
        /// The node's configuration (written by `ca issue-node`).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Changes a user's details on every one of the user's devices at once: each record is
    /// re-signed by the post, replicated and audited. A lowered clearance also drops what is
    /// queued for the user above it.
    ///
    /// Example: valise-relay user update --config paris/node.toml --user alice
    ///          --clearance "TOP SECRET" --office POL --office ECON
    Update {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The user's name at the post, e.g. alice (case-sensitive).
        #[arg(long)]
        user: String,
        /// A new full name.
        #[arg(long)]
        name: Option<String>,
        /// A new clearance: UNCLASSIFIED, CONFIDENTIAL, SECRET or TOP SECRET.
        #[arg(long)]
        clearance: Option<String>,
        /// The user's offices, all of them (repeatable); replaces the current ones.
        #[arg(long = "office", conflicts_with = "no_offices")]
        offices: Vec<String>,
        /// The user belongs to no office any more.
        #[arg(long)]
        no_offices: bool,
        /// The user is not a national (NOFORN cables no longer reach them).
        #[arg(long, conflicts_with = "national")]
        foreign_national: bool,
        /// The user is a national (clears the foreign-national mark).
        #[arg(long)]
        national: bool,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Creates the ministry root CA; its key is sealed under a passphrase.
    ///
    /// Example: VALISE_PASSPHRASE=… valise-relay ca init --ministry mfa.example --out ./ca
    Init {
        /// The ministry's name, e.g. mfa.example.
        #[arg(long)]
        ministry: String,
        /// Where to write ca.pem and ca.key.sealed (keep the latter offline).
        #[arg(long)]
        out: PathBuf,
        /// Read the passphrase from this file instead of VALISE_PASSPHRASE or a prompt.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Issues a node's certificates and keys, and a ready-to-run node.toml.
    ///
    /// Example: valise-relay ca issue-node --ca ./ca --name paris --kind post
    ///          --addr paris.mfa.example:4433 --hub hq.mfa.example:4433 --out ./paris
    IssueNode {
        /// The CA folder written by `ca init`.
        #[arg(long)]
        ca: PathBuf,
        /// The node's name: hq, paris, un-newyork.
        #[arg(long)]
        name: String,
        /// hub or post.
        #[arg(long, value_enum)]
        kind: Kind,
        /// host:port clients and peers reach the node at.
        #[arg(long)]
        addr: String,
        /// Posts: the hub's host:port.
        #[arg(long)]
        hub: Option<String>,
        /// Where to write the node's files.
        #[arg(long)]
        out: PathBuf,
        /// Read the CA passphrase from this file instead of VALISE_PASSPHRASE or a prompt.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recomputes the whole log, checks every checkpoint and cosignature, and checks the log
    /// against the node's anchor (so a rolled-back data directory is caught). On an auditor's
    /// machine, without the node: `--export FILE --key VKEY` checks an export, and `--proof
    /// FILE --key VKEY` a proof bundle, with only the file and the keys.
    ///
    /// Examples: valise-relay audit verify --config paris/node.toml
    ///           valise-relay audit verify --export paris.export --key <vkey> --witness <vkey>
    ///           valise-relay audit verify --proof entry-42.proof --key <vkey>
    Verify {
        /// The node's configuration (on the node's machine).
        #[arg(long, required_unless_present_any = ["export", "proof"], conflicts_with_all = ["export", "proof"])]
        config: Option<PathBuf>,
        /// An export written by `audit export`, checked without the node.
        #[arg(long, conflicts_with = "proof", requires = "key")]
        export: Option<PathBuf>,
        /// A proof bundle written by `audit prove`, checked without the node.
        #[arg(long, requires = "key")]
        proof: Option<PathBuf>,
        /// The log's verifier key (as `audit key` prints it), for --export and --proof.
        #[arg(long)]
        key: Option<String>,
        /// A witness's verifier key whose cosignatures to check (repeatable).
        #[arg(long = "witness")]
        witnesses: Vec<String>,
    },
    /// Prints the node's audit-log verifier key and its witness key (C2SP vkeys), to hand to
    /// auditors and to the operators of neighbouring nodes.
    ///
    /// Example: valise-relay audit key --config paris/node.toml
    Key {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Writes the log in the versioned export format, for an auditor.
    ///
    /// Example: valise-relay audit export --config paris/node.toml --out paris-audit.export
    Export {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The file to write (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints a self-contained inclusion proof of one entry, checkable offline.
    ///
    /// Example: valise-relay audit prove --config paris/node.toml --index 42
    Prove {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The entry's index.
        #[arg(long)]
        index: u64,
    },
    /// Lists the latest entries: index, time, kind, outcome, actor, reason.
    ///
    /// Example: valise-relay audit show --config paris/node.toml --last 50
    Show {
        /// The node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// How many entries, from the end.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Hub,
    Post,
}

fn main() {
    if let Err(e) = run_cli(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run_cli(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ca(CaCommand::Init {
            ministry,
            out,
            passphrase_file,
        }) => ca::init(&ministry, &out, passphrase_file.as_deref()),
        Command::Ca(CaCommand::IssueNode {
            ca,
            name,
            kind,
            addr,
            hub,
            out,
            passphrase_file,
        }) => ca::issue_node(
            &ca,
            &name,
            kind,
            &addr,
            hub.as_deref(),
            &out,
            passphrase_file.as_deref(),
        ),
        Command::Run { config } => run::run(&config),
        Command::Recover {
            config,
            start_empty,
            recreate_anchor,
        } => recover::recover(&config, &start_empty, recreate_anchor),
        Command::Destroy { config, confirm } => destroy::destroy(&config, &confirm),
        Command::Status { config, json } => status::status(&config, json),
        Command::Audit(AuditCommand::Verify {
            config: Some(config),
            witnesses,
            ..
        }) => audit::verify(&config, &witnesses),
        Command::Audit(AuditCommand::Verify {
            export: Some(export),
            key: Some(key),
            witnesses,
            ..
        }) => audit::verify_export_file(&export, &key, &witnesses),
        Command::Audit(AuditCommand::Verify {
            proof: Some(proof),
            key: Some(key),
            witnesses,
            ..
        }) => audit::verify_proof_file(&proof, &key, &witnesses),
        Command::Audit(AuditCommand::Verify { .. }) => {
            bail!("give --config FILE, or --export FILE --key VKEY, or --proof FILE --key VKEY")
        }
        Command::Audit(AuditCommand::Key { config }) => audit::key(&config),
        Command::Audit(AuditCommand::Export { config, out }) => audit::export(&config, &out),
        Command::Audit(AuditCommand::Prove { config, index }) => audit::prove(&config, index),
        Command::Audit(AuditCommand::Show { config, last }) => audit::show(&config, last),
        Command::Enroll {
            config,
            user,
            name,
            clearance,
            offices,
            foreign_national,
            json,
        } => enroll::enroll(
            &config,
            Invitation {
                user,
                display_name: name,
                clearance: clearance.parse()?,
                offices,
                foreign_national,
            },
            json,
        ),
        Command::User(UserCommand::Update {
            config,
            user,
            name,
            clearance,
            offices,
            no_offices,
            foreign_national,
            national,
        }) => {
            let change = valise_relay::users::Change {
                display_name: name,
                clearance: clearance.map(|c| c.parse()).transpose()?,
                offices: (no_offices || !offices.is_empty()).then_some(offices),
                foreign_national: (foreign_national || national).then_some(foreign_national),
            };
            users::update(&config, &user, &change)
        }
        Command::Revoke {
            config,
            device,
            user,
            reason,
        } => revoke::revoke(&config, device.as_deref(), user.as_deref(), &reason),
    }
}
