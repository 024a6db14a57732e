//! `enroll`: a one-time enrolment code for a diplomat at this post, issued by the running node
//! or, when it is stopped, straight into its store.

use std::path::Path;

use anyhow::{Context, Result, bail};
use valise_crypto::tls::root_fingerprint;
use valise_proto::v1::{AdminEnroll, AdminRequest, AuditEventKind, admin_request, admin_response};
use valise_relay::config::Config;
use valise_relay::enrolment::{DurableCodes, Invitation};
use valise_relay::files::NodeFiles;

use crate::admin_client::ask_running_node_for;
use crate::clock::now_ms;
use crate::stopped::{audit_offline, codes_rules, open_stopped_directory};

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
            // The node is stopped: issue the code straight into its store.
            let node_files = NodeFiles::load(&config)?;
            if node_files.enrolment.is_none() {
                bail!("this node holds no enrolment key; enrol at the diplomat's post");
            }
            let mut codes = DurableCodes::open(
                &config.node.data_dir.join("enrolment"),
                codes_rules(&config),
                now_ms(),
            )
            .context("cannot open the enrolment store (is the node starting?)")?;
            let directory = open_stopped_directory(&config, &node_files.ca_pem)?;
            let address = format!("{user}@{}", config.node.name);
            let devices = directory.view().resolve(&address).unwrap_or_default();
            valise_relay::users::check_same_person(&address, &devices, &invitation)?;
            drop(directory);
            let mut entropy = [0u8; valise_relay::enrolment::CODE_ENTROPY_BYTES];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut entropy)
                .map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
            let issued = codes.issue(invitation, entropy, now_ms())?;
            audit_offline(&config, AuditEventKind::AdminCommand, "enroll", Vec::new())?;
            (issued.code, root_fingerprint(&node_files.ca_pem)?)
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
