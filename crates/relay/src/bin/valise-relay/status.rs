//! `status`: links, queues and witnessing, from the running node or a stopped node's files.

use std::path::Path;

use anyhow::Result;
use valise_proto::v1::{AdminRequest, AdminStatus, admin_request, admin_response};
use valise_relay::config::Config;

use crate::admin_client::ask_running_node_for;
use crate::clock::now_ms;

/// `status`: the node's links, queues and witnessing, as text or JSON.
pub(crate) fn status(config_path: &Path, json: bool) -> Result<()> {
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
