//! One node of a local network put together on loopback, a lone post, and the devices
//! enrolled at a post.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use valise_audit::note::NoteVerifier;
use valise_audit::{AuditLog, LogConfig};
use valise_crypto::at_rest::StorageKey;
use valise_crypto::directory::sign_device_record;
use valise_crypto::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_crypto::tls::{client_config, directory_root};
use valise_pki::{CertifiedKey, PostCa, Validity, server_config};
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{Classification, DeviceRecord, NodeKeyCertificate};
use valise_relay::attachments::AttachmentStore;
use valise_relay::config::NodeKind;
use valise_relay::delivery::DeliveryConfig;
use valise_relay::directory::DurableDirectory;
use valise_relay::enrolment::{Codes, DurableCodes};
use valise_relay::limits::Limits;
use valise_relay::node::{EnrolmentDesk, Federation, NodeParams, RunningNode, start};
use valise_relay::store::RelayStore;
use zeroize::Zeroizing;

use super::root::Root;
use super::{LocalError, MINISTRY, POST, fail};

/// How many cables a link of a local network has awaiting custody receipts at once.
const FORWARD_WINDOW: usize = 128;

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
    /// Its post's node: where it connects.
    pub home: SocketAddr,
    /// Its post's node name, as the node's certificate names it (`<post>.<ministry>`).
    home_name: String,
    /// The pinned ministry root (PEM).
    ca_pem: String,
}

impl LocalDevice {
    /// The device's id.
    pub fn id(&self) -> DeviceId {
        self.identity.device_id()
    }

    /// A QUIC connection to the device's own post node, with its certificate.
    pub async fn connect(&self) -> Result<quinn::Connection, LocalError> {
        self.connect_at(self.home).await
    }

    /// A QUIC connection to `addr`, which must present the certificate of the device's own
    /// post node (a load generator's baseline server does), with the device's certificate.
    pub async fn connect_at(&self, addr: SocketAddr) -> Result<quinn::Connection, LocalError> {
        let failed = |e: &dyn std::fmt::Display| {
            LocalError(format!(
                "{} cannot connect to its node {}: {e}",
                self.address, self.home
            ))
        };
        let config = client_config(&self.ca_pem, Some(&self.tls)).map_err(|e| failed(&e))?;
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| failed(&e))?;
        let mut transport = quinn::TransportConfig::default();
        let idle = Duration::from_secs(30).try_into().map_err(|e| failed(&e))?;
        transport.max_idle_timeout(Some(idle));
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(transport));
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(|e| failed(&e))?;
        endpoint.set_default_client_config(client);
        endpoint
            .connect(addr, &self.home_name)
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))
    }
}

/// A running local network of one post.
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

/// What a post's node needs to enrol devices itself: its enrolment key and CA.
struct Desk {
    enrolment_key: IdentityKeyPair,
    post_ca: PostCa,
}

/// A running node on loopback (a post, or the hub of a
/// [`LocalFederation`](super::LocalFederation)). A post enrols devices with one-time codes
/// ([`RunningNode::issue_code`]) or directly ([`LocalNode::enrol_device`]).
pub struct LocalNode {
    /// The node's name, e.g. `paris`.
    pub name: String,
    /// The pinned ministry root (PEM).
    pub ca_pem: String,
    /// The root's fingerprint, as handed to diplomats with their codes.
    pub fingerprint: String,
    /// The node.
    pub node: RunningNode,
    /// `127.0.0.1:<port>`: the node's certificate names `127.0.0.1` and `localhost`.
    pub addr: String,
    /// The node's custody and audit key (its witness key too).
    pub node_key: IdentityPublicKey,
    /// The node's audit log folder.
    pub audit_dir: PathBuf,
    /// The audit log's origin line.
    pub origin: String,
    /// The post's enrolment desk; `None` for the hub.
    desk: Option<Desk>,
    ministry: String,
    validity: Validity,
    /// What it was started from, to start it again.
    kit: Kit,
}

/// A post node and its throwaway root: what [`start_post`] returns.
pub type LocalPost = LocalNode;

/// How one node of a local network takes part in it.
pub(super) enum Role<'a> {
    /// A post on its own: no links.
    LonePost,
    /// The hub: posts dial it.
    Hub,
    /// A post that dials the hub at this address.
    Post { hub: &'a str },
}

/// Starts node `name` in `dir` with a certificate from `root`: the one place a local node is
/// put together, alone or federated.
pub(super) fn start_node(
    root: &Root,
    dir: &Path,
    name: &str,
    role: Role<'_>,
    limits: Limits,
) -> Result<LocalNode, LocalError> {
    let (ca, ministry, validity) = (&root.ca, root.ministry.as_str(), root.validity);
    // The node's kind, and the role its certificate carries: the root's word for it.
    let (kind, certified) = match role {
        Role::Hub => (NodeKind::Hub, valise_pki::Role::Hub),
        Role::LonePost | Role::Post { .. } => (NodeKind::Post, valise_pki::Role::Post),
    };
    let node_cert = ca
        .issue_node(
            name,
            certified,
            &["127.0.0.1".into(), "localhost".into()],
            validity,
        )
        .map_err(fail)?;
    // A post is its own enrolment desk, so devices can enrol, rotate their keys and report a
    // wipe; its enroller certificate reaches the other nodes over the links.
    let (desk, kit_desk) = if matches!(role, Role::Hub) {
        (None, None)
    } else {
        let post_ca_files = ca.issue_post_ca(name, validity).map_err(fail)?;
        let enrolment_key = IdentityKeyPair::generate().map_err(fail)?;
        let mut directory = open_directory(dir, ministry, ca.cert_pem())?;
        directory
            .apply(Update::Enroller(
                ca.certify_enroller(name, enrolment_key.public(), 0, u64::MAX)
                    .map_err(fail)?,
            ))
            .map_err(fail)?;
        let kit_desk = KitDesk {
            enrolment_seed: enrolment_key.seed().clone(),
            post_ca: post_ca_files.clone(),
        };
        let desk = Desk {
            enrolment_key,
            post_ca: PostCa::from_pem(name, ministry, &post_ca_files).map_err(fail)?,
        };
        (Some(desk), Some(kit_desk))
    };
    let node_key = IdentityKeyPair::generate().map_err(fail)?;
    let node_public = *node_key.public();
    let kit = Kit {
        dir: dir.to_owned(),
        name: name.into(),
        ministry: ministry.into(),
        ca_pem: ca.cert_pem().to_owned(),
        fingerprint: ca.fingerprint(),
        kind,
        hub: match role {
            Role::Post { hub } => Some(hub.to_owned()),
            _ => None,
        },
        federated: !matches!(role, Role::LonePost),
        node_cert,
        node_key_seed: node_key.seed().clone(),
        node_key_certificate: ca
            .certify_node_key(name, &node_public, 0, u64::MAX)
            .map_err(fail)?,
        // A throwaway network: its storage key lives only as long as this process.
        storage_key: StorageKey::generate().map_err(fail)?.to_bytes(),
        desk: kit_desk,
        limits,
    };
    let node = kit.launch(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(LocalNode {
        name: name.into(),
        ca_pem: kit.ca_pem.clone(),
        fingerprint: kit.fingerprint.clone(),
        addr: node.local_addr().to_string(),
        node,
        node_key: node_public,
        audit_dir: dir.join("audit"),
        origin: valise_audit::log::origin(ministry, name),
        desk,
        ministry: ministry.into(),
        validity,
        kit,
    })
}

/// Everything a local node is started from, kept so that it can be started again on its own
/// files, keys and address, as a restarted process would be.
struct Kit {
    dir: PathBuf,
    name: String,
    ministry: String,
    ca_pem: String,
    fingerprint: String,
    kind: NodeKind,
    /// For a post, the hub it dials.
    hub: Option<String>,
    /// Whether it links to other nodes at all.
    federated: bool,
    node_cert: CertifiedKey,
    node_key_seed: Zeroizing<[u8; 32]>,
    node_key_certificate: NodeKeyCertificate,
    storage_key: Zeroizing<[u8; 32]>,
    desk: Option<KitDesk>,
    limits: Limits,
}

/// A post's enrolment desk, as a [`Kit`] keeps it.
struct KitDesk {
    enrolment_seed: Zeroizing<[u8; 32]>,
    /// The post CA's certificate and key.
    post_ca: CertifiedKey,
}

fn open_directory(
    dir: &Path,
    ministry: &str,
    ca_pem: &str,
) -> Result<DurableDirectory, LocalError> {
    DurableDirectory::open(
        &dir.join("directory"),
        ministry,
        directory_root(ca_pem).map_err(fail)?,
    )
    .map_err(fail)
}

impl Kit {
    /// Starts the node on `listen`, on whatever its folder holds.
    fn launch(&self, listen: SocketAddr) -> Result<RunningNode, LocalError> {
        let name = self.name.as_str();
        let enrolment = match &self.desk {
            None => None,
            Some(desk) => Some(EnrolmentDesk {
                post: name.into(),
                enrolment_key: IdentityKeyPair::from_seed(&desk.enrolment_seed[..])
                    .map_err(fail)?,
                post_ca: PostCa::from_pem(name, &self.ministry, &desk.post_ca).map_err(fail)?,
                codes: DurableCodes::open(
                    &self.dir.join("enrolment"),
                    Codes::new(3_600_000, 100, 10),
                    0,
                )
                .map_err(fail)?,
                certificate_validity: Duration::from_secs(30 * 86_400),
            }),
        };
        let federation = self.federated.then(|| Federation {
            ministry: self.ministry.clone(),
            kind: self.kind,
            hub: self.hub.clone(),
            peers: Vec::new(),
            ca_pem: self.ca_pem.clone(),
            tls: self.node_cert.clone(),
            state_dir: self.dir.join("links"),
            forward_window: FORWARD_WINDOW,
        });
        let node_key = IdentityKeyPair::from_seed(&self.node_key_seed[..]).map_err(fail)?;
        let audit_key = IdentityKeyPair::from_seed(&self.node_key_seed[..]).map_err(fail)?;
        let origin = valise_audit::log::origin(&self.ministry, name);
        let audit = AuditLog::open(LogConfig::new(self.dir.join("audit"), origin), audit_key)
            .map_err(fail)?;
        let node = start(NodeParams {
            name: name.into(),
            listen,
            tls: server_config(&self.ca_pem, &self.node_cert, enrolment.is_some()).map_err(fail)?,
            node_key,
            node_key_certificate: Some(self.node_key_certificate.clone()),
            directory: open_directory(&self.dir, &self.ministry, &self.ca_pem)?,
            store: RelayStore::open(
                &self.dir.join("queue"),
                &StorageKey::from_bytes(&self.storage_key[..]).map_err(fail)?,
            )
            .map_err(fail)?,
            limits: self.limits,
            audit: Arc::new(audit),
            enrolment,
            ca_fingerprint: self.fingerprint.clone(),
            attachments: AttachmentStore::open(
                &self.dir.join("attachments"),
                Duration::from_secs(86_400),
            )
            .map_err(fail)?,
            federation,
            dedup_retention: Duration::from_secs(30 * 86_400),
            delivery: DeliveryConfig::default(),
            extra_tags: Vec::new(),
        })
        .map_err(fail)?;
        node.serving();
        Ok(node)
    }
}

impl LocalNode {
    /// Stops the node and starts it again on its own files, keys and address, as a process
    /// restarted in place would be: its neighbours' connections to the old one are gone.
    pub async fn restart(self) -> Result<LocalNode, LocalError> {
        let listen: SocketAddr = self.addr.parse().map_err(fail)?;
        let LocalNode {
            name,
            ca_pem,
            fingerprint,
            node,
            addr,
            node_key,
            audit_dir,
            origin,
            desk,
            ministry,
            validity,
            kit,
        } = self;
        node.shutdown().await.map_err(fail)?;
        let node = kit.launch(listen)?;
        Ok(LocalNode {
            name,
            ca_pem,
            fingerprint,
            node,
            addr,
            node_key,
            audit_dir,
            origin,
            desk,
            ministry,
            validity,
            kit,
        })
    }

    /// A TLS server configuration presenting this node's own certificate, to the devices of
    /// its root: what a load generator's baseline server answers with, so that it and the node
    /// are measured with the same mutual TLS.
    pub fn tls_server_config(&self) -> Result<rustls::ServerConfig, LocalError> {
        server_config(&self.kit.ca_pem, &self.kit.node_cert, false).map_err(fail)
    }
}

/// Starts post `post` of `ministry` in `dir` (which must be empty), with a fresh root and no
/// links to other nodes.
pub fn start_post(
    dir: &Path,
    ministry: &str,
    post: &str,
    limits: Limits,
) -> Result<LocalPost, LocalError> {
    start_node(
        &Root::generate(ministry)?,
        dir,
        post,
        Role::LonePost,
        limits,
    )
}

impl LocalNode {
    /// Enrols a device for `user` at this post directly, without a code: its keys are made
    /// here, its record signed with the post's enrolment key and added to the directory (from
    /// where it replicates to the other nodes), and its certificate issued by the post's CA.
    pub fn enrol_device(
        &self,
        user: &str,
        clearance: Classification,
    ) -> Result<LocalDevice, LocalError> {
        let desk = self.desk.as_ref().ok_or_else(|| {
            LocalError(format!(
                "node {} has no enrolment desk (it is the hub); enrol {user} at a post",
                self.name
            ))
        })?;
        let failed = |e: &dyn std::fmt::Display| {
            LocalError(format!("cannot enrol {user}@{}: {e}", self.name))
        };
        let identity = IdentityKeyPair::generate().map_err(|e| failed(&e))?;
        let key = ReceiveKeyPair::generate(0, u64::MAX).map_err(|e| failed(&e))?;
        let signed = key.to_signed_record(&identity).map_err(|e| failed(&e))?;
        let published =
            VerifiedReceiveKey::verify(&signed, identity.public()).map_err(|e| failed(&e))?;
        let mut record = DeviceRecord {
            device_id: identity.device_id().as_bytes().to_vec(),
            user: user.to_owned(),
            post: self.name.clone(),
            clearance: clearance as i32,
            identity_key: identity.public().as_bytes().to_vec(),
            receive_keys: vec![signed],
            enrolled_at_ms: 1,
            ..Default::default()
        };
        sign_device_record(&mut record, &desk.enrolment_key).map_err(|e| failed(&e))?;
        self.node
            .update_directory(|d| d.apply(Update::Device(record)))
            .map_err(|e| failed(&e))?;
        let tls = desk
            .post_ca
            .issue_device(&identity.device_id().to_string(), self.validity)
            .map_err(|e| failed(&e))?;
        Ok(LocalDevice {
            address: format!("{user}@{}", self.name),
            identity,
            keys: vec![key],
            published,
            tls,
            home: self.node.local_addr(),
            home_name: format!("{}.{}", self.name, self.ministry),
            ca_pem: self.ca_pem.clone(),
        })
    }

    /// This node's cosignature key as its neighbours check it: `valise/<ministry>/<node>/witness`.
    pub fn witness_verifier(&self) -> Result<NoteVerifier, LocalError> {
        let name = valise_audit::log::witness_name(&self.ministry, &self.name);
        NoteVerifier::cosigner(&name, self.node_key)
            .map_err(|e| LocalError(format!("node {}'s witness key: {e}", self.name)))
    }

    /// The digests of every directory update this node holds, whatever their numbering.
    pub(super) fn directory_digests(&self) -> BTreeSet<[u8; 32]> {
        self.node
            .update_directory(|d| d.held().iter().copied().collect())
    }
}

/// Builds the network in `dir` (which must be empty) with one device per user, enrolled
/// directly (no codes): for the load generator.
pub fn build(
    dir: &Path,
    users: &[(&str, Classification)],
    limits: Limits,
) -> Result<LocalNetwork, LocalError> {
    let post = start_post(dir, MINISTRY, POST, limits)?;
    let devices = users
        .iter()
        .map(|(user, clearance)| post.enrol_device(user, *clearance))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LocalNetwork {
        ca_pem: post.ca_pem,
        node: post.node,
        node_key: post.node_key,
        devices,
    })
}
