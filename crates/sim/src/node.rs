//! A relay node on the core, as the real shell drives it: custody through
//! [`admission`](valise_relay_core::admission), delivery through
//! [`DeliveryWindow`](valise_relay_core::delivery::DeliveryWindow), forwarding through
//! [`Outbound`](valise_relay_core::outbound::Outbound), and an audit log its neighbours
//! witness. What is durable survives a crash; sessions, windows and unsynced
//! acknowledgements do not.

use std::collections::BTreeMap;
use std::time::Duration;

use valise_audit::log::{AuditLog, LogConfig, origin, witness_name};
use valise_audit::note::{Checkpoint, CosignatureSigner, Note, NoteVerifier};
use valise_audit::policy::CheckpointPolicy;
use valise_audit::{Witness, WitnessError};
use valise_crypto::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use valise_proto::v1::{ErrorCode, ErrorFrame, Precedence};
use valise_relay_core::admission::{
    Admission, Here, Holdings, Offer, Reply, Sender, Stored, admit,
};
use valise_relay_core::attachment::AttachmentId;
use valise_relay_core::delivery::{DeliveryConfig, DeliveryWindow};
use valise_relay_core::limits::Limits;
use valise_relay_core::outbound::{NextHopRefusal, Outbound, classify_refusal};
use valise_relay_core::queue::QueueKey;
use valise_relay_core::record::Record;
use valise_relay_core::routing::{NextHop, Routes};

use crate::check::Checker;
use crate::directory::SimDirectory;
use crate::memstore::{Map, MemStore};
use crate::net::{Addr, Msg};

/// The ministry every simulated node belongs to.
pub const MINISTRY: &str = "mfa.example";
/// How long a forward may go unanswered before it counts as lost.
pub const FORWARD_TIMEOUT_MS: u64 = 1_000;
/// How often acknowledgements are made durable (the store's group commit).
pub const SYNC_EVERY_MS: u64 = 50;
/// How often a node signs a checkpoint and offers it to its neighbours.
pub const CHECKPOINT_EVERY_MS: u64 = 500;
/// The forwarding window per link.
pub const WINDOW: usize = 4;

/// How the simulated stream paces itself: the real defaults, with redelivery shortened so a
/// run settles in virtual seconds.
pub const DELIVERY: DeliveryConfig = DeliveryConfig {
    redeliver_after: Duration::from_secs(1),
    max_in_flight: 64,
    max_in_flight_bytes: 256 * 1024,
    page: 16,
};

/// A deliberate fault in a node's own logic, to show the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// None: the node is the core, unchanged.
    None,
    /// The node answers every forward with a receipt and keeps nothing.
    ReceiptWithoutCustody,
    /// The node's operator rewrites its audit history: once its neighbours have cosigned a
    /// few checkpoints, the log is put back to an older copy and grows again differently.
    RewriteHistory,
}

/// The sabotaged rewrite of history: the copy to go back to, and whether it was used.
#[derive(Debug, Default)]
struct Rewrite {
    copy: Option<(u64, Map)>,
    done: bool,
}

/// A cable waiting for a next hop.
#[derive(Debug, Clone)]
struct Onward {
    cable: [u8; 16],
    devices: Vec<DeviceId>,
    accepted_at_ms: u64,
}

/// What a node keeps on disk.
#[derive(Debug, Default)]
struct Durable {
    envelopes: BTreeMap<[u8; 16], Vec<u8>>,
    /// The digest of each cable taken, for dedup.
    seen: BTreeMap<[u8; 16], [u8; 32]>,
    delivery: BTreeMap<DeviceId, BTreeMap<QueueKey, [u8; 16]>>,
    onward: BTreeMap<NextHop, BTreeMap<QueueKey, Onward>>,
    next_seq: u64,
}

/// A link to a neighbouring node, while it is up.
#[derive(Debug)]
struct Link {
    hop: NextHop,
    outbound: Outbound,
    /// Forwards sent and not yet answered, with when.
    awaiting: BTreeMap<QueueKey, u64>,
    /// Forwards waiting out a retry delay, until when.
    deferred: BTreeMap<QueueKey, u64>,
    /// The largest size of this node's log the neighbour cosigned.
    their_size: u64,
    /// The size last offered for witnessing, while unanswered.
    offered: Option<u64>,
}

/// The node's other nodes: name and key by index.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its name.
    pub name: String,
    /// The key that signs its receipts and its log.
    pub key: IdentityPublicKey,
}

/// One relay node.
pub struct Node {
    /// Its index (0 is the hub).
    pub index: usize,
    /// Its name.
    pub name: String,
    key: IdentityKeyPair,
    routes: Routes,
    limits: Limits,
    sabotage: Sabotage,
    store: Durable,
    audit_store: MemStore,
    witness_store: MemStore,
    /// Whether it is running.
    pub up: bool,
    audit: Option<AuditLog>,
    sessions: BTreeMap<usize, DeliveryWindow>,
    links: BTreeMap<usize, Link>,
    unsynced_acks: Vec<(DeviceId, QueueKey, [u8; 16])>,
    last_sync: u64,
    last_checkpoint: u64,
    rewrite: Rewrite,
}

/// What a node may look at in the world while it handles an event.
pub struct Ctx<'a> {
    /// Virtual time, in ms.
    pub now: u64,
    /// The directory.
    pub directory: &'a SimDirectory,
    /// Every device's id, by index.
    pub devices: &'a [DeviceId],
    /// Every node, by index.
    pub peers: &'a [Peer],
    /// The invariants.
    pub checker: &'a mut Checker,
    /// A number in [0, 1) for retry jitter.
    pub jitter: f64,
    /// What the node sends.
    pub out: Vec<(Addr, Msg)>,
}

struct Held<'a>(&'a Durable);

impl Holdings for Held<'_> {
    fn missing(&self, _ids: &[AttachmentId], _now_ms: u64) -> Result<Vec<AttachmentId>, String> {
        // Simulated cables carry no attachments.
        Ok(Vec::new())
    }
    fn seen(&self, cable: &[u8; 16]) -> Result<bool, String> {
        Ok(self.0.seen.contains_key(cable))
    }
}

fn copy_key(key: &IdentityKeyPair) -> Option<IdentityKeyPair> {
    IdentityKeyPair::from_seed(&key.seed()[..]).ok()
}

impl Node {
    /// A node, started.
    pub fn new(
        index: usize,
        name: String,
        key: IdentityKeyPair,
        routes: Routes,
        sabotage: Sabotage,
    ) -> Result<Self, String> {
        let mut node = Node {
            index,
            name,
            key,
            routes,
            limits: Limits::default(),
            sabotage,
            store: Durable::default(),
            audit_store: MemStore::default(),
            witness_store: MemStore::default(),
            up: false,
            audit: None,
            sessions: BTreeMap::new(),
            links: BTreeMap::new(),
            unsynced_acks: Vec::new(),
            last_sync: 0,
            last_checkpoint: 0,
            rewrite: Rewrite::default(),
        };
        node.restart()?;
        Ok(node)
    }

    /// The node crashed: everything not durable is gone.
    pub fn crash(&mut self) {
        self.up = false;
        if let Some(audit) = self.audit.take() {
            // Appends are durable once answered; closing only stops the committer.
            let _ = audit.close();
        }
        self.audit_store.crash();
        self.witness_store.crash();
        for (device, key, cable) in self.unsynced_acks.drain(..) {
            self.store
                .delivery
                .entry(device)
                .or_default()
                .insert(key, cable);
        }
        self.sessions.clear();
        self.links.clear();
    }

    /// The node starts again on what it kept.
    pub fn restart(&mut self) -> Result<(), String> {
        let key = copy_key(&self.key).ok_or("the node key cannot be copied")?;
        let mut config = LogConfig::new("unused", origin(MINISTRY, &self.name));
        // Checkpoints are signed on the simulation's clock, never the machine's.
        config.policy = CheckpointPolicy {
            every_entries: u64::MAX,
            every: Duration::MAX,
        };
        let audit = AuditLog::open_with_store(self.audit_store.clone(), config, key)
            .map_err(|e| format!("node {} cannot open its audit log: {e}", self.name))?;
        self.audit = Some(audit);
        self.up = true;
        Ok(())
    }

    /// The link to node `peer` came up.
    pub fn link_up(&mut self, peer: usize, peers: &[Peer]) {
        let hop = if self.index == 0 {
            NextHop::Post(peers[peer].name.clone())
        } else {
            NextHop::Hub
        };
        self.links.insert(
            peer,
            Link {
                hop,
                outbound: Outbound::new(WINDOW),
                awaiting: BTreeMap::new(),
                deferred: BTreeMap::new(),
                their_size: 0,
                offered: None,
            },
        );
    }

    /// The link to node `peer` went down.
    pub fn link_down(&mut self, peer: usize) {
        self.links.remove(&peer);
    }

    /// Device `device`'s connection dropped.
    pub fn device_down(&mut self, device: usize) {
        self.sessions.remove(&device);
    }

    /// Whether nothing is left to deliver or forward.
    pub fn is_drained(&self) -> bool {
        self.store.delivery.values().all(BTreeMap::is_empty)
            && self.store.onward.values().all(BTreeMap::is_empty)
    }

    /// The log's root at `size`, if the log is open.
    pub fn audit_root(&self, size: u64) -> Option<[u8; 32]> {
        self.audit.as_ref()?.root(size).ok()
    }

    fn record(&self, record: Record, ctx: &mut Ctx<'_>) {
        if let Some(audit) = &self.audit
            && let Err(e) = audit.append(record.event(&self.name, ctx.now))
        {
            ctx.checker
                .violation(format!("node {} could not audit: {e}", self.name));
        }
    }

    /// Takes a message.
    pub fn handle(&mut self, from: Addr, msg: Msg, ctx: &mut Ctx<'_>) {
        match (from, msg) {
            (Addr::Device(d), Msg::Submit { envelope }) => {
                let device = ctx.devices[d];
                let offer = Offer {
                    sender: Sender::Device(&device),
                    envelope: &envelope,
                    attachments: &[],
                };
                let (cable, reply) = self.take(offer, ctx);
                ctx.out.push((from, Msg::Submitted { cable, reply }));
            }
            (Addr::Device(d), Msg::Subscribe) => {
                self.sessions.insert(d, DeliveryWindow::new(DELIVERY));
            }
            (Addr::Device(d), Msg::Ack { key }) => {
                let device = ctx.devices[d];
                if let Some(cable) = self
                    .store
                    .delivery
                    .get_mut(&device)
                    .and_then(|q| q.remove(&key))
                {
                    self.unsynced_acks.push((device, key, cable));
                }
                if let Some(window) = self.sessions.get_mut(&d) {
                    window.acked(key);
                }
            }
            (
                Addr::Node(n),
                Msg::Forward {
                    key,
                    envelope,
                    devices,
                    accepted_at_ms,
                },
            ) => {
                let name = ctx.peers[n].name.clone();
                let reply = if self.sabotage == Sabotage::ReceiptWithoutCustody {
                    let cable = valise_crypto::envelope::decode_envelope(&envelope)
                        .ok()
                        .and_then(|e| e.header)
                        .map(|h| h.cable_id)
                        .unwrap_or_default();
                    Reply::Receipt(valise_crypto::custody::sign(
                        &self.key, &self.name, &cable, &envelope, ctx.now,
                    ))
                } else {
                    let offer = Offer {
                        sender: Sender::Neighbour {
                            name: &name,
                            devices: &devices,
                            accepted_at_ms,
                        },
                        envelope: &envelope,
                        attachments: &[],
                    };
                    self.take(offer, ctx).1
                };
                let reply = match reply {
                    Reply::Receipt(receipt) => Ok(receipt),
                    Reply::Error(e) => Err(e),
                };
                ctx.out.push((from, Msg::Forwarded { key, reply }));
            }
            (Addr::Node(n), Msg::Forwarded { key, reply }) => self.forwarded(n, key, reply, ctx),
            (
                Addr::Node(n),
                Msg::Witness {
                    old_size,
                    proof,
                    note,
                },
            ) => {
                let result = self.witness(n, old_size, &proof, &note, ctx);
                let size = Note::parse(&note)
                    .ok()
                    .and_then(|n| Checkpoint::parse(&n.text).ok())
                    .map_or(0, |c| c.size);
                ctx.out.push((from, Msg::Witnessed { size, result }));
            }
            (Addr::Node(n), Msg::Witnessed { size, result }) => {
                if let Some(link) = self.links.get_mut(&n) {
                    match result {
                        Ok(()) => link.their_size = link.their_size.max(size),
                        Err(Some(theirs)) => {
                            link.their_size = theirs;
                            link.offered = None;
                        }
                        Err(None) => {}
                    }
                }
            }
            (from, msg) => ctx.checker.violation(format!(
                "node {} got an unexpected {msg:?} from {from:?}",
                self.name
            )),
        }
    }

    /// The one custody path, as `node/intake.rs` runs it: admit, store with the record,
    /// settle.
    fn take(&mut self, offer: Offer<'_>, ctx: &mut Ctx<'_>) -> ([u8; 16], Reply) {
        let now = ctx.now;
        let here = Here {
            name: &self.name,
            limits: &self.limits,
            routes: &self.routes,
            directory: ctx.directory,
        };
        let plan = match admit(&here, offer, &Held(&self.store), now) {
            Admission::Refused(refused) => {
                self.record(refused.record, ctx);
                return ([0; 16], Reply::Error(refused.error));
            }
            Admission::Wanted(_) => {
                ctx.checker
                    .violation("attachments were asked for a cable that has none".into());
                return (
                    [0; 16],
                    Reply::Error(ErrorFrame {
                        code: ErrorCode::Internal as i32,
                        message: "attachments".into(),
                        retry_after_ms: 0,
                    }),
                );
            }
            Admission::Custody(plan) => plan,
        };
        let cable = plan.cable;
        let digest = valise_crypto::sha256(plan.envelope);
        let stored = match self.store.seen.get(&cable) {
            Some(held) if *held == digest => Stored::Duplicate,
            Some(_) => Stored::Conflict,
            None => {
                let seq = self.store.next_seq;
                self.store.next_seq += 1;
                let key = QueueKey::new(plan.precedence, seq);
                for device in &plan.routed.local {
                    self.store
                        .delivery
                        .entry(*device)
                        .or_default()
                        .insert(key, cable);
                    if plan.precedence == Precedence::Flash
                        && let Some(d) = ctx.devices.iter().position(|x| x == device)
                    {
                        ctx.checker.flash_queued(self.index, d, key);
                    }
                }
                for (hop, devices) in &plan.routed.onward {
                    self.store.onward.entry(hop.clone()).or_default().insert(
                        key,
                        Onward {
                            cable,
                            devices: devices.clone(),
                            accepted_at_ms: plan.accepted_at_ms,
                        },
                    );
                }
                self.store.seen.insert(cable, digest);
                self.store.envelopes.insert(cable, plan.envelope.to_vec());
                self.record(plan.record.clone(), ctx);
                Stored::New { seq }
            }
        };
        let settled = plan.settle(stored, &self.key, &self.name);
        for record in settled.records {
            self.record(record, ctx);
        }
        // As the shell does: every stream of a device the cable is queued for is told.
        if let Some(key) = settled.queued {
            for device in &settled.wake_devices {
                let d = ctx.devices.iter().position(|x| x == device);
                if let Some(window) = d.and_then(|d| self.sessions.get_mut(&d)) {
                    window.queued(key);
                }
            }
        }
        (cable, settled.reply)
    }

    fn forwarded(
        &mut self,
        peer: usize,
        key: QueueKey,
        reply: Result<valise_proto::v1::CustodyReceipt, ErrorFrame>,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let answered = link.awaiting.remove(&key).is_some();
        let queue = self.store.onward.entry(link.hop.clone()).or_default();
        match reply {
            Ok(receipt) => {
                let Some(entry) = queue.get(&key) else {
                    link.outbound.taken(key);
                    return;
                };
                let envelope = self
                    .store
                    .envelopes
                    .get(&entry.cable)
                    .cloned()
                    .unwrap_or_default();
                let peer = &ctx.peers[peer];
                match valise_crypto::custody::verify(
                    &receipt,
                    &peer.name,
                    &peer.key,
                    &entry.cable,
                    &envelope,
                ) {
                    // The neighbour holds it durably: only now is this node's copy let go.
                    Ok(()) => {
                        queue.remove(&key);
                        link.outbound.taken(key);
                        link.deferred.remove(&key);
                    }
                    Err(e) => ctx.checker.violation(format!(
                        "node {} got a receipt from {} that does not verify: {e}",
                        self.name, peer.name
                    )),
                }
            }
            Err(e) if answered => {
                let at_least = match classify_refusal(e.code, e.retry_after_ms) {
                    NextHopRefusal::Lasting(code) => {
                        ctx.checker.violation(format!(
                            "{} refused a valid cable from {} for good: {}",
                            ctx.peers[peer].name,
                            self.name,
                            code.as_str_name()
                        ));
                        valise_relay_core::outbound::HELD_RETRY
                    }
                    NextHopRefusal::Later(after) => after,
                };
                let delay = link
                    .outbound
                    .retry_later(key, ms(ctx.now), at_least, ctx.jitter);
                link.deferred.insert(key, ctx.now + millis(delay));
            }
            // A late refusal of a forward that already timed out: the timeout handled it.
            Err(_) => {}
        }
    }

    fn witness(
        &mut self,
        peer: usize,
        old_size: u64,
        proof: &[[u8; 32]],
        note: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Option<u64>> {
        let origin_name = origin(MINISTRY, &ctx.peers[peer].name);
        let (Ok(log), Some(key)) = (
            NoteVerifier::ed25519(&origin_name, ctx.peers[peer].key),
            copy_key(&self.key),
        ) else {
            ctx.checker
                .violation("a witness key could not be made".into());
            return Err(None);
        };
        let Ok(signer) = CosignatureSigner::new(&witness_name(MINISTRY, &self.name), key) else {
            ctx.checker
                .violation("a witness signer could not be made".into());
            return Err(None);
        };
        let witness = Witness::new(self.witness_store.clone(), signer, [log]);
        match witness.add_checkpoint(old_size, proof, note, ctx.now / 1000) {
            Ok(_) => {
                if let Some(c) = Note::parse(note)
                    .ok()
                    .and_then(|n| Checkpoint::parse(&n.text).ok())
                {
                    ctx.checker
                        .cosigned
                        .entry((self.index, peer))
                        .or_default()
                        .push((c.size, c.root));
                }
                Ok(())
            }
            Err(WitnessError::StaleSize { witness_size, .. }) => Err(Some(witness_size)),
            Err(
                WitnessError::Fork { .. }
                | WitnessError::Rollback { .. }
                | WitnessError::BadProof { .. },
            ) => {
                ctx.checker.refused_checkpoints += 1;
                Err(None)
            }
            Err(e) => {
                ctx.checker.violation(format!(
                    "node {} could not witness {}: {e}",
                    self.name, ctx.peers[peer].name
                ));
                Err(None)
            }
        }
    }

    /// Runs the node's timers at `ctx.now`: delivery, forwarding, syncs, checkpoints.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if now.saturating_sub(self.last_sync) >= SYNC_EVERY_MS {
            self.last_sync = now;
            self.unsynced_acks.clear();
        }
        self.deliver(ctx);
        self.forward(ctx);
        if now.saturating_sub(self.last_checkpoint) >= CHECKPOINT_EVERY_MS {
            self.last_checkpoint = now;
            self.offer_checkpoint(ctx);
        }
    }

    fn deliver(&mut self, ctx: &mut Ctx<'_>) {
        let now = ms(ctx.now);
        for (d, window) in &mut self.sessions {
            let device = ctx.devices[*d];
            let empty = BTreeMap::new();
            let queue = self.store.delivery.get(&device).unwrap_or(&empty);
            // As the shell does: the pages the window asks for, then every send it allows.
            loop {
                while let Some(request) = window.wants_page() {
                    let page: Vec<QueueKey> = queue
                        .keys()
                        .filter(|k| request.after.is_none_or(|after| **k > after))
                        .take(request.limit)
                        .copied()
                        .collect();
                    window.loaded(request, &page);
                }
                let Some(key) = window.poll_send(now) else {
                    break;
                };
                let envelope = queue
                    .get(&key)
                    .and_then(|cable| self.store.envelopes.get(cable));
                let Some(envelope) = envelope else {
                    window.gone(key);
                    continue;
                };
                ctx.checker.delivery_sent(self.index, *d, key);
                window.sent(key, envelope.len() as u64);
                ctx.out.push((
                    Addr::Device(*d),
                    Msg::Delivery {
                        key,
                        envelope: envelope.clone(),
                    },
                ));
            }
        }
    }

    fn forward(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        for (peer, link) in &mut self.links {
            let lost: Vec<QueueKey> = link
                .awaiting
                .iter()
                .filter(|(_, sent)| now.saturating_sub(**sent) >= FORWARD_TIMEOUT_MS)
                .map(|(k, _)| *k)
                .collect();
            for key in lost {
                link.awaiting.remove(&key);
                let delay = link
                    .outbound
                    .retry_later(key, ms(now), Duration::ZERO, ctx.jitter);
                link.deferred.insert(key, now + millis(delay));
            }
            let empty = BTreeMap::new();
            let queue = self.store.onward.get(&link.hop).unwrap_or(&empty);
            let limit = link.outbound.in_flight() + link.outbound.deferred() + WINDOW;
            let page: Vec<QueueKey> = queue.keys().take(limit).copied().collect();
            let urgent_busy = link.awaiting.keys().filter(|k| k.rank <= 1).count();
            let picked = link.outbound.pick(&page, ms(now));
            // A FLASH that may go must go, unless the urgent window is full.
            for key in page.iter().filter(|k| k.rank == 0) {
                let eligible = !link.awaiting.contains_key(key)
                    && link.deferred.get(key).is_none_or(|until| *until <= now);
                if eligible && urgent_busy < WINDOW && !picked.contains(key) {
                    ctx.checker.violation(format!(
                        "node {} held back a FLASH for {:?} with room in its window",
                        self.name, link.hop
                    ));
                }
            }
            for key in picked {
                let Some(entry) = queue.get(&key) else {
                    link.outbound.taken(key);
                    continue;
                };
                let Some(envelope) = self.store.envelopes.get(&entry.cable) else {
                    continue;
                };
                link.awaiting.insert(key, now);
                link.deferred.remove(&key);
                ctx.out.push((
                    Addr::Node(*peer),
                    Msg::Forward {
                        key,
                        envelope: envelope.clone(),
                        devices: entry
                            .devices
                            .iter()
                            .map(|d| d.as_bytes().to_vec())
                            .collect(),
                        accepted_at_ms: entry.accepted_at_ms,
                    },
                ));
            }
        }
    }

    /// The planted rewrite: keep a copy of the log once it has entries, and go back to it
    /// once the node has signed a checkpoint well past it.
    fn rewrite_history(&mut self, ctx: &mut Ctx<'_>) {
        let Some(audit) = &self.audit else {
            return;
        };
        let size = audit.size();
        let signed = audit.latest_checkpoint().map_or(0, |c| c.checkpoint.size);
        match &self.rewrite.copy {
            None if size > 0 => self.rewrite.copy = Some((size, self.audit_store.snapshot())),
            Some((at, copy)) if !self.rewrite.done && signed >= at + 4 => {
                let copy = copy.clone();
                if let Some(audit) = self.audit.take() {
                    let _ = audit.close();
                }
                self.audit_store.restore(copy);
                self.rewrite.done = true;
                *ctx.checker.history.entry(self.index).or_default() += 1;
                if let Err(e) = self.restart() {
                    ctx.checker.violation(e);
                }
            }
            _ => {}
        }
    }

    fn offer_checkpoint(&mut self, ctx: &mut Ctx<'_>) {
        if self.sabotage == Sabotage::RewriteHistory {
            self.rewrite_history(ctx);
        }
        let Some(audit) = &self.audit else {
            return;
        };
        let signed = match audit.checkpoint_now() {
            Ok(signed) => signed,
            Err(e) => {
                ctx.checker.violation(format!(
                    "node {} could not sign a checkpoint: {e}",
                    self.name
                ));
                return;
            }
        };
        let size = signed.checkpoint.size;
        ctx.checker.signed(self.index, size, signed.checkpoint.root);
        for (peer, link) in &mut self.links {
            if link.offered == Some(size) || link.their_size == size {
                continue;
            }
            let old = link.their_size.min(size);
            let proof = if old == 0 {
                Vec::new()
            } else {
                match audit.consistency_proof(old, size) {
                    Ok(proof) => proof,
                    Err(e) => {
                        ctx.checker.violation(format!(
                            "node {} cannot prove consistency from {old}: {e}",
                            self.name
                        ));
                        continue;
                    }
                }
            };
            link.offered = Some(size);
            ctx.out.push((
                Addr::Node(*peer),
                Msg::Witness {
                    old_size: old,
                    proof,
                    note: signed.note.to_text(),
                },
            ));
        }
    }
}

fn ms(now: u64) -> Duration {
    Duration::from_millis(now)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
