//! `valise-relay`: the relay node ministry IT runs, and its administration commands.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use prost::Message;
use time::OffsetDateTime;
use valise_audit::export::verify_export;
use valise_audit::note::{Checkpoint, NoteVerifier, SignedCheckpoint};
use valise_audit::verify::verify_dir;
use valise_audit::{AuditLog, LogConfig, VerifyKeys};
use valise_crypto::at_rest::KdfParams;
use valise_crypto::directory::sign_revocation;
use valise_crypto::identity::DeviceId;
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::tls::{directory_root, root_fingerprint};
use valise_pki::{
    IssuedNode, MinistryCa, NodeRequest, PostCa, Role, RootFolder, Validity, server_config,
};
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{
    AdminAuditExport, AdminAuditProve, AdminEnroll, AdminRequest, AdminResponse, AdminRevoke,
    AdminStatus, AdminStop, AuditEvent, AuditEventKind, Revocation, admin_request, admin_response,
};
use valise_relay::admin;
use valise_relay::attachments::AttachmentStore;
use valise_relay::config::Config;
use valise_relay::delivery::DeliveryConfig;
use valise_relay::directory::DurableDirectory;
use valise_relay::enrolment::{Codes, DurableCodes, Invitation};
use valise_relay::files::{
    self, ATTACHMENTS_DIR, ENROLMENT_KEY, LINKS_DIR, NODE_SIGNING_KEY, NODE_STORAGE_KEY, NodeFiles,
    POST_CA_KEY, QUEUE_DIR,
};
use valise_relay::manifest::Manifest;
use valise_relay::node::{EnrolmentDesk, Federation, NodeParams, start};
use valise_relay::store::RelayStore;
use zeroize::Zeroizing;

const YEAR: Duration = Duration::from_secs(365 * 86_400);

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
        }) => ca_init(&ministry, &out, passphrase_file.as_deref()),
        Command::Ca(CaCommand::IssueNode {
            ca,
            name,
            kind,
            addr,
            hub,
            out,
            passphrase_file,
        }) => issue_node(
            &ca,
            &name,
            kind,
            &addr,
            hub.as_deref(),
            &out,
            passphrase_file.as_deref(),
        ),
        Command::Run { config } => run(&config),
        Command::Recover {
            config,
            start_empty,
            recreate_anchor,
        } => recover(&config, &start_empty, recreate_anchor),
        Command::Destroy { config, confirm } => destroy(&config, &confirm),
        Command::Status { config, json } => status(&config, json),
        Command::Audit(AuditCommand::Verify {
            config: Some(config),
            witnesses,
            ..
        }) => audit_verify(&config, &witnesses),
        Command::Audit(AuditCommand::Verify {
            export: Some(export),
            key: Some(key),
            witnesses,
            ..
        }) => verify_export_file(&export, &key, &witnesses),
        Command::Audit(AuditCommand::Verify {
            proof: Some(proof),
            key: Some(key),
            witnesses,
            ..
        }) => verify_proof_file(&proof, &key, &witnesses),
        Command::Audit(AuditCommand::Verify { .. }) => {
            bail!("give --config FILE, or --export FILE --key VKEY, or --proof FILE --key VKEY")
        }
        Command::Audit(AuditCommand::Key { config }) => audit_key(&config),
        Command::Audit(AuditCommand::Export { config, out }) => {
            let entries = audit_export(&Config::load(&config)?, &out)?;
            println!("exported {entries} entries to {}", out.display());
            Ok(())
        }
        Command::Audit(AuditCommand::Prove { config, index }) => audit_prove(&config, index),
        Command::Audit(AuditCommand::Show { config, last }) => audit_show(&config, last),
        Command::Enroll {
            config,
            user,
            name,
            clearance,
            offices,
            foreign_national,
            json,
        } => enroll(
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
            user_update(&config, &user, &change)
        }
        Command::Revoke {
            config,
            device,
            user,
            reason,
        } => revoke(&config, device.as_deref(), user.as_deref(), &reason),
    }
}

/// The passphrase, from VALISE_PASSPHRASE, a file, or a prompt (twice when creating).
fn passphrase(file: Option<&Path>, creating: bool) -> Result<Zeroizing<String>> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the passphrase file {}", file.display()))?;
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ));
    }
    if let Ok(p) = std::env::var("VALISE_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let first = Zeroizing::new(rpassword::prompt_password("CA passphrase: ").context("cannot read the passphrase from the terminal; set VALISE_PASSPHRASE or use --passphrase-file")?);
    if creating {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ")
                .context("cannot read the passphrase")?,
        );
        if *first != *again {
            bail!("the two passphrases differ; nothing was written");
        }
    }
    Ok(first)
}

/// How long the ministry root is valid.
const ROOT_YEARS: u32 = 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ca_init(ministry: &str, out: &Path, passphrase_file: Option<&Path>) -> Result<()> {
    if ministry.is_empty() || ministry.contains(char::is_whitespace) {
        bail!("--ministry must be a name without spaces, e.g. mfa.example");
    }
    RootFolder::check_free(out)?;
    let pass = passphrase(passphrase_file, true)?;
    if pass.chars().count() < 12 {
        bail!("the CA passphrase must be at least 12 characters");
    }
    let ca = RootFolder::create(
        out,
        ministry,
        Validity::years_from(OffsetDateTime::now_utc(), ROOT_YEARS),
        pass.as_bytes(),
        KdfParams::default(),
    )?;
    println!("Ministry root created for {ministry}.");
    println!("Root fingerprint: {}", ca.fingerprint());
    println!(
        "Pin {} on every node and device. Keep {} offline.",
        out.join(valise_pki::folder::CA_CERT).display(),
        out.join(valise_pki::folder::CA_KEY).display()
    );
    Ok(())
}

fn load_ca(dir: &Path, passphrase_file: Option<&Path>) -> Result<MinistryCa> {
    let folder = RootFolder::read(dir)?;
    let pass = passphrase(passphrase_file, false)?;
    folder
        .open(pass.as_bytes())
        .context("cannot open the CA key")
}

fn issue_node(
    ca_dir: &Path,
    name: &str,
    kind: Kind,
    addr: &str,
    hub: Option<&str>,
    out: &Path,
    passphrase_file: Option<&Path>,
) -> Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .context("--addr must be host:port, e.g. paris.mfa.example:4433")?;
    if kind == Kind::Hub && hub.is_some() {
        bail!("a hub does not connect to another hub; drop --hub");
    }
    if out.join(files::NODE_PEM).exists() {
        bail!(
            "{} already holds a node; refusing to overwrite it",
            out.display()
        );
    }
    let ca = load_ca(ca_dir, passphrase_file)?;
    let ministry = ca.ministry().to_owned();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let issued = IssuedNode::issue(
        &ca,
        NodeRequest {
            name,
            role: match kind {
                Kind::Hub => Role::Hub,
                Kind::Post => Role::Post,
            },
            hosts: &[host.to_owned()],
        },
        OffsetDateTime::now_utc(),
    )?;
    files::write_issued(out, &issued)?;
    let kind_name = if kind == Kind::Hub { "hub" } else { "post" };
    let hub_line = hub.map(|h| format!("hub = \"{h}\"\n")).unwrap_or_default();
    let toml = format!(
        "# Written by `valise-relay ca issue-node`; see deploy/node.example.toml for every setting.\n\
         [node]\nname = \"{name}\"\nkind = \"{kind_name}\"\nministry = \"{ministry}\"\nlisten = \"0.0.0.0:{port}\"\n{hub_line}data_dir = \"data\"\n"
    );
    let config_path = out.join("node.toml");
    files::write_public(&config_path, toml.as_bytes())?;
    Config::load(&config_path)
        .context("the written configuration does not load (a bug: please report it)")?;
    println!("Node {name} ({kind_name}) issued in {}.", out.display());
    println!(
        "Run it with: valise-relay run --config {}",
        config_path.display()
    );
    Ok(())
}

/// The file that marks a destroyed node, beside its keys.
fn destroyed_marker(config: &Config) -> PathBuf {
    config.key_file("DESTROYED")
}

fn destroy(config_path: &Path, confirm: &str) -> Result<()> {
    let config = Config::load(config_path)?;
    if confirm != config.node.name {
        bail!(
            "--confirm must repeat the node's name ({}) to destroy it",
            config.node.name
        );
    }
    // A running node is asked to stop first, so nothing holds the files.
    let stop = AdminRequest {
        request: Some(admin_request::Request::Stop(AdminStop {
            reason: "emergency destruction".into(),
        })),
    };
    if ask_running_node(&config, stop)?.is_some() {
        let socket = config.admin_socket();
        for _ in 0..300 {
            if !socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Keys first, the storage key before all: without it the queued cables are unreadable,
    // whatever the disk keeps; without the others nothing can be signed for or decrypted.
    let rng = ring::rand::SystemRandom::new();
    let mut erased = 0;
    let storage = config.key_file(NODE_STORAGE_KEY);
    let keys = [NODE_SIGNING_KEY, ENROLMENT_KEY, POST_CA_KEY].map(|name| config.key_file(name));
    let node_key = config.tls.node_key.clone();
    for path in [storage, node_key].into_iter().chain(keys) {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let mut noise = vec![0u8; usize::try_from(meta.len()).unwrap_or(0).max(64)];
        ring::rand::SecureRandom::fill(&rng, &mut noise)
            .map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
        files::write_secret(&path, &noise)?;
        std::fs::remove_file(&path).with_context(|| format!("cannot delete {}", path.display()))?;
        erased += 1;
    }
    files::write_public(
        &destroyed_marker(&config),
        format!(
            "destroyed on {}\n",
            OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| format!("{} ms after 1970", now_ms()))
        )
        .as_bytes(),
    )?;
    let _ = std::fs::remove_file(anchor_path(&config));
    if config.node.data_dir.exists() {
        std::fs::remove_dir_all(&config.node.data_dir)
            .with_context(|| format!("cannot delete {}", config.node.data_dir.display()))?;
    }
    println!(
        "node {} destroyed: {erased} key files overwritten and deleted, then its data deleted",
        config.node.name
    );
    Ok(())
}

fn run(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    if let Ok(when) = std::fs::read_to_string(destroyed_marker(&config)) {
        bail!(
            "node {} was destroyed ({}); it cannot run again. Issue a new node with `valise-relay ca issue-node`",
            config.node.name,
            when.trim()
        );
    }
    valise_relay::logging::init(&config.log)?;
    let node_files = NodeFiles::load(&config)?;
    let data = &config.node.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, node_files))
}

async fn serve(config: Config, node_files: NodeFiles) -> Result<()> {
    let data = config.node.data_dir.clone();
    // Before any store is opened (and so created): none may have vanished or been swapped.
    Manifest::load(&data)?.check(&files::kept_stores(node_files.enrolment.is_some()))?;
    let mut log_config = LogConfig::new(data.join("audit"), config.audit_origin());
    log_config.policy.every_entries = config.audit.checkpoint_every_entries;
    log_config.policy.every = config.checkpoint_interval();
    // Outside the data directory: a restored older copy of it cannot roll the anchor back.
    log_config.anchor = Some(anchor_path(&config));
    let audit_key = IdentityKeyPair::from_seed(&node_files.signing_key.seed()[..])?;
    let audit =
        Arc::new(AuditLog::open(log_config, audit_key).context("cannot open the audit log")?);
    let root = directory_root(&node_files.ca_pem)?;
    let mut directory =
        DurableDirectory::open(&data.join("directory"), &config.node.ministry, root)?;
    let enrolment = match node_files.enrolment {
        Some(e) => {
            if !directory.view().has_enroller(&config.node.name) {
                directory
                    .apply(Update::Enroller(e.certificate))
                    .context("the enrolment certificate does not verify under the pinned root")?;
            }
            Some(EnrolmentDesk {
                post: config.node.name.clone(),
                enrolment_key: e.key,
                post_ca: PostCa::from_pem(&config.node.name, &config.node.ministry, &e.post_ca)?,
                codes: DurableCodes::open(&data.join("enrolment"), codes_rules(&config), now_ms())?,
                certificate_validity: YEAR,
            })
        }
        None => None,
    };
    let tls = server_config(&node_files.ca_pem, &node_files.tls, enrolment.is_some())?;
    let signals = StopSignals::install()?;
    let mut node = start(NodeParams {
        name: config.node.name.clone(),
        listen: config.node.listen,
        tls,
        node_key: node_files.signing_key,
        node_key_certificate: node_files.signing_cert,
        directory,
        store: RelayStore::open(&data.join(QUEUE_DIR), &node_files.storage_key)
            .context("cannot open the queue store")?,
        limits: config.limits,
        audit: Arc::clone(&audit),
        enrolment,
        ca_fingerprint: root_fingerprint(&node_files.ca_pem)?,
        attachments: AttachmentStore::open(
            &data.join(ATTACHMENTS_DIR),
            config.attachment_retention(),
        )
        .with_context(|| {
            format!(
                "cannot open the attachment store {}",
                data.join(ATTACHMENTS_DIR).display()
            )
        })?,
        federation: Some(Federation {
            ministry: config.node.ministry.clone(),
            kind: config.node.kind,
            hub: config.node.hub.clone(),
            peers: config.peers.clone(),
            ca_pem: node_files.ca_pem.clone(),
            tls: node_files.tls.clone(),
            state_dir: data.join(LINKS_DIR),
            forward_window: config.links.forward_window as usize,
        }),
        dedup_retention: config.dedup_retention(),
        delivery: DeliveryConfig::default(),
        extra_tags: config.cables.extra_tags.clone(),
    })?;
    let metrics = node
        .serve_metrics(config.metrics.listen)
        .await
        .with_context(|| {
            format!(
                "cannot serve metrics on {}; change metrics.listen",
                config.metrics.listen
            )
        })?;
    node.serve_admin(&config.admin_socket()).with_context(|| {
        format!(
            "cannot open the admin socket {}",
            config.admin_socket().display()
        )
    })?;
    node.serving();
    println!(
        "valise-relay {} listening on {}",
        config.node.name,
        node.local_addr()
    );
    println!("health and metrics on http://{metrics}/healthz and /metrics");
    tracing::info!(node = %config.node.name, listen = %node.local_addr(), metrics = %metrics, "serving");
    signals.wait(node.stop_requested()).await;
    println!("stopping: finishing in-flight work");
    node.shutdown().await?;
    for _ in 0..400 {
        if Arc::strong_count(&audit) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    match Arc::try_unwrap(audit) {
        Ok(log) => log
            .close()
            .context("the audit log could not be closed cleanly")?,
        Err(_) => {
            bail!("in-flight work did not finish in time; the audit log was not closed cleanly")
        }
    }
    // Last: a removed socket tells `destroy` (and operators) that the node is fully stopped.
    let _ = std::fs::remove_file(config.admin_socket());
    println!("stopped");
    Ok(())
}

/// Sends an admin request to the running node, or returns `None` if no node is listening.
fn ask_running_node(config: &Config, request: AdminRequest) -> Result<Option<AdminResponse>> {
    let socket = config.admin_socket();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(admin::request(&socket, request)) {
        Ok(response) => Ok(Some(response)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot talk to the node on {}", socket.display()))
        }
    }
}

fn status(config_path: &Path, json: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let request = AdminRequest {
        request: Some(admin_request::Request::Status(AdminStatus {})),
    };
    let status = match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::Status(s) => Some(s),
        _ => None,
    })? {
        Some(status) => status,
        None => valise_relay::status::from_files(&config).map_err(anyhow::Error::msg)?,
    };
    if json {
        println!("{}", valise_relay::status::to_json(&status));
    } else {
        print!("{}", valise_relay::status::render(&status, now_ms()));
    }
    Ok(())
}

/// Asks a running node and takes the answer `expect` picks out; `None` when no node runs.
/// A refusal from the node, or an answer of another kind, is an error.
fn ask_running_node_for<T>(
    config: &Config,
    request: AdminRequest,
    expect: impl FnOnce(admin_response::Response) -> Option<T>,
) -> Result<Option<T>> {
    let Some(answer) = ask_running_node(config, request)? else {
        return Ok(None);
    };
    match answer.response {
        Some(admin_response::Response::Error(e)) => bail!("{e}"),
        Some(response) => expect(response)
            .map(Some)
            .context("the node gave an unexpected answer"),
        None => bail!("the node gave an unexpected answer"),
    }
}

fn enroll(config_path: &Path, invitation: Invitation, json: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let user = invitation.user.clone();
    if user.is_empty() || user.contains(['@', ' ']) {
        bail!("--user is the name at the post, without '@' or spaces, e.g. alice");
    }
    let request = AdminRequest {
        request: Some(admin_request::Request::Enroll(AdminEnroll {
            user: user.clone(),
            display_name: invitation.display_name.clone(),
            clearance: invitation.clearance as i32,
            offices: invitation.offices.clone(),
            foreign_national: invitation.foreign_national,
        })),
    };
    let (code, fingerprint) = match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::Enrolled(e) => Some((e.code, e.ca_fingerprint)),
        _ => None,
    })? {
        Some(answer) => answer,
        None => {
            // The node is stopped: issue the code straight into its store.
            let node_files = NodeFiles::load(&config)?;
            if node_files.enrolment.is_none() {
                bail!("this node holds no enrolment key; enrol at the diplomat's post");
            }
            let mut codes = DurableCodes::open(
                &config.node.data_dir.join("enrolment"),
                codes_rules(&config),
                now_ms(),
            )
            .context("cannot open the enrolment store (is the node starting?)")?;
            let directory = open_stopped_directory(&config, &node_files.ca_pem)?;
            let address = format!("{user}@{}", config.node.name);
            let devices = directory.view().resolve(&address).unwrap_or_default();
            valise_relay::users::check_same_person(&address, &devices, &invitation)?;
            drop(directory);
            let mut entropy = [0u8; valise_relay::enrolment::CODE_ENTROPY_BYTES];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut entropy)
                .map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
            let issued = codes.issue(invitation, entropy, now_ms())?;
            audit_offline(&config, AuditEventKind::AdminCommand, "enroll", Vec::new())?;
            (issued.code, root_fingerprint(&node_files.ca_pem)?)
        }
    };
    if json {
        println!(
            "{{\"code\":\"{code}\",\"ca_fingerprint\":\"{fingerprint}\",\"node\":\"{}\"}}",
            config.node.name
        );
    } else {
        println!("Enrolment code for {user}@{}: {code}", config.node.name);
        println!(
            "It works once, and expires in {} hours.",
            config.enrolment.code_ttl_hours
        );
        println!("The device must pin this ministry root fingerprint: {fingerprint}");
    }
    Ok(())
}

fn revoke(
    config_path: &Path,
    device: Option<&str>,
    user: Option<&str>,
    reason: &str,
) -> Result<()> {
    let config = Config::load(config_path)?;
    let device = device
        .map(|d| {
            hex::decode(d)
                .ok()
                .and_then(|b| DeviceId::from_slice(&b).ok())
                .context("--device must be a device id of 32 hex digits")
        })
        .transpose()?;
    let user = user.unwrap_or_default();
    let request = AdminRequest {
        request: Some(admin_request::Request::Revoke(AdminRevoke {
            device_id: device.map(|d| d.as_bytes().to_vec()).unwrap_or_default(),
            user: user.to_owned(),
            reason: reason.to_owned(),
        })),
    };
    let revoked: Vec<String> = match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::Revoked(r) => {
            Some(r.device_ids.iter().map(hex::encode).collect())
        }
        _ => None,
    })? {
        Some(answer) => answer,
        None => {
            let node_files = NodeFiles::load(&config)?;
            let enrolment = node_files
                .enrolment
                .context("this node holds no enrolment key; revoke at the device's post")?;
            let mut directory = open_stopped_directory(&config, &node_files.ca_pem)?;
            let targets: Vec<DeviceId> = match device {
                Some(d) => vec![d]
                    .into_iter()
                    .filter(|d| directory.view().is_active(d))
                    .collect(),
                None => valise_relay::policy::DirectoryView::devices_for(
                    directory.view(),
                    &format!("{user}@{}", config.node.name),
                )
                .unwrap_or_default(),
            };
            if targets.is_empty() {
                bail!("no active device matches; check the device id or user");
            }
            for target in &targets {
                let mut revocation = Revocation {
                    device_id: target.as_bytes().to_vec(),
                    reason: reason.to_owned(),
                    revoked_at_ms: now_ms(),
                    signature: Vec::new(),
                };
                sign_revocation(&mut revocation, &enrolment.key)?;
                directory.apply(Update::Revocation(revocation))?;
            }
            drop(directory);
            for target in &targets {
                audit_offline(
                    &config,
                    AuditEventKind::DeviceRevoked,
                    reason,
                    vec![device_object(target)],
                )?;
            }
            targets.iter().map(ToString::to_string).collect()
        }
    };
    for device in &revoked {
        println!("revoked device {device}");
    }
    Ok(())
}

fn user_update(config_path: &Path, user: &str, change: &valise_relay::users::Change) -> Result<()> {
    let config = Config::load(config_path)?;
    let request = AdminRequest {
        request: Some(admin_request::Request::UserUpdate(
            valise_proto::v1::AdminUserUpdate {
                user: user.to_owned(),
                display_name: change.display_name.clone(),
                clearance: change.clearance.map_or(0, |c| c as i32),
                offices: change.offices.clone().unwrap_or_default(),
                set_offices: change.offices.is_some(),
                foreign_national: change.foreign_national,
            },
        )),
    };
    let changed: Vec<String> = match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::UserUpdated(u) => {
            Some(u.device_ids.iter().map(hex::encode).collect())
        }
        _ => None,
    })? {
        Some(changed) => changed,
        None => {
            let node_files = NodeFiles::load(&config)?;
            let enrolment = node_files
                .enrolment
                .context("this node holds no enrolment key; change the user at their post")?;
            let mut directory = open_stopped_directory(&config, &node_files.ca_pem)?;
            let changed = directory.change_user(&enrolment.key, &config.node.name, user, change)?;
            drop(directory);
            for device in &changed {
                audit_offline(
                    &config,
                    AuditEventKind::UserUpdated,
                    &change.fields(),
                    vec![device_object(device)],
                )?;
            }
            if change.clearance.is_some() {
                println!(
                    "note: the node is stopped; anything queued above the new clearance is \
                     dropped when it is next changed while running"
                );
            }
            changed.iter().map(ToString::to_string).collect()
        }
    };
    for device in &changed {
        println!("updated {user}@{} on device {device}", config.node.name);
    }
    Ok(())
}

/// The directory of a stopped node, for the commands that work on its files directly.
fn open_stopped_directory(config: &Config, ca_pem: &str) -> Result<DurableDirectory> {
    DurableDirectory::open(
        &config.node.data_dir.join(files::DIRECTORY_DIR),
        &config.node.ministry,
        directory_root(ca_pem)?,
    )
    .context("cannot open the directory (is the node starting?)")
}

fn device_object(device: &DeviceId) -> valise_proto::v1::AuditObject {
    valise_proto::v1::AuditObject {
        kind: "device".into(),
        id: device.as_bytes().to_vec(),
        sha256: Vec::new(),
    }
}

/// Records an operator's command on a stopped node in its audit log, as the node records the
/// same command while it runs.
fn audit_offline(
    config: &Config,
    kind: AuditEventKind,
    reason: &str,
    objects: Vec<valise_proto::v1::AuditObject>,
) -> Result<()> {
    let log = open_stopped_log(config)?;
    log.append(AuditEvent {
        time_ms: now_ms(),
        node: config.node.name.clone(),
        kind: kind as i32,
        actor_kind: valise_proto::v1::ActorKind::Operator as i32,
        actor_id: "offline-command".into(),
        objects,
        outcome: valise_proto::v1::Outcome::Success as i32,
        reason: reason.to_owned(),
        ..Default::default()
    })?;
    log.close()?;
    Ok(())
}

/// The key that verifies this node's audit checkpoints.
fn audit_keys(config: &Config, witnesses: &[String]) -> Result<VerifyKeys> {
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let log = NoteVerifier::ed25519(&config.audit_origin(), *signing.public())?;
    // The neighbours this node has linked to witness it; their keys were recorded at first
    // contact. Keys given on the command line are added.
    let keys_file = config
        .node
        .data_dir
        .join(LINKS_DIR)
        .join(valise_relay::node::WITNESS_KEYS);
    let recorded = match std::fs::read_to_string(&keys_file) {
        Ok(text) => text,
        // A node that never linked to another has no witnesses.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!(
            "cannot read the witness keys {}: {e}; check its permissions",
            keys_file.display()
        ),
    };
    let mut witnesses = witnesses
        .iter()
        .map(|w| NoteVerifier::from_vkey(w).with_context(|| format!("bad witness key {w:?}")))
        .collect::<Result<Vec<_>>>()?;
    for line in recorded.lines().filter(|l| !l.trim().is_empty()) {
        let verifier = NoteVerifier::from_vkey(line.trim()).with_context(|| {
            format!("the recorded witness key {line:?} is malformed; remove that line")
        })?;
        if !witnesses.iter().any(|w| w.to_vkey() == verifier.to_vkey()) {
            witnesses.push(verifier);
        }
    }
    Ok(VerifyKeys { log, witnesses })
}

fn anchor_path(config: &Config) -> PathBuf {
    config.key_file("audit.anchor")
}

/// Writes the audit export to `out`: through the running node, or from the stopped node's log.
fn audit_export(config: &Config, out: &Path) -> Result<u64> {
    if out.exists() {
        bail!("{} already exists; choose a new file", out.display());
    }
    let absolute = std::path::absolute(out)?;
    let request = AdminRequest {
        request: Some(admin_request::Request::AuditExport(AdminAuditExport {
            path: absolute.to_string_lossy().into_owned(),
        })),
    };
    match ask_running_node_for(config, request, |r| match r {
        admin_response::Response::ExportedEntries(n) => Some(n),
        _ => None,
    })? {
        Some(n) => Ok(n),
        None => {
            let log = open_stopped_log(config)?;
            let file = std::fs::File::create_new(out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let n = valise_audit::export::export(&log, file)?;
            log.close()?;
            Ok(n)
        }
    }
}

fn recover(config_path: &Path, start_empty: &[String], recreate_anchor: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    if start_empty.is_empty() && !recreate_anchor {
        bail!("say what to accept: --start-empty STORE (repeatable) or --recreate-anchor");
    }
    if ask_is_running(&config) {
        bail!("node {} is running; stop it first", config.node.name);
    }
    let desk = config.key_file(files::ENROLMENT_KEY).exists();
    let kept = files::kept_stores(desk);
    for store in start_empty {
        if !kept.iter().any(|k| k.dir == store) {
            let names: Vec<&str> = kept.iter().map(|k| k.dir).collect();
            bail!(
                "{store} is not a store of this node; choose among: {}",
                names.join(", ")
            );
        }
    }
    let data = &config.node.data_dir;
    let mut manifest = Manifest::load(data)?;
    for store in start_empty {
        let path = data.join(store);
        if path.exists() {
            bail!(
                "{} still exists: move it aside first (keep it as evidence), then run this again",
                path.display()
            );
        }
        manifest.forget(store)?;
        println!("{store}: will start empty");
    }
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let mut log_config = LogConfig::new(data.join(files::AUDIT_DIR), config.audit_origin());
    log_config.anchor = Some(anchor_path(&config));
    log_config.recreate_anchor = recreate_anchor;
    let log = AuditLog::open(log_config, signing).context("cannot open the audit log")?;
    let mut reasons: Vec<String> = start_empty
        .iter()
        .map(|s| format!("recover_start_empty:{s}"))
        .collect();
    if recreate_anchor {
        reasons.push("recover_recreate_anchor".into());
        println!("anchor: written anew from the audit store");
    }
    for reason in reasons {
        log.append(AuditEvent {
            time_ms: now_ms(),
            node: config.node.name.clone(),
            kind: AuditEventKind::AdminCommand as i32,
            actor_kind: valise_proto::v1::ActorKind::Operator as i32,
            actor_id: "recover".into(),
            outcome: valise_proto::v1::Outcome::Success as i32,
            reason,
            ..Default::default()
        })?;
    }
    log.close()?;
    println!("recorded in the audit log; the node may be started");
    Ok(())
}

fn open_stopped_log(config: &Config) -> Result<AuditLog> {
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let mut log_config = LogConfig::new(config.node.data_dir.join("audit"), config.audit_origin());
    log_config.anchor = Some(anchor_path(config));
    AuditLog::open(log_config, signing).context("cannot open the audit log (is the node starting?)")
}

fn audit_verify(config_path: &Path, witnesses: &[String]) -> Result<()> {
    let config = Config::load(config_path)?;
    let keys = audit_keys(&config, witnesses)?;
    let trusted = trusted_checkpoint(&config, &keys)?;
    let against = trusted.as_ref().map(|(_, source)| source.clone());
    let trusted = trusted.map(|(checkpoint, _)| checkpoint);
    let export_file = std::env::temp_dir().join(format!(
        "valise-audit-{}-{}.export",
        std::process::id(),
        now_ms()
    ));
    let report = if config.admin_socket().exists() && ask_is_running(&config) {
        audit_export(&config, &export_file)?;
        let result = std::fs::File::open(&export_file)
            .map_err(anyhow::Error::from)
            .and_then(|f| Ok(verify_export(f, &keys, trusted)?));
        let _ = std::fs::remove_file(&export_file);
        result
    } else {
        verify_dir(&config.node.data_dir.join("audit"), &keys, trusted).map_err(Into::into)
    };
    let report = match (report, against) {
        (Ok(report), _) => report,
        (Err(e), Some(against)) => {
            return Err(e.context(format!(
                "the audit log of {} does not verify against {against}",
                config.node.name
            )));
        }
        (Err(e), None) => return Err(e),
    };
    println!(
        "audit log of {} verifies: {} entries, {} checkpoints",
        config.node.name, report.entries, report.checkpoints
    );
    if let Some(latest) = &report.latest {
        println!(
            "latest checkpoint: size {}, root {}",
            latest.size,
            hex::encode(latest.root)
        );
    }
    for (witness, count) in &report.cosignatures {
        println!("cosignatures by {witness}: {count} checked");
    }
    // What the files cannot show: a data folder restored whole, with its anchor and the
    // witnessed notes, extends them all. Only the neighbours, which keep what they cosigned,
    // can tell; a running node hears it from them on every link.
    let request = AdminRequest {
        request: Some(admin_request::Request::Status(AdminStatus {})),
    };
    match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::Status(s) => Some(s),
        _ => None,
    })? {
        Some(status) => {
            let rolled_back: Vec<&String> = status
                .alarms
                .iter()
                .filter(|a| a.starts_with("ROLLED BACK"))
                .collect();
            if let Some(alarm) = rolled_back.first() {
                bail!("the log verifies on its own, but its neighbours say otherwise: {alarm}");
            }
            println!(
                "neighbours: none reports a larger or different log ({} link(s) up)",
                status.links.iter().filter(|l| l.connected).count()
            );
        }
        None => println!(
            "note: the node is stopped, so its neighbours were not asked. A data folder \
             restored whole with its anchor is caught only by them: start the node and run \
             `valise-relay status`, or ask the hub's operator for the size it last cosigned"
        ),
    }
    Ok(())
}

fn auditor_keys(key: &str, witnesses: &[String]) -> Result<VerifyKeys> {
    let log = NoteVerifier::from_vkey(key.trim()).with_context(|| {
        format!("--key {key:?} is not a verifier key; copy it from `valise-relay audit key`")
    })?;
    let witnesses = witnesses
        .iter()
        .map(|w| {
            NoteVerifier::from_vkey(w.trim())
                .with_context(|| format!("--witness {w:?} is not a verifier key"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(VerifyKeys { log, witnesses })
}

/// An export checked on a machine without the node: only the file and the keys.
fn verify_export_file(path: &Path, key: &str, witnesses: &[String]) -> Result<()> {
    let keys = auditor_keys(key, witnesses)?;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the export {}", path.display()))?;
    let report = verify_export(file, &keys, None)
        .with_context(|| format!("the export {} does not verify", path.display()))?;
    println!(
        "export of {} verifies: {} entries, {} checkpoints",
        keys.log.name(),
        report.entries,
        report.checkpoints
    );
    if let Some(latest) = &report.latest {
        println!(
            "latest checkpoint: size {}, root {}",
            latest.size,
            hex::encode(latest.root)
        );
    }
    for (witness, count) in &report.cosignatures {
        println!("cosignatures by {witness}: {count} checked");
    }
    for witness in &keys.witnesses {
        if !report.cosignatures.iter().any(|(w, _)| w == witness.name()) {
            bail!(
                "no checkpoint in the export carries a cosignature by {}; ask for an export \
                 made after that witness linked",
                witness.name()
            );
        }
    }
    Ok(())
}

/// A proof bundle checked on a machine without the node.
fn verify_proof_file(path: &Path, key: &str, witnesses: &[String]) -> Result<()> {
    let keys = auditor_keys(key, witnesses)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the proof bundle {}", path.display()))?;
    let verified = valise_audit::bundle::verify_bundle(&text, &keys)
        .with_context(|| format!("the proof bundle {} does not verify", path.display()))?;
    println!(
        "entry {} is in the log of {} at checkpoint size {}, signed{}",
        verified.index,
        keys.log.name(),
        verified.checkpoint.size,
        if keys.witnesses.is_empty() {
            String::new()
        } else {
            format!(
                " and cosigned by {}",
                keys.witnesses
                    .iter()
                    .map(NoteVerifier::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    println!("{}", describe_event(verified.index, &verified.event));
    if !verified.cosigners.is_empty() {
        println!("cosigned by: {}", verified.cosigners.join(", "));
    }
    Ok(())
}

fn audit_key(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let log = NoteVerifier::ed25519(&config.audit_origin(), *signing.public())?;
    let witness = NoteVerifier::cosigner(
        &valise_audit::log::witness_name(&config.node.ministry, &config.node.name),
        *signing.public(),
    )?;
    println!("log key:     {}", log.to_vkey());
    println!("witness key: {}", witness.to_vkey());
    Ok(())
}

/// The checkpoint the log must extend, and where it came from: the largest of the node's
/// anchor and the checkpoints its neighbours cosigned (kept outside the audit store, so that
/// an audit store and anchor restored from an older copy are still caught).
fn trusted_checkpoint(config: &Config, keys: &VerifyKeys) -> Result<Option<(Checkpoint, String)>> {
    let mut candidates = Vec::new();
    let anchor = anchor_path(config);
    match std::fs::read_to_string(&anchor) {
        Ok(text) => {
            let signed = SignedCheckpoint::verify(&text, &keys.log).with_context(|| {
                format!("the audit anchor {} does not verify", anchor.display())
            })?;
            candidates.push((
                signed.checkpoint,
                format!("the anchor {}", anchor.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read the audit anchor {}: {e}", anchor.display()),
    }
    let links = config.node.data_dir.join(LINKS_DIR);
    let kept = valise_relay::witnessed::read_all(&links).with_context(|| {
        format!(
            "cannot read the witnessed checkpoints in {}",
            links.join(valise_relay::witnessed::WITNESSED_DIR).display()
        )
    })?;
    for witnessed in kept {
        let path = witnessed.path.display();
        let signed = SignedCheckpoint::verify(&witnessed.note, &keys.log).with_context(|| {
            format!("the checkpoint kept in {path} is not signed by this node's log key")
        })?;
        let witness = valise_audit::log::witness_name(&config.node.ministry, &witnessed.neighbour);
        if let Some(verifier) = keys.witnesses.iter().find(|w| w.name() == witness) {
            verifier.verify(&signed.note).with_context(|| {
                format!(
                    "the cosignature of {} in {path} does not verify",
                    witnessed.neighbour
                )
            })?;
        }
        candidates.push((
            signed.checkpoint,
            format!("the checkpoint {} cosigned ({path})", witnessed.neighbour),
        ));
    }
    // The largest is the strongest claim; on a tie, a neighbour's cosignature beats the anchor.
    Ok(candidates
        .into_iter()
        .max_by_key(|(checkpoint, _)| checkpoint.size))
}

/// Whether a node answers on the admin socket.
fn ask_is_running(config: &Config) -> bool {
    std::os::unix::net::UnixStream::connect(config.admin_socket()).is_ok()
}

fn audit_prove(config_path: &Path, index: u64) -> Result<()> {
    let config = Config::load(config_path)?;
    let request = AdminRequest {
        request: Some(admin_request::Request::AuditProve(AdminAuditProve {
            index,
        })),
    };
    let bundle = match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::ProofBundle(b) => Some(b),
        _ => None,
    })? {
        Some(answer) => answer,
        None => {
            let log = open_stopped_log(&config)?;
            let bundle = valise_audit::bundle::prove(&log, index)?;
            log.close()?;
            bundle
        }
    };
    print!("{bundle}");
    Ok(())
}

fn audit_show(config_path: &Path, last: usize) -> Result<()> {
    let config = Config::load(config_path)?;
    let export_file = std::env::temp_dir().join(format!(
        "valise-audit-{}-{}.export",
        std::process::id(),
        now_ms()
    ));
    audit_export(&config, &export_file)?;
    let mut tail = std::collections::VecDeque::with_capacity(last);
    let file = std::fs::File::open(&export_file)?;
    let result = valise_audit::export::for_each_entry(file, |index, bytes| {
        if tail.len() == last {
            tail.pop_front();
        }
        tail.push_back((index, AuditEvent::decode(bytes).ok()));
    });
    let _ = std::fs::remove_file(&export_file);
    result?;
    for (index, event) in tail {
        match event {
            Some(e) => println!("{}", describe_event(index, &e)),
            None => println!("{index:>8}  (not an audit event: run `audit verify`)"),
        }
    }
    Ok(())
}

/// One audit entry as an operator reads it: index, UTC time, what, outcome, who, from where,
/// why, and the objects it names.
fn describe_event(index: u64, e: &AuditEvent) -> String {
    let when = OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.time_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{} ms", e.time_ms));
    let kind = AuditEventKind::try_from(e.kind).unwrap_or(AuditEventKind::Unspecified);
    let outcome = valise_proto::v1::Outcome::try_from(e.outcome)
        .unwrap_or(valise_proto::v1::Outcome::Unspecified);
    let actor = valise_proto::v1::ActorKind::try_from(e.actor_kind)
        .map_or("?", |k| k.as_str_name())
        .trim_start_matches("ACTOR_KIND_");
    let objects = e
        .objects
        .iter()
        // An attachment is known by its hash alone.
        .map(|o| match o.id.is_empty() {
            false => format!("{}:{}", o.kind, hex::encode(&o.id)),
            true => format!("{}:sha256:{}", o.kind, hex::encode(&o.sha256)),
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{index:>8}  {when}  {kind:?}  {outcome:?}  {} {}{}  {}  {objects}",
        words(actor),
        e.actor_id,
        // The address or neighbour the request came from, or the cable went to.
        if e.source.is_empty() {
            String::new()
        } else {
            format!(" via {}", e.source)
        },
        e.reason,
    )
}

/// `CUSTODY_TAKEN` as `custody taken`.
fn words(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', " ")
}

/// The enrolment code rules a configuration sets.
fn codes_rules(config: &Config) -> Codes {
    Codes::new(
        config.enrolment.code_ttl_hours.saturating_mul(3_600_000),
        config.limits.max_pending_enrolments as usize,
        config.enrolment.attempts_per_minute,
    )
}

/// SIGTERM and Ctrl-C watchers. They are installed before the node says it is listening, so a
/// signal sent as soon as that line appears is caught rather than killing the process.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?,
        })
    }

    async fn wait(mut self, requested: impl std::future::Future<Output = ()>) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
            () = requested => {}
        }
    }
}
