//! The node's network shell: QUIC (quinn) on tokio, a thin layer over the decisions made in
//! [`crate::policy`], [`crate::directory`] and [`crate::store`].
//!
//! Each request travels on its own bidirectional stream, as length-delimited frames:
//!
//! * `Hello` → `Welcome` (protocol version, node, clock, limits);
//! * `Submit` → `CustodyReceipt` once the cable is durable, or an `ErrorFrame` that says why;
//! * `Subscribe` → a `Delivery` per queued cable, most urgent first; the device answers each
//!   with a `DeliveryAck` once it has stored the cable, and unacknowledged ones are resent.
//!   `CaughtUp` follows whenever everything queued has been sent; once the device finishes its
//!   side, the node processes the acknowledgements read and finishes its own;
//! * `DirectorySync` → a `DirectoryPage`;
//! * `AttachmentUpload` and its raw bytes → `AttachmentStored`; `AttachmentFetch` →
//!   `AttachmentFollows` and the raw bytes ([`crate::attachments`]);
//! * `PublishReceiveKeys` → `ReceiveKeysPublished`, the device's record re-signed;
//! * `WipeNotice` → `WipeConfirmed`, then the device's connections close: it is revoked.
//!
//! A bad frame or a refusal closes only its own stream; the connection and the node carry on.
//!
//! Connections from other nodes (ALPN `valise-link/1`) are served by [`link`].
//!
//! | module | concern |
//! |---|---|
//! | this one | the node's state, starting it, and what a running node offers its owner |
//! | `endpoint` | the UDP socket and the QUIC endpoint: buffers, keys kept across restarts |
//! | `serve` | accepting connections, the device a certificate names, one task per stream |
//! | `wire` | reading and writing frames, the error frame |
//! | `hello`, `sync` | the welcome (or a cloned device's alarm); directory pages for devices |
//! | `submit`, `intake` | a device's submission; the one custody path submissions and forwards share |
//! | `deliver` | a device's delivery stream and its acknowledgements |
//! | `attachments` | attachment uploads and fetches |
//! | `enrol` | the enrolment path, without a device certificate |
//! | `devices` | a device's keys and wipe; closing revoked devices' connections |
//! | `record` | audit records, also operator log events |
//! | `admin`, `observed` | the admin socket's commands; what `/healthz` and `/metrics` read |
//! | `housekeeping` | hourly sweeps: attachments, dedup entries, revoked devices' queues |
//! | `link` | links to other nodes: dial, forward, directory, witnessing |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::Notify;
use valise_audit::AuditLog;
use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_pki::PostCa;
use valise_proto::v1::{AuditEventKind, Outcome};
use valise_store::StoreError;

use crate::attachments::AttachmentStore;
use crate::delivery::DeliveryConfig;
use crate::directory::DurableDirectory;
use crate::enrolment::{DurableCodes, Invitation};
use crate::limits::Limits;
use crate::operations::{IssueError, RevokeError};
use crate::record::Record;
use crate::routing::NextHop;
use crate::shared_directory::SharedDirectory;
use crate::store::RelayStore;

mod admin;
mod attachments;
mod deliver;
mod devices;
mod endpoint;
mod enrol;
mod hello;
mod housekeeping;
mod intake;
mod link;
mod observed;
mod record;
mod serve;
mod submit;
mod sync;
mod wire;

use attachments::{receive_attachment, send_attachment};
use devices::close_connections;
use enrol::Desk;
pub use link::{Federation, FederationError, LinkStatus, WITNESS_KEYS};
use record::{completed, log_event, record_all, record_async, record_later};
use serve::{accept_loop, certificate_names};
use sync::directory_page;
use wire::{error, next_frame, send_frame};

/// QUIC application error codes a node closes connections with.
const CLOSE_UNAUTHORISED: u32 = 1;
const CLOSE_SHUTDOWN: u32 = 2;

const CLOSE_BUSY: u32 = 5;

/// How long a wipe confirmation may take to reach the device before its connections close.
const WIPE_CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The TLS configuration cannot be used for QUIC.
    #[error("the TLS configuration cannot be used for QUIC: {0}")]
    Tls(String),
    /// The node could not join the network.
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; check that the address is free and allowed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a node needs to run.
pub struct NodeParams {
    /// The node's name, e.g. `paris`.
    pub name: String,
    /// The QUIC listen address.
    pub listen: SocketAddr,
    /// The TLS server configuration ([`valise_pki::server_config`]).
    pub tls: rustls::ServerConfig,
    /// The key that signs custody receipts.
    pub node_key: IdentityKeyPair,
    /// The root's certificate of that key, handed to devices; `None` for a node issued before
    /// there were such certificates.
    pub node_key_certificate: Option<valise_proto::v1::NodeKeyCertificate>,
    /// The directory, durable.
    pub directory: DurableDirectory,
    /// The store of cables in transit.
    pub store: RelayStore,
    /// Limits on what peers may send.
    pub limits: Limits,
    /// The node's audit log: every submission, custody, delivery and refusal is recorded.
    pub audit: Arc<AuditLog>,
    /// How this node enrols its post's devices; `None` for a node that enrols none (the hub).
    pub enrolment: Option<EnrolmentDesk>,
    /// The ministry root's fingerprint, handed out with enrolment codes.
    pub ca_fingerprint: String,
    /// Uploaded attachment ciphertexts.
    pub attachments: AttachmentStore,
    /// How the node links to the rest of the network; `None` for a lone post.
    pub federation: Option<Federation>,
    /// How long a delivered cable's id is remembered, so a late resend is not delivered
    /// twice.
    pub dedup_retention: Duration,
    /// How each device's delivery stream paces itself ([`DeliveryConfig::default`] in
    /// production; tests shorten the redelivery timeout).
    pub delivery: DeliveryConfig,
    /// TAGS this network adds to the standard ones, told to devices in the welcome.
    pub extra_tags: Vec<String>,
}

/// What a node needs to enrol its post's devices.
pub struct EnrolmentDesk {
    /// The post, e.g. `paris`.
    pub post: String,
    /// The post's enrolment key, certified by the ministry root; signs device records.
    pub enrolment_key: IdentityKeyPair,
    /// The post's CA; issues device certificates.
    pub post_ca: PostCa,
    /// Outstanding codes, kept durably.
    pub codes: DurableCodes,
    /// How long device certificates are valid.
    pub certificate_validity: Duration,
}

struct Shared {
    name: String,
    node_key: IdentityKeyPair,
    directory: SharedDirectory,
    store: RelayStore,
    limits: Limits,
    audit: Arc<AuditLog>,
    desk: Option<Desk>,
    ca_fingerprint: String,
    attachments: AttachmentStore,
    /// Counters for the metrics endpoint.
    metrics: crate::metrics::Metrics,
    /// Bounds the connections of enrolled devices served at once.
    connection_permits: Arc<tokio::sync::Semaphore>,
    /// Bounds TLS handshakes in progress, in all and per source address.
    handshaking: Arc<crate::gate::Gate>,
    /// Bounds connections without a certificate (enrolling devices, or whatever knocks), in
    /// all and per source address: they cannot take the room of enrolled devices.
    enrolling: Arc<crate::gate::Gate>,
    /// Bounds the submissions being made durable at once.
    submission_permits: Arc<tokio::sync::Semaphore>,
    /// Signalled when an operator asks the node to stop (e.g. before destruction).
    stop: Arc<Notify>,
    /// Live connections per device, closed at once when the device is revoked.
    connections: Mutex<HashMap<DeviceId, Vec<quinn::Connection>>>,
    /// The delivery streams running, told of each cable queued for their device.
    deliveries: Arc<deliver::Deliveries>,
    /// Links to other nodes, and where each recipient goes next.
    links: link::Links,
    /// How long a delivered cable's id is remembered.
    dedup_retention: Duration,
    /// How each device's delivery stream paces itself.
    delivery: DeliveryConfig,
    /// TAGS this network adds, for the welcome.
    extra_tags: Vec<String>,
    /// The root's certificate of the node key, for the welcome.
    node_key_certificate: Option<valise_proto::v1::NodeKeyCertificate>,
    /// Problems the operator must act on, by key: shown by `status`, failing `/healthz`.
    alarms: Mutex<std::collections::BTreeMap<String, String>>,
    /// The newest checkpoint when the node started (the one signed as it last stopped):
    /// each neighbour is asked to cosign it first, so no stretch of the log goes unwitnessed.
    startup_checkpoint: Option<valise_audit::note::SignedCheckpoint>,
}

impl Shared {
    /// Raises an alarm under `key` (replacing one with the same key). Returns whether it is
    /// new, so the caller audits it once.
    fn raise(&self, key: &str, message: &str) -> bool {
        self.alarms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), message.to_owned())
            .is_none()
    }

    /// Every alarm raised, and the store's own trouble.
    fn alarms(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .alarms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        if let Some(e) = self.store.degraded() {
            all.push(format!(
                "the queue store cannot write durably ({e}): custody is refused until it can; \
                 free disk space; if this alarm stays, restart the node (nothing it acknowledged is \
                 lost)"
            ));
        }
        if let Some(e) = self.audit.last_error() {
            all.push(format!("audit log: {e}"));
        }
        all
    }
}

/// A running node.
pub struct RunningNode {
    local_addr: SocketAddr,
    endpoint: quinn::Endpoint,
    accept: tokio::task::JoinHandle<()>,
    /// The admin channel's task and socket, once served.
    admin: Option<(tokio::task::JoinHandle<()>, std::path::PathBuf)>,
    /// The metrics endpoint's task, once served.
    metrics: Option<tokio::task::JoinHandle<()>>,
    /// The attachment sweep's task.
    sweeper: tokio::task::JoinHandle<()>,
    /// The tasks dialling the hub and peer posts.
    diallers: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// Starts a node: binds, then serves until [`RunningNode::shutdown`].
pub fn start(params: NodeParams) -> Result<RunningNode, NodeError> {
    let crypto =
        QuicServerConfig::try_from(params.tls).map_err(|e| NodeError::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(params.limits.max_streams_per_connection.into());
    transport.max_concurrent_uni_streams(0u32.into());
    server.transport_config(Arc::new(transport));
    let bind_error = |source| NodeError::Bind {
        addr: params.listen,
        source,
    };
    let socket = endpoint::bind(params.listen).map_err(bind_error)?;
    let runtime = quinn::default_runtime().ok_or_else(|| {
        bind_error(std::io::Error::other(
            "no async runtime to serve the socket on",
        ))
    })?;
    let endpoint = quinn::Endpoint::new(
        endpoint::config(&params.node_key).map_err(NodeError::Tls)?,
        Some(server),
        socket,
        runtime,
    )
    .map_err(bind_error)?;
    let local_addr = endpoint.local_addr().map_err(|source| NodeError::Bind {
        addr: params.listen,
        source,
    })?;
    let links = match params.federation {
        Some(federation) => link::Links::federated(&params.name, federation)?,
        None => link::Links::standalone(&params.name),
    };
    let startup_checkpoint = params.audit.latest_checkpoint();
    let shared = Arc::new(Shared {
        links,
        name: params.name,
        node_key: params.node_key,
        directory: SharedDirectory::new(params.directory),
        store: params.store,
        limits: params.limits,
        audit: params.audit,
        desk: params.enrolment.map(|d| Desk {
            post: d.post,
            enrolment_key: d.enrolment_key,
            post_ca: d.post_ca,
            codes: Mutex::new(d.codes),
            certificate_validity: d.certificate_validity,
        }),
        ca_fingerprint: params.ca_fingerprint,
        attachments: params.attachments,
        connections: Mutex::new(HashMap::new()),
        stop: Arc::new(Notify::new()),
        metrics: crate::metrics::Metrics::default(),
        connection_permits: Arc::new(tokio::sync::Semaphore::new(
            params.limits.max_connections as usize,
        )),
        handshaking: crate::gate::Gate::new(
            params.limits.max_connections,
            params.limits.max_connections_per_source,
        ),
        enrolling: crate::gate::Gate::new(
            params.limits.max_unauthenticated_connections,
            params.limits.max_connections_per_source,
        ),
        submission_permits: Arc::new(tokio::sync::Semaphore::new(
            params.limits.max_concurrent_submissions as usize,
        )),
        deliveries: Arc::default(),
        dedup_retention: params.dedup_retention,
        delivery: params.delivery,
        node_key_certificate: params.node_key_certificate,
        extra_tags: params
            .extra_tags
            .iter()
            .map(|t| t.to_ascii_uppercase())
            .collect(),
        alarms: Mutex::new(std::collections::BTreeMap::new()),
        startup_checkpoint,
    });
    let accept = tokio::spawn(accept_loop(endpoint.clone(), Arc::clone(&shared)));
    let sweeper = tokio::spawn(housekeeping::housekeeping(Arc::clone(&shared)));
    let diallers = link::start_dialling(&shared, &endpoint);
    Ok(RunningNode {
        local_addr,
        endpoint,
        accept,
        admin: None,
        metrics: None,
        sweeper,
        diallers,
        shared,
    })
}

impl RunningNode {
    /// Records that the node serves: called once everything it needs (metrics, the admin
    /// socket) is up, so a node that failed to start leaves no "started" in its audit log.
    pub fn serving(&self) {
        self.shared.record(
            Record::new(AuditEventKind::NodeStarted, Outcome::Success).by_node(&self.shared.name),
        );
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Applies a change to the directory, e.g. a revocation; it takes effect at once.
    pub fn update_directory<T>(&self, change: impl FnOnce(&mut DurableDirectory) -> T) -> T {
        change(&mut self.shared.directory.write())
    }

    /// Issues a one-time enrolment code for `invitation`, as the `enroll` admin command does
    /// ([`Operator::enroll`], which also records the command).
    pub fn issue_code(&self, invitation: Invitation) -> Result<String, IssueError> {
        self.shared.operator().issue_code(invitation)
    }

    /// Revokes `device`, or every active device of `user` at this post, for `reason`: signs
    /// the revocations with the post's enrolment key, makes them durable, and closes the
    /// devices' connections at once. Returns the devices revoked.
    pub fn revoke(
        &self,
        device: Option<DeviceId>,
        user: &str,
        reason: &str,
    ) -> Result<Vec<DeviceId>, RevokeError> {
        let shared = &self.shared;
        shared
            .operator()
            .revoke_devices(device, user, reason, |devices| {
                close_connections(shared, devices)
            })
    }

    /// Changes a user's details on all of the user's devices at this post, deliberately:
    /// each record re-signed, durable, replicated and audited. A lowered clearance drops what
    /// is queued for the user above it. Returns the devices changed.
    pub fn update_user(
        &self,
        user: &str,
        change: &crate::users::Change,
    ) -> Result<Vec<DeviceId>, crate::directory::ChangeError> {
        self.shared.operator().update_user(user, change)
    }

    /// Serves the admin channel on the Unix socket `path` (owner-only) until the node stops.
    pub fn serve_admin(&mut self, path: &std::path::Path) -> Result<(), std::io::Error> {
        let task = crate::admin::serve(
            Arc::clone(&self.shared) as Arc<dyn crate::admin::AdminTarget>,
            path,
        )?;
        self.admin = Some((task, path.to_owned()));
        Ok(())
    }

    /// Serves `/healthz` and `/metrics` on `listen` (loopback) until the node stops.
    pub async fn serve_metrics(
        &mut self,
        listen: SocketAddr,
    ) -> Result<SocketAddr, std::io::Error> {
        let (task, bound) = crate::metrics::serve(
            listen,
            Arc::clone(&self.shared) as Arc<dyn crate::metrics::Observed>,
        )
        .await?;
        self.metrics = Some(task);
        Ok(bound)
    }

    /// Resolves when an operator asks the node to stop through the admin channel.
    pub fn stop_requested(&self) -> impl std::future::Future<Output = ()> + use<> {
        let stop = Arc::clone(&self.shared.stop);
        async move { stop.notified().await }
    }

    /// Queue depth per precedence: [FLASH, IMMEDIATE, PRIORITY, ROUTINE].
    pub fn queue_depth(&self) -> Result<[u64; 4], StoreError> {
        self.shared.store.depth()
    }

    /// Every link this node has or expects.
    pub fn links(&self) -> std::collections::BTreeMap<NextHop, LinkStatus> {
        self.shared.links.status()
    }

    /// Stops accepting, closes connections, and makes everything durable.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        self.endpoint
            .close(CLOSE_SHUTDOWN.into(), b"node shutting down");
        self.accept.abort();
        self.sweeper.abort();
        for dialler in &self.diallers {
            dialler.abort();
        }
        // No more admin requests. The socket file stays until the caller has finished
        // closing everything, so its disappearance means the node is fully stopped.
        if let Some((task, _)) = self.admin {
            task.abort();
        }
        if let Some(task) = self.metrics {
            task.abort();
        }
        self.endpoint.wait_idle().await;
        let stopped =
            Record::new(AuditEventKind::NodeStopped, Outcome::Success).by_node(&self.shared.name);
        record_async(&self.shared, stopped).await;
        self.shared.store.sync()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs blocking store work off the async runtime.
async fn blocking_store<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::Io(e.to_string())))
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}
