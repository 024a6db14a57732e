//! `revoke`: a device, or every device of a user, revoked at once: by the running node (which
//! closes their connections), or on a stopped node's files.

use std::path::Path;

use anyhow::{Context, Result, bail};
use valise_crypto::directory::sign_revocation;
use valise_crypto::identity::DeviceId;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{
    AdminRequest, AdminRevoke, AuditEventKind, Revocation, admin_request, admin_response,
};
use valise_relay::config::Config;
use valise_relay::files::NodeFiles;

use crate::admin_client::ask_running_node_for;
use crate::clock::now_ms;
use crate::stopped::{audit_offline, device_object, open_stopped_directory};

/// `revoke`: revokes a device, or every device of a user, and prints those revoked.
pub(crate) fn revoke(
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
