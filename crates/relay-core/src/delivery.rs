//! One device's delivery stream: which queued entry to send next, which await the device's
//! acknowledgement, when one not acknowledged is sent again, and when to tell the device it
//! has caught up. Pure: the durable queue lives in the shell's store, time is an argument.
//!
//! The window holds a prefix of the device's queue in memory, most urgent first: the shell
//! reads it a page at a time ([`DeliveryWindow::wants_page`], [`DeliveryWindow::loaded`]) and
//! tells the window of each cable queued for the device while the stream runs
//! ([`DeliveryWindow::queued`]). Nothing is read twice, however long the queue: a stream
//! costs the same per delivery with ten cables queued or a million. A FLASH that arrives
//! mid-stream is the next entry sent, ahead of everything not yet sent.
//!
//! An entry sent stays *in flight* until the device acknowledges it (after it has stored the
//! cable). One not acknowledged within [`DeliveryConfig::redeliver_after`] is sent again; the
//! device dedups by cable id, so it sees each cable once. The window bounds what is in flight
//! by count, and the bytes of PRIORITY and ROUTINE in flight: those are what a FLASH sent now
//! may queue behind on the stream, so on a slow link they bound its wait.

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::time::Duration;

use valise_proto::v1::DeliveryLane;

use crate::queue::QueueKey;

/// The precedence ranks a stream of `lane` carries: FLASH and IMMEDIATE on the urgent lane,
/// PRIORITY and ROUTINE on the other, everything on one stream that asked for all.
pub fn ranks(lane: DeliveryLane) -> RangeInclusive<u8> {
    match lane {
        DeliveryLane::All => 0..=u8::MAX,
        DeliveryLane::Urgent => 0..=1,
        DeliveryLane::Other => 2..=u8::MAX,
    }
}

/// How a delivery stream paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// How long a delivery may go unacknowledged before it is sent again.
    pub redeliver_after: Duration,
    /// Most deliveries awaiting acknowledgement at once.
    pub max_in_flight: usize,
    /// Most bytes of PRIORITY and ROUTINE cables awaiting acknowledgement at once (one
    /// delivery always goes, whatever its size): what a FLASH sent now may queue behind on the
    /// stream. FLASH and IMMEDIATE are not held by it, only by [`Self::max_in_flight`].
    pub max_in_flight_bytes: u64,
    /// How many queue entries a page read holds.
    pub page: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            redeliver_after: Duration::from_secs(30),
            max_in_flight: 1024,
            max_in_flight_bytes: 1024 * 1024,
            page: 1024,
        }
    }
}

/// A read of the durable queue the window asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Read the entries after this key (`None`: from the head of the queue).
    pub after: Option<QueueKey>,
    /// At most this many.
    pub limit: usize,
}

/// How much of the durable queue the window has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loaded {
    /// Nothing yet.
    Nothing,
    /// Every entry up to and including this key; those after it are only on disk.
    UpTo(QueueKey),
    /// The whole queue: what arrives from now on is told with [`DeliveryWindow::queued`].
    All,
}

/// One device's delivery window over its durable queue, or over one lane of it.
#[derive(Debug)]
pub struct DeliveryWindow {
    config: DeliveryConfig,
    /// The ranks this stream carries: the queue sorts by rank first, so they are one range of
    /// it.
    ranks: RangeInclusive<u8>,
    loaded: Loaded,
    /// Entries read or told, not yet sent on this stream, most urgent first.
    pending: BTreeSet<QueueKey>,
    /// Entries sent and not yet acknowledged: when each was last sent, and its size.
    in_flight: HashMap<QueueKey, (Duration, u64)>,
    /// The same entries by when they were sent, oldest first: the next redelivery is the first.
    by_time: BTreeSet<(Duration, QueueKey)>,
    in_flight_bytes: u64,
    deliveries: u64,
    announced: bool,
}

impl DeliveryWindow {
    /// A window over the whole queue, for a stream that has sent nothing yet.
    pub fn new(config: DeliveryConfig) -> Self {
        Self::for_lane(config, DeliveryLane::All)
    }

    /// A window over `lane` of the queue, for a stream that has sent nothing yet.
    pub fn for_lane(config: DeliveryConfig, lane: DeliveryLane) -> Self {
        DeliveryWindow {
            config: DeliveryConfig {
                max_in_flight: config.max_in_flight.max(1),
                page: config.page.max(1),
                ..config
            },
            ranks: ranks(lane),
            loaded: Loaded::Nothing,
            pending: BTreeSet::new(),
            in_flight: HashMap::new(),
            by_time: BTreeSet::new(),
            in_flight_bytes: 0,
            deliveries: 0,
            announced: false,
        }
    }

    /// The page of the durable queue to read now, if any: the first, and then the next one
    /// whenever what is held runs low.
    pub fn wants_page(&self) -> Option<PageRequest> {
        let after = match self.loaded {
            // From the lane's first rank: after the last key of the rank before it.
            Loaded::Nothing => self.ranks.start().checked_sub(1).map(|rank| QueueKey {
                rank,
                seq: u64::MAX,
            }),
            Loaded::UpTo(last) if self.pending.len() < self.config.page / 2 => Some(last),
            Loaded::UpTo(_) | Loaded::All => return None,
        };
        Some(PageRequest {
            after,
            limit: self.config.page,
        })
    }

    /// The page asked for by [`Self::wants_page`], as read: the queue's entries after its
    /// `after`, in order, at most `limit` of them.
    pub fn loaded(&mut self, request: PageRequest, page: &[QueueKey]) {
        let mut past_lane = false;
        for key in page {
            if !self.ranks.contains(&key.rank) {
                past_lane = true;
                break;
            }
            if !self.in_flight.contains_key(key) {
                self.pending.insert(*key);
            }
        }
        self.loaded = match page.last() {
            Some(last) if page.len() >= request.limit && !past_lane => Loaded::UpTo(*last),
            _ => Loaded::All,
        };
    }

    /// A cable was queued for the device while the stream runs. One beyond what the window
    /// has read is left to the next page read.
    pub fn queued(&mut self, key: QueueKey) {
        if !self.ranks.contains(&key.rank) {
            return;
        }
        let held = match self.loaded {
            Loaded::Nothing => false,
            Loaded::UpTo(last) => key <= last,
            Loaded::All => true,
        };
        if held && !self.in_flight.contains_key(&key) {
            self.pending.insert(key);
        }
    }

    /// The next entry to send at `now`, counted as in flight: the most urgent of those not
    /// yet sent and those due again. `None` when nothing is due, or the window is full (only
    /// what is due again goes then: it already has its place).
    pub fn poll_send(&mut self, now: Duration) -> Option<QueueKey> {
        let due = self
            .by_time
            .first()
            .filter(|(sent, _)| now.saturating_sub(*sent) >= self.config.redeliver_after)
            .map(|(_, key)| *key);
        let fresh = self
            .pending
            .first()
            .copied()
            .filter(|key| self.has_room(key));
        let key = match (fresh, due) {
            (Some(fresh), Some(due)) if due < fresh => due,
            (Some(fresh), _) => fresh,
            (None, Some(due)) => due,
            (None, None) => return None,
        };
        if self.pending.remove(&key) {
            self.in_flight.insert(key, (now, 0));
        } else if let Some((sent, _)) = self.in_flight.get_mut(&key) {
            self.by_time.remove(&(*sent, key));
            *sent = now;
        }
        self.by_time.insert((now, key));
        Some(key)
    }

    /// Whether `key` may be sent for the first time now: the window has a place, and, for all
    /// but FLASH and IMMEDIATE, the bytes in flight are within their bound.
    fn has_room(&self, key: &QueueKey) -> bool {
        self.in_flight.len() < self.config.max_in_flight
            && (key.rank <= 1
                || self.in_flight.is_empty()
                || self.in_flight_bytes < self.config.max_in_flight_bytes)
    }

    /// The entry [`Self::poll_send`] just named went out with `bytes` of envelope: they count
    /// against the window until it is acknowledged.
    pub fn sent(&mut self, key: QueueKey, bytes: u64) {
        self.deliveries += 1;
        self.announced = false;
        if let Some((_, size)) = self.in_flight.get_mut(&key) {
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(*size) + bytes;
            *size = bytes;
        }
    }

    /// The entry is no longer queued for the device (purged, or its envelope cannot be read):
    /// it is not sent, and the stream does not wait for it.
    pub fn gone(&mut self, key: QueueKey) {
        self.pending.remove(&key);
        self.forget(key);
    }

    /// The device acknowledged `key`, and the shell removed it from the queue. Returns whether
    /// it was in flight (a duplicate or unknown acknowledgement is harmless).
    pub fn acked(&mut self, key: QueueKey) -> bool {
        self.pending.remove(&key);
        self.forget(key)
    }

    fn forget(&mut self, key: QueueKey) -> bool {
        match self.in_flight.remove(&key) {
            Some((sent, bytes)) => {
                self.by_time.remove(&(sent, key));
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
                true
            }
            None => false,
        }
    }

    /// Once everything queued has been sent: tell the device it has caught up, with the number
    /// of deliveries sent on this stream (resends included). Said once per transition.
    pub fn caught_up(&mut self) -> Option<u64> {
        if self.loaded == Loaded::All && self.pending.is_empty() && !self.announced {
            self.announced = true;
            return Some(self.deliveries);
        }
        None
    }

    /// When the oldest delivery in flight is due to be sent again.
    pub fn next_redelivery(&self) -> Option<Duration> {
        self.by_time
            .first()
            .map(|(sent, _)| sent.saturating_add(self.config.redeliver_after))
    }

    /// How many deliveries await acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// How many entries the window holds that it has not sent yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
