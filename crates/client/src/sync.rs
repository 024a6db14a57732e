//! Syncing with the node: the directory, then the outbox (attachments first, then each cable,
//! kept until its custody receipt verifies), then the device's queue (each cable checked,
//! stored, then acknowledged), then the receipts that arrival produced. Also the operations
//! that need the node: fetching attachments, rotating receive keys, and the wipe notice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use valise_crypto::custody;
use valise_crypto::envelope::{decode_envelope, open};
use valise_crypto::identity::{DeviceId, IdentityPublicKey};
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_proto::v1::{
    DirectorySync, PublishReceiveKeys, Receipt, ReceiptKind, WipeNotice, client_frame, node_frame,
};

use crate::attachments::{self, INCOMING_DIR, OUTGOING_DIR};
use crate::client::{Client, Event, now_ms};
use crate::connection::{NetError, NodeLink};
use crate::error::ClientError;
use crate::inbox::InboxEntry;
use crate::keys::{RECEIVE_KEY_VALIDITY_MS, save_receive_key};
use crate::outbox::{self, OutboxEntry};
use crate::receipt;
use crate::store::{StoreError, Table};

/// Receive keys are replaced once the newest is this old; older ones stay for
/// [`crate::keys::RECEIVE_KEY_RETENTION_MS`] after that, so cables already sealed to them open.
pub const ROTATE_AFTER_MS: u64 = 7 * 24 * 3_600_000;
/// Most receive keys a device publishes at once (a node accepts up to 8). Only keys still
/// valid are published; older ones stay on the device for their retention, so cables already
/// sealed to them open.
pub const MAX_PUBLISHED_KEYS: usize = 8;
/// How long a wipe waits for the node before giving up on telling it.
const WIPE_NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// Progress of a long transfer, for a progress bar.
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes starts.
    fn start(&self, label: &str, total: u64);
    /// `done` bytes of it are through.
    fn advance(&self, done: u64);
    /// It is over.
    fn finish(&self);
    /// The transfers that follow belong to `cable` (hex) at `stage`, for front ends that show
    /// each cable's progress by itself.
    fn context(&self, _stage: TransferStage, _cable: &str) {}
}

/// What an attachment transfer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStage {
    /// Encrypting a file into the outbox, at compose.
    Sealing,
    /// Uploading its ciphertext to the node.
    Uploading,
    /// Fetching, checking and decrypting a received one into a folder.
    Saving,
}

impl TransferStage {
    /// The verb a front end shows.
    pub fn verb(self) -> &'static str {
        match self {
            TransferStage::Sealing => "Sealing",
            TransferStage::Uploading => "Uploading",
            TransferStage::Saving => "Saving",
        }
    }
}

/// No progress display.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Why the node could not be reached; `None` when the sync ran.
    pub offline: Option<String>,
    /// Directory updates applied.
    pub directory_updates: usize,
    /// Cables the node took custody of (hex ids); receipts not counted.
    pub sent: Vec<String>,
    /// Cables the node refused for good: id and reason.
    pub refused: Vec<(String, String)>,
    /// Cables still waiting in the outbox.
    pub waiting: usize,
    /// Cables received and stored.
    pub received: usize,
    /// Receipts applied to sent cables.
    pub receipts: usize,
    /// Deliveries refused by this device (forged, altered, not for it), with why.
    pub rejected: Vec<String>,
    /// Whether receive keys were rotated on schedule.
    pub rotated: bool,
}

/// What a connection is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Directory, rotation, outbox, queue, receipts.
    Full,
    /// The outbox only.
    Outbox,
}

/// What the delivery handler gathers: receipts to send back, per sending device.
#[derive(Default)]
struct Arrivals {
    receipts: BTreeMap<Vec<u8>, (i32, Vec<Receipt>)>,
    received: usize,
    applied: usize,
    rejected: Vec<String>,
    changed: Vec<String>,
}

impl Client {
    /// Syncs with the node. A node that cannot be reached is not an error: the report says so
    /// and the local store stays as it was.
    pub async fn sync(&mut self, progress: &dyn Progress) -> Result<SyncReport, ClientError> {
        self.connect_and(Scope::Full, progress).await
    }

    /// Sends only what waits in the outbox (e.g. the receipt `read` or `ack` just queued),
    /// without taking in the directory or the queue again.
    pub async fn send_pending(
        &mut self,
        progress: &dyn Progress,
    ) -> Result<SyncReport, ClientError> {
        self.connect_and(Scope::Outbox, progress).await
    }

    async fn connect_and(
        &mut self,
        scope: Scope,
        progress: &dyn Progress,
    ) -> Result<SyncReport, ClientError> {
        match self.connect().await {
            Ok(link) => self.sync_over(link, scope, progress).await,
            Err(e) => {
                self.emit(Event::Offline {
                    reason: e.to_string(),
                });
                Ok(SyncReport {
                    offline: Some(e.to_string()),
                    waiting: self.waiting()?,
                    ..SyncReport::default()
                })
            }
        }
    }

    /// Runs `scope` on a connection already open, then closes it.
    pub(crate) async fn sync_over(
        &mut self,
        link: NodeLink,
        scope: Scope,
        progress: &dyn Progress,
    ) -> Result<SyncReport, ClientError> {
        let report = self.sync_on_link(&link, scope, progress).await;
        link.close();
        report
    }

    /// Runs `scope` on a connection already open, and leaves it open (a live client keeps it
    /// for its subscription).
    pub(crate) async fn sync_on_link(
        &mut self,
        link: &NodeLink,
        scope: Scope,
        progress: &dyn Progress,
    ) -> Result<SyncReport, ClientError> {
        let mut report = SyncReport::default();
        self.learn_node(link)?;
        self.emit(Event::Online {
            node: link.welcome().node.clone(),
        });
        self.emit(Event::SyncStarted);
        let result = match scope {
            Scope::Full => self.sync_on(link, progress, &mut report).await,
            Scope::Outbox => self.flush_outbox(link, progress, &mut report).await,
        };
        match result {
            Ok(()) => {}
            Err(ClientError::Net(e)) if e.is_transient() => report.offline = Some(e.to_string()),
            Err(e) => return Err(e),
        }
        report.waiting = self.waiting()?;
        self.emit(Event::SyncFinished {
            received: report.received,
            sent: report.sent.len(),
            waiting: report.waiting,
        });
        Ok(report)
    }

    /// Cables still to go: in the outbox and not refused.
    fn waiting(&self) -> Result<usize, ClientError> {
        Ok(self.outbox()?.iter().filter(|e| !e.refused).count())
    }

    async fn sync_on(
        &mut self,
        link: &NodeLink,
        progress: &dyn Progress,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        report.directory_updates = self.sync_directory(link).await?;
        let newest = self.keys.receive.iter().map(|k| k.valid_from_ms()).max();
        if newest.is_none_or(|at| now_ms().saturating_sub(at) >= ROTATE_AFTER_MS) {
            self.rotate_on(link).await?;
            report.rotated = true;
        }
        self.flush_outbox(link, progress, report).await?;
        let arrivals = self.receive_queued(link).await?;
        report.received = arrivals.received;
        report.receipts = arrivals.applied;
        report.rejected = arrivals.rejected;
        // Receipts the arrivals produced go out at once.
        self.flush_outbox(link, progress, report).await
    }

    /// The node's name and custody key, learned over the authenticated channel the first time;
    /// its limits and extra TAGS, as they are now.
    fn learn_node(&mut self, link: &NodeLink) -> Result<(), ClientError> {
        let welcome = link.welcome();
        let mut changed = false;
        if self.profile.node_key.is_empty() || self.profile.node.is_empty() {
            self.profile.node_key = welcome.node_key.clone();
            self.profile.node = welcome.node.clone();
            changed = true;
        }
        if let Some(cert) = &welcome.node_key_certificate {
            // Checked before it is kept: it is what lets a third party trust this node's
            // custody receipts later.
            let root = valise_crypto::tls::directory_root(&self.profile.ca_pem)
                .map_err(|e| ClientError::Crypto(e.to_string()))?;
            let key = valise_crypto::custody::verify_node_key(
                cert,
                &root,
                &self.profile.ministry,
                &welcome.node,
                now_ms(),
            )
            .map_err(|e| NetError::Protocol(e.to_string()))?;
            if key.as_bytes().as_slice() != welcome.node_key.as_slice() {
                return Err(NetError::Protocol(
                    "the node's key certificate is for another key than the one it uses".into(),
                )
                .into());
            }
            if self.profile.node_key_certificate.as_ref() != Some(cert) {
                self.profile.node_key_certificate = Some(cert.clone());
                changed = true;
            }
        }
        if self.profile.limits != welcome.limits || self.profile.extra_tags != welcome.extra_tags {
            self.profile.limits = welcome.limits;
            self.profile.extra_tags = welcome.extra_tags.clone();
            changed = true;
        }
        if changed {
            self.profile.save(&self.store)?;
        }
        Ok(())
    }

    async fn sync_directory(&mut self, link: &NodeLink) -> Result<usize, ClientError> {
        let mut applied = 0;
        loop {
            let ask = client_frame::Frame::DirectorySync(DirectorySync {
                after_version: self.directory.version(),
                wait_ms: 0,
            });
            let page = match link.request(ask).await?.frame {
                Some(node_frame::Frame::DirectoryPage(page)) => page,
                _ => return Err(NetError::Protocol("expected a directory page".into()).into()),
            };
            let empty = page.updates.is_empty();
            applied += crate::directory::apply(&self.store, &mut self.directory, page.updates)?;
            if empty || self.directory.version() >= page.version {
                if applied > 0 {
                    self.emit(Event::DirectoryChanged {
                        version: self.directory.version(),
                    });
                }
                return Ok(applied);
            }
        }
    }

    async fn flush_outbox(
        &mut self,
        link: &NodeLink,
        progress: &dyn Progress,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        let entries = self.outbox()?;
        // Reached the node: everything waiting goes now, most urgent first. One cable that
        // fails never holds back the others behind it.
        for entry in outbox::send_order(&entries) {
            let mut entry = entry.clone();
            match self.submit(link, &entry, progress).await {
                Ok(receipt) => {
                    let at = receipt.accepted_at_ms;
                    self.store.delete(Table::Outbox, &entry.cable_id)?;
                    self.drop_outgoing(&entry);
                    if let Some(mut sent) = self.sent(&entry.cable_id)? {
                        sent.custody_taken(at);
                        sent.custody.push(receipt);
                        self.save_sent(&sent)?;
                    }
                    if !entry.is_receipt {
                        report.sent.push(hex::encode(&entry.cable_id));
                        self.emit(Event::StatusChanged {
                            id: hex::encode(&entry.cable_id),
                        });
                    }
                }
                // The node is away or busy: everything waits for the next sync.
                Err(ClientError::Net(e)) if e.is_transient() && !link.is_open() => {
                    entry.failed(&e.to_string());
                    self.store
                        .put(Table::Outbox, &entry.cable_id, &entry.encode_to_vec())?;
                    return Err(ClientError::Net(e));
                }
                Err(ClientError::Net(e))
                    if e.is_transient()
                        && (e.is_busy() || entry.attempts + 1 < outbox::MAX_STREAM_FAILURES) =>
                {
                    entry.failed(&e.to_string());
                    self.store
                        .put(Table::Outbox, &entry.cable_id, &entry.encode_to_vec())?;
                    if e.is_busy() {
                        return Err(ClientError::Net(e));
                    }
                    // This cable's stream broke while the connection stayed up: the next goes.
                }
                Err(e) => {
                    let reason = match &e {
                        ClientError::Net(net) if net.is_transient() => format!(
                            "the node broke off this cable {} times while the connection \
                             stayed up ({net}); it may be over a limit of the node's",
                            outbox::MAX_STREAM_FAILURES
                        ),
                        _ => e.to_string(),
                    };
                    self.refused_for_good(&entry, &reason)?;
                    if !entry.is_receipt {
                        self.emit(Event::Refused {
                            id: hex::encode(&entry.cable_id),
                            reason: reason.clone(),
                        });
                        report.refused.push((hex::encode(&entry.cable_id), reason));
                    }
                }
            }
        }
        Ok(())
    }

    /// A cable the node will never take leaves the outbox, so it holds nothing back; its
    /// status keeps the reason.
    fn refused_for_good(&mut self, entry: &OutboxEntry, reason: &str) -> Result<(), ClientError> {
        self.store.delete(Table::Outbox, &entry.cable_id)?;
        self.drop_outgoing(entry);
        if let Some(mut sent) = self.sent(&entry.cable_id)? {
            sent.refused = reason.to_owned();
            self.save_sent(&sent)?;
            self.emit(Event::StatusChanged {
                id: hex::encode(&entry.cable_id),
            });
        }
        Ok(())
    }

    /// Deletes the sealed attachment copies an outbox entry was waiting to upload.
    fn drop_outgoing(&self, entry: &OutboxEntry) {
        for sha in &entry.attachments {
            let file = self.store.dir().join(OUTGOING_DIR).join(hex::encode(sha));
            let _ = std::fs::remove_file(file);
        }
    }

    /// Uploads the entry's attachments, submits it, and checks the custody receipt, which it
    /// returns.
    async fn submit(
        &self,
        link: &NodeLink,
        entry: &OutboxEntry,
        progress: &dyn Progress,
    ) -> Result<valise_proto::v1::CustodyReceipt, ClientError> {
        // The names the diplomat attached, for the progress bar.
        let names: Vec<(Vec<u8>, String)> = self
            .sent(&entry.cable_id)?
            .and_then(|s| s.body)
            .map(|b| {
                b.attachments
                    .into_iter()
                    .map(|a| (a.ciphertext_sha256, a.name))
                    .collect()
            })
            .unwrap_or_default();
        if !entry.attachments.is_empty() {
            progress.context(TransferStage::Uploading, &hex::encode(&entry.cable_id));
        }
        for sha in &entry.attachments {
            let file = self.store.dir().join(OUTGOING_DIR).join(hex::encode(sha));
            let size =
                std::fs::metadata(&file)
                    .map(|m| m.len())
                    .map_err(|e| ClientError::Attachment {
                        name: file.display().to_string(),
                        reason: format!("its encrypted copy is gone ({e}); send the cable again"),
                    })?;
            let name = names
                .iter()
                .find(|(digest, _)| digest == sha)
                .map_or("an attachment", |(_, name)| name.as_str());
            progress.start(
                &format!("uploading {}", crate::text::single_line(name)),
                size,
            );
            let uploaded = link.upload(&file, sha, &|n| progress.advance(n)).await;
            progress.finish();
            uploaded?;
        }
        // Naming the attachments lets the nodes carry them to recipients at other posts.
        let submit = client_frame::Frame::Submit(valise_proto::v1::Submit {
            envelope: entry.envelope.clone(),
            attachments: entry.attachments.clone(),
        });
        let receipt = match link.request(submit).await?.frame {
            Some(node_frame::Frame::CustodyReceipt(r)) => r,
            _ => return Err(NetError::Protocol("expected a custody receipt".into()).into()),
        };
        let key = IdentityPublicKey::from_slice(&self.profile.node_key)
            .map_err(|_| ClientError::Crypto("the node's custody key is malformed".into()))?;
        custody::verify(
            &receipt,
            &self.profile.node,
            &key,
            &entry.cable_id,
            &entry.envelope,
        )
        .map_err(|e| {
            // Not custody: the cable stays in the outbox and is tried again.
            ClientError::Net(NetError::Broken(format!(
                "{e}; the cable is kept and retried"
            )))
        })?;
        Ok(receipt)
    }

    async fn receive_queued(&mut self, link: &NodeLink) -> Result<Arrivals, ClientError> {
        let mut arrivals = Arrivals::default();
        let mut failure: Option<ClientError> = None;
        {
            let mut handle = |delivery: &valise_proto::v1::Delivery| {
                match self.accept_delivery(&delivery.envelope, &mut arrivals) {
                    Ok(ack) => Ok(ack),
                    Err(e) => {
                        // A store failure: nothing is acknowledged, the node keeps the cable.
                        let text = e.to_string();
                        failure = Some(e);
                        Err(text)
                    }
                }
            };
            let received = link.receive_queued(&mut handle).await;
            if let Some(e) = failure.take() {
                return Err(e);
            }
            received?;
        }
        self.settle(&mut arrivals)?;
        Ok(arrivals)
    }

    /// After deliveries were stored: queues the receipts they call for, and says which sent
    /// cables changed.
    fn settle(&mut self, arrivals: &mut Arrivals) -> Result<(), ClientError> {
        let now = now_ms();
        let receipts = std::mem::take(&mut arrivals.receipts);
        for (device, (precedence, receipts)) in receipts {
            if let Some(note) = self.queue_receipts(&device, precedence, receipts, now)? {
                tracing::warn!(device = %hex::encode(&device), "{note}");
            }
        }
        for id in std::mem::take(&mut arrivals.changed) {
            self.emit(Event::StatusChanged { id });
        }
        for why in &arrivals.rejected {
            self.emit(Event::DeliveryRefused {
                reason: why.clone(),
            });
        }
        Ok(())
    }

    /// One delivery pushed on a live subscription: checked, stored, its receipts queued.
    /// Returns whether the node may drop it (see [`Self::accept_delivery`]) and whether it
    /// produced receipts to send.
    pub(crate) fn take_pushed(
        &mut self,
        delivery: &valise_proto::v1::Delivery,
    ) -> Result<(bool, bool), ClientError> {
        let mut arrivals = Arrivals::default();
        let ack = self.accept_delivery(&delivery.envelope, &mut arrivals)?;
        let receipts = !arrivals.receipts.is_empty();
        self.settle(&mut arrivals)?;
        Ok((ack, receipts))
    }

    /// Sends what waits in the outbox on an open link (receipts, new cables).
    pub(crate) async fn flush_on(
        &mut self,
        link: &NodeLink,
        progress: &dyn Progress,
    ) -> Result<SyncReport, ClientError> {
        self.sync_on_link(link, Scope::Outbox, progress).await
    }

    /// Pulls directory updates on an open link.
    pub(crate) async fn directory_on(&mut self, link: &NodeLink) -> Result<usize, ClientError> {
        self.sync_directory(link).await
    }

    /// Checks and stores one delivered envelope. `Ok(true)`: stored (or a duplicate, or
    /// refused for good and reported), so the node may drop it. `Ok(false)`: keep it queued
    /// (the sender is not in this device's directory yet).
    fn accept_delivery(
        &mut self,
        bytes: &[u8],
        arrivals: &mut Arrivals,
    ) -> Result<bool, ClientError> {
        let envelope = match decode_envelope(bytes) {
            Ok(e) => e,
            Err(e) => {
                arrivals.rejected.push(format!("a malformed delivery: {e}"));
                return Ok(true);
            }
        };
        let Some(header) = envelope.header.clone() else {
            arrivals.rejected.push("a delivery without a header".into());
            return Ok(true);
        };
        let id = hex::encode(&header.cable_id);
        let Some(sender) = DeviceId::from_slice(&header.sender_device)
            .ok()
            .and_then(|d| self.directory.lookup(&d))
            .map(|e| e.device.clone())
        else {
            // Maybe enrolled after this device's last directory sync: try again next time.
            return Ok(false);
        };
        // The node checked these too, but a node can be compromised: the cable must name its
        // signing device's own address, and stay within the sender's clearance.
        if let Err(why) = check_sender(&header, &sender) {
            arrivals.rejected.push(format!("cable {id}: {why}"));
            return Ok(true);
        }
        let opened = match open(
            &envelope,
            &sender.identity,
            &self.device_id(),
            &self.keys.receive,
        ) {
            Ok(o) => o,
            Err(e) => {
                arrivals
                    .rejected
                    .push(format!("cable {id} from {}: {e}", sender.address()));
                return Ok(true);
            }
        };
        if receipt::is_receipt_body(&opened.body) {
            for r in &opened.body.receipts {
                // Also checks that the receipt is the sending device's own.
                if receipt::verify(r, &sender.identity).is_err() {
                    arrivals.rejected.push(format!(
                        "a receipt from {} that does not verify",
                        sender.address()
                    ));
                    continue;
                }
                let Some(mut sent) = self.sent(&r.cable_id)? else {
                    continue;
                };
                let applied = matches!(sent.apply_receipt(&r.device_id, r.kind, r.at_ms), Ok(true));
                // Kept whether or not it moved the state: each is signed evidence.
                let new = !sent.receipts.contains(r)
                    && sent.recipients.iter().any(|x| x.device_id == r.device_id);
                if new {
                    sent.receipts.push(r.clone());
                }
                if applied || new {
                    self.save_sent(&sent)?;
                }
                if applied {
                    arrivals.applied += 1;
                    arrivals.changed.push(hex::encode(&r.cable_id));
                }
            }
            return Ok(true);
        }
        if self.store.get(Table::Inbox, &header.cable_id)?.is_some() {
            return Ok(true);
        }
        // Reached through an action addressee (a person, an office or a post), or only as
        // info: only action addressees are asked to acknowledge.
        let me = self.device_id();
        let action = opened.header.action_addressees.iter().any(|a| {
            self.directory
                .resolve(a)
                .is_ok_and(|devices| devices.iter().any(|d| d.id == me))
        });
        let delivered = receipt::sign(
            &self.keys.identity,
            &header.cable_id,
            ReceiptKind::Delivered,
            now_ms(),
        )
        .map_err(|e| ClientError::Crypto(e.to_string()))?;
        let entry = InboxEntry {
            envelope: bytes.to_vec(),
            receipts: vec![delivered.clone()],
            header: Some(opened.header),
            body: Some(opened.body),
            received_at_ms: now_ms(),
            read: false,
            acknowledged: false,
            sender_identity: sender.identity.as_bytes().to_vec(),
            sender_address: sender.address(),
            role: if action {
                crate::inbox::ROLE_ACTION
            } else {
                crate::inbox::ROLE_INFO
            },
        };
        self.save_received(&header.cable_id, &entry)?;
        arrivals.received += 1;
        arrivals
            .receipts
            .entry(header.sender_device.clone())
            .or_insert_with(|| (header.precedence, Vec::new()))
            .1
            .push(delivered);
        self.emit(Event::Received {
            id,
            precedence: entry.precedence(),
        });
        Ok(true)
    }

    /// Fetches, checks and decrypts every attachment of a received cable into `dest`.
    pub async fn save_attachments(
        &self,
        id: &str,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<Vec<PathBuf>, ClientError> {
        let (key, entry) = self.received(id)?;
        let metas = entry.body.map(|b| b.attachments).unwrap_or_default();
        if metas.is_empty() {
            return Ok(Vec::new());
        }
        let link = self.connect().await.map_err(|e| ClientError::NeedsNode {
            what: "fetching attachments",
            reason: e.to_string(),
        })?;
        let incoming = self.store.dir().join(INCOMING_DIR);
        std::fs::create_dir_all(&incoming).map_err(|e| ClientError::Attachment {
            name: incoming.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut saved = Vec::new();
        progress.context(TransferStage::Saving, &hex::encode(&key));
        for (index, meta) in metas.iter().enumerate() {
            let part = incoming.join(format!("{}.part", hex::encode(&meta.ciphertext_sha256)));
            progress.start(
                &meta.name,
                valise_crypto::attachment::ciphertext_len(meta.size),
            );
            let fetched = link
                .fetch(&meta.ciphertext_sha256, &part, &|done, _| {
                    progress.advance(done)
                })
                .await;
            progress.finish();
            let result = fetched
                .map_err(|e| ClientError::Attachment {
                    name: attachments::safe_name(&meta.name, index),
                    reason: e.to_string(),
                })
                .and_then(|_| attachments::open_file(meta, &key, index, &part, dest));
            let _ = std::fs::remove_file(&part);
            saved.push(result?);
        }
        link.close();
        Ok(saved)
    }

    /// Makes a new receive key, publishes it through the node, and keeps the older ones until
    /// they expire. Needs the node.
    pub async fn rotate_keys(&mut self) -> Result<(), ClientError> {
        let link = self.connect().await.map_err(|e| ClientError::NeedsNode {
            what: "rotating keys",
            reason: e.to_string(),
        })?;
        self.learn_node(&link)?;
        let result = self.rotate_on(&link).await;
        if result.is_ok() {
            // The node's re-signed record arrives through the directory.
            self.sync_directory(&link).await?;
        }
        link.close();
        result
    }

    async fn rotate_on(&mut self, link: &NodeLink) -> Result<(), ClientError> {
        let now = now_ms();
        let fresh = ReceiveKeyPair::generate(now, now.saturating_add(RECEIVE_KEY_VALIDITY_MS))
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        // Kept before it is published: a key senders may use is never lost.
        save_receive_key(&self.store, &fresh)?;
        self.keys.receive.push(fresh);
        self.keys.erase_expired(&self.store, now)?;
        // The newest still valid, oldest first ("newest last" on the wire). Keys kept only for
        // their retention are not offered to senders.
        let valid: Vec<&ReceiveKeyPair> = self
            .keys
            .receive
            .iter()
            .filter(|k| k.valid_until_ms() >= now)
            .collect();
        let skip = valid.len().saturating_sub(MAX_PUBLISHED_KEYS);
        let receive_keys = valid
            .into_iter()
            .skip(skip)
            .map(|k| k.to_signed_record(&self.keys.identity))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        let publish = client_frame::Frame::PublishReceiveKeys(PublishReceiveKeys { receive_keys });
        match link.request(publish).await?.frame {
            Some(node_frame::Frame::ReceiveKeysPublished(published)) => {
                if let Some(record) = published.record {
                    self.profile.record = Some(record);
                    self.profile.save(&self.store)?;
                }
                self.emit(Event::KeysRotated);
                Ok(())
            }
            _ => Err(NetError::Protocol("expected ReceiveKeysPublished".into()).into()),
        }
    }

    /// Emergency wipe: erases the storage key first (everything sealed under it is unreadable
    /// from that instant), then the store and every file of this device. Then, if the node can
    /// be reached within a few seconds, tells it, and it revokes this device. Returns whether
    /// the node was told, and if not why.
    pub async fn wipe_emergency(self) -> Result<Result<(), String>, ClientError> {
        Ok(self.wipe_local()?.tell_node().await)
    }

    /// The first half of [`Client::wipe_emergency`]: erases the storage key, then the store
    /// and every file of this device, at once and without the network. What is left can only
    /// tell the node.
    pub fn wipe_local(self) -> Result<WipeNotifier, ClientError> {
        let dir = self.store.dir().to_owned();
        let tls = valise_crypto::tls::client_config(&self.profile.ca_pem, Some(&self.keys.tls))
            .map_err(|e| e.to_string());
        let addr = self.profile.node_addr.clone();
        let name = self.profile.node_name.clone();
        // The store must be closed before its files go; the keys needed to tell the node stay
        // in memory only, and are wiped when dropped.
        drop(self);
        wipe_files(&dir)?;
        Ok(WipeNotifier { tls, addr, name })
    }
}

/// What a wiped device keeps, in memory only, to tell its node it was wiped.
pub struct WipeNotifier {
    tls: Result<rustls::ClientConfig, String>,
    addr: String,
    name: String,
}

impl WipeNotifier {
    /// Tells the node, if it answers within a few seconds; it revokes the device. Returns
    /// whether it was told, and if not why.
    pub async fn tell_node(self) -> Result<(), String> {
        let WipeNotifier { tls, addr, name } = self;
        let tls = tls?;
        let notify = async {
            let link =
                NodeLink::connect(&addr, &name, tls, 0, crate::connection::CONNECT_TIMEOUT).await?;
            let notice = client_frame::Frame::WipeNotice(WipeNotice {
                reason: "emergency".into(),
            });
            let answer = link.request(notice).await;
            link.close();
            match answer?.frame {
                Some(node_frame::Frame::WipeConfirmed(_)) => Ok(()),
                _ => Err(NetError::Protocol("expected WipeConfirmed".into())),
            }
        };
        match tokio::time::timeout(WIPE_NOTICE_TIMEOUT, notify).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {WIPE_NOTICE_TIMEOUT:?}")),
        }
    }
}

/// What a recipient checks of a sender beyond the signature: the header's `from` is the
/// signing device's own address, and the classification is within the sender's clearance.
fn check_sender(
    header: &valise_proto::v1::RoutingHeader,
    sender: &valise_crypto::directory::VerifiedDevice,
) -> Result<(), String> {
    let address = sender.address();
    if header.from != address {
        return Err(format!(
            "it says it is from {}, but it is signed by a device of {address}: refused as forged",
            crate::text::single_line(&header.from)
        ));
    }
    let classification = valise_proto::v1::Classification::try_from(header.classification)
        .unwrap_or(valise_proto::v1::Classification::Unspecified);
    if sender.clearance < classification {
        return Err(format!(
            "{address} is cleared for {} only and may not send a {} cable: refused",
            sender.clearance.cable_name(),
            classification.cable_name()
        ));
    }
    Ok(())
}

/// Erases a data directory without unlocking it: the storage key first, then the store, then
/// the attachment folders. Returns whether there was a store.
pub fn wipe_files(dir: &Path) -> Result<bool, ClientError> {
    let existed = crate::store::wipe(dir)?;
    for sub in [OUTGOING_DIR, INCOMING_DIR] {
        let path = dir.join(sub);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| StoreError::Io(e.to_string()))?;
        }
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mallory() -> valise_crypto::directory::VerifiedDevice {
        let key = valise_crypto::identity::IdentityKeyPair::from_seed(&[3; 32]).unwrap();
        valise_crypto::directory::VerifiedDevice {
            id: key.device_id(),
            user: "mallory".into(),
            post: "paris".into(),
            display_name: "Mallory".into(),
            offices: vec![],
            clearance: valise_proto::v1::Classification::Secret,
            identity: *key.public(),
            receive_keys: vec![],
            enrolled_at_ms: 1,
            foreign_national: false,
        }
    }

    fn header(
        from: &str,
        classification: valise_proto::v1::Classification,
    ) -> valise_proto::v1::RoutingHeader {
        valise_proto::v1::RoutingHeader {
            from: from.into(),
            classification: classification as i32,
            ..Default::default()
        }
    }

    /// A compromised node may pass on a cable whose signature is mallory's but whose `from`
    /// says alice; the recipient refuses it on its own, naming both.
    #[test]
    fn a_recipient_refuses_a_cable_naming_another_sender_than_its_signer() {
        use valise_proto::v1::Classification;
        let why =
            check_sender(&header("alice@paris", Classification::Secret), &mallory()).unwrap_err();
        assert!(
            why.contains(
                "says it is from alice@paris, but it is signed by a device of mallory@paris"
            ),
            "{why}"
        );
        let why = check_sender(
            &header("alice@paris\u{1b}[2J", Classification::Secret),
            &mallory(),
        )
        .unwrap_err();
        assert!(
            !why.contains('\u{1b}'),
            "the claim is shown, not obeyed: {why}"
        );
        let why = check_sender(
            &header("mallory@paris", Classification::TopSecret),
            &mallory(),
        )
        .unwrap_err();
        assert!(
            why.contains(
                "mallory@paris is cleared for SECRET only and may not send a TOP SECRET cable"
            ),
            "{why}"
        );
        assert!(check_sender(&header("mallory@paris", Classification::Secret), &mallory()).is_ok());
    }
}
