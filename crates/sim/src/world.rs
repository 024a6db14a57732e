//! One seeded run: a hub and its posts, each post's diplomats, links with latency, loss and
//! reordering, and faults (partitions, crashes) for a while; then the network heals and the
//! run goes on until everything acknowledged has arrived, or the checker says why not.

use std::collections::BTreeMap;

use prost::Message as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_proto::v1::Precedence;
use valise_relay_core::routing::{NodeKind, Routes};

use crate::check::Checker;
use crate::device::{Device, Outgoing};
use crate::directory::{SimDirectory, cable};
use crate::net::{Addr, Msg};
use crate::node::{Ctx, Node, Peer, Sabotage};

/// How often each node runs its timers.
const NODE_TICK_MS: u64 = 20;
/// How often each device runs its timers.
const DEVICE_TICK_MS: u64 = 50;
/// How long after healing a run may take to settle before it fails.
const SETTLE_WITHIN_MS: u64 = 300_000;
/// How long after a connection dies its ends dial again, in ms.
const REDIAL_MS: (u64, u64) = (50, 1_000);

/// A fault injected during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The link between two ends is cut from `at` for `for_ms`.
    Partition {
        /// One end.
        a: Addr,
        /// The other.
        b: Addr,
        /// When, in virtual ms.
        at: u64,
        /// For how long.
        for_ms: u64,
    },
    /// A node crashes at `at` and starts again after `for_ms`, losing what was not durable.
    Crash {
        /// The node.
        node: usize,
        /// When.
        at: u64,
        /// For how long.
        for_ms: u64,
    },
}

/// A cable a device sends during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// When.
    pub at: u64,
    /// The sending device.
    pub from: usize,
    /// The addressed users, by device index of one of their devices.
    pub to: Vec<usize>,
    /// Its precedence.
    pub precedence: Precedence,
}

/// Everything a run does, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// Posts besides the hub.
    pub posts: usize,
    /// Devices per post.
    pub devices_per_post: usize,
    /// The chance that a message is lost, while faults last.
    pub loss: f64,
    /// One-way latency range, in ms.
    pub latency: (u64, u64),
    /// The faults.
    pub faults: Vec<Fault>,
    /// The cables.
    pub sends: Vec<Send>,
    /// When the network heals.
    pub heal_at: u64,
    /// A fault planted in the hub's own logic, to show the checker finds it.
    pub sabotage: Sabotage,
}

impl Scenario {
    /// The scenario of `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let posts = rng.random_range(2..=3);
        let devices_per_post = rng.random_range(1..=3);
        let devices = posts * devices_per_post;
        let heal_at = rng.random_range(3_000..=10_000);
        let mut faults = Vec::new();
        for _ in 0..rng.random_range(0..=4) {
            let at = rng.random_range(0..heal_at);
            let for_ms = rng.random_range(100..=4_000);
            let fault = match rng.random_range(0..3) {
                0 => Fault::Crash {
                    node: rng.random_range(0..=posts),
                    at,
                    for_ms,
                },
                1 => Fault::Partition {
                    a: Addr::Node(0),
                    b: Addr::Node(rng.random_range(1..=posts)),
                    at,
                    for_ms,
                },
                _ => {
                    let d = rng.random_range(0..devices);
                    Fault::Partition {
                        a: Addr::Node(1 + d / devices_per_post),
                        b: Addr::Device(d),
                        at,
                        for_ms,
                    }
                }
            };
            faults.push(fault);
        }
        let mut sends = Vec::new();
        for _ in 0..rng.random_range(5..=40) {
            let from = rng.random_range(0..devices);
            let mut to = vec![rng.random_range(0..devices)];
            if rng.random_bool(0.3) {
                to.push(rng.random_range(0..devices));
            }
            to.sort_unstable();
            to.dedup();
            let precedence = match rng.random_range(0..10) {
                0 => Precedence::Flash,
                1 | 2 => Precedence::Immediate,
                3 | 4 => Precedence::Priority,
                _ => Precedence::Routine,
            };
            sends.push(Send {
                at: rng.random_range(0..heal_at),
                from,
                to,
                precedence,
            });
        }
        Scenario {
            seed,
            posts,
            devices_per_post,
            loss: rng.random_range(0.0..0.2),
            latency: (1, rng.random_range(2..=80)),
            faults,
            sends,
            heal_at,
            sabotage: Sabotage::None,
        }
    }
}

/// What a settled run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Cables sent, each receipted by its post.
    pub cables: usize,
    /// Deliveries stored (one per cable and recipient device).
    pub stored: usize,
    /// Deliveries a device already held (a lost acknowledgement, a redelivery).
    pub duplicates: u64,
    /// Messages lost on the links.
    pub lost: u64,
    /// Checkpoints cosigned by a neighbour.
    pub cosigned: usize,
    /// Checkpoints a witness refused as a rollback or a fork.
    pub refused: usize,
    /// Audit logs put back to an older copy (by [`Sabotage::RewriteHistory`]).
    pub rewrites: u32,
    /// When the run settled, in virtual ms.
    pub settled_at: u64,
    /// A digest of every event in order: two runs of one seed have the same.
    pub trace: [u8; 32],
}

/// A run that broke an invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The seed that reproduces it.
    pub seed: u64,
    /// What went wrong.
    pub violations: Vec<String>,
    /// Checkpoints a witness refused as a rollback or a fork.
    pub refused: usize,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} broke {} invariant(s); reproduce with VALISE_SIM_SEED={} cargo test -p valise-sim",
            self.seed,
            self.violations.len(),
            self.seed
        )?;
        for v in self.violations.iter().take(10) {
            writeln!(f, "  - {v}")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Event {
    Arrive {
        from: Addr,
        to: Addr,
        epoch: u64,
        msg: Msg,
    },
    NodeTick(usize),
    DeviceTick(usize),
    Send(usize),
    Cut(Addr, Addr),
    Mend(Addr, Addr),
    Crash(usize),
    Restart(usize),
    /// A connection that dropped is dialled again.
    Redial(Addr, Addr),
    Heal,
}

#[derive(Debug, Default)]
struct LinkState {
    /// Partitions in force.
    cuts: u32,
    /// Whether a connection is up.
    connected: bool,
    /// The connection: bumped whenever it drops.
    epoch: u64,
}

struct World {
    scenario: Scenario,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    peers: Vec<Peer>,
    devices: Vec<Device>,
    device_ids: Vec<DeviceId>,
    directory: SimDirectory,
    links: BTreeMap<(Addr, Addr), LinkState>,
    checker: Checker,
    healed: bool,
    lost: u64,
    trace: ring_trace::Trace,
}

/// A running digest of the events, to compare two runs of one seed.
mod ring_trace {
    /// The digest so far.
    pub(super) struct Trace(Vec<u8>);

    impl Trace {
        pub(super) fn new() -> Self {
            Trace(Vec::new())
        }
        pub(super) fn add(&mut self, line: &str) {
            let mut next = self.0.clone();
            next.extend_from_slice(line.as_bytes());
            self.0 = valise_crypto::sha256(&next).to_vec();
        }
        pub(super) fn finish(&self) -> [u8; 32] {
            valise_crypto::sha256(&self.0)
        }
    }
}

fn pair(a: Addr, b: Addr) -> (Addr, Addr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Runs `scenario` to the end and checks it.
pub fn run(scenario: &Scenario) -> Result<Report, Failure> {
    let mut world = World::new(scenario.clone()).map_err(|e| Failure {
        seed: scenario.seed,
        violations: vec![e],
        refused: 0,
    })?;
    world.run();
    world.finish()
}

impl World {
    fn new(scenario: Scenario) -> Result<Self, String> {
        let rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ 0x5eed);
        let key = |tag: u8, i: usize| {
            let mut seed = [tag; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            IdentityKeyPair::from_seed(&seed).map_err(|e| e.to_string())
        };
        let names: Vec<String> = std::iter::once("hub".to_owned())
            .chain((1..=scenario.posts).map(|p| format!("post{p}")))
            .collect();
        let mut nodes = Vec::new();
        let mut peers = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let node_key = key(1, i)?;
            peers.push(Peer {
                name: name.clone(),
                key: *node_key.public(),
            });
            let routes = Routes {
                node: name.clone(),
                kind: if i == 0 {
                    NodeKind::Hub
                } else {
                    NodeKind::Post
                },
                has_hub: i != 0,
                peers: Vec::new(),
            };
            let sabotage = if i == 0 {
                scenario.sabotage
            } else {
                Sabotage::None
            };
            nodes.push(Node::new(i, name.clone(), node_key, routes, sabotage)?);
        }
        let mut directory = SimDirectory::default();
        let mut devices = Vec::new();
        for d in 0..scenario.posts * scenario.devices_per_post {
            let post = 1 + d / scenario.devices_per_post;
            let device_key = key(2, d)?;
            let address = format!("u{d}@{}", names[post]);
            directory.enrol(&device_key, &address, &names[post]);
            devices.push(Device::new(
                d,
                device_key,
                address,
                (post, names[post].clone(), peers[post].key),
            ));
        }
        let device_ids = devices.iter().map(Device::id).collect();
        let mut world = World {
            scenario,
            rng,
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes,
            peers,
            devices,
            device_ids,
            directory,
            links: BTreeMap::new(),
            checker: Checker::default(),
            healed: false,
            lost: 0,
            trace: ring_trace::Trace::new(),
        };
        // Every link starts up.
        for p in 1..=world.scenario.posts {
            world
                .links
                .insert(pair(Addr::Node(0), Addr::Node(p)), LinkState::default());
            world.connect(Addr::Node(0), Addr::Node(p));
        }
        for d in 0..world.devices.len() {
            let post = world.devices[d].post.0;
            world.links.insert(
                pair(Addr::Node(post), Addr::Device(d)),
                LinkState::default(),
            );
            world.connect(Addr::Node(post), Addr::Device(d));
        }
        for i in 0..world.nodes.len() {
            world.at(i as u64, Event::NodeTick(i));
        }
        for d in 0..world.devices.len() {
            world.at(d as u64, Event::DeviceTick(d));
        }
        for (i, send) in world.scenario.sends.clone().iter().enumerate() {
            world.at(send.at, Event::Send(i));
        }
        for fault in world.scenario.faults.clone() {
            match fault {
                Fault::Partition { a, b, at, for_ms } => {
                    world.at(at, Event::Cut(a, b));
                    world.at(at + for_ms, Event::Mend(a, b));
                }
                Fault::Crash { node, at, for_ms } => {
                    world.at(at, Event::Crash(node));
                    world.at(at + for_ms, Event::Restart(node));
                }
            }
        }
        let heal_at = world.scenario.heal_at;
        world.at(heal_at, Event::Heal);
        Ok(world)
    }

    fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.events.insert((time, self.seq), event);
    }

    fn end_up(&self, addr: Addr) -> bool {
        match addr {
            Addr::Node(n) => self.nodes[n].up,
            Addr::Device(_) => true,
        }
    }

    /// Whether a connection could be made between `a` and `b` now.
    fn reachable(&self, a: Addr, b: Addr) -> bool {
        self.links
            .get(&pair(a, b))
            .is_some_and(|link| link.cuts == 0)
            && self.end_up(a)
            && self.end_up(b)
    }

    /// The epoch of the connection between `a` and `b`, if one is up.
    fn usable(&self, a: Addr, b: Addr) -> Option<u64> {
        let link = self.links.get(&pair(a, b))?;
        (link.connected && self.reachable(a, b)).then_some(link.epoch)
    }

    fn send(&mut self, from: Addr, to: Addr, msg: Msg) {
        let Some(epoch) = self.usable(from, to) else {
            self.lost += 1;
            return;
        };
        // QUIC hides the loss of a packet; what loses messages is a connection that dies
        // (the satellite link dropped long enough for the idle timeout). Both ends see it
        // drop, and dial again a little later.
        if !self.healed && self.rng.random_bool(self.scenario.loss) {
            self.lost += 1;
            self.drop_connection(from, to);
            let redial = self.rng.random_range(REDIAL_MS.0..=REDIAL_MS.1);
            self.at(self.now + redial, Event::Redial(from, to));
            return;
        }
        let (low, high) = if self.healed {
            (1, 2)
        } else {
            self.scenario.latency
        };
        let latency = self.rng.random_range(low..=high);
        self.at(
            self.now + latency,
            Event::Arrive {
                from,
                to,
                epoch,
                msg,
            },
        );
    }

    /// The connection between `a` and `b` dropped: both ends are told.
    fn drop_connection(&mut self, a: Addr, b: Addr) {
        match self.links.get_mut(&pair(a, b)) {
            Some(link) if link.connected => {
                link.connected = false;
                link.epoch += 1;
            }
            _ => return,
        }
        for (end, other) in [(a, b), (b, a)] {
            match (end, other) {
                (Addr::Node(n), Addr::Node(m)) => self.nodes[n].link_down(m),
                (Addr::Node(n), Addr::Device(d)) => self.nodes[n].device_down(d),
                (Addr::Device(d), _) => self.devices[d].disconnected(),
            }
        }
    }

    /// The connection between `a` and `b` is made again, if both ends can.
    fn connect(&mut self, a: Addr, b: Addr) {
        if !self.reachable(a, b) {
            return;
        }
        match self.links.get_mut(&pair(a, b)) {
            Some(link) if !link.connected => link.connected = true,
            _ => return,
        }
        for (end, other) in [(a, b), (b, a)] {
            match (end, other) {
                (Addr::Node(n), Addr::Node(m)) => self.nodes[n].link_up(m, &self.peers),
                (Addr::Device(d), _) => self.devices[d].connected = true,
                (Addr::Node(_), Addr::Device(_)) => {}
            }
        }
    }

    fn links_of(&self, node: usize) -> Vec<(Addr, Addr)> {
        self.links
            .keys()
            .filter(|(a, b)| *a == Addr::Node(node) || *b == Addr::Node(node))
            .copied()
            .collect()
    }

    fn run(&mut self) {
        while let Some(((time, _), event)) = self.events.pop_first() {
            self.now = time;
            if self.healed && time > self.scenario.heal_at + SETTLE_WITHIN_MS {
                self.checker.violation(format!(
                    "the network did not settle within {} s of healing",
                    SETTLE_WITHIN_MS / 1000
                ));
                return;
            }
            self.trace.add(&format!("{time} {event:?}"));
            match event {
                Event::Arrive {
                    from,
                    to,
                    epoch,
                    msg,
                } => {
                    if self.usable(from, to) != Some(epoch) {
                        self.lost += 1;
                        continue;
                    }
                    self.arrive(from, to, msg);
                }
                Event::NodeTick(n) => {
                    if self.nodes[n].up {
                        let out = self.with_ctx(|node, ctx| node.tick(ctx), n);
                        for (to, msg) in out {
                            self.send(Addr::Node(n), to, msg);
                        }
                    }
                    if n == 0 && self.healed && self.settled() {
                        return;
                    }
                    self.at(time + NODE_TICK_MS, Event::NodeTick(n));
                }
                Event::DeviceTick(d) => {
                    let mut out = Vec::new();
                    self.devices[d].tick(time, &mut out);
                    for (to, msg) in out {
                        self.send(Addr::Device(d), to, msg);
                    }
                    self.at(time + DEVICE_TICK_MS, Event::DeviceTick(d));
                }
                Event::Send(i) => self.new_cable(i),
                Event::Cut(a, b) => {
                    if self.healed {
                        continue;
                    }
                    if let Some(link) = self.links.get_mut(&pair(a, b)) {
                        link.cuts += 1;
                    }
                    self.drop_connection(a, b);
                }
                Event::Mend(a, b) => {
                    if let Some(link) = self.links.get_mut(&pair(a, b)) {
                        if link.cuts == 0 {
                            continue;
                        }
                        link.cuts -= 1;
                    }
                    self.connect(a, b);
                }
                Event::Crash(n) => {
                    if self.healed || !self.nodes[n].up {
                        continue;
                    }
                    for (a, b) in self.links_of(n) {
                        self.drop_connection(a, b);
                    }
                    self.nodes[n].crash();
                }
                Event::Restart(n) => self.restart(n),
                Event::Redial(a, b) => self.connect(a, b),
                Event::Heal => {
                    self.healed = true;
                    for link in self.links.values_mut() {
                        link.cuts = 0;
                    }
                    for n in 0..self.nodes.len() {
                        self.restart(n);
                    }
                    // Every connection dropped meanwhile is made again.
                    let ends: Vec<(Addr, Addr)> = self.links.keys().copied().collect();
                    for (a, b) in ends {
                        self.connect(a, b);
                    }
                }
            }
        }
    }

    fn restart(&mut self, n: usize) {
        if self.nodes[n].up {
            return;
        }
        if let Err(e) = self.nodes[n].restart() {
            self.checker.violation(e);
            return;
        }
        for (a, b) in self.links_of(n) {
            self.connect(a, b);
        }
    }

    fn with_ctx(&mut self, f: impl FnOnce(&mut Node, &mut Ctx<'_>), n: usize) -> Vec<(Addr, Msg)> {
        let jitter = self.rng.random_range(0.0..1.0);
        let mut ctx = Ctx {
            now: self.now,
            directory: &self.directory,
            devices: &self.device_ids,
            peers: &self.peers,
            checker: &mut self.checker,
            jitter,
            out: Vec::new(),
        };
        f(&mut self.nodes[n], &mut ctx);
        ctx.out
    }

    fn arrive(&mut self, from: Addr, to: Addr, msg: Msg) {
        match to {
            Addr::Node(n) => {
                let out = self.with_ctx(|node, ctx| node.handle(from, msg, ctx), n);
                for (to, msg) in out {
                    self.send(Addr::Node(n), to, msg);
                }
            }
            Addr::Device(d) => {
                let mut out = Vec::new();
                self.devices[d].handle(msg, &mut self.checker, &mut out);
                for (to, msg) in out {
                    self.send(Addr::Device(d), to, msg);
                }
            }
        }
    }

    fn new_cable(&mut self, i: usize) {
        let send = self.scenario.sends[i].clone();
        let mut cable_id = [0u8; 16];
        self.rng.fill(&mut cable_id);
        let to: Vec<String> = send
            .to
            .iter()
            .map(|d| self.devices[*d].address.clone())
            .collect();
        let mut recipients: Vec<DeviceId> = to
            .iter()
            .flat_map(|a| self.directory.devices_of(a))
            .collect();
        recipients.sort_unstable();
        recipients.dedup();
        let sender = &self.devices[send.from];
        let Some(envelope) = cable(
            &sender.key,
            &sender.address,
            &to,
            &recipients,
            cable_id,
            send.precedence,
        ) else {
            self.checker.violation("a cable could not be signed".into());
            return;
        };
        self.devices[send.from].outbox.insert(
            cable_id,
            Outgoing {
                envelope: envelope.encode_to_vec(),
                recipients,
                sent_at: None,
                receipted: false,
            },
        );
    }

    /// Everything sent is receipted, and every node has delivered and forwarded it all.
    fn settled(&self) -> bool {
        self.devices
            .iter()
            .all(|d| d.outbox.values().all(|o| o.receipted))
            && self.nodes.iter().all(Node::is_drained)
    }

    fn finish(mut self) -> Result<Report, Failure> {
        let mut stored = 0;
        let mut duplicates = 0;
        let mut cables = 0;
        let mut problems = Vec::new();
        for sender in &self.devices {
            for (id, outgoing) in &sender.outbox {
                cables += 1;
                if !outgoing.receipted {
                    problems.push(format!(
                        "device {}'s cable {} never got a receipt",
                        sender.index,
                        hex_id(id)
                    ));
                    continue;
                }
                for recipient in &outgoing.recipients {
                    let Some(device) = self.devices.iter().find(|d| d.id() == *recipient) else {
                        continue;
                    };
                    match device.inbox.get(id) {
                        Some(times) => {
                            stored += 1;
                            duplicates += u64::from(times.saturating_sub(1));
                        }
                        None => problems.push(format!(
                            "cable {} from device {}, receipted, never reached device {}",
                            hex_id(id),
                            sender.index,
                            device.index
                        )),
                    }
                }
            }
        }
        for node in &self.nodes {
            if !node.is_drained() {
                problems.push(format!(
                    "node {} still holds cables after healing",
                    node.name
                ));
            }
        }
        // No node signed a checkpoint its log no longer extends.
        for (n, signed) in &self.checker.signed {
            for (size, root, _) in signed {
                if self.nodes[*n].audit_root(*size) != Some(*root) {
                    problems.push(format!(
                        "node {} signed a checkpoint of size {size} its log does not extend",
                        self.nodes[*n].name
                    ));
                }
            }
        }
        self.checker.check_cosigned();
        let cosigned = self.checker.cosigned.values().map(Vec::len).sum();
        for p in problems {
            self.checker.violation(p);
        }
        if !self.checker.violations.is_empty() {
            return Err(Failure {
                seed: self.scenario.seed,
                violations: std::mem::take(&mut self.checker.violations),
                refused: self.checker.refused_checkpoints,
            });
        }
        Ok(Report {
            cables,
            stored,
            duplicates,
            lost: self.lost,
            cosigned,
            refused: self.checker.refused_checkpoints,
            rewrites: self.checker.history.values().sum(),
            settled_at: self.now,
            trace: self.trace.finish(),
        })
    }
}

fn hex_id(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
