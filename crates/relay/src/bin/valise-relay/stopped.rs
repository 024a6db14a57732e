//! A stopped node's stores, for the commands that work without it: its audit log, and a
//! post's desk (`valise_relay::operations::StoppedPost`) for `enroll`, `revoke` and
//! `user update`.

use anyhow::{Context, Result, bail};
use valise_audit::{AuditLog, LogConfig};
use valise_relay::config::Config;
use valise_relay::files::{self, NODE_SIGNING_KEY};
use valise_relay::operations::{StoppedError, StoppedPost};

/// A stopped node's audit log, checked against its anchor.
pub(crate) fn open_stopped_log(config: &Config) -> Result<AuditLog> {
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let mut log_config = LogConfig::new(config.node.data_dir.join("audit"), config.audit_origin());
    log_config.anchor = Some(config.audit_anchor());
    AuditLog::open(log_config, signing).context("cannot open the audit log (is the node starting?)")
}

/// A stopped post's stores, for an operation on them; `no_desk` says what to do when the node
/// is not a post.
pub(crate) fn open_post(config: &Config, no_desk: &str) -> Result<StoppedPost> {
    match StoppedPost::open(config) {
        Ok(post) => Ok(post),
        Err(StoppedError::NoDesk) => bail!("{no_desk}"),
        Err(e) => Err(e.into()),
    }
}
