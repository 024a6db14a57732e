//! A stopped node's stores, opened directly by the commands that work without it: its audit
//! log (with the anchor kept beside its keys), its directory and its enrolment codes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use valise_audit::{AuditLog, LogConfig};
use valise_crypto::identity::DeviceId;
use valise_crypto::tls::directory_root;
use valise_proto::v1::{AuditEvent, AuditEventKind};
use valise_relay::config::Config;
use valise_relay::directory::DurableDirectory;
use valise_relay::enrolment::Codes;
use valise_relay::files::{self, NODE_SIGNING_KEY};

use crate::clock::now_ms;

/// The audit anchor: beside the keys, outside the data folder, so a restored older copy of
/// the data cannot roll it back.
pub(crate) fn anchor_path(config: &Config) -> PathBuf {
    config.key_file("audit.anchor")
}

/// A stopped node's audit log, checked against its anchor.
pub(crate) fn open_stopped_log(config: &Config) -> Result<AuditLog> {
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let mut log_config = LogConfig::new(config.node.data_dir.join("audit"), config.audit_origin());
    log_config.anchor = Some(anchor_path(config));
    AuditLog::open(log_config, signing).context("cannot open the audit log (is the node starting?)")
}

/// The directory of a stopped node, for the commands that work on its files directly.
pub(crate) fn open_stopped_directory(config: &Config, ca_pem: &str) -> Result<DurableDirectory> {
    DurableDirectory::open(
        &config.node.data_dir.join(files::DIRECTORY_DIR),
        &config.node.ministry,
        directory_root(ca_pem)?,
    )
    .context("cannot open the directory (is the node starting?)")
}

/// The enrolment code rules a configuration sets.
pub(crate) fn codes_rules(config: &Config) -> Codes {
    Codes::new(
        config.enrolment.code_ttl_hours.saturating_mul(3_600_000),
        config.limits.max_pending_enrolments as usize,
        config.enrolment.attempts_per_minute,
    )
}

/// A device as an audit record names it.
pub(crate) fn device_object(device: &DeviceId) -> valise_proto::v1::AuditObject {
    valise_proto::v1::AuditObject {
        kind: "device".into(),
        id: device.as_bytes().to_vec(),
        sha256: Vec::new(),
    }
}

/// Records an operator's command on a stopped node in its audit log, as the node records the
/// same command while it runs.
pub(crate) fn audit_offline(
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
