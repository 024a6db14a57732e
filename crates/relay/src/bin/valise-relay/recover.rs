//! `recover`: after a fault, a loss accepted deliberately so a stopped node can start again (a
//! store lost for good starts empty, or a lost anchor is written anew), each choice audited.

use std::path::Path;

use anyhow::{Context, Result, bail};
use valise_audit::{AuditLog, LogConfig};
use valise_proto::v1::{AuditEvent, AuditEventKind};
use valise_relay::config::Config;
use valise_relay::files::{self, NODE_SIGNING_KEY};
use valise_relay::manifest::Manifest;

use crate::admin_client::ask_is_running;
use crate::clock::now_ms;

/// `recover`: accepts a lost store or anchor deliberately, and records it.
pub(crate) fn recover(
    config_path: &Path,
    start_empty: &[String],
    recreate_anchor: bool,
) -> Result<()> {
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
    log_config.anchor = Some(config.audit_anchor());
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
