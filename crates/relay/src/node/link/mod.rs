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
use std::time::Duration;

use tokio::sync::Notify;
use valise_crypto::identity::IdentityPublicKey;
use valise_crypto::tls::CertifiedKey;
use valise_proto::framing;
use valise_proto::v1::{ErrorCode, LinkReply, LinkRequest, link_request};
use valise_store::{DiskStore, StoreError};

use super::{Shared, now_ms};
use crate::config::{NodeKind, PeerSection};
use crate::routing::{NextHop, Routes};

mod carry;
mod dial;
mod directory;
mod forward;
mod wire;
mod witnessing;

use dial::jitter;
pub(super) use dial::{accept, start_dialling};
use directory::{directory_page, pull_directory};
use forward::{forward_queue, take_forward};
use wire::{link_error, read_first};
use witnessing::{offer_checkpoints, witness};

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
/// Streams either end of a link may open at once with a forwarding window of `window`: two
/// windows (urgent and other), and room for directory pulls, witnessing and attachments.
fn link_streams(window: usize) -> quinn::VarInt {
    let streams = window.saturating_mul(2).saturating_add(64);
    quinn::VarInt::from_u32(u32::try_from(streams).unwrap_or(u32::MAX))
}

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
        transport.max_concurrent_bidi_streams(link_streams(federation.forward_window));
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

    /// A dial to a link that is down failed: the operator still sees why the link went down,
    /// and what the last try to bring it back met.
    fn redial_failed(&self, hop: &NextHop, error: String) {
        tracing::warn!(hop = %hop.label(), error = %error, "link problem");
        self.update(hop, |s| {
            let went_down = s
                .last_error
                .as_deref()
                .filter(|e| e.starts_with("link down"))
                .map(|e| e.split("; dialling again: ").next().unwrap_or(e).to_owned());
            s.last_error = Some(match went_down {
                Some(down) => format!("{down}; dialling again: {error}"),
                None => error,
            });
        });
    }

    fn witness_name(&self, node: &str) -> String {
        valise_audit::log::witness_name(&self.ministry, node)
    }
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
