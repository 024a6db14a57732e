//! A device's delivery stream, as the shell carries it out: the core's
//! [`DeliveryWindow`](crate::delivery::DeliveryWindow) decides what goes next; this module
//! reads the queue pages it asks for, sends each envelope, tells it of every cable queued for
//! the device meanwhile, and takes the device's acknowledgements in batches.
//!
//! The subscribe stream carries `Delivery` frames most urgent first, each acknowledged with a
//! `DeliveryAck` once the device stored the cable, and `CaughtUp` whenever everything queued
//! has been sent. Once the device finishes its side, the node processes the acknowledgements
//! read and finishes its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::mpsc;
use valise_crypto::identity::DeviceId;
use valise_proto::framing::FrameDecoder;
use valise_proto::v1::{
    AuditEventKind, CaughtUp, Delivery, DeliveryLane, NodeFrame, Outcome, client_frame, node_frame,
};

use super::{Shared, next_frame, record_all, send_frame};
use crate::delivery::DeliveryWindow;
use crate::queue::QueueKey;
use crate::record::Record;

/// Most acknowledgements applied in one batch.
const ACK_BATCH: usize = 1024;

/// One stream's ear: its id, and where it hears of new cables.
type Listener = (u64, mpsc::UnboundedSender<QueueKey>);

/// The delivery streams running, by device: each is told of every cable queued for its device
/// while it runs, so none has to read the queue again to find it.
#[derive(Default)]
pub(super) struct Deliveries {
    streams: Mutex<HashMap<DeviceId, Vec<Listener>>>,
    next_id: Mutex<u64>,
}

impl Deliveries {
    /// A cable was queued durably for `device`, at `key`.
    pub(super) fn arrived(&self, device: &DeviceId, key: QueueKey) {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, stream) in streams.get(device).into_iter().flatten() {
            let _ = stream.send(key);
        }
    }

    /// Listens for the cables queued for `device` from now on, until the subscription drops.
    fn subscribe(
        self: &Arc<Self>,
        device: DeviceId,
    ) -> (Subscription, mpsc::UnboundedReceiver<QueueKey>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(device)
            .or_default()
            .push((id, tx));
        let subscription = Subscription {
            deliveries: Arc::clone(self),
            device,
            id,
        };
        (subscription, rx)
    }
}

/// One stream's place in [`Deliveries`], given up however the stream ends.
struct Subscription {
    deliveries: Arc<Deliveries>,
    device: DeviceId,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut streams = self
            .deliveries
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = streams.get_mut(&self.device) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                streams.remove(&self.device);
            }
        }
    }
}

/// QUIC stream priority of an urgent lane's deliveries: sent ahead of the other lane's.
const PRIORITY_URGENT: i32 = 1;

/// Streams this device's queue (or `lane` of it), most urgent first, until the stream or
/// connection ends, or the device finishes its side: then every acknowledgement it sent has
/// been processed, and the node finishes its side to say so.
pub(super) async fn deliver(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut decoder: FrameDecoder,
    device: DeviceId,
    shared: Arc<Shared>,
    lane: DeliveryLane,
) {
    if lane == DeliveryLane::Urgent {
        let _ = send.set_priority(PRIORITY_URGENT);
    }
    // Listening before the first page is read: a cable stored in between is both read and
    // told, and the window sends it once.
    let (_subscription, mut arrivals) = shared.deliveries.subscribe(device);
    // The device's acknowledgements, read as they come, and taken in batches: every ack that
    // arrives while one batch is being taken goes into the next.
    let (read_tx, read) = mpsc::unbounded_channel::<QueueKey>();
    let (acked_tx, mut acked) = mpsc::unbounded_channel::<Vec<QueueKey>>();
    let reader = tokio::spawn(async move {
        while let Some(frame) = next_frame(&mut recv, &mut decoder, None).await {
            if let Some(client_frame::Frame::DeliveryAck(ack)) = frame.frame
                && let Some(key) = QueueKey::from_bytes(&ack.queue_key)
                && read_tx.send(key).is_err()
            {
                break;
            }
        }
    });
    let taker = tokio::spawn(take_acks(Arc::clone(&shared), device, read, acked_tx));
    // The stream's own clock: the window is told the time, it never reads one.
    let epoch = Instant::now();
    let mut window = DeliveryWindow::for_lane(shared.delivery, lane);
    let _tasks = StreamTasks([reader, taker]);
    'serve: loop {
        loop {
            match acked.try_recv() {
                Ok(keys) => {
                    for key in keys {
                        window.acked(key);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                // The device finished its side and every ack it sent was taken.
                Err(mpsc::error::TryRecvError::Disconnected) => break 'serve,
            }
        }
        while let Ok(key) = arrivals.try_recv() {
            window.queued(key);
        }
        if let Some(request) = window.wants_page() {
            let store = Arc::clone(&shared);
            let page = tokio::task::spawn_blocking(move || {
                store
                    .store
                    .queued_after(&device, request.after, request.limit)
            })
            .await;
            match page {
                Ok(Ok(page)) => window.loaded(request, &page),
                _ => break,
            }
            continue;
        }
        while let Some(key) = window.poll_send(epoch.elapsed()) {
            let envelope = match shared.store.delivery(&device, key) {
                Ok(Some(envelope)) => envelope,
                // Acknowledged, purged, or unreadable: never sendable, so not waited for.
                Ok(None) | Err(_) => {
                    window.gone(key);
                    continue;
                }
            };
            let bytes = envelope.len() as u64;
            let delivery = NodeFrame {
                frame: Some(node_frame::Frame::Delivery(Delivery {
                    queue_key: key.to_bytes().to_vec(),
                    envelope,
                })),
            };
            if !send_frame(&mut send, &delivery).await {
                return;
            }
            window.sent(key, bytes);
            // A FLASH queued meanwhile goes next, ahead of the rest.
            while let Ok(key) = arrivals.try_recv() {
                window.queued(key);
            }
        }
        if let Some(sent) = window.caught_up() {
            let frame = NodeFrame {
                frame: Some(node_frame::Frame::CaughtUp(CaughtUp { sent })),
            };
            if !send_frame(&mut send, &frame).await {
                return;
            }
        }
        let redelivery = async {
            match window.next_redelivery() {
                Some(at) => tokio::time::sleep_until((epoch + at).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            key = arrivals.recv() => if let Some(key) = key { window.queued(key) },
            keys = acked.recv() => match keys {
                Some(keys) => for key in keys { window.acked(key); },
                // The reader ended after taking every ack it read.
                None => break,
            },
            () = redelivery => {}
            _ = send.stopped() => break,
        }
    }
    let _ = send.finish();
}

/// The reader and the ack taker of one stream, ended however the stream ends.
struct StreamTasks([tokio::task::JoinHandle<()>; 2]);

impl Drop for StreamTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Takes the device's acknowledgements in batches until its side of the stream ends: removes
/// the entries from its queue, tells the window, and records each delivery. The removals
/// become durable with the next sync: a crash before it means one more delivery, which the
/// device drops by cable id.
async fn take_acks(
    shared: Arc<Shared>,
    device: DeviceId,
    mut read: mpsc::UnboundedReceiver<QueueKey>,
    acked: mpsc::UnboundedSender<Vec<QueueKey>>,
) {
    while let Some(first) = read.recv().await {
        let mut keys = vec![first];
        while keys.len() < ACK_BATCH {
            match read.try_recv() {
                Ok(key) => keys.push(key),
                Err(_) => break,
            }
        }
        let store = Arc::clone(&shared);
        let removed = tokio::task::spawn_blocking(move || store.store.ack_many(&device, &keys))
            .await
            .unwrap_or_else(|e| Err(valise_store::StoreError::Io(e.to_string())));
        let removed = match removed {
            Ok(removed) => removed,
            Err(e) => {
                tracing::error!(error = %e, "acknowledged deliveries could not be removed; they will be delivered again");
                continue;
            }
        };
        let records: Vec<Record> = removed
            .iter()
            .map(|key| {
                shared.metrics.delivered();
                Record::new(AuditEventKind::CableDelivered, Outcome::Success)
                    .by_device(&device)
                    .object("queue_entry", &key.to_bytes(), &[])
            })
            .collect();
        // The window makes room at once; the records are durable before the next batch.
        if acked.send(removed).is_err() {
            return;
        }
        record_all(&shared, records).await;
    }
}
