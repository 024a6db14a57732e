//! The network shell: one QUIC connection to the device's node, and the requests the client
//! makes on it. Each request has its own stream (docs/protocol.md). No decisions live here.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use valise_proto::framing::{self, FrameDecoder};
use valise_proto::v1::{
    AttachmentFetch, AttachmentStored, AttachmentUpload, ClientFrame, Delivery, DeliveryAck,
    DeliveryLane, ErrorCode, Hello, NodeFrame, Subscribe, Welcome, client_frame, node_frame,
};

/// How long to wait for a node to answer a request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for the handshake: a few round trips even on a lossy satellite link, yet
/// short enough that working offline does not feel stuck.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(6);
/// The largest frame accepted from a node: a delivery of the largest envelope, with margin.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Raw attachment bytes are moved in pieces of this size.
const PIECE: usize = 64 * 1024;

/// Why talking to the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The node could not be reached.
    #[error("cannot reach the node at {addr}: {reason}")]
    Unreachable {
        /// The node's address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The node refused the request and said why.
    #[error("the node refused: {message}")]
    Refused {
        /// The machine-readable reason.
        code: ErrorCode,
        /// The node's explanation.
        message: String,
    },
    /// The node did not answer in time.
    #[error("the node did not answer within {0:?}; try again")]
    Timeout(Duration),
    /// The node answered something this client does not understand.
    #[error("the node sent an unexpected answer: {0}")]
    Protocol(String),
    /// The connection broke during the request.
    #[error("the connection to the node broke: {0}")]
    Broken(String),
    /// The node closed the connection and said why.
    #[error("the node closed the connection: {reason}")]
    Closed {
        /// The node's words.
        reason: String,
    },
    /// Reading or writing a local file failed.
    #[error("local file error: {0}")]
    Io(String),
}

impl NetError {
    /// Whether the node asked to be left alone a while (busy, or unable to store anything).
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            NetError::Refused {
                code: ErrorCode::Busy | ErrorCode::Unavailable | ErrorCode::Internal,
                ..
            } | NetError::Timeout(_)
        )
    }

    /// Whether the request may succeed later unchanged (the node is away or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            NetError::Unreachable { .. } | NetError::Timeout(_) | NetError::Broken(_) => true,
            NetError::Refused { code, .. } => {
                matches!(
                    code,
                    ErrorCode::Busy | ErrorCode::Internal | ErrorCode::Unavailable
                )
            }
            // A revoked or cloned device, or a node going away: the closing words say which.
            NetError::Closed { .. } => true,
            NetError::Protocol(_) | NetError::Io(_) => false,
        }
    }
}

/// How many pushed deliveries may wait to be stored before the reader stops reading.
const LIVE_QUEUE: usize = 64;

/// What a live subscription brings.
#[derive(Debug)]
pub enum LiveEvent {
    /// A cable or a receipt for this device.
    Delivery(Delivery),
    /// Everything queued so far has been sent.
    CaughtUp,
}

/// A live subscription: one stream for the whole queue, or, where the node serves them, one
/// per delivery lane, so a FLASH never waits behind routine cables the node already sent.
pub struct Live {
    /// Deliveries as the node pushes them, from every stream.
    pub deliveries: tokio::sync::mpsc::Receiver<LiveEvent>,
    streams: Vec<LiveStream>,
    /// Which stream delivered each entry not yet acknowledged: its acknowledgement goes back
    /// on it.
    delivered_on: DeliveredOn,
}

/// Queue key to the number of the stream that delivered it.
type DeliveredOn = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, usize>>>;

/// One subscribe stream of a [`Live`] subscription.
struct LiveStream {
    acks: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Live {
    /// Acknowledges a delivery this device stored, by its queue key, on the stream that
    /// delivered it.
    pub fn ack(&self, queue_key: Vec<u8>) {
        let stream = self
            .delivered_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&queue_key)
            .unwrap_or(0);
        if let Some(stream) = self.streams.get(stream) {
            let _ = stream.acks.send(queue_key);
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for stream in &self.streams {
            stream.reader.abort();
            stream.writer.abort();
        }
    }
}

/// An open, authenticated connection to the node.
pub struct NodeLink {
    _endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    welcome: Welcome,
}

/// Resolves `host:port`.
fn resolve(addr: &str) -> Result<SocketAddr, NetError> {
    let all: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| NetError::Unreachable {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    // Nodes listen on IPv4 by default: prefer it when a name resolves to both.
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| NetError::Unreachable {
            addr: addr.to_owned(),
            reason: "the name resolves to no address".into(),
        })
}

/// The host part of `host:port`, as the node's certificate must name it.
pub fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    }
}

/// Opens a QUIC connection with `tls` to the node at `addr`, named `server_name`, waiting at
/// most [`CONNECT_TIMEOUT`].
pub async fn open(
    addr: &str,
    server_name: &str,
    tls: rustls::ClientConfig,
) -> Result<(quinn::Endpoint, quinn::Connection), NetError> {
    open_within(addr, server_name, tls, CONNECT_TIMEOUT).await
}

/// [`open`], waiting at most `timeout` for the handshake.
pub async fn open_within(
    addr: &str,
    server_name: &str,
    tls: rustls::ClientConfig,
    timeout: Duration,
) -> Result<(quinn::Endpoint, quinn::Connection), NetError> {
    let socket = resolve(addr)?;
    let unreachable = |reason: String| NetError::Unreachable {
        addr: addr.to_owned(),
        reason,
    };
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| unreachable(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(10)));
    config.transport_config(Arc::new(transport));
    let bind: SocketAddr = if socket.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| unreachable(e.to_string()))?;
    endpoint.set_default_client_config(config);
    let connecting = endpoint
        .connect(socket, server_name)
        .map_err(|e| unreachable(e.to_string()))?;
    let connection = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    Ok((endpoint, connection))
}

/// Sends `frame` on a new stream, finishes it, and reads the one answer.
pub async fn request(
    connection: &quinn::Connection,
    frame: client_frame::Frame,
) -> Result<NodeFrame, NetError> {
    let exchange = async {
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| broken(connection, &e))?;
        let mut decoder = FrameDecoder::new(MAX_FRAME);
        if let Err(e) = send
            .write_all(&framing::encode(&ClientFrame { frame: Some(frame) }))
            .await
        {
            // The node may have stopped the stream with a refusal (an envelope over its limit,
            // say) before all was written: its answer says why, which matters more than the
            // broken write.
            if let Ok(Err(refused @ NetError::Refused { .. })) =
                tokio::time::timeout(REFUSAL_WAIT, read_frame(&mut recv, &mut decoder)).await
            {
                return Err(refused);
            }
            return Err(broken(connection, &e));
        }
        let _ = send.finish();
        // A connection the node closed (a revoked device, say) breaks the read: its reason
        // says why.
        read_frame(&mut recv, &mut decoder)
            .await
            .map_err(|e| match e {
                NetError::Broken(m) => broken(connection, &m),
                other => other,
            })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| NetError::Timeout(REQUEST_TIMEOUT))?
}

/// How long a broken write waits for the refusal that may explain it.
const REFUSAL_WAIT: Duration = Duration::from_secs(2);

/// A stream that broke: with the node's reason for closing the connection, when it gave one
/// (a revoked device, a cloned device, a node shutting down).
fn broken(connection: &quinn::Connection, e: &dyn std::fmt::Display) -> NetError {
    match connection.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => {
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            NetError::Closed {
                reason: crate::text::single_line(&reason),
            }
        }
        _ => NetError::Broken(e.to_string()),
    }
}

/// Reads the next frame; a refusal becomes [`NetError::Refused`].
async fn read_frame(
    recv: &mut quinn::RecvStream,
    decoder: &mut FrameDecoder,
) -> Result<NodeFrame, NetError> {
    loop {
        if let Some(frame) = decoder
            .next_frame::<NodeFrame>()
            .map_err(|e| NetError::Protocol(e.to_string()))?
        {
            return refusal_to_error(frame);
        }
        match recv.read_chunk(PIECE, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            Ok(None) => return Err(NetError::Broken("the node closed the stream".into())),
            Err(e) => return Err(NetError::Broken(e.to_string())),
        }
    }
}

fn refusal_to_error(frame: NodeFrame) -> Result<NodeFrame, NetError> {
    match frame.frame {
        Some(node_frame::Frame::Error(e)) => Err(NetError::Refused {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
            message: e.message,
        }),
        _ => Ok(frame),
    }
}

fn unexpected(what: &str) -> NetError {
    NetError::Protocol(format!("expected {what}"))
}

/// What happens with each delivered cable; `Ok(true)` acknowledges it to the node.
pub type DeliveryHandler<'a> = dyn FnMut(&Delivery) -> Result<bool, String> + Send + 'a;

impl NodeLink {
    /// Connects with the device's certificate and says hello, with the device's connection
    /// number `session` (0: not counted), waiting at most `timeout` for the handshake.
    pub async fn connect(
        addr: &str,
        server_name: &str,
        tls: rustls::ClientConfig,
        session: u64,
        timeout: Duration,
    ) -> Result<Self, NetError> {
        let (endpoint, connection) = open_within(addr, server_name, tls, timeout).await?;
        let hello = client_frame::Frame::Hello(Hello {
            protocol_version: valise_proto::PROTOCOL_VERSION,
            software: concat!("valise-client/", env!("CARGO_PKG_VERSION")).into(),
            session,
        });
        let welcome = match request(&connection, hello).await?.frame {
            Some(node_frame::Frame::Welcome(w)) => w,
            _ => return Err(unexpected("Welcome")),
        };
        Ok(NodeLink {
            _endpoint: endpoint,
            connection,
            welcome,
        })
    }

    /// Whether the connection is still up (a stream may break while it is).
    pub fn is_open(&self) -> bool {
        self.connection.close_reason().is_none()
    }

    /// The node's welcome: its name, clock, limits and custody key.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// One request, one answer.
    pub async fn request(&self, frame: client_frame::Frame) -> Result<NodeFrame, NetError> {
        request(&self.connection, frame).await
    }

    /// Opens a subscription that stays open: the node pushes each cable (and each receipt) for
    /// this device as soon as it takes custody of it. Deliveries arrive on
    /// [`Live::deliveries`]; acknowledge each stored one with [`Live::ack`]. The channel closes
    /// when a stream or the connection ends. Where the node serves delivery lanes, FLASH and
    /// IMMEDIATE come on a stream of their own.
    pub async fn subscribe_live(&self) -> Result<Live, NetError> {
        let lanes: &[DeliveryLane] = if self.welcome.delivery_lanes {
            &[DeliveryLane::Urgent, DeliveryLane::Other]
        } else {
            &[DeliveryLane::All]
        };
        let (deliveries_tx, deliveries) = tokio::sync::mpsc::channel(LIVE_QUEUE);
        let delivered_on = std::sync::Arc::default();
        let mut streams = Vec::with_capacity(lanes.len());
        for (index, lane) in lanes.iter().enumerate() {
            streams.push(
                self.open_live_stream(*lane, index, deliveries_tx.clone(), &delivered_on)
                    .await?,
            );
        }
        Ok(Live {
            deliveries,
            streams,
            delivered_on,
        })
    }

    /// One subscribe stream of `lane`, feeding `deliveries`; the stream is number `index`.
    async fn open_live_stream(
        &self,
        lane: DeliveryLane,
        index: usize,
        deliveries_tx: tokio::sync::mpsc::Sender<LiveEvent>,
        delivered_on: &DeliveredOn,
    ) -> Result<LiveStream, NetError> {
        let (mut send, mut recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|e| broken(&self.connection, &e))?;
        let subscribe = ClientFrame {
            frame: Some(client_frame::Frame::Subscribe(Subscribe {
                lane: lane as i32,
            })),
        };
        send.write_all(&framing::encode(&subscribe))
            .await
            .map_err(|e| broken(&self.connection, &e))?;
        let delivered_on = std::sync::Arc::clone(delivered_on);
        let reader = tokio::spawn(async move {
            let mut decoder = FrameDecoder::new(MAX_FRAME);
            while let Ok(frame) = read_frame(&mut recv, &mut decoder).await {
                let event = match frame.frame {
                    Some(node_frame::Frame::Delivery(d)) => {
                        delivered_on
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(d.queue_key.clone(), index);
                        LiveEvent::Delivery(d)
                    }
                    Some(node_frame::Frame::CaughtUp(_)) => LiveEvent::CaughtUp,
                    _ => return,
                };
                if deliveries_tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        let (acks, mut acks_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let writer = tokio::spawn(async move {
            while let Some(queue_key) = acks_rx.recv().await {
                let ack = ClientFrame {
                    frame: Some(client_frame::Frame::DeliveryAck(DeliveryAck { queue_key })),
                };
                if send.write_all(&framing::encode(&ack)).await.is_err() {
                    return;
                }
            }
            let _ = send.finish();
        });
        Ok(LiveStream {
            acks,
            reader,
            writer,
        })
    }

    /// Takes this device's queued cables, most urgent first, until the node says it is caught
    /// up. Each is handed to `handle`; those it stored are acknowledged. Returns how many were
    /// handled. When this returns Ok, the node has processed every acknowledgement.
    pub async fn receive_queued(&self, handle: &mut DeliveryHandler<'_>) -> Result<u64, NetError> {
        let broken = |e: &dyn std::fmt::Display| NetError::Broken(e.to_string());
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(|e| broken(&e))?;
        let subscribe = ClientFrame {
            frame: Some(client_frame::Frame::Subscribe(Subscribe::default())),
        };
        send.write_all(&framing::encode(&subscribe))
            .await
            .map_err(|e| broken(&e))?;
        let mut decoder = FrameDecoder::new(MAX_FRAME);
        let mut handled = 0u64;
        loop {
            let frame = tokio::time::timeout(REQUEST_TIMEOUT, read_frame(&mut recv, &mut decoder))
                .await
                .map_err(|_| NetError::Timeout(REQUEST_TIMEOUT))??;
            match frame.frame {
                Some(node_frame::Frame::Delivery(delivery)) => {
                    handled += 1;
                    if handle(&delivery).map_err(NetError::Io)? {
                        let ack = ClientFrame {
                            frame: Some(client_frame::Frame::DeliveryAck(DeliveryAck {
                                queue_key: delivery.queue_key,
                            })),
                        };
                        send.write_all(&framing::encode(&ack))
                            .await
                            .map_err(|e| broken(&e))?;
                    }
                }
                Some(node_frame::Frame::CaughtUp(_)) => break,
                _ => return Err(unexpected("a delivery or the caught-up marker")),
            }
        }
        // Finishing our side ends the node's ack reader; the node finishes its side once every
        // acknowledgement before it is durable.
        let _ = send.finish();
        let drain = async {
            loop {
                match recv.read_chunk(PIECE, true).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(broken(&e)),
                }
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, drain)
            .await
            .map_err(|_| NetError::Timeout(REQUEST_TIMEOUT))??;
        Ok(handled)
    }

    /// Uploads an attachment's ciphertext from `path`, reporting bytes sent to `progress`.
    pub async fn upload(
        &self,
        path: &Path,
        ciphertext_sha256: &[u8],
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<AttachmentStored, NetError> {
        let io = |e: std::io::Error| NetError::Io(format!("{}: {e}", path.display()));
        let broken = |e: &dyn std::fmt::Display| NetError::Broken(e.to_string());
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(|e| broken(&e))?;
        let announce = ClientFrame {
            frame: Some(client_frame::Frame::AttachmentUpload(AttachmentUpload {
                ciphertext_sha256: ciphertext_sha256.to_vec(),
                size,
            })),
        };
        send.write_all(&framing::encode(&announce))
            .await
            .map_err(|e| broken(&e))?;
        let mut buf = vec![0u8; PIECE];
        let mut sent = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            if send.write_all(&buf[..n]).await.is_err() {
                // The node stopped reading: its refusal, if any, says why.
                break;
            }
            sent += n as u64;
            progress(sent);
        }
        let _ = send.finish();
        let mut decoder = FrameDecoder::new(MAX_FRAME);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, read_frame(&mut recv, &mut decoder))
            .await
            .map_err(|_| NetError::Timeout(REQUEST_TIMEOUT))??;
        match answer.frame {
            Some(node_frame::Frame::AttachmentStored(stored)) => Ok(stored),
            _ => Err(unexpected("AttachmentStored")),
        }
    }

    /// Fetches an attachment's ciphertext into `out` (created or truncated), reporting bytes
    /// received to `progress`. Returns the ciphertext's length.
    pub async fn fetch(
        &self,
        ciphertext_sha256: &[u8],
        out: &Path,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, NetError> {
        let io = |e: std::io::Error| NetError::Io(format!("{}: {e}", out.display()));
        let broken = |e: &dyn std::fmt::Display| NetError::Broken(e.to_string());
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(|e| broken(&e))?;
        let ask = ClientFrame {
            frame: Some(client_frame::Frame::AttachmentFetch(AttachmentFetch {
                ciphertext_sha256: ciphertext_sha256.to_vec(),
            })),
        };
        send.write_all(&framing::encode(&ask))
            .await
            .map_err(|e| broken(&e))?;
        let _ = send.finish();
        let mut decoder = FrameDecoder::new(MAX_FRAME);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, read_frame(&mut recv, &mut decoder))
            .await
            .map_err(|_| NetError::Timeout(REQUEST_TIMEOUT))??;
        let size = match answer.frame {
            Some(node_frame::Frame::AttachmentFollows(f)) => f.size,
            _ => return Err(unexpected("AttachmentFollows")),
        };
        let mut file = tokio::fs::File::create(out).await.map_err(io)?;
        let first = decoder.take_rest();
        let mut received = first.len() as u64;
        file.write_all(&first).await.map_err(io)?;
        progress(received, size);
        while received < size {
            let chunk = tokio::time::timeout(REQUEST_TIMEOUT, recv.read_chunk(PIECE, true))
                .await
                .map_err(|_| NetError::Timeout(REQUEST_TIMEOUT))?
                .map_err(|e| broken(&e))?;
            let Some(chunk) = chunk else { break };
            received += chunk.bytes.len() as u64;
            if received > size {
                return Err(NetError::Protocol(
                    "the node sent more bytes than announced".into(),
                ));
            }
            file.write_all(&chunk.bytes).await.map_err(io)?;
            progress(received, size);
        }
        if received != size {
            return Err(NetError::Broken(format!(
                "the attachment stopped after {received} of {size} bytes; fetch it again"
            )));
        }
        file.sync_all().await.map_err(io)?;
        Ok(size)
    }

    /// Closes the connection politely.
    pub fn close(&self) {
        self.connection.close(0u32.into(), b"done");
    }

    /// Resolves when the connection has ended, with why.
    pub async fn closed(&self) -> String {
        self.connection.closed().await.to_string()
    }
}
