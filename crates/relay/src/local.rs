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

/// A running post node on loopback with its throwaway ministry root, ready to enrol devices
/// with one-time codes ([`RunningNode::issue_code`]).
pub struct LocalPost {
    /// The pinned ministry root (PEM).
    pub ca_pem: String,
    /// The root's fingerprint, as handed to diplomats with their codes.
    pub fingerprint: String,
    /// The node.
    pub node: RunningNode,
    /// `127.0.0.1:<port>`: the node's certificate names `127.0.0.1` and `localhost`.
    pub addr: String,
    /// The node's custody and audit key.
    pub node_key: IdentityPublicKey,
    /// The node's audit log folder.
    pub audit_dir: std::path::PathBuf,
    /// The audit log's origin line.
    pub origin: String,
    /// The post's enrolment key (signs device records).
    enrolment_key: IdentityKeyPair,
    /// The post's CA (issues device certificates).
    post_ca: PostCa,
    validity: Validity,
}

/// Starts post `post` of `ministry` in `dir` (which must be empty), with a fresh root.
pub fn start_post(
    dir: &Path,
    ministry: &str,
    post: &str,
    limits: Limits,
) -> Result<LocalPost, LocalError> {
    let now = OffsetDateTime::now_utc();
    let validity = Validity {
        not_before: now - time::Duration::hours(1),
        not_after: now + time::Duration::days(30),
    };
    let ca = MinistryCa::generate(ministry, validity).map_err(fail)?;
    let node_cert = ca
        .issue_node(post, &["127.0.0.1".into(), "localhost".into()], validity)
        .map_err(fail)?;
    let post_ca_files = ca.issue_post_ca(post, validity).map_err(fail)?;
    let enrolment_key = IdentityKeyPair::generate().map_err(fail)?;
    let mut directory = DurableDirectory::open(
        &dir.join("directory"),
        ministry,
        directory_root(ca.cert_pem()).map_err(fail)?,
    )
    .map_err(fail)?;
    directory
        .apply(Update::Enroller(
            ca.certify_enroller(post, enrolment_key.public(), 0, u64::MAX)
                .map_err(fail)?,
        ))
        .map_err(fail)?;
    let node_key = IdentityKeyPair::generate().map_err(fail)?;
    let node_public = *node_key.public();
    let audit_key = IdentityKeyPair::from_seed(&node_key.seed()[..]).map_err(fail)?;
    let origin = valise_audit::log::origin(ministry, post);
    let audit_dir = dir.join("audit");
    let audit = AuditLog::open(LogConfig::new(audit_dir.clone(), origin.clone()), audit_key)
        .map_err(fail)?;
    // The node is the post's desk too, so devices can enrol, rotate their keys and report a wipe.
    let desk = EnrolmentDesk {
        post: post.into(),
        enrolment_key: IdentityKeyPair::from_seed(&enrolment_key.seed()[..]).map_err(fail)?,
        post_ca: PostCa::from_pem(post, ministry, &post_ca_files).map_err(fail)?,
        codes: DurableCodes::open(&dir.join("enrolment"), Codes::new(3_600_000, 100, 10), 0)
            .map_err(fail)?,
        certificate_validity: Duration::from_secs(30 * 86_400),
    };
    let node = start(NodeParams {
        name: post.into(),
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
        federation: None,
    })
    .map_err(fail)?;
    Ok(LocalPost {
        ca_pem: ca.cert_pem().to_owned(),
        fingerprint: ca.fingerprint(),
        addr: node.local_addr().to_string(),
        node,
        node_key: node_public,
        audit_dir,
        origin,
        enrolment_key,
        post_ca: PostCa::from_pem(post, ministry, &post_ca_files).map_err(fail)?,
        validity,
    })
}

/// Builds the network in `dir` (which must be empty) with one device per user, enrolled
/// directly (no codes): for the load generator.
pub fn build(
    dir: &Path,
    users: &[(&str, Classification)],
    limits: Limits,
) -> Result<LocalNetwork, LocalError> {
    let post = start_post(dir, MINISTRY, POST, limits)?;
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
        sign_device_record(&mut record, &post.enrolment_key).map_err(fail)?;
        post.node
            .update_directory(|d| d.apply(Update::Device(record)))
            .map_err(fail)?;
        let tls = post
            .post_ca
            .issue_device(&identity.device_id().to_string(), post.validity)
            .map_err(fail)?;
        devices.push(LocalDevice {
            address: format!("{user}@{POST}"),
            identity,
            keys: vec![key],
            published,
            tls,
        });
    }
    Ok(LocalNetwork {
        ca_pem: post.ca_pem,
        node: post.node,
        node_key: post.node_key,
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
