//! `run`: serves a node until SIGTERM, Ctrl-C or an operator's stop, then shuts it down
//! cleanly, the audit log last.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use valise_audit::{AuditLog, LogConfig};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::tls::{directory_root, root_fingerprint};
use valise_pki::{PostCa, server_config};
use valise_proto::v1::directory_update::Update;
use valise_relay::attachments::AttachmentStore;
use valise_relay::config::Config;
use valise_relay::delivery::DeliveryConfig;
use valise_relay::directory::DurableDirectory;
use valise_relay::enrolment::DurableCodes;
use valise_relay::files::{self, ATTACHMENTS_DIR, LINKS_DIR, NodeFiles, QUEUE_DIR};
use valise_relay::manifest::Manifest;
use valise_relay::node::{EnrolmentDesk, Federation, NodeParams, start};
use valise_relay::store::RelayStore;

use crate::clock::now_ms;
use crate::destroy::destroyed_marker;

const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// `run`: serves the node until it is asked to stop.
pub(crate) fn run(config_path: &Path) -> Result<()> {
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
    log_config.anchor = Some(config.audit_anchor());
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
                codes: DurableCodes::open(&data.join("enrolment"), config.code_rules(), now_ms())?,
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
