//! A throwaway network on loopback: a ministry CA, one post node, and enrolled devices, all in
//! one process. For the load generator and demonstrations; its keys are generated on the spot
//! and never meant for production.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use valise_audit::{AuditLog, LogConfig};
use valise_crypto::at_rest::StorageKey;
use valise_crypto::directory::sign_device_record;
use valise_crypto::identity::{IdentityKeyPair, IdentityPublicKey};
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{Classification, DeviceRecord};

use crate::attachments::AttachmentStore;
use crate::directory::DurableDirectory;
use crate::enrolment::{Codes, DurableCodes};
use crate::limits::Limits;
use crate::node::{EnrolmentDesk, NodeParams, RunningNode, start};
use crate::pki::{CertifiedKey, MinistryCa, PostCa, Validity, directory_root, server_config};
use crate::store::RelayStore;

/// The ministry of a local network.
pub const MINISTRY: &str = "local.example";
/// Its one post.
pub const POST: &str = "post";

/// Why a local network could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the local network: {0}")]
pub struct LocalError(String);

fn fail(e: impl std::fmt::Display) -> LocalError {
    LocalError(e.to_string())
}

/// An enrolled device and everything its owner holds.
pub struct LocalDevice {
    /// `user@post`.
    pub address: String,
    /// Identity key.
    pub identity: IdentityKeyPair,
    /// Receive keys (private).
    pub keys: Vec<ReceiveKeyPair>,
    /// Its receive key as senders see it.
    pub published: VerifiedReceiveKey,
    /// TLS certificate and key.
    pub tls: CertifiedKey,
}

/// A running local network.
pub struct LocalNetwork {
    /// The pinned ministry root (PEM).
    pub ca_pem: String,
    /// The node.
    pub node: RunningNode,
    /// The node's custody key.
    pub node_key: IdentityPublicKey,
    /// The devices, in the order their users were given.
    pub devices: Vec<LocalDevice>,
}

/// Builds the network in `dir` (which must be empty) with one device per user.
pub fn build(
    dir: &Path,
    users: &[(&str, Classification)],
    limits: Limits,
) -> Result<LocalNetwork, LocalError> {
    let now = OffsetDateTime::now_utc();
    let validity = Validity {
        not_before: now - time::Duration::hours(1),
        not_after: now + time::Duration::days(30),
    };
    let ca = MinistryCa::generate(MINISTRY, validity).map_err(fail)?;
    let node_cert = ca
        .issue_node(POST, &["localhost".into()], validity)
        .map_err(fail)?;
    let post_ca_files = ca.issue_post_ca(POST, validity).map_err(fail)?;
    let post_ca = PostCa::from_pem(POST, MINISTRY, &post_ca_files).map_err(fail)?;
    let enrolment_key = IdentityKeyPair::generate().map_err(fail)?;
    let mut directory = DurableDirectory::open(
        &dir.join("directory"),
        MINISTRY,
        directory_root(ca.cert_pem()).map_err(fail)?,
    )
    .map_err(fail)?;
    directory
        .apply(Update::Enroller(
            ca.certify_enroller(POST, enrolment_key.public(), 0, u64::MAX)
                .map_err(fail)?,
        ))
        .map_err(fail)?;
    let mut devices = Vec::with_capacity(users.len());
    for (user, clearance) in users {
        let identity = IdentityKeyPair::generate().map_err(fail)?;
        let key = ReceiveKeyPair::generate(0, u64::MAX).map_err(fail)?;
        let signed = key.to_signed_record(&identity).map_err(fail)?;
        let published = VerifiedReceiveKey::verify(&signed, identity.public()).map_err(fail)?;
        let mut record = DeviceRecord {
            device_id: identity.device_id().as_bytes().to_vec(),
            user: (*user).to_owned(),
            post: POST.into(),
            clearance: *clearance as i32,
            identity_key: identity.public().as_bytes().to_vec(),
            receive_keys: vec![signed],
            enrolled_at_ms: 1,
            ..Default::default()
        };
        sign_device_record(&mut record, &enrolment_key).map_err(fail)?;
        directory.apply(Update::Device(record)).map_err(fail)?;
        let tls = post_ca
            .issue_device(&identity.device_id().to_string(), validity)
            .map_err(fail)?;
        devices.push(LocalDevice {
            address: format!("{user}@{POST}"),
            identity,
            keys: vec![key],
            published,
            tls,
        });
    }
    let node_key = IdentityKeyPair::generate().map_err(fail)?;
    let node_public = *node_key.public();
    let audit_key = IdentityKeyPair::from_seed(&node_key.seed()[..]).map_err(fail)?;
    let audit = AuditLog::open(
        LogConfig::new(dir.join("audit"), valise_audit::log::origin(MINISTRY, POST)),
        audit_key,
    )
    .map_err(fail)?;
    // The node is the post's desk too, so devices can rotate their keys and report a wipe.
    let desk = EnrolmentDesk {
        post: POST.into(),
        enrolment_key,
        post_ca: PostCa::from_pem(POST, MINISTRY, &post_ca_files).map_err(fail)?,
        codes: DurableCodes::open(&dir.join("enrolment"), Codes::new(3_600_000, 100, 10), 0)
            .map_err(fail)?,
        certificate_validity: Duration::from_secs(30 * 86_400),
    };
    let node = start(NodeParams {
        name: POST.into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: server_config(ca.cert_pem(), &node_cert, true).map_err(fail)?,
        node_key,
        directory,
        // A throwaway network: its storage key lives only as long as this process.
        store: RelayStore::open(&dir.join("queue"), &StorageKey::generate().map_err(fail)?)
            .map_err(fail)?,
        limits,
        audit: Arc::new(audit),
        enrolment: Some(desk),
        ca_fingerprint: ca.fingerprint(),
        attachments: AttachmentStore::open(&dir.join("attachments"), Duration::from_secs(86_400))
            .map_err(fail)?,
    })
    .map_err(fail)?;
    Ok(LocalNetwork {
        ca_pem: ca.cert_pem().to_owned(),
        node,
        node_key: node_public,
        devices,
    })
}

/// A QUIC connection to the local node as `device`.
pub async fn connect(
    network: &LocalNetwork,
    device: &LocalDevice,
) -> Result<quinn::Connection, LocalError> {
    let config = crate::pki::client_config(&network.ca_pem, Some(&device.tls)).map_err(fail)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(fail)?;
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(30).try_into().map_err(fail)?));
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport));
    let mut endpoint =
        quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(fail)?;
    endpoint.set_default_client_config(client);
    endpoint
        .connect(network.node.local_addr(), &format!("{POST}.{MINISTRY}"))
        .map_err(fail)?
        .await
        .map_err(fail)
}
