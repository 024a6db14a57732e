//! `user update`: a user's details changed on every one of their devices at once, by the
//! running node or on a stopped node's files by the same operation
//! (`valise_relay::operations`), audited alike; a lowered clearance drops what is queued above
//! it either way.

use std::path::Path;

use anyhow::Result;
use valise_proto::v1::{AdminRequest, admin_request, admin_response};
use valise_relay::config::Config;

use crate::admin_client::ask_running_node_for;
use crate::stopped::open_post;

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
            // The node is stopped: the same change on its files, and what is queued above a
            // lowered clearance dropped, as the running node does.
            let post = open_post(
                &config,
                "this node holds no enrolment key; change the user at their post",
            )?;
            let updated = post.operator().update_user(user, change);
            let closed = post.close();
            let changed = updated?;
            closed?;
            changed.iter().map(ToString::to_string).collect()
        }
    };
    for device in &changed {
        println!("updated {user}@{} on device {device}", config.node.name);
    }
    Ok(())
}
