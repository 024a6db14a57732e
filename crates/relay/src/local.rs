//! Throwaway networks on loopback, all in one process: a ministry CA and one post node
//! ([`start_post`], [`build`]), or a hub and several posts linked to it ([`start_network`]),
//! with devices enrolled at their posts. For the load generator and demonstrations; their keys
//! are generated on the spot and never meant for production.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use valise_audit::note::NoteVerifier;
use valise_audit::{AuditLog, LogConfig};
use valise_crypto::at_rest::StorageKey;
use valise_crypto::directory::sign_device_record;
use valise_crypto::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_crypto::tls::{client_config, directory_root};
use valise_pki::{CertifiedKey, MinistryCa, PostCa, Validity, server_config};
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{Classification, DeviceRecord};

use crate::attachments::AttachmentStore;
use crate::config::NodeKind;
use crate::directory::DurableDirectory;
use crate::enrolment::{Codes, DurableCodes};
use crate::limits::Limits;
use crate::node::{EnrolmentDesk, Federation, LinkStatus, NodeParams, RunningNode, start};
use crate::routing::NextHop;
use crate::store::RelayStore;

/// The ministry of a local network.
pub const MINISTRY: &str = "local.example";
/// Its one post.
pub const POST: &str = "post";
/// How many cables a link of a local network has awaiting custody receipts at once.
const FORWARD_WINDOW: usize = 32;
/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);

/// Done if nothing is `missing`, else what is.
fn done_unless(missing: Vec<String>) -> Result<(), String> {
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// Why a local network could not be built or used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LocalError(String);

fn fail(e: impl std::fmt::Display) -> LocalError {
    LocalError(format!("cannot build the local network: {e}"))
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
            .connect(self.home, &self.home_name)
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

/// A running node on loopback (a post, or the hub of a [`LocalFederation`]). A post enrols
/// devices with one-time codes ([`RunningNode::issue_code`]) or directly
/// ([`LocalNode::enrol_device`]).
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
}

/// A post node and its throwaway root: what [`start_post`] returns.
pub type LocalPost = LocalNode;

/// A network's ministry root and the validity every certificate of it gets.
struct Root {
    ministry: String,
    ca: MinistryCa,
    validity: Validity,
}

impl Root {
    fn generate(ministry: &str) -> Result<Self, LocalError> {
        let now = OffsetDateTime::now_utc();
        let validity = Validity {
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(30),
        };
        Ok(Root {
            ministry: ministry.to_owned(),
            ca: MinistryCa::generate(ministry, validity).map_err(fail)?,
            validity,
        })
    }
}

/// How one node of a local network takes part in it.
enum Role<'a> {
    /// A post on its own: no links.
    LonePost,
    /// The hub: posts dial it.
    Hub,
    /// A post that dials the hub at this address.
    Post { hub: &'a str },
}

/// Starts node `name` in `dir` with a certificate from `root`: the one place a local node is
/// put together, alone or federated.
fn start_node(
    root: &Root,
    dir: &Path,
    name: &str,
    role: Role<'_>,
    limits: Limits,
) -> Result<LocalNode, LocalError> {
    let (ca, ministry, validity) = (&root.ca, root.ministry.as_str(), root.validity);
    let kind = if matches!(role, Role::Hub) {
        NodeKind::Hub
    } else {
        NodeKind::Post
    };
    let node_cert = ca
        .issue_node(
            name,
            crate::pki::role(kind),
            &["127.0.0.1".into(), "localhost".into()],
            validity,
        )
        .map_err(fail)?;
    let mut directory = DurableDirectory::open(
        &dir.join("directory"),
        ministry,
        directory_root(ca.cert_pem()).map_err(fail)?,
    )
    .map_err(fail)?;
    // A post is its own enrolment desk, so devices can enrol, rotate their keys and report a
    // wipe; its enroller certificate reaches the other nodes over the links.
    let (desk, enrolment) = if matches!(role, Role::Hub) {
        (None, None)
    } else {
        let post_ca_files = ca.issue_post_ca(name, validity).map_err(fail)?;
        let enrolment_key = IdentityKeyPair::generate().map_err(fail)?;
        directory
            .apply(Update::Enroller(
                ca.certify_enroller(name, enrolment_key.public(), 0, u64::MAX)
                    .map_err(fail)?,
            ))
            .map_err(fail)?;
        let enrolment = EnrolmentDesk {
            post: name.into(),
            enrolment_key: IdentityKeyPair::from_seed(&enrolment_key.seed()[..]).map_err(fail)?,
            post_ca: PostCa::from_pem(name, ministry, &post_ca_files).map_err(fail)?,
            codes: DurableCodes::open(&dir.join("enrolment"), Codes::new(3_600_000, 100, 10), 0)
                .map_err(fail)?,
            certificate_validity: Duration::from_secs(30 * 86_400),
        };
        let desk = Desk {
            enrolment_key,
            post_ca: PostCa::from_pem(name, ministry, &post_ca_files).map_err(fail)?,
        };
        (Some(desk), Some(enrolment))
    };
    let federation = match role {
        Role::LonePost => None,
        Role::Hub | Role::Post { .. } => Some(Federation {
            ministry: ministry.into(),
            kind,
            hub: match role {
                Role::Post { hub } => Some(hub.to_owned()),
                _ => None,
            },
            peers: Vec::new(),
            ca_pem: ca.cert_pem().to_owned(),
            tls: node_cert.clone(),
            state_dir: dir.join("links"),
            forward_window: FORWARD_WINDOW,
        }),
    };
    let node_key = IdentityKeyPair::generate().map_err(fail)?;
    let node_public = *node_key.public();
    let node_key_certificate = ca
        .certify_node_key(name, &node_public, 0, u64::MAX)
        .map_err(fail)?;
    let audit_key = IdentityKeyPair::from_seed(&node_key.seed()[..]).map_err(fail)?;
    let origin = valise_audit::log::origin(ministry, name);
    let audit_dir = dir.join("audit");
    let audit = AuditLog::open(LogConfig::new(audit_dir.clone(), origin.clone()), audit_key)
        .map_err(fail)?;
    let node = start(NodeParams {
        name: name.into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: server_config(ca.cert_pem(), &node_cert, enrolment.is_some()).map_err(fail)?,
        node_key,
        node_key_certificate: Some(node_key_certificate),
        directory,
        // A throwaway network: its storage key lives only as long as this process.
        store: RelayStore::open(&dir.join("queue"), &StorageKey::generate().map_err(fail)?)
            .map_err(fail)?,
        limits,
        audit: Arc::new(audit),
        enrolment,
        ca_fingerprint: ca.fingerprint(),
        attachments: AttachmentStore::open(&dir.join("attachments"), Duration::from_secs(86_400))
            .map_err(fail)?,
        federation,
        dedup_retention: Duration::from_secs(30 * 86_400),
        delivery: crate::delivery::DeliveryConfig::default(),
        extra_tags: Vec::new(),
    })
    .map_err(fail)?;
    node.serving();
    Ok(LocalNode {
        name: name.into(),
        ca_pem: ca.cert_pem().to_owned(),
        fingerprint: ca.fingerprint(),
        addr: node.local_addr().to_string(),
        node,
        node_key: node_public,
        audit_dir,
        origin,
        desk,
        ministry: ministry.into(),
        validity,
    })
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
    fn directory_digests(&self) -> BTreeSet<[u8; 32]> {
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

/// A running federated network on loopback: a hub and posts that dial it, every node certified
/// by one throwaway ministry root. Cables between posts go through the hub, with custody at
/// every hop; directory updates replicate over the links and each node witnesses its
/// neighbours' audit logs.
pub struct LocalFederation {
    /// The ministry, e.g. `mfa.example`.
    pub ministry: String,
    /// The pinned ministry root (PEM).
    pub ca_pem: String,
    /// The root's fingerprint, as handed to diplomats with their codes.
    pub fingerprint: String,
    /// The hub (it enrols nobody).
    pub hub: LocalNode,
    /// The posts, in the order given, each its own enrolment desk.
    pub posts: Vec<LocalNode>,
}

/// Starts a hub named `hub` and the posts `posts` of `ministry`, each in its own folder of
/// `dir` (which must be empty), with a fresh root. Returns once every node listens; the posts
/// dial the hub in the background ([`LocalFederation::wait_linked`]).
pub fn start_network(
    dir: &Path,
    ministry: &str,
    hub: &str,
    posts: &[&str],
    limits: Limits,
) -> Result<LocalFederation, LocalError> {
    let mut names = BTreeSet::from([hub]);
    if let Some(twice) = posts.iter().find(|p| !names.insert(p)) {
        return Err(LocalError(format!(
            "cannot build the local network: node name {twice} is given twice"
        )));
    }
    let root = Root::generate(ministry)?;
    let hub = start_node(&root, &dir.join(hub), hub, Role::Hub, limits)?;
    let posts = posts
        .iter()
        .map(|post| {
            let role = Role::Post { hub: &hub.addr };
            start_node(&root, &dir.join(post), post, role, limits)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LocalFederation {
        ministry: ministry.into(),
        ca_pem: root.ca.cert_pem().to_owned(),
        fingerprint: root.ca.fingerprint(),
        hub,
        posts,
    })
}

impl LocalFederation {
    /// Every node: the hub, then the posts.
    pub fn nodes(&self) -> impl Iterator<Item = &LocalNode> {
        std::iter::once(&self.hub).chain(&self.posts)
    }

    /// Post `name`.
    pub fn post(&self, name: &str) -> Result<&LocalNode, LocalError> {
        self.posts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| LocalError(format!("the local network has no post {name}")))
    }

    /// Enrols a device for `user` at post `post` directly ([`LocalNode::enrol_device`]). Other
    /// nodes learn of it by replication: see [`LocalFederation::wait_replicated`].
    pub fn enrol(
        &self,
        post: &str,
        user: &str,
        clearance: Classification,
    ) -> Result<LocalDevice, LocalError> {
        self.post(post)?.enrol_device(user, clearance)
    }

    /// The keys that cosign `node`'s audit checkpoints: its neighbours' witness keys (for the
    /// hub every post, for a post the hub).
    pub fn witnesses_of(&self, node: &str) -> Result<Vec<NoteVerifier>, LocalError> {
        if node == self.hub.name {
            self.posts.iter().map(LocalNode::witness_verifier).collect()
        } else {
            self.post(node)?;
            Ok(vec![self.hub.witness_verifier()?])
        }
    }

    /// Each node's links as they should be: the hub's to every post, each post's to the hub.
    fn expected_links(&self) -> Vec<(&LocalNode, String, Option<LinkStatus>)> {
        let mut links = Vec::new();
        let hub = self.hub.node.links();
        for post in &self.posts {
            let hop = NextHop::Post(post.name.clone());
            links.push((&self.hub, post.name.clone(), hub.get(&hop).cloned()));
            let status = post.node.links().get(&NextHop::Hub).cloned();
            links.push((post, self.hub.name.clone(), status));
        }
        links
    }

    /// Waits until every post's link to the hub is up, at both ends.
    pub async fn wait_linked(&self, timeout: Duration) -> Result<(), LocalError> {
        self.wait(timeout, "every post to link to the hub", || {
            let down: Vec<String> = self
                .expected_links()
                .into_iter()
                .filter(|(_, _, status)| !status.as_ref().is_some_and(|s| s.connected))
                .map(|(node, other, _)| format!("{} to {other}", node.name))
                .collect();
            Ok(done_unless(down))
        })
        .await
    }

    /// Waits until every node holds every directory update any node holds (enrolments,
    /// revocations, new receive keys), so that each node can route to every device.
    pub async fn wait_replicated(&self, timeout: Duration) -> Result<(), LocalError> {
        self.wait(timeout, "the directory to reach every node", || {
            let held = self
                .nodes()
                .map(|n| (n.name.as_str(), n.directory_digests()))
                .collect::<Vec<_>>();
            let all: BTreeSet<&[u8; 32]> = held.iter().flat_map(|(_, d)| d).collect();
            let behind: Vec<String> = held
                .iter()
                .filter(|(_, d)| d.len() < all.len())
                .map(|(name, d)| format!("{name} holds {} of {} updates", d.len(), all.len()))
                .collect();
            Ok(done_unless(behind))
        })
        .await
    }

    /// Waits until every link has carried a cosignature both ways: each node has had one of its
    /// audit checkpoints cosigned by each neighbour, and has cosigned one of theirs.
    pub async fn wait_witnessed(&self, timeout: Duration) -> Result<(), LocalError> {
        self.wait(timeout, "every node's audit log to be witnessed", || {
            let mut missing = Vec::new();
            for (node, other, status) in self.expected_links() {
                let status = status.unwrap_or_default();
                if status.witnessed.is_none() {
                    missing.push(format!("{} not yet witnessed by {other}", node.name));
                }
                if status.cosigned.is_none() {
                    missing.push(format!("{} has not yet cosigned {other}", node.name));
                }
            }
            Ok(done_unless(missing))
        })
        .await
    }

    /// Polls `done` until it says so, or fails after `timeout` with what it last reported.
    async fn wait(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn() -> Result<Result<(), String>, LocalError>,
    ) -> Result<(), LocalError> {
        let start = Instant::now();
        loop {
            let why = match done()? {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if start.elapsed() >= timeout {
                return Err(LocalError(format!(
                    "waited {timeout:?} for {what}, in vain ({why})"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops every node, posts first, and makes everything durable.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        for node in self.posts.into_iter().chain([self.hub]) {
            let name = node.name;
            node.node
                .shutdown()
                .await
                .map_err(|e| LocalError(format!("node {name} did not stop cleanly: {e}")))?;
        }
        Ok(())
    }
}
