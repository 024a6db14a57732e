//! `destroy`: emergency destruction. A running node is asked to stop; then the keys are
//! overwritten and deleted (the storage key first) and the data folder deleted, and a marker
//! keeps `run` from starting the node again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use time::OffsetDateTime;
use valise_proto::v1::{AdminRequest, AdminStop, admin_request};
use valise_relay::config::Config;
use valise_relay::files::{self, ENROLMENT_KEY, NODE_SIGNING_KEY, NODE_STORAGE_KEY, POST_CA_KEY};

use crate::admin_client::ask_running_node;
use crate::clock::now_ms;

/// The file that marks a destroyed node, beside its keys.
pub(crate) fn destroyed_marker(config: &Config) -> PathBuf {
    config.key_file("DESTROYED")
}

/// `destroy`: stops the node, erases its keys and deletes its data.
pub(crate) fn destroy(config_path: &Path, confirm: &str) -> Result<()> {
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
    let _ = std::fs::remove_file(config.audit_anchor());
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
