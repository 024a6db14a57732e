//! [`ClientHandle`]: the unlocked client on a task of its own, for front ends that must never
//! block (a window's frame loop, a terminal watching events). The task owns the [`Client`];
//! the handle, which clones freely, sends it requests over a channel and awaits the answers;
//! events go out to every listener as they happen.
//!
//! While the node can be reached the task keeps one connection with a live subscription: the
//! node pushes each cable and each receipt as soon as it takes custody of it, and the task
//! stores it, acknowledges it, sends the receipts it calls for, and says so in an event. While
//! the node cannot be reached the task serves requests from the store and tries again after
//! 1 s, doubling to 5 minutes, saying when in an event. Slow work (Argon2id at unlock, sled,
//! sealing, opening) runs on the task or on blocking threads, never on the caller's.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use zeroize::Zeroizing;

use crate::client::{Client, DraftCheck, Event};
use crate::compose::CableDraft;
use crate::connection::{LiveEvent, NodeLink};
use crate::contacts::Verification;
use crate::enrol::Invitation;
use crate::error::ClientError;
use crate::outbox;
use crate::sync::{NoProgress, Progress, SyncReport, TransferStage};
use crate::views::{AddresseeView, CableView, DirectoryView, InboxRow, SentView};

/// How often a live client pulls directory updates (the node pushes cables, not directory
/// changes).
const DIRECTORY_EVERY: Duration = Duration::from_secs(30);

/// A request for the client's task, and where its answer goes.
enum Request {
    Compose(CableDraft, oneshot::Sender<Result<String, ClientError>>),
    MarkRead(String, oneshot::Sender<Result<CableView, ClientError>>),
    Acknowledge(String, oneshot::Sender<Result<CableView, ClientError>>),
    Inbox(oneshot::Sender<Result<Vec<InboxRow>, ClientError>>),
    Cable(String, oneshot::Sender<Result<CableView, ClientError>>),
    Sent(oneshot::Sender<Result<Vec<SentView>, ClientError>>),
    Directory(String, oneshot::Sender<Vec<DirectoryView>>),
    Addressees(String, oneshot::Sender<Vec<AddresseeView>>),
    Check(CableDraft, oneshot::Sender<DraftCheck>),
    Reply(
        String,
        bool,
        oneshot::Sender<Result<CableDraft, ClientError>>,
    ),
    Verify(
        String,
        bool,
        oneshot::Sender<Result<Verification, ClientError>>,
    ),
    Cancel(String, oneshot::Sender<Result<String, ClientError>>),
    Forward(
        String,
        Vec<String>,
        Vec<String>,
        oneshot::Sender<Result<CableDraft, ClientError>>,
    ),
    SaveAttachments(
        String,
        PathBuf,
        oneshot::Receiver<()>,
        oneshot::Sender<Result<Vec<PathBuf>, ClientError>>,
    ),
    RotateKeys(oneshot::Sender<Result<(), ClientError>>),
    SyncNow(oneshot::Sender<Result<SyncReport, ClientError>>),
    Wipe(oneshot::Sender<Result<Result<(), String>, ClientError>>),
    Lock(oneshot::Sender<()>),
}

/// A cloneable handle to an unlocked client running on its own task.
#[derive(Clone)]
pub struct ClientHandle {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    address: String,
    device: String,
    node: String,
    root: String,
}

/// Events as a listener receives them. A listener that falls behind is told to reload
/// ([`Event::Reload`]) rather than silently missing events.
pub struct EventStream(broadcast::Receiver<Event>);

impl EventStream {
    /// The next event, or `None` once the client is locked and gone.
    pub async fn next(&mut self) -> Option<Event> {
        match self.0.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Event::Reload { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, without waiting (for a frame loop).
    pub fn try_next(&mut self) -> Option<Event> {
        match self.0.try_recv() {
            Ok(event) => Some(event),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(Event::Reload { missed }),
            Err(_) => None,
        }
    }
}

/// Why a request got no answer: the client's task has ended (locked or wiped).
fn gone() -> ClientError {
    ClientError::Locked
}

impl ClientHandle {
    /// Unlocks the store in `dir` (Argon2id on a blocking thread) and starts the client's task.
    /// Returns the handle and a stream that has every event from the first.
    pub async fn unlock(
        dir: PathBuf,
        passphrase: Zeroizing<Vec<u8>>,
    ) -> Result<(ClientHandle, EventStream), ClientError> {
        let client = tokio::task::spawn_blocking(move || Client::unlock(&dir, &passphrase))
            .await
            .map_err(|_| ClientError::Locked)??;
        Ok(ClientHandle::spawn(client))
    }

    /// Enrols a new device into `dir` with `invitation` (its checks, key generation and
    /// Argon2id off the caller's thread) and starts its task.
    pub async fn enrol(
        dir: PathBuf,
        passphrase: Zeroizing<Vec<u8>>,
        invitation: Invitation,
        kdf: crate::KdfParams,
    ) -> Result<(ClientHandle, EventStream), ClientError> {
        let client = crate::enrol::enrol(&dir, &passphrase, kdf, &invitation).await?;
        Ok(ClientHandle::spawn(client))
    }

    /// Starts the task for an unlocked client. Returns the handle and a stream that has every
    /// event from the first, the first sync's included.
    pub fn spawn(client: Client) -> (ClientHandle, EventStream) {
        let (requests, rx) = mpsc::channel(64);
        let events = client.events.clone();
        let stream = EventStream(events.subscribe());
        let address = client.address();
        let device = client.device_id().to_string();
        let node = client.profile().node_addr.clone();
        let root = valise_crypto::tls::root_fingerprint(&client.profile().ca_pem)
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        tokio::spawn(run(client, rx));
        (
            ClientHandle {
                requests,
                events,
                address,
                device,
                node,
                root,
            },
            stream,
        )
    }

    /// The user's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// This device's id, as the directory lists it.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The address (`host:port`) of the node that serves this device.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The fingerprint of the ministry root this device trusts, to compare with ministry IT's.
    pub fn root_fingerprint(&self) -> &str {
        &self.root
    }

    /// Another stream of events from now on.
    pub fn events(&self) -> EventStream {
        EventStream(self.events.subscribe())
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(request(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Checks, seals and queues a cable, and sends it if the node is there. Returns its id.
    pub async fn compose(&self, draft: CableDraft) -> Result<String, ClientError> {
        self.ask(|tx| Request::Compose(draft, tx)).await?
    }

    /// Opens a cable for reading: marks it read (a read receipt goes to its sender).
    pub async fn mark_read(&self, id: &str) -> Result<CableView, ClientError> {
        self.ask(|tx| Request::MarkRead(id.to_owned(), tx)).await?
    }

    /// Acknowledges a cable.
    pub async fn acknowledge(&self, id: &str) -> Result<CableView, ClientError> {
        self.ask(|tx| Request::Acknowledge(id.to_owned(), tx))
            .await?
    }

    /// The inbox, in reading order.
    pub async fn inbox(&self) -> Result<Vec<InboxRow>, ClientError> {
        self.ask(Request::Inbox).await?
    }

    /// A received cable, without marking it read.
    pub async fn cable(&self, id: &str) -> Result<CableView, ClientError> {
        self.ask(|tx| Request::Cable(id.to_owned(), tx)).await?
    }

    /// Every sent cable with its recipients, newest first.
    pub async fn sent(&self) -> Result<Vec<SentView>, ClientError> {
        self.ask(Request::Sent).await?
    }

    /// Directory entries matching `query`.
    pub async fn directory(&self, query: &str) -> Result<Vec<DirectoryView>, ClientError> {
        self.ask(|tx| Request::Directory(query.to_owned(), tx))
            .await
    }

    /// People, offices and posts matching `query`, for a compose picker.
    pub async fn addressees(&self, query: &str) -> Result<Vec<AddresseeView>, ClientError> {
        self.ask(|tx| Request::Addressees(query.to_owned(), tx))
            .await
    }

    /// What stands between `draft` and sending it, checked before anything is sealed.
    pub async fn check(&self, draft: CableDraft) -> Result<DraftCheck, ClientError> {
        self.ask(|tx| Request::Check(draft, tx)).await
    }

    /// A draft replying to a received cable (to its sender, or for `all` to everyone on it).
    pub async fn reply_draft(&self, id: &str, all: bool) -> Result<CableDraft, ClientError> {
        self.ask(|tx| Request::Reply(id.to_owned(), all, tx))
            .await?
    }

    /// Marks a person verified in person (`verified`), or forgets that they were.
    pub async fn set_verified(
        &self,
        address: &str,
        verified: bool,
    ) -> Result<Verification, ClientError> {
        self.ask(|tx| Request::Verify(address.to_owned(), verified, tx))
            .await?
    }

    /// Takes a queued cable out of the outbox.
    pub async fn cancel(&self, id: &str) -> Result<String, ClientError> {
        self.ask(|tx| Request::Cancel(id.to_owned(), tx)).await?
    }

    /// A draft forwarding a received cable (refused for NODIS and EXDIS).
    pub async fn forward_draft(
        &self,
        id: &str,
        to: Vec<String>,
        info: Vec<String>,
    ) -> Result<CableDraft, ClientError> {
        self.ask(|tx| Request::Forward(id.to_owned(), to, info, tx))
            .await?
    }

    /// Fetches, checks and decrypts a received cable's attachments into `dest`, with progress
    /// events; sending on (or dropping) the returned canceller stops it.
    pub async fn save_attachments(
        &self,
        id: &str,
        dest: PathBuf,
    ) -> (
        oneshot::Sender<()>,
        impl std::future::Future<Output = Result<Vec<PathBuf>, ClientError>> + use<>,
    ) {
        let (cancel, cancelled) = oneshot::channel();
        let (tx, rx) = oneshot::channel();
        let sent = self
            .requests
            .send(Request::SaveAttachments(id.to_owned(), dest, cancelled, tx))
            .await;
        let done = async move {
            sent.map_err(|_| gone())?;
            rx.await.map_err(|_| gone())?
        };
        (cancel, done)
    }

    /// Makes and publishes a new receive key.
    pub async fn rotate_keys(&self) -> Result<(), ClientError> {
        self.ask(Request::RotateKeys).await?
    }

    /// Syncs with the node now (directory, outbox, queue, receipts).
    pub async fn sync_now(&self) -> Result<SyncReport, ClientError> {
        self.ask(Request::SyncNow).await?
    }

    /// Emergency wipe: the storage key first, then everything; the node is told if it can be.
    /// The task ends. Returns whether the node was told, and if not why.
    pub async fn wipe(&self) -> Result<Result<(), String>, ClientError> {
        self.ask(Request::Wipe).await?
    }

    /// Locks the client: its task ends and drops every key it held.
    pub async fn lock(&self) {
        let _ = self.ask(Request::Lock).await;
    }
}

/// Progress of attachment transfers, as events: at most one per 1/64th of a file, so a large
/// file cannot flood slow listeners.
struct ProgressEvents {
    events: broadcast::Sender<Event>,
    state: std::sync::Mutex<Transfer>,
}

/// The transfer under way.
struct Transfer {
    stage: TransferStage,
    cable: String,
    attachment: usize,
    total: u64,
    shown: u64,
}

impl ProgressEvents {
    fn new(events: broadcast::Sender<Event>, stage: TransferStage, cable: &str) -> Self {
        ProgressEvents {
            events,
            state: std::sync::Mutex::new(Transfer {
                stage,
                cable: cable.to_owned(),
                attachment: 0,
                total: 0,
                shown: 0,
            }),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Transfer)) {
        // A poisoned lock only means a listener panicked mid-update: the counts are still fine.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state);
    }

    fn send(&self, t: &Transfer, done: u64) {
        let _ = self.events.send(Event::AttachmentProgress {
            stage: t.stage,
            cable: t.cable.clone(),
            attachment: t.attachment,
            done,
            total: t.total,
        });
    }
}

impl Progress for ProgressEvents {
    fn context(&self, stage: TransferStage, cable: &str) {
        self.with(|t| {
            t.stage = stage;
            t.cable = cable.to_owned();
            t.attachment = 0;
        });
    }
    fn start(&self, _label: &str, total: u64) {
        self.with(|t| {
            t.total = total;
            t.shown = 0;
            self.send(t, 0);
        });
    }
    fn advance(&self, done: u64) {
        self.with(|t| {
            let step = (t.total / 64).max(1);
            if done >= t.shown.saturating_add(step) || done >= t.total {
                t.shown = done;
                self.send(t, done);
            }
        });
    }
    fn finish(&self) {
        self.with(|t| {
            if t.shown < t.total {
                self.send(t, t.total);
            }
            t.attachment = t.attachment.saturating_add(1);
        });
    }
}

/// What a request or a link's end asks of the task.
enum Step {
    /// Keep serving.
    Continue,
    /// The link ended: connect again.
    Reconnect,
    /// The client is locked: end the task (dropping its keys).
    Stop,
    /// Wipe the device, answer, and end the task.
    Wipe(oneshot::Sender<Result<Result<(), String>, ClientError>>),
}

/// The client's task: connected and live while it can be, serving requests throughout.
async fn run(mut client: Client, mut requests: mpsc::Receiver<Request>) {
    let mut failures = 0u32;
    loop {
        match client.connect().await {
            Ok(link) => {
                failures = 0;
                if let Err(e) = client
                    .sync_on_link(&link, crate::sync::Scope::Full, &NoProgress)
                    .await
                {
                    client.emit(Event::Offline {
                        reason: e.to_string(),
                    });
                }
                let step = live(&mut client, &link, &mut requests).await;
                link.close();
                match step {
                    Step::Stop => return,
                    Step::Wipe(reply) => {
                        wipe(client, reply).await;
                        return;
                    }
                    Step::Continue | Step::Reconnect => {}
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = outbox::retry_delay(failures);
                client.emit(Event::Offline {
                    reason: e.to_string(),
                });
                client.emit(Event::Retrying {
                    in_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    reason: e.to_string(),
                });
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    tokio::select! {
                        request = requests.recv() => {
                            let Some(request) = request else { return };
                            match serve(&mut client, request, None).await {
                                Step::Stop => return,
                                Step::Wipe(reply) => {
                                    wipe(client, reply).await;
                                    return;
                                }
                                Step::Continue | Step::Reconnect => {}
                            }
                        }
                        () = tokio::time::sleep_until(deadline) => break,
                    }
                }
            }
        }
    }
}

/// Wipes the device: locally first (under a second, whatever the network), says so to every
/// listener, then tells the node if it can, and answers.
async fn wipe(client: Client, reply: oneshot::Sender<Result<Result<(), String>, ClientError>>) {
    let events = client.events.clone();
    match client.wipe_local() {
        Ok(notifier) => {
            let _ = events.send(Event::Wiped);
            let _ = reply.send(Ok(notifier.tell_node().await));
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// Serves on an open link with a live subscription until it ends.
async fn live(
    client: &mut Client,
    link: &NodeLink,
    requests: &mut mpsc::Receiver<Request>,
) -> Step {
    let mut subscription = match link.subscribe_live().await {
        Ok(s) => s,
        Err(e) => {
            client.emit(Event::Offline {
                reason: e.to_string(),
            });
            return Step::Reconnect;
        }
    };
    let mut directory = tokio::time::interval(DIRECTORY_EVERY);
    directory.tick().await;
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return Step::Stop };
                match serve(client, request, Some(link)).await {
                    Step::Continue => {}
                    other => return other,
                }
            }
            pushed = subscription.deliveries.recv() => match pushed {
                Some(LiveEvent::Delivery(delivery)) => match take_pushed(client, link, &delivery).await {
                    Ok((ack, receipts)) => {
                        if ack {
                            subscription.ack(delivery.queue_key.clone());
                        }
                        if receipts && client.flush_on(link, &NoProgress).await.is_err() {
                            return Step::Reconnect;
                        }
                    }
                    // A store failure: not acknowledged; the node delivers it again.
                    Err(e) => client.emit(Event::DeliveryRefused { reason: e.to_string() }),
                },
                Some(LiveEvent::CaughtUp) => {}
                None => {
                    client.emit(Event::Offline {
                        reason: "the node ended the subscription".into(),
                    });
                    return Step::Reconnect;
                }
            },
            _ = directory.tick() => {
                if client.directory_on(link).await.is_err() {
                    return Step::Reconnect;
                }
            }
            reason = link.closed() => {
                client.emit(Event::Offline { reason });
                return Step::Reconnect;
            }
        }
    }
}

/// Takes a pushed delivery. One from a device this client does not know yet (enrolled since
/// its last directory pull) is tried again after pulling the directory, rather than left for
/// the node's redelivery.
async fn take_pushed(
    client: &mut Client,
    link: &NodeLink,
    delivery: &valise_proto::v1::Delivery,
) -> Result<(bool, bool), ClientError> {
    let taken = client.take_pushed(delivery)?;
    if taken.0 {
        return Ok(taken);
    }
    if client.directory_on(link).await? == 0 {
        return Ok(taken);
    }
    client.take_pushed(delivery)
}

/// Serves one request, on `link` when the node is there.
async fn serve(client: &mut Client, request: Request, link: Option<&NodeLink>) -> Step {
    match request {
        Request::Compose(draft, reply) => {
            let progress = ProgressEvents::new(client.events.clone(), TransferStage::Sealing, "");
            let composed = client.compose_with(&draft, &progress);
            let queued = composed.is_ok();
            // Answer first: the cable is queued, and the window need not wait for the upload.
            let _ = reply.send(composed);
            if queued {
                client.emit_outbox();
                if let Some(link) = link {
                    let _ = client.flush_on(link, &progress).await;
                    client.emit_outbox();
                }
            }
        }
        Request::Addressees(query, reply) => {
            let _ = reply.send(client.addressees(&query));
        }
        Request::Check(draft, reply) => {
            let _ = reply.send(client.check_draft(&draft));
        }
        Request::Reply(id, all, reply) => {
            let _ = reply.send(client.reply_draft(&id, all));
        }
        Request::Verify(address, verified, reply) => {
            let done = if verified {
                client.mark_verified(&address)
            } else {
                client
                    .unmark_verified(&address)
                    .map(|()| Verification::Unverified)
            };
            if done.is_ok() {
                client.emit(Event::DirectoryChanged {
                    version: client.directory().version(),
                });
            }
            let _ = reply.send(done);
        }
        Request::MarkRead(id, reply) => {
            let marked = client
                .mark_read(&id)
                .map(|(id, e, _)| client.view_of(id, &e));
            if let Some(link) = link {
                let _ = client.flush_on(link, &NoProgress).await;
            }
            let _ = reply.send(marked);
        }
        Request::Acknowledge(id, reply) => {
            let acked = client
                .acknowledge(&id)
                .map(|(id, e, _)| client.view_of(id, &e));
            if let Some(link) = link {
                let _ = client.flush_on(link, &NoProgress).await;
            }
            let _ = reply.send(acked);
        }
        Request::Inbox(reply) => {
            let _ = reply.send(client.inbox_rows());
        }
        Request::Cable(id, reply) => {
            let _ = reply.send(client.cable_view(&id));
        }
        Request::Sent(reply) => {
            let _ = reply.send(client.sent_views());
        }
        Request::Directory(query, reply) => {
            let _ = reply.send(client.directory_views(&query));
        }
        Request::Cancel(id, reply) => {
            let cancelled = client.cancel(&id);
            client.emit_outbox();
            let _ = reply.send(cancelled);
        }
        Request::Forward(id, to, info, reply) => {
            let _ = reply.send(client.forward_draft(&id, to, info));
        }
        Request::SaveAttachments(id, dest, cancelled, reply) => {
            let progress = ProgressEvents::new(client.events.clone(), TransferStage::Saving, &id);
            let saved = tokio::select! {
                saved = client.save_attachments(&id, &dest, &progress) => saved,
                _ = cancelled => Err(ClientError::Cancelled),
            };
            let _ = reply.send(saved);
        }
        Request::RotateKeys(reply) => {
            let _ = reply.send(client.rotate_keys().await);
        }
        Request::SyncNow(reply) => {
            let report = match link {
                Some(link) => {
                    client
                        .sync_on_link(link, crate::sync::Scope::Full, &NoProgress)
                        .await
                }
                None => client.sync(&NoProgress).await,
            };
            let _ = reply.send(report);
        }
        // The wipe consumes the client: the task that owns it does it, and ends.
        Request::Wipe(reply) => return Step::Wipe(reply),
        Request::Lock(reply) => {
            let _ = reply.send(());
            return Step::Stop;
        }
    }
    Step::Continue
}
