//! `valise-loadgen`: drives local nodes over loopback QUIC and prints their figures (DESIGN §12):
//! durable cables/s, submit-to-delivery p50/p99, and FLASH p99 while ROUTINE bulk flows.
//!
//! `--network single` (the default) measures one post: senders and recipient on the same node.
//! `--network federated` runs a hub and the Paris and Nairobi posts in this process: senders at
//! Paris, the recipient at Nairobi, every cable taken into custody durably at Paris, the hub and
//! Nairobi in turn.
//!
//! `--attachment-bytes N` gives each ROUTINE cable an attachment of N bytes, uploaded by its
//! sender before the cable; across the network the nodes carry it with the cable, so a cable
//! counts as delivered only once its attachment is at the recipient's node.
//!
//! Example: cargo run --release -p valise-devnet --bin valise-loadgen -- --cables 20000
//!          cargo run --release -p valise-devnet --bin valise-loadgen -- --network federated

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use prost::Message;
use valise_crypto::envelope::{new_cable_id, seal};
use valise_devnet::local::{self, LocalDevice};
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{
    AttachmentUpload, CableBody, Classification, ClientFrame, DeliveryAck, NodeFrame, Precedence,
    RoutingHeader, Submit, Subscribe, client_frame, node_frame,
};
use valise_relay::limits::Limits;

/// How long the federated network may take to link up and replicate its directory.
const SETTLE: Duration = Duration::from_secs(30);

/// Which network is measured.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Network {
    /// One post: senders and recipient on one node.
    Single,
    /// A hub and two posts: senders at Paris, the recipient at Nairobi, through the hub.
    Federated,
}

/// Load generator for a Valise node on loopback.
#[derive(Parser)]
#[command(name = "valise-loadgen", version, about)]
struct Args {
    /// Cables in the throughput run.
    #[arg(long, default_value_t = 20_000)]
    cables: usize,
    /// Body size of each cable, in bytes.
    #[arg(long, default_value_t = 4096)]
    body_bytes: usize,
    /// Sending devices, one connection each.
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Concurrent submissions per sender.
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// FLASH cables measured, idle and under load.
    #[arg(long, default_value_t = 200)]
    flash: usize,
    /// The network measured.
    #[arg(long, value_enum, default_value_t = Network::Single)]
    network: Network,
    /// Size of an attachment carried by each ROUTINE cable, in bytes (0: none).
    #[arg(long, default_value_t = 0)]
    attachment_bytes: usize,
}

/// The network under load and its devices: the senders, the recipient (`desk`), and the
/// sender of the FLASH probes (`duty`).
struct Setup {
    senders: Vec<LocalDevice>,
    desk: LocalDevice,
    duty: LocalDevice,
    /// The nodes, held so they run for as long as the measurement.
    _nodes: Box<dyn std::any::Any + Send + Sync>,
}

struct Sealed {
    id: Vec<u8>,
    bytes: Vec<u8>,
    /// An attachment ciphertext to upload before the cable, if any.
    attachment: Option<Vec<u8>>,
}

/// When each cable was submitted, and the latencies measured on delivery.
#[derive(Default)]
struct Clock {
    submitted: Mutex<HashMap<Vec<u8>, Instant>>,
    latencies: Mutex<HashMap<&'static str, Vec<Duration>>>,
    tags: Mutex<HashMap<Vec<u8>, &'static str>>,
    /// Submit to custody receipt, per probe tag: how much of the latency is the submit path.
    custody: Mutex<HashMap<&'static str, Vec<Duration>>>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.senders == 0 || args.streams == 0 {
        bail!("--senders and --streams must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("valise-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = runtime.block_on(run(&args, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn seal_many(
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

async fn submit(
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
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .insert(cable.id.clone(), tag);
    clock
        .submitted
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
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

/// Receives and acknowledges everything for `device`, recording latencies, until `expected`.
async fn receive(device: &LocalDevice, clock: Arc<Clock>, expected: usize) -> Result<()> {
    let conn = device.connect().await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&encode(&ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe::default())),
    }))
    .await?;
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut received = 0;
    while received < expected {
        let Some(frame) = decoder.next_frame::<NodeFrame>()? else {
            let chunk = recv
                .read_chunk(1 << 16, true)
                .await?
                .context("the node closed the delivery stream")?;
            decoder.push(&chunk.bytes);
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
        let sent = clock
            .submitted
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .remove(&id);
        let tag = clock
            .tags
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .remove(&id)
            .unwrap_or("other");
        if let Some(sent) = sent {
            clock
                .latencies
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .entry(tag)
                .or_default()
                .push(arrived - sent);
        }
        send.write_all(&encode(&ClientFrame {
            frame: Some(client_frame::Frame::DeliveryAck(DeliveryAck {
                queue_key: delivery.queue_key,
            })),
        }))
        .await?;
        received += 1;
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

fn summarise(
    figures: &Mutex<HashMap<&'static str, Vec<Duration>>>,
    tag: &'static str,
) -> (Duration, Duration, usize) {
    let mut all = figures
        .lock()
        .map(|l| l.get(tag).cloned().unwrap_or_default())
        .unwrap_or_default();
    all.sort();
    (percentile(&all, 50.0), percentile(&all, 99.0), all.len())
}

/// Sends FLASH cables one at a time, `gap` apart.
async fn flash_probe(
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
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .entry(tag)
            .or_default()
            .push(start.elapsed());
        tokio::time::sleep(gap).await;
    }
    Ok(())
}

async fn bulk(
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

/// Builds the network measured, with its devices enrolled, every node knowing every device.
async fn setup(args: &Args, dir: &std::path::Path) -> Result<Setup> {
    let limits = Limits {
        max_concurrent_submissions: 4096,
        ..Limits::default()
    };
    let clearance = Classification::TopSecret;
    let sender_names: Vec<String> = (0..args.senders).map(|i| format!("sender{i}")).collect();
    match args.network {
        Network::Single => {
            let mut users: Vec<(&str, Classification)> = sender_names
                .iter()
                .map(|u| (u.as_str(), clearance))
                .collect();
            users.push(("desk", clearance));
            users.push(("duty", clearance));
            let mut network = local::build(dir, &users, limits)?;
            let mut devices = std::mem::take(&mut network.devices);
            let (duty, desk) = (devices.pop(), devices.pop());
            Ok(Setup {
                senders: devices,
                desk: desk.context("no recipient device")?,
                duty: duty.context("no FLASH sender device")?,
                _nodes: Box::new(network),
            })
        }
        Network::Federated => {
            let network =
                local::start_network(dir, "mfa.example", "hq", &["paris", "nairobi"], limits)?;
            let senders = sender_names
                .iter()
                .map(|u| network.enrol("paris", u, clearance))
                .collect::<Result<Vec<_>, _>>()?;
            let desk = network.enrol("nairobi", "desk", clearance)?;
            let duty = network.enrol("paris", "duty", clearance)?;
            network.wait_linked(SETTLE).await?;
            network.wait_replicated(SETTLE).await?;
            Ok(Setup {
                senders,
                desk,
                duty,
                _nodes: Box::new(network),
            })
        }
    }
}

/// Waits until every cable submitted so far has been delivered.
/// Waits until the recipient holds every cable submitted so far. Fails, rather than waiting
/// for ever, if the recipient stopped or nothing arrived for a minute.
async fn drained(clock: &Clock, receiver: &tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    const STALL: Duration = Duration::from_secs(60);
    let (mut last, mut since) = (usize::MAX, Instant::now());
    loop {
        let left = clock.submitted.lock().map_or(0, |s| s.len());
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

async fn run(args: &Args, dir: &std::path::Path) -> Result<()> {
    let setup = Arc::new(setup(args, dir).await?);
    let (senders, desk, duty) = (&setup.senders, &setup.desk, &setup.duty);

    eprintln!(
        "sealing {} cables of {} bytes…",
        args.cables + 2 * args.flash + args.cables / 2,
        args.body_bytes
    );
    let per_sender = args.cables / args.senders;
    let batches = |n: usize, p: Precedence| -> Vec<Vec<Sealed>> {
        senders
            .iter()
            .map(|s| seal_many(s, desk, p, n, args.body_bytes, args.attachment_bytes))
            .collect()
    };
    let main_batches = batches(per_sender, Precedence::Routine);
    let loaded_batches = batches(per_sender / 2, Precedence::Routine);
    let idle_flash = seal_many(
        duty,
        desk,
        Precedence::Flash,
        args.flash,
        args.body_bytes,
        0,
    );
    let loaded_flash = seal_many(
        duty,
        desk,
        Precedence::Flash,
        args.flash,
        args.body_bytes,
        0,
    );
    let clock = Arc::new(Clock::default());

    // 1. FLASH latency on an idle network.
    let receiver = tokio::spawn({
        let (setup, clock) = (Arc::clone(&setup), Arc::clone(&clock));
        let expected = args.flash * 2 + per_sender * args.senders + (per_sender / 2) * args.senders;
        async move { receive(&setup.desk, clock, expected).await }
    });
    let duty_conn = duty.connect().await?;
    flash_probe(
        duty_conn.clone(),
        idle_flash,
        Arc::clone(&clock),
        "flash_idle",
        Duration::from_millis(5),
    )
    .await?;
    // Every idle probe is in before the bulk starts, so none is measured under load.
    drained(&clock, &receiver).await?;

    // 2. Throughput: every sender at full speed; then until the recipient has every cable.
    let start = Instant::now();
    let took = bulk(senders, main_batches, args.streams, &clock).await?;
    drained(&clock, &receiver).await?;
    let delivered_in = start.elapsed();
    let total = per_sender * args.senders;
    let throughput = total as f64 / took.as_secs_f64();
    let end_to_end = total as f64 / delivered_in.as_secs_f64();
    let routine = summarise(&clock.latencies, "routine");

    // 3. FLASH while ROUTINE bulk flows (across the hub link, when federated).
    let probe = tokio::spawn(flash_probe(
        duty_conn,
        loaded_flash,
        Arc::clone(&clock),
        "flash_loaded",
        Duration::from_millis(5),
    ));
    bulk(senders, loaded_batches, args.streams, &clock).await?;
    probe.await??;
    receiver.await??;

    let idle = summarise(&clock.latencies, "flash_idle");
    let loaded = summarise(&clock.latencies, "flash_loaded");
    println!(
        "machine: {} logical CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let (path, custody) = match args.network {
        Network::Single => (
            format!("{} senders and 1 recipient on one node", args.senders),
            "custody = fsync'd + audited",
        ),
        Network::Federated => (
            format!(
                "{} senders at paris -> hq -> 1 recipient at nairobi",
                args.senders
            ),
            "custody = fsync'd + audited at paris, hq and nairobi",
        ),
    };
    println!("network: {path}");
    println!(
        "durable throughput: {throughput:.0} cables/s submitted ({total} cables of {} bytes, {} senders x {} streams, {custody})",
        args.body_bytes, args.senders, args.streams
    );
    println!(
        "  delivered to the recipient: {end_to_end:.0} cables/s, the last {:.1?} after the first was submitted",
        delivered_in
    );
    if args.attachment_bytes > 0 {
        let mib = (total * args.attachment_bytes) as f64 / (1024.0 * 1024.0);
        println!(
            "  each ROUTINE cable carried a {} byte attachment: {mib:.0} MiB at the recipient's node, {:.1} MiB/s end to end",
            args.attachment_bytes,
            mib / delivered_in.as_secs_f64()
        );
    }
    println!(
        "submit-to-delivery latency under full load: p50 {:.1?}, p99 {:.1?} ({} cables)",
        routine.0, routine.1, routine.2
    );
    println!(
        "FLASH idle: p50 {:.1?}, p99 {:.1?} ({} cables)",
        idle.0, idle.1, idle.2
    );
    println!(
        "FLASH under ROUTINE bulk: p50 {:.1?}, p99 {:.1?} ({} cables)",
        loaded.0, loaded.1, loaded.2
    );
    for tag in ["flash_idle", "flash_loaded"] {
        let (p50, p99, _) = summarise(&clock.custody, tag);
        println!("  of which submit to custody receipt, {tag}: p50 {p50:.1?}, p99 {p99:.1?}");
    }
    if !idle.1.is_zero() {
        println!(
            "FLASH p99 under load / idle: {:.2}x (target <= 2x)",
            loaded.1.as_secs_f64() / idle.1.as_secs_f64()
        );
    }
    Ok(())
}
