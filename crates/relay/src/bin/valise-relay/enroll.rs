//! `enroll`: a one-time enrolment code for a diplomat at this post, issued by the running node
//! or, when it is stopped, straight into its store by the same operation
//! (`valise_relay::operations`), audited alike.

use std::path::Path;

use anyhow::{Result, bail};
use valise_proto::v1::{AdminEnroll, AdminRequest, admin_request, admin_response};
use valise_relay::config::Config;
use valise_relay::enrolment::Invitation;

use crate::admin_client::ask_running_node_for;
use crate::stopped::open_post;

/// `enroll`: prints a one-time enrolment code and the root fingerprint to pin.
pub(crate) fn enroll(config_path: &Path, invitation: Invitation, json: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let user = invitation.user.clone();
    if user.is_empty() || user.contains(['@', ' ']) {
        bail!("--user is the name at the post, without '@' or spaces, e.g. alice");
    }
    let request = AdminRequest {
        request: Some(admin_request::Request::Enroll(AdminEnroll {
            user: user.clone(),
            display_name: invitation.display_name.clone(),
            clearance: invitation.clearance as i32,
            offices: invitation.offices.clone(),
            foreign_national: invitation.foreign_national,
        })),
    };
    let (code, fingerprint) = match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::Enrolled(e) => Some((e.code, e.ca_fingerprint)),
        _ => None,
    })? {
        Some(answer) => answer,
        None => {
            // The node is stopped: issue the code straight into its store, as it would.
            let post = open_post(
                &config,
                "this node holds no enrolment key; enrol at the diplomat's post",
            )?;
            let enrolled = post.operator().enroll(invitation);
            let fingerprint = post.ca_fingerprint().to_owned();
            let closed = post.close();
            let code = enrolled?;
            closed?;
            (code, fingerprint)
        }
    };
    if json {
        println!(
            "{{\"code\":\"{code}\",\"ca_fingerprint\":\"{fingerprint}\",\"node\":\"{}\"}}",
            config.node.name
        );
    } else {
        println!("Enrolment code for {user}@{}: {code}", config.node.name);
        println!(
            "It works once, and expires in {} hours.",
            config.enrolment.code_ttl_hours
        );
        println!("The device must pin this ministry root fingerprint: {fingerprint}");
    }
    Ok(())
}
