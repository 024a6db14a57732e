//! Links between nodes (DESIGN §3, §6). A post dials its hub, and the peer posts configured
//! whose names sort after its own; the hub never dials into an embassy network. On the one
//! connection each end opens streams to the other, one request per stream:
//!
//! * `Hello` both ways first: names checked against the node certificates, node keys pinned;
//! * `Forward` → `CustodyReceipt`: the receiver makes the cable durable for the devices it
//!   answers for, then signs; only then does the sender drop its forwarding entry;
//! * `DirectorySync` (long-polled) → `DirectoryPage`: each end pulls the other's updates;
//! * `Witness` → `Cosignature`: each end has its audit checkpoints cosigned by the other.
//!
//! What to forward next is decided by [`crate::outbound`]; this module only moves bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::{Notify, mpsc};
use valise_audit::merkle::Hash;
use valise_audit::note::{CosignatureSigner, NoteVerifier};
use valise_audit::{Witness, WitnessError};
use valise_crypto::custody;
use valise_crypto::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use valise_crypto::tls::CertifiedKey;
use valise_proto::framing::{self, FrameDecoder};
use valise_proto::v1::{
    AttachmentsWanted, AuditEventKind, Cosignature, DirectorySync, ErrorCode, ErrorFrame, Forward,
    LinkHello, LinkReply, LinkRequest, Outcome, WitnessRefused, WitnessRequest, WitnessSize,
    link_reply, link_request, node_frame,
};
use valise_store::{DiskStore, Store, StoreError, Write};

use super::{Record, Shared, blocking_store, now_ms, record_async};
use crate::admission::{Offer, Reply, Sender};
use crate::attachments::AttachmentId;
use crate::config::{NodeKind, PeerSection};
use crate::outbound::{
    HELD_RETRY, LOCAL_FAILURE_RETRY, NextHopRefusal, Outbound, UNEXPECTED_RETRY, classify_refusal,
    redial_delay,
};
use crate::queue::QueueKey;
use crate::reason::Reason;
use crate::routing::{NextHop, Routes};
use crate::store::Onward;

mod carry;
use carry::CarryError;

/// Longest a directory long-poll is held before an empty page answers it.
const DIRECTORY_WAIT: Duration = Duration::from_secs(20);
/// How often each end offers its newest audit checkpoint for witnessing.
const WITNESS_EVERY: Duration = Duration::from_secs(1);
/// Longest one request may take before the link is taken to be failing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait before pulling again after a directory update was refused.
const DIRECTORY_RETRY: Duration = Duration::from_secs(5);
/// QUIC stream priorities: control first, then FLASH and IMMEDIATE, then the rest (DESIGN §6).
const PRIORITY_CONTROL: i32 = 2;
const PRIORITY_URGENT: i32 = 1;
const PRIORITY_OTHER: i32 = 0;
/// QUIC application error code a node closes a refused link with.
const CLOSE_REFUSED: u32 = 3;
/// QUIC application error code a node closes a link with when the neighbour linked again.
const CLOSE_REPLACED: u32 = 4;
/// The file, in the link state folder, listing the witnesses' keys.
pub const WITNESS_KEYS: &str = "witness-keys";
/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a quiet link is pinged.
const LINK_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// What a node needs to join the network.
pub struct Federation {
    /// The ministry, e.g. `mfa.example`: node certificates name `<node>.<ministry>`.
    pub ministry: String,
    /// Hub or post.
    pub kind: NodeKind,
    /// For a post: the hub's `host:port`.
    pub hub: Option<String>,
    /// Peer posts linked directly.
    pub peers: Vec<PeerSection>,
    /// The ministry root (PEM), the only anchor for the nodes dialled.
    pub ca_pem: String,
    /// This node's certificate and key, presented when dialling.
    pub tls: CertifiedKey,
    /// Where pinned node keys, directory cursors and witness state are kept.
    pub state_dir: PathBuf,
    /// Most cables awaiting a custody receipt on one link.
    pub forward_window: usize,
}

/// One link as an operator sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// The node at the other end, once known.
    pub neighbour: Option<String>,
    /// Where it is dialled, for links this node dials.
    pub addr: Option<String>,
    /// Whether the link is up.
    pub connected: bool,
    /// When the link last came up or went down (Unix ms).
    pub since_ms: u64,
    /// The last failure on the link, for the operator.
    pub last_error: Option<String>,
    /// The largest of this node's checkpoints the neighbour cosigned, and when (Unix ms).
    pub witnessed: Option<(u64, u64)>,
    /// The largest of the neighbour's checkpoints this node cosigned.
    pub cosigned: Option<u64>,
}

/// The live state of every link: a part of [`Shared`].
pub(super) struct Links {
    pub(super) routes: Routes,
    ministry: String,
    federation: Option<Dial>,
    state: Option<Arc<DiskStore>>,
    /// The link state folder: the witness-keys file and the witnessed notes live there.
    state_dir: Option<PathBuf>,
    /// The current connection of each hop, so a newer link replaces an older one.
    live: Mutex<HashMap<NextHop, quinn::Connection>>,
    status: Mutex<BTreeMap<NextHop, LinkStatus>>,
    wakers: Mutex<HashMap<NextHop, Arc<Notify>>>,
    /// Witnessing is check-then-persist: one checkpoint at a time.
    witnessing: Mutex<()>,
}

struct Dial {
    window: usize,
    hub: Option<String>,
    peers: Vec<PeerSection>,
    client: quinn::ClientConfig,
}

#[derive(Clone)]
struct Neighbour {
    name: String,
    key: IdentityPublicKey,
    connection: quinn::Connection,
}

/// Why a node could not join the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The link state store could not be opened.
    #[error("cannot open the link state in {path}: {source}")]
    State {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: StoreError,
    },
    /// The checkpoints the neighbours cosigned could not be read.
    #[error("cannot read the witnessed checkpoints in {path}: {source}")]
    Witnessed {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS configuration for dialling could not be built.
    #[error("cannot build the TLS configuration for links: {0}")]
    Tls(String),
}

impl Links {
    /// A node that links to no other (a lone post).
    pub(super) fn standalone(name: &str) -> Self {
        Links::new(
            Routes {
                node: name.to_owned(),
                kind: NodeKind::Post,
                has_hub: false,
                peers: Vec::new(),
            },
            String::new(),
            None,
            None,
            BTreeMap::new(),
        )
    }

    pub(super) fn federated(name: &str, federation: Federation) -> Result<Self, FederationError> {
        let state =
            DiskStore::open(&federation.state_dir).map_err(|source| FederationError::State {
                path: federation.state_dir.clone(),
                source,
            })?;
        let tls = valise_crypto::tls::link_client_config(&federation.ca_pem, &federation.tls)
            .map_err(|e| FederationError::Tls(e.to_string()))?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| FederationError::Tls(e.to_string()))?;
        let mut transport = quinn::TransportConfig::default();
        // A ping a second keeps a quiet link open and finds out soon when its other end has
        // restarted: the new process answers with a stateless reset (its reset key is derived
        // from its node key) and the link is dialled again at once. A dead end is noticed
        // after 30 s of silence (the smaller of the two ends' idle timeouts).
        transport.keep_alive_interval(Some(LINK_KEEP_ALIVE));
        if let Ok(idle) = Duration::from_secs(30).try_into() {
            transport.max_idle_timeout(Some(idle));
        }
        // Before the first sample, quinn assumes a 333 ms round trip and first retransmits a
        // lost handshake packet after about a second: a hub that comes back in the meantime
        // would wait that long for a post's dial. Retransmitting sooner costs a few small
        // packets on a slow link.
        transport.initial_rtt(Duration::from_millis(100));
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(transport));
        // Peer posts: the one whose name sorts first dials, so a pair keeps one connection.
        let dialled: Vec<PeerSection> = federation
            .peers
            .iter()
            .filter(|p| name < p.name.as_str())
            .cloned()
            .collect();
        let routes = Routes {
            node: name.to_owned(),
            kind: federation.kind,
            has_hub: federation.hub.is_some(),
            peers: federation.peers.iter().map(|p| p.name.clone()).collect(),
        };
        // Expected before any link is up, with what the neighbours witnessed before this start.
        let status = crate::status::configured_links(
            federation.kind,
            federation.hub.as_deref(),
            &federation.peers,
            &federation.state_dir,
        )
        .map_err(|source| FederationError::Witnessed {
            path: federation.state_dir.join(crate::witnessed::WITNESSED_DIR),
            source,
        })?;
        Ok(Links::new(
            routes,
            federation.ministry,
            Some(Dial {
                window: federation.forward_window,
                hub: federation.hub,
                peers: dialled,
                client,
            }),
            Some((Arc::new(state), federation.state_dir)),
            status,
        ))
    }

    /// `state`: the link state store and its folder; `status`: the links expected.
    fn new(
        routes: Routes,
        ministry: String,
        federation: Option<Dial>,
        state: Option<(Arc<DiskStore>, PathBuf)>,
        status: BTreeMap<NextHop, LinkStatus>,
    ) -> Self {
        let (state, state_dir) = state.unzip();
        Links {
            routes,
            ministry,
            federation,
            state,
            state_dir,
            live: Mutex::new(HashMap::new()),
            status: Mutex::new(status),
            wakers: Mutex::new(HashMap::new()),
            witnessing: Mutex::new(()),
        }
    }

    /// Wakes the forwarder of `hop`: a cable for it was queued.
    pub(super) fn wake(&self, hop: &NextHop) {
        self.waker(hop).notify_one();
    }

    fn waker(&self, hop: &NextHop) -> Arc<Notify> {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(wakers.entry(hop.clone()).or_default())
    }

    /// Every link this node has or expects, by hop.
    pub(super) fn status(&self) -> BTreeMap<NextHop, LinkStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, hop: &NextHop, change: impl FnOnce(&mut LinkStatus)) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        change(status.entry(hop.clone()).or_default());
    }

    fn failed(&self, hop: &NextHop, error: String) {
        tracing::warn!(hop = %hop.label(), error = %error, "link problem");
        self.update(hop, |s| s.last_error = Some(error));
    }

    fn witness_name(&self, node: &str) -> String {
        valise_audit::log::witness_name(&self.ministry, node)
    }
}

/// Starts dialling the hub and the peer posts this node dials; each dialler redials with
/// backoff for as long as the node runs.
pub(super) fn start_dialling(
    shared: &Arc<Shared>,
    endpoint: &quinn::Endpoint,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(dial) = &shared.links.federation else {
        return Vec::new();
    };
    let mut targets: Vec<(NextHop, String, Option<String>)> = Vec::new();
    if let Some(hub) = &dial.hub {
        targets.push((NextHop::Hub, hub.clone(), None));
    }
    for peer in &dial.peers {
        targets.push((
            NextHop::Post(peer.name.clone()),
            peer.addr.clone(),
            Some(peer.name.clone()),
        ));
    }
    targets
        .into_iter()
        .map(|(hop, addr, expect)| {
            tokio::spawn(keep_dialling(
                Arc::clone(shared),
                endpoint.clone(),
                hop,
                addr,
                expect,
            ))
        })
        .collect()
}

fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

async fn keep_dialling(
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    hop: NextHop,
    addr: String,
    expect: Option<String>,
) {
    // Dials failed in a row since the link was last up.
    let mut failed: u32 = 0;
    loop {
        match dial(&shared, &endpoint, &hop, &addr, expect.as_deref()).await {
            Ok(neighbour) => {
                run_link(&shared, hop.clone(), neighbour).await;
                failed = 0;
            }
            Err(e) => {
                shared.links.failed(&hop, e);
                failed = failed.saturating_add(1);
            }
        }
        tokio::time::sleep(redial_delay(failed, jitter())).await;
    }
}

async fn dial(
    shared: &Arc<Shared>,
    endpoint: &quinn::Endpoint,
    hop: &NextHop,
    addr: &str,
    expect: Option<&str>,
) -> Result<Neighbour, String> {
    let dial = shared
        .links
        .federation
        .as_ref()
        .ok_or("this node does not link to others")?;
    let (host, _) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr} is not host:port"))?;
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("{addr} has no IPv4 address"))?;
    let connecting = endpoint
        .connect_with(dial.client.clone(), target, host)
        .map_err(|e| format!("cannot dial {addr}: {e}"))?;
    let connection = tokio::time::timeout(DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("{addr} did not answer within {DIAL_TIMEOUT:?}"))?
        .map_err(|e| format!("the TLS handshake with {addr} failed: {e}"))?;
    let certified = peer_node(&connection, &shared.links.ministry)
        .ok_or_else(|| format!("{addr} did not present a node certificate"))?;
    // The hub is the node the root certified as the hub, whatever a peer says of itself.
    let role = peer_role(&connection);
    match (hop, role) {
        (NextHop::Hub, Some(NodeKind::Hub)) | (NextHop::Post(_), Some(NodeKind::Post)) => {}
        (NextHop::Hub, _) => {
            return Err(format!(
                "{addr} is node {certified}, whose certificate the root did not issue for the \
                 hub; check [node] hub, or re-issue the hub with `valise-relay ca issue-node \
                 --kind hub`"
            ));
        }
        (_, _) => {
            return Err(format!(
                "{addr} is node {certified}, whose certificate the root did not issue for a \
                 post; check [[peers]]"
            ));
        }
    }
    let hello = LinkRequest {
        request: Some(link_request::Request::Hello(own_hello(shared))),
    };
    let reply = ask(&connection, hello, PRIORITY_CONTROL).await?;
    let Some(link_reply::Reply::Hello(theirs)) = reply.reply else {
        return Err(refusal_text(reply, "a hello"));
    };
    let expected = match (hop, expect) {
        (NextHop::Hub, _) if !theirs.hub => Err(format!(
            "{addr} is node {}, a post, not the hub; check [node] hub",
            theirs.node
        )),
        (NextHop::Post(_), Some(name)) if theirs.node != name => Err(format!(
            "{addr} is node {}, not the peer {name}; check [[peers]]",
            theirs.node
        )),
        _ => Ok(()),
    };
    expected?;
    let neighbour = introduce(shared, connection, &certified, &theirs)?;
    Ok(neighbour)
}

/// Serves a link another node dialled.
pub(super) async fn accept(connection: quinn::Connection, shared: Arc<Shared>) {
    let Some(certified) = peer_node(&connection, &shared.links.ministry) else {
        return refuse(&connection, "not a node certificate of this ministry");
    };
    // Only posts dial: a node the root did not certify as a post is not taken for one.
    if peer_role(&connection) != Some(NodeKind::Post) {
        return refuse(
            &connection,
            &format!("node {certified} is not certified by the root as a post"),
        );
    }
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(REQUEST_TIMEOUT, connection.accept_bi()).await
    else {
        return;
    };
    let Ok(Some(LinkRequest {
        request: Some(link_request::Request::Hello(theirs)),
    })) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_one::<LinkRequest>(&mut recv, 64 * 1024),
    )
    .await
    else {
        return refuse(&connection, "a link starts with a hello");
    };
    // The hub takes any post; a post only the peers configured. Nobody dials a hub but posts.
    let allowed = !theirs.hub
        && match shared.links.routes.kind {
            NodeKind::Hub => true,
            NodeKind::Post => shared.links.routes.peers.contains(&theirs.node),
        };
    let introduced = if allowed {
        introduce(&shared, connection.clone(), &certified, &theirs)
    } else {
        Err(format!(
            "node {} is not a post this node links to; configure it as a peer",
            theirs.node
        ))
    };
    let (reply, neighbour) = match introduced {
        Ok(n) => (
            LinkReply {
                reply: Some(link_reply::Reply::Hello(own_hello(&shared))),
            },
            Some(n),
        ),
        Err(why) => (link_error(ErrorCode::Malformed, &why), None),
    };
    let sent = send.write_all(&framing::encode(&reply)).await.is_ok();
    let _ = send.finish();
    match neighbour {
        Some(n) if sent => run_link(&shared, NextHop::Post(theirs.node.clone()), n).await,
        Some(_) => {}
        None => refuse(&connection, &refusal_text(reply, "a hello")),
    }
}

fn refuse(connection: &quinn::Connection, why: &str) {
    tracing::warn!(peer = %connection.remote_address(), reason = %why, "link refused");
    connection.close(CLOSE_REFUSED.into(), why.as_bytes());
}

fn own_hello(shared: &Shared) -> LinkHello {
    LinkHello {
        protocol_version: valise_proto::PROTOCOL_VERSION,
        node: shared.name.clone(),
        hub: shared.links.routes.kind == NodeKind::Hub,
        node_key: shared.node_key.public().as_bytes().to_vec(),
        node_time_ms: now_ms(),
    }
}

/// Checks a neighbour's hello against its certificate and the key pinned for it (pinning it
/// on first contact).
fn introduce(
    shared: &Shared,
    connection: quinn::Connection,
    certified: &str,
    theirs: &LinkHello,
) -> Result<Neighbour, String> {
    if theirs.node != certified {
        return Err(format!(
            "the peer says it is node {}, but its certificate names {certified}",
            theirs.node
        ));
    }
    if theirs.protocol_version != valise_proto::PROTOCOL_VERSION {
        return Err(format!(
            "node {} speaks protocol {}, this node {}; upgrade the older one",
            theirs.node,
            theirs.protocol_version,
            valise_proto::PROTOCOL_VERSION
        ));
    }
    let key = IdentityPublicKey::from_slice(&theirs.node_key)
        .map_err(|_| format!("node {} sent a malformed node key", theirs.node))?;
    if let Some(state) = &shared.links.state {
        let pin = [&b"k"[..], theirs.node.as_bytes()].concat();
        match state.get(&pin).map_err(|e| e.to_string())? {
            Some(pinned) if pinned != key.as_bytes() => {
                return Err(format!(
                    "node {} presented a node key other than the one pinned at first contact; \
                     if that node was re-issued, remove its pin with ministry IT (see \
                     docs/operations.md), otherwise treat this as an impersonation attempt",
                    theirs.node
                ));
            }
            Some(_) => {}
            None => {
                state
                    .apply(vec![Write::Put(pin, key.as_bytes().to_vec())])
                    .and_then(|()| state.sync())
                    .map_err(|e| e.to_string())?;
                record_witness_key(shared, &theirs.node, key);
            }
        }
    }
    Ok(Neighbour {
        name: theirs.node.clone(),
        key,
        connection,
    })
}

/// Adds a newly pinned neighbour's witness key to the node's `witness-keys` file, so that
/// `audit verify` checks the cosignatures it made without being told its key.
fn record_witness_key(shared: &Shared, node: &str, key: IdentityPublicKey) {
    let (Some(path), Ok(verifier)) = (
        shared
            .links
            .state_dir
            .as_ref()
            .map(|d| d.join(WITNESS_KEYS)),
        NoteVerifier::cosigner(&shared.links.witness_name(node), key),
    ) else {
        return;
    };
    let line = format!("{}\n", verifier.to_vkey());
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = appended {
        tracing::warn!(file = %path.display(), error = %e, "cannot record a witness key");
    }
}

/// The role the root certified the peer for, from its certificate.
fn peer_role(connection: &quinn::Connection) -> Option<NodeKind> {
    let certs = connection.peer_identity().and_then(|i| {
        i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .ok()
    })?;
    crate::pki::certified_role(certs.first()?)
}

/// The node named by a peer's certificate: a DNS name `<node>.<ministry>` with a single label
/// before the ministry. Device certificates cannot carry such a name: their post CA is
/// constrained to `devices.<post>.<ministry>`.
pub(super) fn peer_node(connection: &quinn::Connection, ministry: &str) -> Option<String> {
    let suffix = format!(".{ministry}");
    super::certificate_names(connection).iter().find_map(|dns| {
        let label = dns.strip_suffix(&suffix)?;
        crate::config::is_name(label).then(|| label.to_owned())
    })
}

/// Runs a link until its connection ends: serves the neighbour's requests, forwards, pulls
/// the directory and offers checkpoints.
async fn run_link(shared: &Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    let connection = neighbour.connection.clone();
    tracing::info!(hop = %hop.label(), node = %neighbour.name, "link up");
    shared.links.update(&hop, |s| {
        s.neighbour = Some(neighbour.name.clone());
        s.connected = true;
        s.since_ms = now_ms();
        s.last_error = None;
    });
    // A neighbour that restarted dials again before this node noticed its old connection die:
    // one link per hop, the newest.
    let previous = shared
        .links
        .live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(hop.clone(), connection.clone());
    if let Some(old) = previous
        && old.stable_id() != connection.stable_id()
    {
        old.close(CLOSE_REPLACED.into(), b"replaced by a newer link");
    }
    let _tasks = LinkTasks(vec![
        tokio::spawn(serve_requests(
            Arc::clone(shared),
            hop.clone(),
            neighbour.clone(),
        )),
        tokio::spawn(forward_queue(
            Arc::clone(shared),
            hop.clone(),
            neighbour.clone(),
        )),
        tokio::spawn(pull_directory(
            Arc::clone(shared),
            hop.clone(),
            neighbour.clone(),
        )),
        tokio::spawn(offer_checkpoints(
            Arc::clone(shared),
            hop.clone(),
            neighbour.clone(),
        )),
    ]);
    let reason = connection.closed().await;
    let current = {
        let mut live = shared
            .links
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = live
            .get(&hop)
            .is_some_and(|c| c.stable_id() == connection.stable_id());
        if current {
            live.remove(&hop);
        }
        current
    };
    if !current {
        // Replaced by a newer link, which the status describes.
        tracing::info!(hop = %hop.label(), node = %neighbour.name, "an older link closed");
        return;
    }
    tracing::warn!(hop = %hop.label(), node = %neighbour.name, reason = %reason, "link down");
    shared.links.update(&hop, |s| {
        s.connected = false;
        s.since_ms = now_ms();
        s.last_error = Some(format!("link down: {reason}"));
    });
}

/// A link's tasks, aborted however the link ends: also when the dialler running it is aborted
/// at shutdown, since they hold the node's state, which shutdown waits to be released.
struct LinkTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for LinkTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn serve_requests(shared: Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    let max = shared.limits.max_envelope_bytes + 64 * 1024;
    // Owned here, so that ending the link also ends requests in progress (a held long-poll).
    let mut requests = tokio::task::JoinSet::new();
    while let Ok((mut send, mut recv)) = neighbour.connection.accept_bi().await {
        while requests.try_join_next().is_some() {}
        let shared = Arc::clone(&shared);
        let neighbour = neighbour.clone();
        let hop = hop.clone();
        requests.spawn(async move {
            let reply = match read_first::<LinkRequest>(&mut recv, max).await {
                // Raw bytes follow the frame: the stream carries nothing else.
                Some((
                    LinkRequest {
                        request: Some(link_request::Request::Attachment(upload)),
                    },
                    mut decoder,
                )) => carry::receive(&shared, &neighbour, &mut recv, &mut decoder, upload).await,
                Some((request, _)) => answer(&shared, &hop, &neighbour, request).await,
                None => link_error(
                    ErrorCode::Malformed,
                    "the request did not decode or was over the size limit",
                ),
            };
            let _ = send.write_all(&framing::encode(&reply)).await;
            let _ = send.finish();
        });
    }
}

async fn answer(
    shared: &Arc<Shared>,
    hop: &NextHop,
    neighbour: &Neighbour,
    request: LinkRequest,
) -> LinkReply {
    match request.request {
        Some(link_request::Request::Forward(forward)) => {
            take_forward(shared, neighbour, forward).await
        }
        Some(link_request::Request::DirectorySync(sync)) => directory_page(shared, sync).await,
        Some(link_request::Request::Witness(request)) => {
            let shared2 = Arc::clone(shared);
            let name = neighbour.name.clone();
            let key = neighbour.key;
            let hop = hop.clone();
            let reply =
                tokio::task::spawn_blocking(move || witness(&shared2, &hop, &name, key, request))
                    .await;
            reply.unwrap_or_else(|_| link_error(ErrorCode::Internal, "witnessing failed"))
        }
        Some(link_request::Request::Hello(_) | link_request::Request::Attachment(_)) | None => {
            link_error(
                ErrorCode::Malformed,
                "expected Forward, DirectorySync, Witness or Attachment on a link stream",
            )
        }
    }
}

/// Takes custody of a forwarded cable: checks it, routes its devices onward or here, makes it
/// durable, and signs the receipt.
async fn take_forward(shared: &Arc<Shared>, from: &Neighbour, forward: Forward) -> LinkReply {
    let offer = Offer {
        sender: Sender::Neighbour {
            name: &from.name,
            devices: &forward.devices,
            accepted_at_ms: forward.accepted_at_ms,
        },
        envelope: &forward.envelope,
        attachments: &forward.attachments,
    };
    let reply = match super::intake::take(shared, offer).await {
        super::intake::Taken::Reply(Reply::Receipt(receipt)) => {
            link_reply::Reply::CustodyReceipt(receipt)
        }
        super::intake::Taken::Reply(Reply::Error(error)) => link_reply::Reply::Error(error),
        super::intake::Taken::Wanted(missing) => {
            link_reply::Reply::AttachmentsWanted(AttachmentsWanted {
                ciphertext_sha256: missing.iter().map(|id| id.as_bytes().to_vec()).collect(),
            })
        }
    };
    LinkReply { reply: Some(reply) }
}

/// Answers a directory pull, holding it up to the wait asked for while nothing is newer.
async fn directory_page(shared: &Arc<Shared>, sync: DirectorySync) -> LinkReply {
    let wait = Duration::from_millis(sync.wait_ms).min(DIRECTORY_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Made before the version is read, so a write in between still wakes it.
        let changed = shared.directory.changed();
        let version = shared.directory.read().view().version();
        if version != sync.after_version
            || tokio::time::timeout_at(deadline, changed).await.is_err()
        {
            break;
        }
    }
    match super::directory_page(shared, sync.after_version).frame {
        Some(node_frame::Frame::DirectoryPage(page)) => LinkReply {
            reply: Some(link_reply::Reply::DirectoryPage(page)),
        },
        Some(node_frame::Frame::Error(e)) => LinkReply {
            reply: Some(link_reply::Reply::Error(e)),
        },
        _ => link_error(ErrorCode::Internal, "the directory could not be read"),
    }
}

/// Pulls the neighbour's directory updates for as long as the link is up, applying each one
/// this node does not hold yet; the cursor into the neighbour's history is kept durably.
async fn pull_directory(shared: Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    let cursor_key = [&b"c"[..], neighbour.name.as_bytes()].concat();
    let read_cursor = || -> u64 {
        shared
            .links
            .state
            .as_ref()
            .and_then(|s| s.get(&cursor_key).ok().flatten())
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    let mut after = read_cursor();
    loop {
        let request = LinkRequest {
            request: Some(link_request::Request::DirectorySync(DirectorySync {
                after_version: after,
                wait_ms: u64::try_from(DIRECTORY_WAIT.as_millis()).unwrap_or(u64::MAX),
            })),
        };
        let reply = match ask(&neighbour.connection, request, PRIORITY_CONTROL).await {
            Ok(reply) => reply,
            Err(_) if neighbour.connection.close_reason().is_some() => return,
            Err(e) => {
                shared.links.failed(&hop, format!("directory pull: {e}"));
                tokio::time::sleep(DIRECTORY_RETRY).await;
                continue;
            }
        };
        let page = match reply.reply {
            Some(link_reply::Reply::DirectoryPage(page)) => page,
            Some(link_reply::Reply::Error(e)) if after > 0 => {
                // The neighbour's history is shorter than the cursor (it was rebuilt): start
                // over; updates already held are recognised and skipped.
                shared.links.failed(
                    &hop,
                    format!(
                        "directory pull from {}: {}; starting over",
                        neighbour.name, e.message
                    ),
                );
                after = 0;
                continue;
            }
            other => {
                shared.links.failed(
                    &hop,
                    refusal_text(LinkReply { reply: other }, "a directory page"),
                );
                tokio::time::sleep(DIRECTORY_RETRY).await;
                continue;
            }
        };
        // Each applied update is made durable (an fsync) under the directory's write lock: off
        // the async workers.
        let applied = {
            let shared = Arc::clone(&shared);
            let from = neighbour.name.clone();
            tokio::task::spawn_blocking(move || apply_page(&shared, &from, after, page.updates))
                .await
                .unwrap_or_else(|_| Err("applying a directory page failed".to_owned()))
        };
        match applied {
            Ok(reached) => {
                if reached != after {
                    after = reached;
                    if let Some(state) = &shared.links.state {
                        let _ = state.apply(vec![Write::Put(
                            cursor_key.clone(),
                            after.to_be_bytes().to_vec(),
                        )]);
                    }
                }
            }
            Err(e) => {
                shared.links.failed(&hop, e);
                tokio::time::sleep(DIRECTORY_RETRY).await;
            }
        }
    }
}

/// Applies one page of a neighbour's history from version `after`; returns the version
/// reached. An update this node refuses stops the page: it is retried, never skipped.
fn apply_page(
    shared: &Shared,
    from: &str,
    mut after: u64,
    updates: Vec<valise_proto::v1::DirectoryUpdate>,
) -> Result<u64, String> {
    let mut directory = shared.directory.write();
    for update in updates {
        if update.version != after + 1 {
            return Err(format!(
                "node {from} sent directory update {} after {after}; pulling again",
                update.version
            ));
        }
        let Some(change) = update.update else {
            return Err(format!("node {from} sent an empty directory update"));
        };
        let revoked = match &change {
            valise_proto::v1::directory_update::Update::Revocation(r) => {
                DeviceId::from_slice(&r.device_id).ok()
            }
            _ => None,
        };
        match directory.apply_replicated(change) {
            Ok(crate::directory::Replicated::Applied(_)) => {
                if let Some(device) = revoked {
                    super::close_connections(shared, &[device]);
                }
            }
            Ok(crate::directory::Replicated::AlreadyHeld) => {}
            Err(e) => {
                return Err(format!(
                    "directory update {} from node {from} was refused: {e}",
                    update.version
                ));
            }
        }
        after = update.version;
    }
    Ok(after)
}

/// Forwards the hop's queue over this link, most urgent first, until the link ends.
async fn forward_queue(shared: Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    enum Sent {
        Taken,
        Retry(Duration),
    }
    let window = shared.links.federation.as_ref().map_or(1, |d| d.window);
    let mut out = Outbound::new(window);
    // Owned here, so that ending the link also ends the forwards in progress.
    let mut sending = tokio::task::JoinSet::new();
    let (done_tx, mut done) = mpsc::unbounded_channel::<(QueueKey, Sent)>();
    let waker = shared.links.waker(&hop);
    let started = Instant::now();
    let settle = |out: &mut Outbound, key: QueueKey, sent: Sent| match sent {
        Sent::Taken => out.taken(key),
        Sent::Retry(after) => {
            out.retry_later(key, started.elapsed(), after, jitter());
        }
    };
    loop {
        while sending.try_join_next().is_some() {}
        while let Ok((key, sent)) = done.try_recv() {
            settle(&mut out, key, sent);
        }
        if out.has_room() {
            let limit = out.in_flight() + out.deferred() + window;
            let store = Arc::clone(&shared);
            let scan_hop = hop.clone();
            let queued = match blocking_store(move || store.store.onward(&scan_hop, limit)).await {
                Ok(q) => q,
                Err(e) => {
                    shared
                        .links
                        .failed(&hop, format!("cannot read the queue: {e}"));
                    tokio::time::sleep(UNEXPECTED_RETRY).await;
                    continue;
                }
            };
            let keys: Vec<QueueKey> = queued.iter().map(|(k, _)| *k).collect();
            let mut entries: HashMap<QueueKey, Onward> = queued.into_iter().collect();
            for key in out.pick(&keys, started.elapsed()) {
                let Some(entry) = entries.remove(&key) else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                let hop = hop.clone();
                let neighbour = neighbour.clone();
                let done_tx = done_tx.clone();
                sending.spawn(async move {
                    let sent = match send_forward(&shared, &hop, &neighbour, key, entry).await {
                        Ok(()) => Sent::Taken,
                        Err(after) => Sent::Retry(after),
                    };
                    let _ = done_tx.send((key, sent));
                });
            }
        }
        let idle = out
            .next_due()
            .map_or(Duration::from_secs(5), |due| {
                due.saturating_sub(started.elapsed())
            })
            .max(Duration::from_millis(10));
        tokio::select! {
            () = waker.notified() => {}
            Some((key, sent)) = done.recv() => settle(&mut out, key, sent),
            () = tokio::time::sleep(idle) => {}
            _ = neighbour.connection.closed() => return,
        }
    }
}

/// Forwards one cable and waits for custody. `Err` carries how long to wait before trying it
/// again; a cable the neighbour can never take is dropped here, with an audit record.
async fn send_forward(
    shared: &Arc<Shared>,
    hop: &NextHop,
    neighbour: &Neighbour,
    key: QueueKey,
    entry: Onward,
) -> Result<(), Duration> {
    let store = Arc::clone(shared);
    let cable = entry.cable;
    let read = blocking_store(move || {
        let envelope = store.store.envelope(&cable)?;
        Ok(envelope.map(|e| (e, store.store.attachments(&cable))))
    })
    .await;
    let (envelope, mut attachments) = match read {
        Ok(Some((e, Ok(attachments)))) => (e, attachments),
        Ok(Some((_, Err(e)))) | Err(e) => {
            shared.links.failed(
                hop,
                format!("cannot read cable {}: {e}", hex::encode(cable)),
            );
            return Err(LOCAL_FAILURE_RETRY);
        }
        Ok(None) => {
            // Nothing left to send: the entry is stale.
            let _ = release(shared, hop, key).await;
            return Ok(());
        }
    };
    let digest = valise_crypto::sha256(&envelope);
    let priority = if key.rank <= 1 {
        PRIORITY_URGENT
    } else {
        PRIORITY_OTHER
    };
    let forwarded = |outcome| {
        Record::new(AuditEventKind::CableForwarded, outcome)
            .by_node(&shared.name)
            .object("envelope", &cable, &digest)
            .source(neighbour.name.clone())
    };
    // Offered once, then again after uploading the attachments the neighbour asked for.
    let mut offers = 0;
    let reply = loop {
        offers += 1;
        let request = LinkRequest {
            request: Some(link_request::Request::Forward(Forward {
                envelope: envelope.clone(),
                devices: entry
                    .devices
                    .iter()
                    .map(|d| d.as_bytes().to_vec())
                    .collect(),
                accepted_at_ms: entry.accepted_at_ms,
                attachments: attachments
                    .iter()
                    .map(|id| id.as_bytes().to_vec())
                    .collect(),
            })),
        };
        let reply = ask(&neighbour.connection, request, priority)
            .await
            .map_err(|_| Duration::ZERO)?;
        let Some(link_reply::Reply::AttachmentsWanted(wanted)) = reply.reply else {
            break reply;
        };
        if offers > 2 {
            shared.links.failed(
                hop,
                format!(
                    "node {} still asks for the attachments of cable {} after they were uploaded",
                    neighbour.name,
                    hex::encode(cable)
                ),
            );
            return Err(LOCAL_FAILURE_RETRY);
        }
        match carry_wanted(shared, neighbour, &attachments, &wanted, priority).await {
            Ok(expired) if expired.is_empty() => {}
            Ok(expired) => {
                // Past their retention on this node: the cable goes on, and its recipients
                // are told such an attachment is gone when they fetch it.
                for id in &expired {
                    tracing::warn!(
                        cable = %hex::encode(cable),
                        attachment = %id,
                        "an attachment expired on this node before its cable could be forwarded; the cable goes on without it"
                    );
                    let lost = forwarded(Outcome::Failure)
                        .reason(Reason::AttachmentExpired)
                        .object("attachment", &[], id.as_bytes());
                    record_async(shared, lost).await;
                }
                attachments.retain(|held| !expired.contains(held));
                // Kept shorter, so a later retry neither asks for them nor audits them again.
                let store = Arc::clone(shared);
                let kept = attachments.clone();
                let _ = blocking_store(move || store.store.set_attachments(&cable, &kept)).await;
            }
            Err(CarryError::Refused(e)) => {
                break LinkReply {
                    reply: Some(link_reply::Reply::Error(e)),
                };
            }
            Err(other) => {
                let (after, why) = other.into_retry();
                shared.links.failed(hop, why);
                return Err(after);
            }
        }
    };
    match reply.reply {
        Some(link_reply::Reply::CustodyReceipt(receipt)) => {
            if let Err(e) =
                custody::verify(&receipt, &neighbour.name, &neighbour.key, &cable, &envelope)
            {
                shared.links.failed(
                    hop,
                    format!(
                        "node {} sent a custody receipt that does not verify: {e}",
                        neighbour.name
                    ),
                );
                return Err(LOCAL_FAILURE_RETRY);
            }
            // The neighbour holds it durably: only now is this node's copy let go.
            release(shared, hop, key)
                .await
                .map_err(|_| UNEXPECTED_RETRY)?;
            record_async(shared, forwarded(Outcome::Success)).await;
            Ok(())
        }
        Some(link_reply::Reply::Error(e)) => match classify_refusal(e.code, e.retry_after_ms) {
            NextHopRefusal::Lasting(code) => {
                // This node acknowledged the cable, so it never drops it: a neighbour with
                // lower limits or an older version may be reconfigured or upgraded. It is held,
                // shown in status, audited, and offered again now and then.
                tracing::error!(
                    cable = %hex::encode(cable),
                    node = %neighbour.name,
                    reason = %e.message,
                    "the next hop refuses a cable; it is held here and offered again later"
                );
                shared.links.failed(
                    hop,
                    format!(
                        "node {} refuses cable {} ({}): {}; it is held here, retried every {} minutes; align the nodes' [limits] or versions",
                        neighbour.name,
                        hex::encode(cable),
                        code.as_str_name(),
                        e.message,
                        HELD_RETRY.as_secs() / 60
                    ),
                );
                record_async(
                    shared,
                    forwarded(Outcome::Refused).reason(Reason::RefusedByNextHop(code)),
                )
                .await;
                Err(HELD_RETRY)
            }
            NextHopRefusal::Later(after) => Err(after),
        },
        _ => Err(UNEXPECTED_RETRY),
    }
}

/// Uploads each attachment the neighbour asked for, stopping at the first that could not be
/// carried. Returns those this node no longer holds, which the cable must go on without.
async fn carry_wanted(
    shared: &Arc<Shared>,
    neighbour: &Neighbour,
    listed: &[AttachmentId],
    wanted: &AttachmentsWanted,
    priority: i32,
) -> Result<Vec<AttachmentId>, CarryError> {
    // Each at most once, and only those the cable carries: a faulty neighbour cannot make
    // this node send an attachment over and over.
    let wanted = crate::attachments::parse_list(&wanted.ciphertext_sha256)
        .ok()
        .filter(|ids| ids.iter().all(|id| listed.contains(id)))
        .ok_or_else(|| {
            CarryError::Retry(
                LOCAL_FAILURE_RETRY,
                format!(
                    "node {} asked for attachments the cable does not carry",
                    neighbour.name
                ),
            )
        })?;
    let mut expired = Vec::new();
    for id in wanted {
        match carry::upload(shared, &neighbour.connection, id, priority).await {
            Ok(bytes) => shared.metrics.attachment_carried(bytes),
            Err(CarryError::NotHeld(id)) => expired.push(id),
            Err(CarryError::Retry(after, why)) => {
                return Err(CarryError::Retry(
                    after,
                    format!("attachment {id} did not reach {}: {why}", neighbour.name),
                ));
            }
            Err(other) => return Err(other),
        }
    }
    Ok(expired)
}

async fn release(shared: &Arc<Shared>, hop: &NextHop, key: QueueKey) -> Result<bool, StoreError> {
    let store = Arc::clone(shared);
    let hop = hop.clone();
    blocking_store(move || store.store.forwarded(&hop, key)).await
}

/// Offers this node's newest checkpoint to the neighbour for witnessing whenever it grows.
async fn offer_checkpoints(shared: Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    let witness_name = shared.links.witness_name(&neighbour.name);
    let Ok(verifier) = NoteVerifier::cosigner(&witness_name, neighbour.key) else {
        return;
    };
    let mut their_size = 0u64;
    let mut offered = None;
    // The checkpoint signed as the node last stopped goes first: a newer one would leave it
    // without a cosignature of its own.
    let mut startup = shared.startup_checkpoint.clone();
    loop {
        let pending = startup
            .as_ref()
            .filter(|s| s.checkpoint.size > their_size && offered != Some(s.checkpoint.size));
        let Some(latest) = pending
            .cloned()
            .or_else(|| shared.audit.latest_checkpoint())
        else {
            tokio::time::sleep(WITNESS_EVERY).await;
            continue;
        };
        if pending.is_none() {
            startup = None;
        }
        let size = latest.checkpoint.size;
        if offered == Some(size) {
            tokio::time::sleep(WITNESS_EVERY).await;
            continue;
        }
        let old = their_size.min(size);
        let audit = Arc::clone(&shared.audit);
        let proof = if old == 0 {
            Ok(Vec::new())
        } else {
            tokio::task::spawn_blocking(move || audit.consistency_proof(old, size))
                .await
                .map_err(|e| e.to_string())
                .and_then(|p| p.map_err(|e| e.to_string()))
        };
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                shared
                    .links
                    .failed(&hop, format!("cannot prove consistency from {old}: {e}"));
                offered = Some(size);
                continue;
            }
        };
        let request = LinkRequest {
            request: Some(link_request::Request::Witness(WitnessRequest {
                old_size: old,
                consistency_proof: proof.iter().map(|h| h.to_vec()).collect(),
                checkpoint: latest.note.to_text(),
            })),
        };
        let reply = match ask(&neighbour.connection, request, PRIORITY_CONTROL).await {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(WITNESS_EVERY).await;
                continue;
            }
        };
        match reply.reply {
            Some(link_reply::Reply::Cosignature(c)) => {
                let stored = {
                    let (shared, hop) = (Arc::clone(&shared), hop.clone());
                    let (name, check) = (neighbour.name.clone(), verifier.clone());
                    tokio::task::spawn_blocking(move || {
                        let cosigned = shared.audit.add_cosignature(size, &c.line, &check)?;
                        keep_witnessed(&shared, &hop, &name, &cosigned);
                        Ok::<_, valise_audit::LogError>(())
                    })
                    .await
                };
                match stored {
                    Ok(Ok(())) => {
                        their_size = size;
                        offered = Some(size);
                        shared
                            .links
                            .update(&hop, |s| s.witnessed = Some((size, now_ms())));
                    }
                    _ => {
                        shared.links.failed(
                            &hop,
                            format!("node {}'s cosignature does not verify", neighbour.name),
                        );
                        offered = Some(size);
                    }
                }
            }
            Some(link_reply::Reply::WitnessSize(WitnessSize {
                size: theirs,
                checkpoint,
            })) => {
                check_not_rolled_back(&shared, &neighbour.name, theirs, &checkpoint).await;
                // The witness last cosigned another size: prove from there at once.
                if theirs == their_size {
                    offered = Some(size);
                }
                their_size = theirs;
            }
            Some(reply @ (link_reply::Reply::Error(_) | link_reply::Reply::WitnessRefused(_))) => {
                let e = match reply {
                    link_reply::Reply::WitnessRefused(refused) => {
                        check_not_rolled_back(
                            &shared,
                            &neighbour.name,
                            refused.size,
                            &refused.checkpoint,
                        )
                        .await;
                        refused.error.unwrap_or_default()
                    }
                    link_reply::Reply::Error(e) => e,
                    _ => ErrorFrame::default(),
                };
                tracing::error!(
                    witness = %neighbour.name,
                    size,
                    reason = %e.message,
                    "a witness refused this node's audit checkpoint"
                );
                shared.links.failed(
                    &hop,
                    format!(
                        "witness {} refused checkpoint {size}: {}",
                        neighbour.name, e.message
                    ),
                );
                let refused = Record::new(AuditEventKind::CheckpointWitnessed, Outcome::Refused)
                    .by_node(&neighbour.name)
                    .reason(Reason::RefusedByWitness);
                record_async(&shared, refused).await;
                offered = Some(size);
            }
            _ => offered = Some(size),
        }
    }
}

/// What a witness last cosigned of this log must still be in it: a checkpoint this node signed
/// of a larger log, or of another tree at that size, means the log was rolled back (its data
/// folder restored from an older copy) or rewritten. Only the neighbours can see that when the
/// anchor and the witnessed notes were restored along with it. The node raises an alarm,
/// which `/healthz`, `status` and `audit verify` show, and records it.
async fn check_not_rolled_back(shared: &Arc<Shared>, witness: &str, size: u64, note: &str) {
    if note.is_empty() || size == 0 {
        return;
    }
    let audit = Arc::clone(&shared.audit);
    let note = note.to_owned();
    let finding = tokio::task::spawn_blocking(move || {
        let signed = valise_audit::note::SignedCheckpoint::verify(&note, audit.verifier()).ok()?;
        let ours = audit.size();
        if signed.checkpoint.size > ours {
            return Some(format!(
                "{ours} entries, but it signed a checkpoint of size {size} that witness {{w}} \
                 cosigned"
            ));
        }
        match audit.root(signed.checkpoint.size) {
            Ok(root) if root == signed.checkpoint.root => None,
            _ => Some(format!(
                "entries other than those of the checkpoint of size {size} it signed and \
                 witness {{w}} cosigned"
            )),
        }
    })
    .await
    .ok()
    .flatten();
    let Some(finding) = finding else {
        return;
    };
    let message = format!(
        "ROLLED BACK: this node's audit log holds {}: its data folder (and anchor) were \
         restored from an older copy or rewritten. Stop the node, keep the data as evidence, \
         and restore the latest backup; report it to ministry IT security",
        finding.replace("{w}", witness)
    );
    if shared.raise(&format!("rollback:{witness}"), &message) {
        tracing::error!(witness = %witness, size, "{message}");
        let record = Record::new(AuditEventKind::CheckpointWitnessed, Outcome::Failure)
            .by_node(witness)
            .reason(Reason::ThisLogRolledBack);
        record_async(shared, record).await;
    }
}

/// Keeps the newest checkpoint `neighbour` cosigned outside the audit store, for `audit
/// verify` to check the log against.
fn keep_witnessed(shared: &Shared, hop: &NextHop, neighbour: &str, note: &str) {
    let Some(dir) = &shared.links.state_dir else {
        return;
    };
    if let Err(e) = crate::witnessed::keep(dir, neighbour, note) {
        shared.links.failed(
            hop,
            format!(
                "cannot keep the checkpoint {neighbour} cosigned in {}: {e}",
                dir.display()
            ),
        );
    }
}

/// Cosigns a neighbour's checkpoint if it extends the last one cosigned; keeps the evidence
/// and refuses if the neighbour's log was rolled back or forked.
fn witness(
    shared: &Shared,
    hop: &NextHop,
    name: &str,
    key: IdentityPublicKey,
    request: WitnessRequest,
) -> LinkReply {
    let Some(state) = &shared.links.state else {
        return link_error(ErrorCode::Malformed, "this node witnesses no log");
    };
    let origin = valise_audit::log::origin(&shared.links.ministry, name);
    let (Ok(log), Ok(seed)) = (
        NoteVerifier::ed25519(&origin, key),
        IdentityKeyPair::from_seed(&shared.node_key.seed()[..]),
    ) else {
        return link_error(ErrorCode::Internal, "the witness keys could not be loaded");
    };
    let Ok(signer) = CosignatureSigner::new(&shared.links.witness_name(&shared.name), seed) else {
        return link_error(ErrorCode::Internal, "the witness key could not be loaded");
    };
    let vkey = signer.verifier().to_vkey();
    let proof: Option<Vec<Hash>> = request
        .consistency_proof
        .iter()
        .map(|h| h.as_slice().try_into().ok())
        .collect();
    let Some(proof) = proof else {
        return link_error(ErrorCode::Malformed, "a proof hash is not 32 bytes");
    };
    let _one = shared
        .links
        .witnessing
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let witness = Witness::new(Arc::clone(state), signer, [log]);
    let now = now_ms() / 1000;
    let result = witness.add_checkpoint(request.old_size, &proof, &request.checkpoint, now);
    match result {
        // Not audited: each record would grow this log, which the neighbour then witnesses
        // in turn, and the two would never go idle. The cosignature itself is the evidence,
        // kept with the neighbour's checkpoint and in this witness's state.
        Ok(line) => {
            let size = witness.cosigned(&origin).ok().flatten().map(|c| c.size);
            shared.links.update(hop, |s| s.cosigned = size);
            LinkReply {
                reply: Some(link_reply::Reply::Cosignature(Cosignature {
                    line,
                    witness_vkey: vkey,
                })),
            }
        }
        // With the checkpoint itself: a log restored from an older copy learns from it that it
        // was rolled back, since it holds its own signature on a tree it no longer extends.
        Err(WitnessError::StaleSize { witness_size, .. }) => LinkReply {
            reply: Some(link_reply::Reply::WitnessSize(WitnessSize {
                size: witness_size,
                checkpoint: witness
                    .cosigned(&origin)
                    .ok()
                    .flatten()
                    .map(|c| c.note)
                    .unwrap_or_default(),
            })),
        },
        Err(
            e @ (WitnessError::Rollback { .. }
            | WitnessError::Fork { .. }
            | WitnessError::BadProof { .. }),
        ) => {
            tracing::error!(node = %name, error = %e, "refused a neighbour's audit checkpoint; evidence kept");
            shared
                .links
                .failed(hop, format!("refused node {name}'s checkpoint: {e}"));
            let reason = match e {
                WitnessError::Rollback { .. } => Reason::Rollback,
                WitnessError::Fork { .. } => Reason::Fork,
                _ => Reason::BadProof,
            };
            shared.record(
                Record::new(AuditEventKind::CheckpointWitnessed, Outcome::Refused)
                    .by_node(name)
                    .reason(reason),
            );
            let cosigned = witness.cosigned(&origin).ok().flatten();
            LinkReply {
                reply: Some(link_reply::Reply::WitnessRefused(WitnessRefused {
                    error: Some(ErrorFrame {
                        code: ErrorCode::WitnessRefused as i32,
                        message: e.to_string(),
                        retry_after_ms: 0,
                    }),
                    size: cosigned.as_ref().map_or(0, |c| c.size),
                    checkpoint: cosigned.map(|c| c.note).unwrap_or_default(),
                })),
            }
        }
        Err(e) => link_error(ErrorCode::Malformed, &e.to_string()),
    }
}

/// Sends one request on its own stream and reads the one reply.
async fn ask(
    connection: &quinn::Connection,
    request: LinkRequest,
    priority: i32,
) -> Result<LinkReply, String> {
    let bytes = framing::encode(&request);
    let (mut send, mut recv) = tokio::time::timeout(REQUEST_TIMEOUT, connection.open_bi())
        .await
        .map_err(|_| format!("no stream opened within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = send.set_priority(priority);
    // A large cable on a lossy satellite link may take long to send; bound the upload by its
    // size (1 KiB/s at worst), and only then wait for the reply.
    let upload = REQUEST_TIMEOUT
        + Duration::from_secs(u64::try_from(bytes.len() / 1024).unwrap_or(u64::MAX));
    tokio::time::timeout(upload, send.write_all(&bytes))
        .await
        .map_err(|_| format!("the request was not sent within {upload:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_one::<LinkReply>(&mut recv, 16 * 1024 * 1024),
    )
    .await
    .map_err(|_| format!("no reply within {REQUEST_TIMEOUT:?}"))?
    .ok_or_else(|| "the reply did not decode".to_owned())
}

/// Reads exactly one frame of at most `max` bytes.
async fn read_one<M: Message + Default>(recv: &mut quinn::RecvStream, max: usize) -> Option<M> {
    read_first(recv, max).await.map(|(frame, _)| frame)
}

/// Reads the first frame of at most `max` bytes, with the decoder holding whatever was read
/// past it (the start of an attachment's raw bytes).
async fn read_first<M: Message + Default>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Option<(M, FrameDecoder)> {
    let mut decoder = FrameDecoder::new(max);
    loop {
        if let Ok(Some(frame)) = decoder.next_frame::<M>() {
            return Some((frame, decoder));
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            _ => return None,
        }
    }
}

fn link_error(code: ErrorCode, message: &str) -> LinkReply {
    link_error_retry(code, message, Duration::ZERO)
}

/// A refusal the neighbour may retry after `after`.
fn link_error_retry(code: ErrorCode, message: &str, after: Duration) -> LinkReply {
    LinkReply {
        reply: Some(link_reply::Reply::Error(ErrorFrame {
            code: code as i32,
            message: message.to_owned(),
            retry_after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        })),
    }
}

fn refusal_text(reply: LinkReply, expected: &str) -> String {
    match reply.reply {
        Some(link_reply::Reply::Error(e)) => e.message,
        _ => format!("expected {expected}, got something else"),
    }
}
