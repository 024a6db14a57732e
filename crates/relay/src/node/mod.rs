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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use time::OffsetDateTime;
use tokio::sync::Notify;
use valise_crypto::directory::sign_device_record;
use valise_crypto::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use valise_crypto::receive_key::VerifiedReceiveKey;
use valise_crypto::tls::{ALPN, ALPN_ENROLL, ALPN_LINK};
use valise_pki::{PostCa, Validity};
use valise_proto::framing::{self, FrameDecoder};
use valise_proto::v1::{
    ClientFrame, DeviceRecord, DirectoryPage, EnrolRequest, EnrolResponse, ErrorCode, ErrorFrame,
    Limits as WireLimits, NodeFrame, ReceiveKey, ReceiveKeysPublished, Submit, Welcome,
    WipeConfirmed, client_frame, node_frame,
};

use valise_audit::AuditLog;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{AuditEvent, AuditEventKind, Outcome};
use valise_store::StoreError;

use crate::admission::{Offer, Reply, Sender};
use crate::attachments::AttachmentStore;
use crate::delivery::DeliveryConfig;
use crate::directory::DurableDirectory;
use crate::enrolment::{CodeError, DurableCodeError, DurableCodes, Invitation};
use crate::limits::Limits;
use crate::operations::{IssueError, Operator, RevokeError};
use crate::reason::Reason;
use crate::record::Record;
use crate::routing::NextHop;
use crate::shared_directory::SharedDirectory;
use crate::store::RelayStore;

mod attachments;
mod deliver;
mod endpoint;
mod housekeeping;
mod intake;
mod link;
use attachments::{receive_attachment, send_attachment};
pub use link::{Federation, FederationError, LinkStatus, WITNESS_KEYS};

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
                 free disk space, the node resumes by itself"
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

/// How long a TLS handshake may take before the connection is dropped, freeing its place at
/// the handshake gate.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = Arc::clone(&shared);
        // A handshake holds a place for at most HANDSHAKE_TIMEOUT, and one address may hold
        // only a few: a flood of handshakes cannot keep enrolled devices from theirs.
        let pass = match shared.handshaking.enter(incoming.remote_address().ip()) {
            Ok(pass) => pass,
            Err(full) => {
                shared.metrics.refused(&full.reason());
                incoming.refuse();
                continue;
            }
        };
        tokio::spawn(async move {
            let source = incoming.remote_address().to_string();
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(connection)) => serve_connection(connection, shared, pass).await,
                // No certificate, another CA, an expired one, not TLS 1.3, or too slow.
                Ok(Err(_)) | Err(_) => {
                    drop(pass);
                    shared.metrics.refused(&Reason::TlsHandshake);
                    let refused = Record::new(AuditEventKind::RequestRefused, Outcome::Refused)
                        .reason(Reason::TlsHandshake)
                        .source(source);
                    record_async(&shared, refused).await;
                }
            }
        });
    }
}

/// The DNS names in the certificate the peer presented (already verified to the root).
fn certificate_names(connection: &quinn::Connection) -> Vec<String> {
    connection
        .peer_identity()
        .and_then(|i| {
            i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|certs| certs.first().map(|c| valise_pki::dns_names(c)))
        .unwrap_or_default()
}

/// The device on the other end and the post whose CA certified it, from its certificate's
/// name `<device id>.devices.<post>.<ministry>`. The root constrains each post CA to its own
/// `devices.<post>` names, so the post here is the one that issued the certificate.
fn peer_device(connection: &quinn::Connection) -> Option<(DeviceId, String)> {
    certificate_names(connection).iter().find_map(|dns| {
        let (label, rest) = dns.split_once('.')?;
        let (post, _) = rest.strip_prefix("devices.")?.split_once('.')?;
        let device = DeviceId::from_slice(&hex::decode(label).ok()?).ok()?;
        Some((device, post.to_owned()))
    })
}

/// Whether a device may use this node: enrolled, unrevoked, and certified by its own post. A
/// compromised post can mint certificates for any device id, but only under its own name.
fn device_admission(
    directory: &crate::directory::Directory,
    device: &DeviceId,
    certified_by: &str,
) -> Result<(), (Reason, String)> {
    let Some(entry) = directory.lookup(device) else {
        return Err((
            Reason::UnknownDevice,
            "this device is not enrolled at any post this node knows".into(),
        ));
    };
    if entry.device.post != certified_by {
        return Err((
            Reason::DeviceOfAnotherPost,
            "this device certificate was issued by another post than the device's own".into(),
        ));
    }
    if entry.revoked {
        return Err((
            Reason::RevokedDevice,
            format!(
                "this device was revoked on {} by its post: contact ministry IT to enrol a new \
                 one",
                utc(entry.revoked_at_ms)
            ),
        ));
    }
    Ok(())
}

/// A time for people: `2026-12-04 10:15 UTC`.
fn utc(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms after 1970"))
}

async fn serve_connection(
    connection: quinn::Connection,
    shared: Arc<Shared>,
    pass: crate::gate::Pass,
) {
    let alpn = connection
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol);
    drop(pass);
    if alpn.as_deref() == Some(ALPN_ENROLL) {
        // Without a certificate: it holds a place at the enrolling gate until it is done, and
        // idle ones from one address or a few fill that gate, not the room of enrolled devices.
        let enrolling = match shared.enrolling.enter(connection.remote_address().ip()) {
            Ok(enrolling) => enrolling,
            Err(full) => {
                shared.metrics.refused(&full.reason());
                connection.close(
                    CLOSE_BUSY.into(),
                    b"too many connections without a certificate; retry in a minute",
                );
                return;
            }
        };
        serve_enrolment(connection, shared).await;
        drop(enrolling);
        return;
    }
    if alpn.as_deref() == Some(ALPN_LINK) {
        return link::accept(connection, shared).await;
    }
    let certified = peer_device(&connection);
    let admitted = match &certified {
        Some((device, post)) => device_admission(shared.directory.read().view(), device, post),
        None => Err((
            Reason::NoDeviceCertificate,
            "not an active enrolled device".to_owned(),
        )),
    };
    let device = certified.as_ref().map(|(d, _)| *d);
    let (Some(device), Ok(()), Some(ALPN)) = (device, &admitted, alpn.as_deref()) else {
        // Enrolment has its own path; anything else without an active device is refused.
        let (reason, message) = match admitted {
            Err(refused) => refused,
            Ok(()) => (
                Reason::WrongAlpn,
                "not an active enrolled device".to_owned(),
            ),
        };
        connection.close(CLOSE_UNAUTHORISED.into(), message.as_bytes());
        let source = connection.remote_address().to_string();
        let audit = Arc::clone(&shared);
        let _ = tokio::task::spawn_blocking(move || {
            let mut record = Record::new(AuditEventKind::RequestRefused, Outcome::Refused)
                .reason(reason)
                .source(source);
            if let Some(d) = device {
                record = record.by_device(&d);
            }
            audit.record(record);
        })
        .await;
        return;
    };
    // Enrolled devices have their own room, which no unauthenticated flood can fill.
    let Ok(_permit) = Arc::clone(&shared.connection_permits).try_acquire_owned() else {
        shared.metrics.refused(&Reason::Busy);
        connection.close(
            CLOSE_BUSY.into(),
            b"the node serves as many devices as it may; retry in a minute",
        );
        return;
    };
    shared.metrics.connected();
    shared
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(device)
        .or_default()
        .push(connection.clone());
    while let Ok((send, recv)) = connection.accept_bi().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_stream(send, recv, device, shared).await;
        });
    }
    // The connection ended: forget it.
    shared.metrics.disconnected();
    let mut connections = shared
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(list) = connections.get_mut(&device) {
        list.retain(|c| c.stable_id() != connection.stable_id());
        if list.is_empty() {
            connections.remove(&device);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn error(code: ErrorCode, message: impl Into<String>) -> NodeFrame {
    NodeFrame {
        frame: Some(node_frame::Frame::Error(ErrorFrame {
            code: code as i32,
            message: message.into(),
            retry_after_ms: 0,
        })),
    }
}

async fn send_frame(send: &mut quinn::SendStream, frame: &NodeFrame) -> bool {
    send.write_all(&framing::encode(frame)).await.is_ok()
}

/// Reads the next frame, or `None` when the stream ends or breaks (after telling the peer why
/// where that helps).
async fn next_frame(
    recv: &mut quinn::RecvStream,
    decoder: &mut FrameDecoder,
    send: Option<&mut quinn::SendStream>,
) -> Option<ClientFrame> {
    loop {
        match decoder.next_frame::<ClientFrame>() {
            Ok(Some(frame)) => return Some(frame),
            Ok(None) => {}
            Err(e) => {
                if let Some(send) = send {
                    let reply = match e {
                        // Most often a cable over the envelope limit, so the answer names it.
                        framing::FrameError::TooLarge { len, max } => error(
                            ErrorCode::TooLarge,
                            format!(
                                "the request is {len} bytes, over this node's {max}-byte limit \
                                 (an envelope may be at most limits.max_envelope_bytes, less a \
                                 little for its frame); shorten the cable or send the long \
                                 part as an attachment"
                            ),
                        ),
                        other => error(ErrorCode::Malformed, other.to_string()),
                    };
                    send_frame(send, &reply).await;
                    let _ = send.finish();
                }
                return None;
            }
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            _ => return None,
        }
    }
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    device: DeviceId,
    shared: Arc<Shared>,
) {
    // An envelope at the limit, plus its frame's few bytes of overhead and the hashes of the
    // most attachments a cable may name (34 bytes each on the wire).
    let mut decoder = FrameDecoder::new(
        shared.limits.max_envelope_bytes + 64 + valise_proto::MAX_ATTACHMENTS_PER_CABLE * 40,
    );
    let mut frames = 0u32;
    while let Some(frame) = next_frame(&mut recv, &mut decoder, Some(&mut send)).await {
        frames += 1;
        if frames > shared.limits.max_frames_per_stream {
            send_frame(
                &mut send,
                &error(
                    ErrorCode::Malformed,
                    "too many frames on one stream; open a new stream",
                ),
            )
            .await;
            break;
        }
        let reply = match frame.frame {
            Some(client_frame::Frame::Hello(hello)) => {
                let shared = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || greet(&shared, &device, hello.session))
                    .await
                    .unwrap_or_else(|_| {
                        error(ErrorCode::Internal, "the node failed inside; try again")
                    })
            }
            Some(client_frame::Frame::Submit(submit)) => {
                submit_cable(&shared, &device, submit).await
            }
            Some(client_frame::Frame::Subscribe(_)) => {
                deliver::deliver(send, recv, decoder, device, shared).await;
                return;
            }
            Some(client_frame::Frame::DirectorySync(sync)) => {
                directory_page(&shared, sync.after_version)
            }
            // Raw bytes follow the frame: the stream carries nothing else.
            Some(client_frame::Frame::AttachmentUpload(upload)) => {
                receive_attachment(send, recv, decoder, frames == 1, device, shared, upload).await;
                return;
            }
            Some(client_frame::Frame::AttachmentFetch(fetch)) => {
                send_attachment(send, device, shared, fetch).await;
                return;
            }
            Some(client_frame::Frame::PublishReceiveKeys(publish)) => {
                let shared = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || {
                    publish_receive_keys(&shared, &device, publish.receive_keys)
                })
                .await
                .unwrap_or_else(|_| {
                    error(
                        ErrorCode::Internal,
                        "the keys could not be published inside the node; try again",
                    )
                })
            }
            Some(client_frame::Frame::WipeNotice(notice)) => {
                wipe(send, device, shared, notice.reason).await;
                return;
            }
            Some(client_frame::Frame::DeliveryAck(_) | client_frame::Frame::Enrol(_)) | None => {
                error(
                    ErrorCode::Malformed,
                    "expected Hello, Submit, Subscribe, DirectorySync, AttachmentUpload, \
                     AttachmentFetch, PublishReceiveKeys or WipeNotice on a new stream",
                )
            }
        };
        if !send_frame(&mut send, &reply).await {
            return;
        }
    }
    let _ = send.finish();
}

/// Updates per sync page, and their rough byte budget: a page stays well inside any frame cap.
const SYNC_PAGE_UPDATES: usize = 64;
const SYNC_PAGE_BYTES: usize = 256 * 1024;

fn directory_page(shared: &Shared, after_version: u64) -> NodeFrame {
    let directory = shared.directory.read();
    let version = directory.view().version();
    if after_version > version {
        return error(
            ErrorCode::Malformed,
            format!(
                "the directory is at version {version}, not {after_version}; sync again from 0"
            ),
        );
    }
    match directory.updates_after(after_version, SYNC_PAGE_UPDATES, SYNC_PAGE_BYTES) {
        Ok(updates) => NodeFrame {
            frame: Some(node_frame::Frame::DirectoryPage(DirectoryPage {
                updates,
                version,
            })),
        },
        Err(e) => error(
            ErrorCode::Internal,
            format!("the node could not read its directory ({e}); report this to ministry IT"),
        ),
    }
}

/// Answers a device's hello: welcome, unless its connection number was seen before, which
/// means two copies of its data folder are in use (a cloned device). Then the node raises an
/// alarm, audits it, and tells the device; the operator decides whether to revoke it.
fn greet(shared: &Shared, device: &DeviceId, session: u64) -> NodeFrame {
    if session == 0 {
        return welcome(shared);
    }
    let last = match shared.store.note_session(device, session) {
        Ok(last) => last,
        Err(e) => {
            tracing::error!(error = %e, "a device's connection number could not be kept");
            return welcome(shared);
        }
    };
    let Some(last) = last.filter(|l| session <= *l) else {
        return welcome(shared);
    };
    let owner = shared
        .directory
        .read()
        .view()
        .lookup(device)
        .map(|e| e.device.address())
        .unwrap_or_default();
    let message = format!(
        "CLONED DEVICE? device {device} of {owner} connected as number {session}, after number \
         {last}: two copies of its data folder are in use. If its owner did not copy it, revoke \
         the device (`valise-relay revoke --device {device}`) and enrol a new one"
    );
    if shared.raise(&format!("clone:{device}"), &message) {
        tracing::error!(device = %device, session, last, "{message}");
    }
    shared.record(
        Record::new(AuditEventKind::RequestRefused, Outcome::Refused)
            .by_device(device)
            .reason(Reason::ClonedDevice),
    );
    error(
        ErrorCode::ClonedDevice,
        "this device's identity is in use from another copy of its data folder (the node has \
         seen this connection number before). If you did not copy it, the device may be \
         compromised: contact ministry IT, who can revoke it and enrol a new one",
    )
}

fn welcome(shared: &Shared) -> NodeFrame {
    NodeFrame {
        frame: Some(node_frame::Frame::Welcome(Welcome {
            protocol_version: valise_proto::PROTOCOL_VERSION,
            node: shared.name.clone(),
            node_time_ms: now_ms(),
            limits: Some(WireLimits {
                max_envelope_bytes: shared.limits.max_envelope_bytes as u64,
                max_recipients: u32::try_from(shared.limits.max_recipients).unwrap_or(u32::MAX),
                max_attachment_bytes: shared.limits.max_attachment_bytes,
            }),
            node_key: shared.node_key.public().as_bytes().to_vec(),
            extra_tags: shared.extra_tags.clone(),
            node_key_certificate: shared.node_key_certificate.clone(),
        })),
    }
}

async fn submit_cable(shared: &Arc<Shared>, device: &DeviceId, submit: Submit) -> NodeFrame {
    let arrived = Instant::now();
    // Bounded work: past the cap the sender keeps its cable and retries, memory stays flat.
    let Ok(_permit) = Arc::clone(&shared.submission_permits).try_acquire_owned() else {
        shared.metrics.refused(&Reason::Busy);
        return NodeFrame {
            frame: Some(node_frame::Frame::Error(ErrorFrame {
                code: ErrorCode::Busy as i32,
                message: "the node is busy; keep the cable and retry after the delay given".into(),
                retry_after_ms: 500,
            })),
        };
    };
    let offer = Offer {
        sender: Sender::Device(device),
        envelope: &submit.envelope,
        attachments: &submit.attachments,
    };
    let taken = intake::take(shared, offer).await;
    let frame = match taken {
        intake::Taken::Reply(Reply::Receipt(receipt)) => {
            shared.metrics.custody(arrived.elapsed());
            node_frame::Frame::CustodyReceipt(receipt)
        }
        intake::Taken::Reply(Reply::Error(error)) => node_frame::Frame::Error(error),
        // A device's cable names only attachments it uploaded: never asked for more.
        intake::Taken::Wanted(_) => node_frame::Frame::Error(ErrorFrame {
            code: ErrorCode::Internal as i32,
            message: "the node failed while taking the cable; it was not accepted: keep it and \
                      retry later"
                .into(),
            retry_after_ms: 1_000,
        }),
    };
    NodeFrame { frame: Some(frame) }
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

impl Shared {
    /// Appends an event, blocking until it is durable. A failure is kept by the log for health
    /// reporting; the request it describes has already been answered or refused.
    /// Every audited event is also an operator log event.
    fn record(&self, record: Record) {
        let event = record.event(&self.name, now_ms());
        log_event(&event);
        if let Err(e) = self.audit.append(event) {
            tracing::error!(error = %e, "audit append failed; /healthz now reports the node unhealthy");
        }
    }
}

/// The operator's view of an audit event: kind, outcome, who, from where, why and object ids.
/// Routine per-cable events are at debug level, so a busy node's log stays readable.
fn log_event(event: &AuditEvent) {
    let kind = AuditEventKind::try_from(event.kind).unwrap_or(AuditEventKind::Unspecified);
    let outcome = Outcome::try_from(event.outcome).unwrap_or(Outcome::Unspecified);
    let routine = outcome != Outcome::Failure
        && matches!(
            (kind, outcome),
            (
                AuditEventKind::CustodyTaken | AuditEventKind::CableDelivered,
                _
            ) | (AuditEventKind::CableSubmitted, Outcome::Success)
        );
    // Two events per cable: their words are built only if someone reads them.
    if routine && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let objects: Vec<String> = event
        .objects
        .iter()
        .map(|o| format!("{}:{}", o.kind, hex::encode(&o.id)))
        .collect();
    let objects = objects.join(",");
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                kind = kind.as_str_name(),
                outcome = outcome.as_str_name(),
                actor = %event.actor_id,
                source = %event.source,
                reason = %event.reason,
                objects = %objects,
                "audited"
            )
        };
    }
    match (kind, outcome) {
        (_, Outcome::Failure) => emit!(error),
        (AuditEventKind::CustodyTaken | AuditEventKind::CableDelivered, _)
        | (AuditEventKind::CableSubmitted, Outcome::Success) => emit!(debug),
        (_, Outcome::Refused) => emit!(warn),
        _ => emit!(info),
    }
}

/// Records an event from async code: returns once it is durable, holding no thread.
async fn record_async(shared: &Shared, record: Record) {
    record_all(shared, vec![record]).await;
}

/// Records events in order from async code: returns once they are durable, holding no thread
/// meanwhile. A failure is kept by the log for health reporting.
async fn record_all(shared: &Shared, records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    let now = now_ms();
    let events: Vec<AuditEvent> = records
        .into_iter()
        .map(|record| {
            let event = record.event(&shared.name, now);
            log_event(&event);
            event
        })
        .collect();
    match completed(|done| shared.audit.append_then(events, done)).await {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            tracing::error!(error = %e, "audit append failed; /healthz now reports the node unhealthy");
        }
        None => tracing::error!("the audit log closed before an append completed"),
    }
}

/// Waits, without holding a thread, for a completion another thread calls: the group
/// committers of the store and of the audit log. `None` if it was dropped uncalled.
async fn completed<T: Send + 'static>(start: impl FnOnce(Box<dyn FnOnce(T) + Send>)) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    start(Box::new(move |value| {
        let _ = tx.send(value);
    }));
    rx.await.ok()
}

/// The enrolment desk's state inside the running node.
struct Desk {
    post: String,
    enrolment_key: IdentityKeyPair,
    post_ca: PostCa,
    codes: Mutex<DurableCodes>,
    certificate_validity: Duration,
}

/// How long an enrolling device has to send its request: short, since it holds a place at
/// the unauthenticated gate meanwhile.
const ENROLMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The one unauthenticated path: one stream, one `EnrolRequest`, one answer, then goodbye.
async fn serve_enrolment(connection: quinn::Connection, shared: Arc<Shared>) {
    let source = connection.remote_address().to_string();
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(ENROLMENT_TIMEOUT, connection.accept_bi()).await
    else {
        connection.close(CLOSE_UNAUTHORISED.into(), b"no enrolment request");
        return;
    };
    // A request is keys, a CSR and a code: a few kilobytes at most.
    let mut decoder = FrameDecoder::new(64 * 1024);
    let frame = tokio::time::timeout(
        ENROLMENT_TIMEOUT,
        next_frame(&mut recv, &mut decoder, Some(&mut send)),
    )
    .await
    .ok()
    .flatten();
    let reply = match frame.and_then(|f| f.frame) {
        Some(client_frame::Frame::Enrol(request)) => {
            let shared = Arc::clone(&shared);
            let source = source.clone();
            tokio::task::spawn_blocking(move || enrol(&shared, request, &source))
                .await
                .unwrap_or_else(|_| {
                    error(
                        ErrorCode::Internal,
                        "enrolment failed inside the node; try again",
                    )
                })
        }
        _ => error(
            ErrorCode::EnrolmentRefused,
            "only an enrolment request is accepted without a certificate",
        ),
    };
    send_frame(&mut send, &reply).await;
    let _ = send.finish();
    let _ = send.stopped().await;
    connection.close(0u32.into(), b"enrolment done");
}

/// Redeems the code, signs the device's record, applies it, and issues its certificate.
fn enrol(shared: &Shared, request: EnrolRequest, source: &str) -> NodeFrame {
    let refuse = |reason: Reason, message: String| {
        shared.record(
            Record::new(AuditEventKind::DeviceEnrolled, Outcome::Refused)
                .reason(reason)
                .source(source.to_owned()),
        );
        error(ErrorCode::EnrolmentRefused, message)
    };
    let Some(desk) = &shared.desk else {
        return refuse(
            Reason::NoDesk,
            "this node does not enrol devices; enrol at your post's node".into(),
        );
    };
    let identity = match IdentityPublicKey::from_slice(&request.identity_key) {
        Ok(k) => k,
        Err(e) => {
            return refuse(
                Reason::Malformed,
                format!("the identity key is malformed: {e}"),
            );
        }
    };
    // Everything the code does not decide is checked before the code is spent, so a faulty
    // request from a device does not cost its user a new code.
    if request.receive_keys.is_empty() {
        return refuse(
            Reason::Malformed,
            "the request carries no receive key; the device must publish one".into(),
        );
    }
    for key in &request.receive_keys {
        if let Err(e) = VerifiedReceiveKey::verify(key, &identity) {
            return refuse(
                Reason::Malformed,
                format!("a receive key does not verify: {e}"),
            );
        }
    }
    let device = identity.device_id();
    let start = OffsetDateTime::now_utc();
    let until = start
        + time::Duration::seconds(
            i64::try_from(desk.certificate_validity.as_secs()).unwrap_or(i64::MAX / 2),
        );
    let validity = Validity {
        not_before: start - time::Duration::minutes(5),
        not_after: until,
    };
    // Issued now but handed over only once the code redeems.
    let chain =
        match desk
            .post_ca
            .issue_device_from_csr(&device.to_string(), &request.csr, validity)
        {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    Reason::Csr,
                    format!("the certificate request is not acceptable: {e}"),
                );
            }
        };
    let now = now_ms();
    let invitation = match desk
        .codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .redeem(&request.code, &source_ip(source), now)
    {
        Ok(i) => i,
        Err(DurableCodeError::Code(CodeError::RateLimited)) => {
            return refuse(Reason::RateLimited, CodeError::RateLimited.to_string());
        }
        Err(e) => return refuse(Reason::Code, e.to_string()),
    };
    // The user's other devices may have changed since the code was issued.
    if let Err(conflict) =
        crate::operations::enrol::same_person(&shared.directory, &desk.post, &invitation)
    {
        return refuse(
            Reason::IdentityConflict,
            format!("{conflict}; ask ministry IT for a new code"),
        );
    }
    let mut record = DeviceRecord {
        device_id: device.as_bytes().to_vec(),
        user: invitation.user,
        post: desk.post.clone(),
        display_name: invitation.display_name,
        offices: invitation.offices,
        clearance: invitation.clearance as i32,
        identity_key: identity.as_bytes().to_vec(),
        receive_keys: request.receive_keys,
        enrolled_at_ms: now,
        signature: Vec::new(),
        foreign_national: invitation.foreign_national,
    };
    if let Err(e) = sign_device_record(&mut record, &desk.enrolment_key) {
        return refuse(
            Reason::Malformed,
            format!("the request cannot be recorded: {e}"),
        );
    }
    let version = {
        let mut directory = shared.directory.write();
        match directory.apply(Update::Device(record.clone())) {
            Ok(v) => v,
            Err(e) => {
                return refuse(
                    Reason::Record,
                    format!("the device cannot be enrolled: {e}"),
                );
            }
        }
    };
    shared.record(
        Record::new(AuditEventKind::DeviceEnrolled, Outcome::Success)
            .by_device(&device)
            .source(source.to_owned())
            .object("device", device.as_bytes(), &[]),
    );
    NodeFrame {
        frame: Some(node_frame::Frame::Enrolled(EnrolResponse {
            record: Some(record),
            certificate_chain: chain,
            directory_version: version,
        })),
    }
}

/// The IP address in `ip:port` (rate limits key on the address: every new connection has a
/// new port).
fn source_ip(source: &str) -> String {
    source
        .parse::<SocketAddr>()
        .map_or_else(|_| source.to_owned(), |a| a.ip().to_string())
}

const CLOSE_REVOKED: u32 = 3;

/// Closes the devices' connections at once: they are revoked.
fn close_connections(shared: &Shared, devices: &[DeviceId]) {
    let mut connections = shared
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for device in devices {
        for connection in connections.remove(device).unwrap_or_default() {
            connection.close(
                CLOSE_REVOKED.into(),
                b"this device has just been revoked by its post: contact ministry IT to enrol a \
                  new one",
            );
        }
    }
}

/// The device asks to be revoked because its user is wiping it. The confirmation goes out
/// before its connections close, so the device knows the revocation is durable.
async fn wipe(mut send: quinn::SendStream, device: DeviceId, shared: Arc<Shared>, reason: String) {
    let revoking = Arc::clone(&shared);
    let reply = tokio::task::spawn_blocking(move || wipe_device(&revoking, &device, &reason))
        .await
        .unwrap_or_else(|_| {
            error(
                ErrorCode::Internal,
                "the wipe notice could not be processed inside the node; send it again",
            )
        });
    let confirmed = matches!(reply.frame, Some(node_frame::Frame::WipeConfirmed(_)));
    send_frame(&mut send, &reply).await;
    let _ = send.finish();
    if confirmed {
        let _ = tokio::time::timeout(WIPE_CONFIRM_WAIT, send.stopped()).await;
        close_connections(&shared, &[device]);
    }
}

/// Audits a device's refused request about itself, and answers why.
fn refuse_own_request(
    shared: &Shared,
    kind: AuditEventKind,
    device: &DeviceId,
    audit_reason: Reason,
    code: ErrorCode,
    message: String,
) -> NodeFrame {
    shared.record(
        Record::new(kind, Outcome::Refused)
            .by_device(device)
            .object("device", device.as_bytes(), &[])
            .reason(audit_reason),
    );
    error(code, message)
}

fn wipe_device(shared: &Shared, device: &DeviceId, reason: &str) -> NodeFrame {
    let refuse = |audit_reason: Reason, code: ErrorCode, message: String| {
        refuse_own_request(
            shared,
            AuditEventKind::DeviceRevoked,
            device,
            audit_reason,
            code,
            message,
        )
    };
    let Some(desk) = &shared.desk else {
        return refuse(
            Reason::WipeNoDesk,
            ErrorCode::EnrolmentRefused,
            "this node holds no enrolment key and cannot revoke devices; send the wipe notice \
             to your post's node, or ask its operators to revoke the device"
                .into(),
        );
    };
    let post = shared
        .directory
        .read()
        .view()
        .lookup(device)
        .map(|entry| entry.device.post.clone());
    if post.as_deref() != Some(desk.post.as_str()) {
        return refuse(
            Reason::WipeOtherPost,
            ErrorCode::EnrolmentRefused,
            format!(
                "this device is not enrolled at {}; send the wipe notice to its own post's node",
                desk.post
            ),
        );
    }
    let reason = crate::devices::wipe_reason(reason);
    match shared
        .operator()
        .revoke_in_directory(Some(*device), "", &reason, Some(device))
    {
        Ok((_, directory_version)) => NodeFrame {
            frame: Some(node_frame::Frame::WipeConfirmed(WipeConfirmed {
                directory_version,
            })),
        },
        Err(e) => {
            tracing::error!(device = %device, error = %e, "a wipe notice could not be recorded");
            refuse(
                Reason::WipeFailed,
                ErrorCode::Internal,
                format!("the node could not revoke this device ({e}); send the notice again"),
            )
        }
    }
}

/// Replaces the device's receive keys in its record, re-signed with the post's enrolment key
/// and durable before the answer.
fn publish_receive_keys(shared: &Shared, device: &DeviceId, keys: Vec<ReceiveKey>) -> NodeFrame {
    let refuse = |audit_reason: Reason, code: ErrorCode, message: String| {
        refuse_own_request(
            shared,
            AuditEventKind::ReceiveKeysPublished,
            device,
            audit_reason,
            code,
            message,
        )
    };
    let Some(desk) = &shared.desk else {
        return refuse(
            Reason::NoDesk,
            ErrorCode::EnrolmentRefused,
            "this node holds no enrolment key; publish receive keys through your post's node"
                .into(),
        );
    };
    let published = {
        let mut directory = shared.directory.write();
        match directory.view().lookup(device) {
            None => Err((
                Reason::Unknown,
                ErrorCode::UnknownSender,
                "this device is not in the directory; enrol it first".to_owned(),
            )),
            Some(entry) if entry.revoked => Err((
                Reason::Revoked,
                ErrorCode::Revoked,
                "this device is revoked; enrol a new device".to_owned(),
            )),
            Some(entry) => {
                crate::devices::with_receive_keys(&entry.device, keys, &desk.post, now_ms())
                    .map_err(|e| (e.audit_reason(), ErrorCode::EnrolmentRefused, e.to_string()))
                    .and_then(|mut record| {
                        sign_device_record(&mut record, &desk.enrolment_key).map_err(|e| {
                            (
                                Reason::Signing,
                                ErrorCode::Internal,
                                format!("the new record could not be signed ({e})"),
                            )
                        })?;
                        let version = directory.apply(Update::Device(record.clone())).map_err(
                            |e| match e {
                                crate::directory::DurableError::Refused(e) => (
                                    Reason::Record,
                                    ErrorCode::EnrolmentRefused,
                                    format!("the new record is not acceptable: {e}"),
                                ),
                                crate::directory::DurableError::Store(_) => (
                                    Reason::Store,
                                    ErrorCode::Internal,
                                    format!(
                                        "the node could not store the new record ({e}); \
                                         publish the keys again later"
                                    ),
                                ),
                            },
                        )?;
                        Ok((record, version))
                    })
            }
        }
    };
    match published {
        Ok((record, directory_version)) => {
            shared.record(
                Record::new(AuditEventKind::ReceiveKeysPublished, Outcome::Success)
                    .by_device(device)
                    .object("device", device.as_bytes(), &[]),
            );
            NodeFrame {
                frame: Some(node_frame::Frame::ReceiveKeysPublished(
                    ReceiveKeysPublished {
                        record: Some(record),
                        directory_version,
                    },
                )),
            }
        }
        Err((audit_reason, code, message)) => refuse(audit_reason, code, message),
    }
}

impl Shared {
    /// The operator's view of this node: the operations its admin socket shares with the
    /// commands that work on a stopped node.
    fn operator(&self) -> Operator<'_> {
        let desk = self.desk.as_ref().map(|d| crate::operations::Desk {
            post: &d.post,
            enrolment_key: &d.enrolment_key,
            codes: &d.codes,
        });
        Operator::new(desk, &self.directory, &self.store, self)
    }
}

impl crate::operations::Recorder for Shared {
    fn record(&self, record: Record) {
        Shared::record(self, record);
    }
}

impl crate::admin::AdminTarget for Shared {
    fn audit_export(&self, path: &std::path::Path) -> Result<u64, String> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let entries = valise_audit::export::export(&self.audit, file).map_err(|e| e.to_string())?;
        self.record(
            Record::new(AuditEventKind::AdminCommand, Outcome::Success)
                .by_operator()
                .reason(Reason::AuditExport),
        );
        Ok(entries)
    }

    fn stop(&self, reason: &str) {
        self.record(
            Record::new(AuditEventKind::Destruction, Outcome::Success)
                .by_operator()
                .reason(Reason::Stated(reason.to_owned())),
        );
        self.stop.notify_one();
    }

    fn status(&self) -> Result<valise_proto::v1::NodeStatus, String> {
        let delivery = self.store.depth().map_err(|e| e.to_string())?;
        let onward = self.store.onward_depth().map_err(|e| e.to_string())?;
        Ok(crate::status::assemble(crate::status::Parts {
            node: self.name.clone(),
            kind: self.links.routes.kind,
            running: true,
            links: self.links.status(),
            onward,
            delivery,
            audit_entries: self.audit.size(),
            alarms: self.alarms(),
            overdue: self
                .store
                .past_objective(now_ms())
                .map_err(|e| e.to_string())?,
        }))
    }

    fn audit_prove(&self, index: u64) -> Result<String, String> {
        valise_audit::bundle::prove(&self.audit, index).map_err(|e| e.to_string())
    }

    fn enroll(&self, invitation: Invitation) -> Result<(String, String, String), String> {
        let code = self
            .operator()
            .enroll(invitation)
            .map_err(|e| e.to_string())?;
        Ok((code, self.ca_fingerprint.clone(), self.name.clone()))
    }

    fn update_user(
        &self,
        user: &str,
        change: &crate::users::Change,
    ) -> Result<Vec<DeviceId>, String> {
        self.operator()
            .update_user(user, change)
            .map_err(|e| e.to_string())
    }

    fn revoke(
        &self,
        device: Option<DeviceId>,
        user: &str,
        reason: &str,
    ) -> Result<Vec<DeviceId>, String> {
        self.operator()
            .revoke(device, user, reason, |devices| {
                close_connections(self, devices)
            })
            .map_err(|e| e.to_string())
    }
}

impl crate::metrics::Observed for Shared {
    fn metrics(&self) -> String {
        self.metrics.render(self.store.depth().unwrap_or_default())
    }

    fn health(&self) -> Result<(), String> {
        let alarms = self.alarms();
        if alarms.is_empty() {
            Ok(())
        } else {
            Err(alarms.join("; "))
        }
    }
}
