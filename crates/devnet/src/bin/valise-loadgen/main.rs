//! `valise-loadgen`: drives local nodes over loopback QUIC and prints their figures (DESIGN §12):
//! durable cables/s, delivered/s, submit-to-delivery p50/p99, and FLASH p99 while ROUTINE bulk
//! flows; beside them, in the same run, the baselines it divides them by.
//!
//! `--network single` (the default) measures one post: senders and recipient on the same node,
//! and two baselines of the same shape (same senders, streams, requests and mutual TLS): a raw
//! quinn server that answers each request at once, and one that answers once a group-committed
//! `fdatasync` covers it (the durable floor of this disk).
//! `--network federated` runs a hub and the Paris and Nairobi posts in this process: senders at
//! Paris, the recipient at Nairobi, every cable taken into custody durably at Paris, the hub and
//! Nairobi in turn.
//!
//! `--attachment-bytes N` gives each ROUTINE cable an attachment of N bytes, uploaded by its
//! sender before the cable; across the network the nodes carry it with the cable, so a cable
//! counts as delivered only once its attachment is at the recipient's node.
//!
//! `--relink N` restarts the hub of a hub-and-two-posts network N times and prints how long the
//! posts took to link to it again.
//!
//! Example: cargo run --release -p valise-devnet --bin valise-loadgen -- --cables 20000
//!          cargo run --release -p valise-devnet --bin valise-loadgen -- --network federated
//!          cargo run --release -p valise-devnet --bin valise-loadgen -- --relink 5

#![forbid(unsafe_code)]

mod baseline;
mod memory;
mod relink;
mod traffic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use valise_devnet::local::{self, LocalDevice, LocalFederation, LocalNode};
use valise_proto::v1::{Classification, Precedence};
use valise_relay::limits::Limits;

use baseline::Durability;
use traffic::{Clock, Sealed, bulk, drained, flash_probe, receive, seal_many};

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

/// Load generator for Valise nodes on loopback.
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
    /// Skip the raw quinn baselines of a single-node run.
    #[arg(long)]
    no_baseline: bool,
    /// Instead of traffic: restart a hub this many times and time its posts' re-linking.
    #[arg(long, value_name = "ROUNDS")]
    relink: Option<usize>,
    /// Instead of traffic: run `valise-relay` (built beside this binary) with this many
    /// devices enrolled, and report its memory idle and with them all connected.
    #[arg(long, value_name = "DEVICES")]
    memory: Option<usize>,
}

/// The network under load and its devices: the senders, the recipient (`desk`), and the
/// sender of the FLASH probes (`duty`).
struct Setup {
    senders: Vec<LocalDevice>,
    desk: LocalDevice,
    duty: LocalDevice,
    /// The nodes, held so they run for as long as the measurement.
    nodes: Nodes,
}

/// The nodes measured: one post (whose identity the baselines borrow), or a federation held
/// so that it runs.
enum Nodes {
    Single(LocalNode),
    Federated { _running: LocalFederation },
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
    let result = runtime.block_on(async {
        match (args.relink, args.memory) {
            (Some(rounds), _) => run_relink(&dir, rounds).await,
            (None, Some(devices)) => run_memory(&dir, devices).await,
            (None, None) => run(&args, &dir).await,
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_relink(dir: &std::path::Path, rounds: usize) -> Result<()> {
    if rounds == 0 {
        bail!("--relink needs at least one round");
    }
    let mut took = relink::measure(dir, rounds).await?;
    took.sort();
    machine();
    println!("network: hub hq and posts paris, nairobi; the hub restarted in place {rounds} times");
    println!(
        "re-linked by both posts after the hub listened again: min {:.0?}, median {:.0?}, max {:.0?} (target <= 2 s)",
        took[0],
        took[took.len() / 2],
        took[took.len() - 1]
    );
    Ok(())
}

async fn run_memory(dir: &std::path::Path, devices: usize) -> Result<()> {
    if devices == 0 {
        bail!("--memory needs at least one device");
    }
    let m = memory::measure(dir, devices).await?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    machine();
    println!(
        "node: valise-relay in its own process, {} devices enrolled",
        m.devices
    );
    println!(
        "node RSS idle: {:.1} MiB (target <= 64 MiB)",
        mib(m.node_idle)
    );
    println!(
        "node RSS with {} devices connected, each with a live subscription per lane: {:.1} MiB, {:.1} KiB per device (target <= 32 KiB)",
        m.devices,
        mib(m.node_connected),
        m.node_connected.saturating_sub(m.node_idle) as f64 / 1024.0 / m.devices as f64
    );
    println!(
        "load generator RSS (the devices' side, not counted above): {:.1} MiB",
        mib(m.generator)
    );
    Ok(())
}

fn machine() {
    println!(
        "machine: {} logical CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
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
            let post = local::start_post(dir, "mfa.example", "paris", limits)?;
            let senders = sender_names
                .iter()
                .map(|u| post.enrol_device(u, clearance))
                .collect::<Result<Vec<_>, _>>()?;
            let desk = post.enrol_device("desk", clearance)?;
            let duty = post.enrol_device("duty", clearance)?;
            Ok(Setup {
                senders,
                desk,
                duty,
                nodes: Nodes::Single(post),
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
                nodes: Nodes::Federated { _running: network },
            })
        }
    }
}

/// The baselines' figures, requests per second.
struct Baselines {
    raw: f64,
    durable: f64,
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

    // 0. The baselines, same shape, same senders and TLS, before any Valise traffic.
    let baselines = match (&setup.nodes, args.no_baseline || args.attachment_bytes > 0) {
        (Nodes::Single(post), false) => {
            eprintln!("measuring the raw quinn baselines…");
            let raw = baseline::measure(
                post,
                senders,
                &main_batches,
                args.streams,
                Durability::None,
                dir,
            )
            .await?;
            let durable = baseline::measure(
                post,
                senders,
                &main_batches,
                args.streams,
                Durability::GroupFsync,
                dir,
            )
            .await?;
            Some(Baselines { raw, durable })
        }
        _ => None,
    };

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
    let routine = clock.delivered("routine");

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
    receiver.await?.context("the recipient failed")?;

    let idle = clock.delivered("flash_idle");
    let loaded = clock.delivered("flash_loaded");
    machine();
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
        "  delivered to the recipient: {end_to_end:.0} cables/s, the last {:.1?} after the first was submitted ({:.2} x custody, target >= 0.9)",
        delivered_in,
        end_to_end / throughput
    );
    if let Some(b) = &baselines {
        println!(
            "baseline, raw quinn with mutual TLS, same shape: {:.0} requests/s answered at once; {:.0} requests/s answered after a group-committed fdatasync",
            b.raw, b.durable
        );
        println!(
            "  Valise custody = {:.2} x raw quinn, {:.2} x the durable floor (target >= 10,000 cables/s)",
            throughput / b.raw,
            throughput / b.durable
        );
    }
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
        routine.p50, routine.p99, routine.count
    );
    println!(
        "FLASH idle: p50 {:.1?}, p99 {:.1?} ({} cables)",
        idle.p50, idle.p99, idle.count
    );
    println!(
        "FLASH under ROUTINE bulk: p50 {:.1?}, p99 {:.1?} ({} cables)",
        loaded.p50, loaded.p99, loaded.count
    );
    for tag in ["flash_idle", "flash_loaded"] {
        let custody = clock.custody(tag);
        println!(
            "  of which submit to custody receipt, {tag}: p50 {:.1?}, p99 {:.1?}",
            custody.p50, custody.p99
        );
    }
    if !idle.p99.is_zero() {
        let target = match args.network {
            Network::Single => "2x",
            Network::Federated => "3x",
        };
        println!(
            "FLASH p99 under load / idle: {:.2}x (target <= {target})",
            loaded.p99.as_secs_f64() / idle.p99.as_secs_f64()
        );
    }
    drop(setup);
    Ok(())
}
