//! `revoke`: a device, or every device of a user, revoked at once: by the running node (which
//! also closes their connections), or on a stopped node's files by the same operation
//! (`valise_relay::operations`): revocations signed and durable, the devices' queues dropped,
//! everything audited alike.

use std::path::Path;

use anyhow::{Context, Result, bail};
use valise_crypto::identity::DeviceId;
use valise_proto::v1::{AdminRequest, AdminRevoke, admin_request, admin_response};
use valise_relay::config::Config;
use valise_relay::operations::RevokeError;

use crate::admin_client::ask_running_node_for;
use crate::stopped::open_post;

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
            // The node is stopped: the same revocation, on its files. No connection is open.
            let post = open_post(
                &config,
                "this node holds no enrolment key; revoke at the device's post",
            )?;
            let revoked = post.operator().revoke(device, user, reason, |_| {});
            let closed = post.close();
            let targets = match revoked {
                Err(RevokeError::NotFound(_)) => {
                    bail!("no active device matches; check the device id or user")
                }
                other => other?,
            };
            closed?;
            targets.iter().map(ToString::to_string).collect()
        }
    };
    for device in &revoked {
        println!("revoked device {device}");
    }
    Ok(())
}
