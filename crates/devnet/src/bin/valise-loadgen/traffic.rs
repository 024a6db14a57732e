//! The traffic the load generator drives through Valise: sealed cables, submissions with
//! their custody receipts, a recipient taking deliveries on one stream per lane, FLASH probes,
//! and the latencies it all takes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use prost::Message;
use valise_crypto::envelope::{new_cable_id, seal};
use valise_devnet::local::LocalDevice;
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{
    AttachmentUpload, CableBody, Classification, ClientFrame, DeliveryAck, DeliveryLane, NodeFrame,
    Precedence, RoutingHeader, Submit, Subscribe, client_frame, node_frame,
};

/// A cable sealed before the measurement starts.
pub(crate) struct Sealed {
    pub(crate) id: Vec<u8>,
    pub(crate) bytes: Vec<u8>,
    /// An attachment ciphertext to upload before the cable, if any.
    pub(crate) attachment: Option<Vec<u8>>,
}

/// When each cable was submitted, and the latencies measured on delivery.
#[derive(Default)]
pub(crate) struct Clock {
    submitted: Mutex<HashMap<Vec<u8>, Instant>>,
    latencies: Mutex<HashMap<&'static str, Vec<Duration>>>,
    tags: Mutex<HashMap<Vec<u8>, &'static str>>,
    /// Submit to custody receipt, per probe tag: how much of the latency is the submit path.
    custody: Mutex<HashMap<&'static str, Vec<Duration>>>,
}

fn poisoned<T>(_: T) -> anyhow::Error {
    anyhow!("a lock of the load generator was poisoned")
}

impl Clock {
    /// Cables submitted and not yet delivered.
    pub(crate) fn outstanding(&self) -> usize {
        self.submitted.lock().map_or(0, |s| s.len())
    }

    /// p50, p99 and count of the submit-to-delivery latencies of `tag`.
    pub(crate) fn delivered(&self, tag: &'static str) -> Summary {
        summarise(&self.latencies, tag)
    }

    /// p50, p99 and count of the submit-to-receipt latencies of `tag`.
    pub(crate) fn custody(&self, tag: &'static str) -> Summary {
        summarise(&self.custody, tag)
    }
}

/// A latency distribution: its median, its 99th percentile and how many it holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) count: usize,
}

/// Seals `count` cables of `precedence` from `from` to `to`.
pub(crate) fn seal_many(
    from: &LocalDevice,
    to: &LocalDevice,
    precedence: Precedence,
    count: usize,
    body_bytes: usize,
    attachment_bytes: usize,
) -> Vec<Sealed> {
    let body = CableBody {
        subject: "load".into(),
        text: "x".repeat(body_bytes),
        ..Default::default()
    };
    (0..count)
        .filter_map(|_| {
            let header = RoutingHeader {
                cable_id: new_cable_id().ok()?.to_vec(),
                from: from.address.clone(),
                action_addressees: vec![to.address.clone()],
                classification: Classification::Secret as i32,
                precedence: precedence as i32,
                created_at_ms: 1,
                ..Default::default()
            };
            let id = header.cable_id.clone();
            let env = seal(
                &from.identity,
                header,
                &body,
                std::slice::from_ref(&to.published),
            )
            .ok()?;
            // Bytes unique to the cable, so every attachment is stored and carried anew.
            let attachment = (attachment_bytes > 0).then(|| noise(&id, attachment_bytes));
            Some(Sealed {
                id,
                bytes: env.encode_to_vec(),
                attachment,
            })
        })
        .collect()
}

/// Bytes that do not compress or repeat, seeded by `seed`.
fn noise(seed: &[u8], len: usize) -> Vec<u8> {
    let mut x = seed.iter().fold(0x9E37_79B9_7F4A_7C15u64, |x, b| {
        (x ^ u64::from(*b)).rotate_left(8)
    }) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Uploads an attachment ciphertext; returns its SHA-256 once the node holds it.
async fn upload(conn: &quinn::Connection, bytes: &[u8]) -> Result<Vec<u8>> {
    let hash = valise_crypto::sha256(bytes).to_vec();
    let (mut send, mut recv) = conn.open_bi().await?;
    let frame = ClientFrame {
        frame: Some(client_frame::Frame::AttachmentUpload(AttachmentUpload {
            ciphertext_sha256: hash.clone(),
            size: bytes.len() as u64,
        })),
    };
    send.write_all(&encode(&frame)).await?;
    send.write_all(bytes).await?;
    send.finish()?;
    let reply = recv.read_to_end(1 << 20).await?;
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&reply);
    match decoder.next_frame::<NodeFrame>()?.and_then(|f| f.frame) {
        Some(node_frame::Frame::AttachmentStored(_)) => Ok(hash),
        other => bail!("attachment upload refused: {other:?}"),
    }
}

/// Submits one cable and waits for its custody receipt, retrying when the node says when.
pub(crate) async fn submit(
    conn: &quinn::Connection,
    cable: &Sealed,
    clock: &Clock,
    tag: &'static str,
) -> Result<()> {
    let attachments = match &cable.attachment {
        Some(bytes) => vec![upload(conn, bytes).await?],
        None => vec![],
    };
    clock
        .tags
        .lock()
        .map_err(poisoned)?
        .insert(cable.id.clone(), tag);
    clock
        .submitted
        .lock()
        .map_err(poisoned)?
        .insert(cable.id.clone(), Instant::now());
    loop {
        let (mut send, mut recv) = conn.open_bi().await?;
        let frame = ClientFrame {
            frame: Some(client_frame::Frame::Submit(Submit {
                envelope: cable.bytes.clone(),
                attachments: attachments.clone(),
            })),
        };
        send.write_all(&encode(&frame)).await?;
        send.finish()?;
        let reply = recv.read_to_end(1 << 20).await?;
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.push(&reply);
        match decoder.next_frame::<NodeFrame>()?.and_then(|f| f.frame) {
            Some(node_frame::Frame::CustodyReceipt(_)) => return Ok(()),
            Some(node_frame::Frame::Error(e)) if e.retry_after_ms > 0 => {
                tokio::time::sleep(Duration::from_millis(e.retry_after_ms)).await
            }
            other => bail!("submission refused: {other:?}"),
        }
    }
}

/// Receives and acknowledges everything for `device` until `expected` cables arrived,
/// recording latencies: on one stream per lane, as `valise-client` does, so a FLASH never
/// queues behind routine cables already sent.
pub(crate) async fn receive(
    device: &LocalDevice,
    clock: Arc<Clock>,
    expected: usize,
) -> Result<()> {
    let conn = device.connect().await?;
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut lanes = tokio::task::JoinSet::new();
    for lane in [DeliveryLane::Urgent, DeliveryLane::Other] {
        let (conn, clock, received) = (conn.clone(), Arc::clone(&clock), Arc::clone(&received));
        lanes.spawn(async move { receive_lane(&conn, lane, &clock, &received, expected).await });
    }
    while let Some(lane) = lanes.join_next().await {
        lane.context("a receiving lane failed")??;
    }
    Ok(())
}

async fn receive_lane(
    conn: &quinn::Connection,
    lane: DeliveryLane,
    clock: &Clock,
    received: &std::sync::atomic::AtomicUsize,
    expected: usize,
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&encode(&ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe {
            lane: lane as i32,
        })),
    }))
    .await?;
    let mut decoder = FrameDecoder::new(1 << 24);
    while received.load(Ordering::Acquire) < expected {
        let Some(frame) = decoder.next_frame::<NodeFrame>()? else {
            // Wakes now and then to see whether the other lane took the last cable.
            let chunk =
                tokio::time::timeout(Duration::from_millis(200), recv.read_chunk(1 << 16, true))
                    .await;
            match chunk {
                Ok(chunk) => {
                    decoder.push(&chunk?.context("the node closed the delivery stream")?.bytes)
                }
                Err(_) => continue,
            }
            continue;
        };
        let delivery = match frame.frame {
            Some(node_frame::Frame::Delivery(delivery)) => delivery,
            // The node has sent everything queued so far; more follows as it arrives.
            Some(node_frame::Frame::CaughtUp(_)) => continue,
            _ => bail!("unexpected frame {frame:?}"),
        };
        let arrived = Instant::now();
        let env = valise_crypto::envelope::decode_envelope(&delivery.envelope)?;
        let id = env.header.map(|h| h.cable_id).unwrap_or_default();
        let sent = clock.submitted.lock().map_err(poisoned)?.remove(&id);
        let tag = clock
            .tags
            .lock()
            .map_err(poisoned)?
            .remove(&id)
            .unwrap_or("other");
        if let Some(sent) = sent {
            clock
                .latencies
                .lock()
                .map_err(poisoned)?
                .entry(tag)
                .or_default()
                .push(arrived - sent);
            received.fetch_add(1, Ordering::AcqRel);
        }
        send.write_all(&encode(&ClientFrame {
            frame: Some(client_frame::Frame::DeliveryAck(DeliveryAck {
                queue_key: delivery.queue_key,
            })),
        }))
        .await?;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summarise(figures: &Mutex<HashMap<&'static str, Vec<Duration>>>, tag: &'static str) -> Summary {
    let mut all = figures
        .lock()
        .map(|l| l.get(tag).cloned().unwrap_or_default())
        .unwrap_or_default();
    all.sort();
    Summary {
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        count: all.len(),
    }
}

/// Sends FLASH cables one at a time, `gap` apart.
pub(crate) async fn flash_probe(
    conn: quinn::Connection,
    cables: Vec<Sealed>,
    clock: Arc<Clock>,
    tag: &'static str,
    gap: Duration,
) -> Result<()> {
    for cable in &cables {
        let start = Instant::now();
        submit(&conn, cable, &clock, tag).await?;
        clock
            .custody
            .lock()
            .map_err(poisoned)?
            .entry(tag)
            .or_default()
            .push(start.elapsed());
        tokio::time::sleep(gap).await;
    }
    Ok(())
}

/// Every sender submits its batch on `streams` streams at once; returns how long it took.
pub(crate) async fn bulk(
    senders: &[LocalDevice],
    batches: Vec<Vec<Sealed>>,
    streams: usize,
    clock: &Arc<Clock>,
) -> Result<Duration> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (sender, batch) in senders.iter().zip(batches) {
        let conn = sender.connect().await?;
        let batch = Arc::new(batch);
        for stream in 0..streams {
            let (conn, batch, clock) = (conn.clone(), Arc::clone(&batch), Arc::clone(clock));
            tasks.push(tokio::spawn(async move {
                for cable in batch.iter().skip(stream).step_by(streams) {
                    submit(&conn, cable, &clock, "routine").await?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
    }
    for task in tasks {
        task.await??;
    }
    Ok(start.elapsed())
}

/// Waits until the recipient holds every cable submitted so far. Fails, rather than waiting
/// for ever, if the recipient stopped or nothing arrived for a minute.
pub(crate) async fn drained(
    clock: &Clock,
    receiver: &tokio::task::JoinHandle<Result<()>>,
) -> Result<()> {
    const STALL: Duration = Duration::from_secs(60);
    let (mut last, mut since) = (usize::MAX, Instant::now());
    loop {
        let left = clock.outstanding();
        if left == 0 {
            return Ok(());
        }
        if receiver.is_finished() {
            bail!("the recipient stopped receiving with {left} cables outstanding");
        }
        if left != last {
            (last, since) = (left, Instant::now());
        } else if since.elapsed() > STALL {
            bail!(
                "nothing delivered for {STALL:?} with {left} cables outstanding; a node holds them"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
