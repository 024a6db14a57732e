//! `valise-loadgen`: drives a local node over loopback QUIC and prints its figures (DESIGN §12):
//! durable cables/s, submit-to-delivery p50/p99, and FLASH p99 while ROUTINE bulk flows.
//!
//! Example: cargo run --release -p valise-relay --bin valise-loadgen -- --cables 20000

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use prost::Message;
use valise_crypto::envelope::{new_cable_id, seal};
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{
    CableBody, Classification, ClientFrame, DeliveryAck, NodeFrame, Precedence, RoutingHeader,
    Submit, Subscribe, client_frame, node_frame,
};
use valise_relay::limits::Limits;
use valise_relay::local::{self, LocalDevice, LocalNetwork};

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
}

struct Sealed {
    id: Vec<u8>,
    bytes: Vec<u8>,
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
            Some(Sealed {
                id,
                bytes: env.encode_to_vec(),
            })
        })
        .collect()
}

async fn submit(
    conn: &quinn::Connection,
    cable: &Sealed,
    clock: &Clock,
    tag: &'static str,
) -> Result<()> {
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
async fn receive(
    network: &LocalNetwork,
    device: &LocalDevice,
    clock: Arc<Clock>,
    expected: usize,
) -> Result<()> {
    let conn = local::connect(network, device).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&encode(&ClientFrame {
        frame: Some(client_frame::Frame::Subscribe(Subscribe {})),
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
    network: &LocalNetwork,
    senders: &[&LocalDevice],
    batches: Vec<Vec<Sealed>>,
    streams: usize,
    clock: &Arc<Clock>,
) -> Result<Duration> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (sender, batch) in senders.iter().zip(batches) {
        let conn = local::connect(network, sender).await?;
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

async fn run(args: &Args, dir: &std::path::Path) -> Result<()> {
    let mut users: Vec<(String, Classification)> = (0..args.senders)
        .map(|i| (format!("sender{i}"), Classification::TopSecret))
        .collect();
    users.push(("desk".into(), Classification::TopSecret));
    users.push(("duty".into(), Classification::TopSecret));
    let users: Vec<(&str, Classification)> = users.iter().map(|(u, c)| (u.as_str(), *c)).collect();
    let limits = Limits {
        max_concurrent_submissions: 4096,
        ..Limits::default()
    };
    let network = Arc::new(local::build(dir, &users, limits)?);
    let senders: Vec<&LocalDevice> = network.devices[..args.senders].iter().collect();
    let desk = &network.devices[args.senders];
    let duty = &network.devices[args.senders + 1];

    eprintln!(
        "sealing {} cables of {} bytes…",
        args.cables + 2 * args.flash + args.cables / 2,
        args.body_bytes
    );
    let per_sender = args.cables / args.senders;
    let batches = |n: usize, p: Precedence| -> Vec<Vec<Sealed>> {
        senders
            .iter()
            .map(|s| seal_many(s, desk, p, n, args.body_bytes))
            .collect()
    };
    let main_batches = batches(per_sender, Precedence::Routine);
    let loaded_batches = batches(per_sender / 2, Precedence::Routine);
    let idle_flash = seal_many(duty, desk, Precedence::Flash, args.flash, args.body_bytes);
    let loaded_flash = seal_many(duty, desk, Precedence::Flash, args.flash, args.body_bytes);
    let clock = Arc::new(Clock::default());

    // 1. FLASH latency on an idle node.
    let receiver = tokio::spawn({
        let (network, clock) = (Arc::clone(&network), Arc::clone(&clock));
        let expected = args.flash * 2 + per_sender * args.senders + (per_sender / 2) * args.senders;
        async move {
            receive(
                &network,
                &network.devices[network.devices.len() - 2],
                clock,
                expected,
            )
            .await
        }
    });
    let duty_conn = local::connect(&network, duty).await?;
    flash_probe(
        duty_conn.clone(),
        idle_flash,
        Arc::clone(&clock),
        "flash_idle",
        Duration::from_millis(5),
    )
    .await?;

    // 2. Throughput: every sender at full speed.
    let took = bulk(&network, &senders, main_batches, args.streams, &clock).await?;
    let total = per_sender * args.senders;
    let throughput = total as f64 / took.as_secs_f64();

    // Let the recipient catch up before measuring the next phase.
    while clock
        .submitted
        .lock()
        .map(|s| !s.is_empty())
        .unwrap_or(false)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routine = summarise(&clock.latencies, "routine");

    // 3. FLASH while ROUTINE bulk flows.
    let probe = tokio::spawn(flash_probe(
        duty_conn,
        loaded_flash,
        Arc::clone(&clock),
        "flash_loaded",
        Duration::from_millis(5),
    ));
    bulk(&network, &senders, loaded_batches, args.streams, &clock).await?;
    probe.await??;
    receiver.await??;

    let idle = summarise(&clock.latencies, "flash_idle");
    let loaded = summarise(&clock.latencies, "flash_loaded");
    println!(
        "machine: {} logical CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "durable throughput: {throughput:.0} cables/s ({total} cables of {} bytes, {} senders x {} streams, custody = fsync'd + audited)",
        args.body_bytes, args.senders, args.streams
    );
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
