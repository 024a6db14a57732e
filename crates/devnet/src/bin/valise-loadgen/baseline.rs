//! The baselines Valise is measured against in the same run: a raw quinn server with the same
//! mutual TLS (the node's own certificate, the devices' own), taking the same requests from
//! the same senders on the same number of streams, and answering each with a reply the size
//! of a custody receipt. Once with no disk at all (what QUIC and TLS cost), once making each
//! request durable first with a group-committed `fdatasync` of an append-only file (the
//! durable floor of this disk: the least any broker that syncs can do).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tokio::sync::oneshot;
use valise_devnet::local::{LocalDevice, LocalNode};

use crate::traffic::Sealed;

/// About the size of a custody receipt on the wire.
const REPLY_BYTES: usize = 160;

/// Whether the baseline server makes each request durable before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Answered once read: QUIC and TLS alone.
    None,
    /// Answered once a group-committed `fdatasync` covers it.
    GroupFsync,
}

/// Requests per second a baseline server took from `senders`, each sending its batch on
/// `streams` streams at once.
pub(crate) async fn measure(
    node: &LocalNode,
    senders: &[LocalDevice],
    batches: &[Vec<Sealed>],
    streams: usize,
    durability: Durability,
    dir: &Path,
) -> Result<f64> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(node.tls_server_config()?)
        .map_err(|e| anyhow!("the node's TLS cannot serve QUIC: {e}"))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(1024u32.into());
    server.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(server, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = endpoint.local_addr()?;
    let committer = match durability {
        Durability::None => None,
        Durability::GroupFsync => Some(Committer::start(
            &dir.join(format!("baseline-{}.log", std::process::id())),
        )?),
    };
    let serving = tokio::spawn(serve(endpoint.clone(), committer.clone()));

    let mut connections = Vec::new();
    for sender in senders {
        connections.push(sender.connect_at(addr).await?);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut total = 0;
    for (conn, batch) in connections.iter().zip(batches) {
        let requests: Arc<Vec<Vec<u8>>> = Arc::new(batch.iter().map(frame).collect());
        total += requests.len();
        for stream in 0..streams {
            let (conn, requests) = (conn.clone(), Arc::clone(&requests));
            tasks.spawn(async move {
                for request in requests.iter().skip(stream).step_by(streams) {
                    let (mut send, mut recv) = conn.open_bi().await?;
                    send.write_all(request).await?;
                    send.finish()?;
                    let reply = recv.read_to_end(4096).await?;
                    anyhow::ensure!(reply.len() == REPLY_BYTES, "a short reply");
                }
                Ok::<_, anyhow::Error>(())
            });
        }
    }
    while let Some(task) = tasks.join_next().await {
        task.context("a baseline sender failed")??;
    }
    let took = start.elapsed();
    for conn in connections {
        conn.close(0u32.into(), b"done");
    }
    endpoint.close(0u32.into(), b"done");
    serving.abort();
    if let Some(committer) = committer {
        committer.stop();
    }
    Ok(total as f64 / took.as_secs_f64())
}

/// A submission frame, as a device sends it.
fn frame(cable: &Sealed) -> Vec<u8> {
    valise_proto::framing::encode(&valise_proto::v1::ClientFrame {
        frame: Some(valise_proto::v1::client_frame::Frame::Submit(
            valise_proto::v1::Submit {
                envelope: cable.bytes.clone(),
                attachments: Vec::new(),
            },
        )),
    })
}

async fn serve(endpoint: quinn::Endpoint, committer: Option<Committer>) {
    while let Some(incoming) = endpoint.accept().await {
        let committer = committer.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else {
                return;
            };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let committer = committer.clone();
                tokio::spawn(async move {
                    let Ok(request) = recv.read_to_end(1 << 20).await else {
                        return;
                    };
                    if let Some(committer) = &committer
                        && !committer.commit(request).await
                    {
                        return;
                    }
                    let _ = send.write_all(&[0u8; REPLY_BYTES]).await;
                    let _ = send.finish();
                });
            }
        });
    }
}

/// One writer appending every request waiting to a file and syncing once for all of them.
#[derive(Clone)]
struct Committer {
    requests: std::sync::mpsc::Sender<(Vec<u8>, oneshot::Sender<bool>)>,
}

impl Committer {
    fn start(path: &Path) -> Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let (tx, rx) = std::sync::mpsc::channel::<(Vec<u8>, oneshot::Sender<bool>)>();
        let path = path.to_owned();
        std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                group.extend(rx.try_iter());
                let written = group
                    .iter()
                    .try_for_each(|(bytes, _)| file.write_all(bytes))
                    .and_then(|()| file.sync_data());
                for (_, done) in group {
                    let _ = done.send(written.is_ok());
                }
            }
            let _ = std::fs::remove_file(path);
        });
        Ok(Committer { requests: tx })
    }

    /// Returns once `bytes` are durable (true), or could not be made so (false).
    async fn commit(&self, bytes: Vec<u8>) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.requests.send((bytes, tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    fn stop(self) {
        drop(self.requests);
        // The writer ends once the served streams are gone; give it a moment to remove its
        // file.
        std::thread::sleep(Duration::from_millis(50));
    }
}
