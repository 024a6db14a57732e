//! `user update`: a user's details changed on every one of their devices at once, by the
//! running node or on a stopped node's files.

use std::path::Path;

use anyhow::{Context, Result};
use valise_proto::v1::{AdminRequest, AuditEventKind, admin_request, admin_response};
use valise_relay::config::Config;
use valise_relay::files::NodeFiles;

use crate::admin_client::ask_running_node_for;
use crate::stopped::{audit_offline, device_object, open_stopped_directory};

/// `user update`: changes a user on all of the user's devices, and prints those changed.
pub(crate) fn update(
    config_path: &Path,
    user: &str,
    change: &valise_relay::users::Change,
) -> Result<()> {
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
