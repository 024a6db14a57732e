//! Delivery order and at-least-once delivery for one device's queue. Pure: time is an argument.
//!
//! Entries are ordered by (precedence rank, arrival sequence): every FLASH before any
//! IMMEDIATE, and so on; within one precedence, first in, first out. The same key orders the
//! durable queue on disk, so a restart resumes in the same order.
//!
//! An entry handed to the device stays *in flight* until the device acknowledges it (after it
//! has stored the cable). An entry not acknowledged within the redelivery timeout goes back to
//! pending; the device dedups by cable id, so it sees each cable once.

use std::collections::BTreeMap;
use std::time::Duration;

use valise_proto::v1::Precedence;

/// Rank 0 is delivered first.
pub fn rank(precedence: Precedence) -> u8 {
    match precedence {
        Precedence::Flash => 0,
        Precedence::Immediate => 1,
        Precedence::Priority => 2,
        Precedence::Routine | Precedence::Unspecified => 3,
    }
}

/// The precedence of a rank (the inverse of [`rank`]).
pub fn precedence_of(rank: u8) -> Precedence {
    match rank {
        0 => Precedence::Flash,
        1 => Precedence::Immediate,
        2 => Precedence::Priority,
        _ => Precedence::Routine,
    }
}

/// Where an entry sits in a device's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    /// Precedence rank (0 = FLASH).
    pub rank: u8,
    /// Arrival sequence number, unique per node.
    pub seq: u64,
}

impl QueueKey {
    /// The key for a cable of `precedence` that arrived `seq`-th.
    pub fn new(precedence: Precedence, seq: u64) -> Self {
        QueueKey {
            rank: rank(precedence),
            seq,
        }
    }

    /// Big-endian bytes that sort like the key, for the durable queue.
    pub fn to_bytes(self) -> [u8; 9] {
        let mut out = [0u8; 9];
        out[0] = self.rank;
        out[1..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Reads [`Self::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&rank, seq) = bytes.split_first()?;
        Some(QueueKey {
            rank,
            seq: u64::from_be_bytes(seq.try_into().ok()?),
        })
    }
}

/// One device's queue: pending entries and those in flight.
#[derive(Debug)]
pub struct DeviceQueue<T> {
    pending: BTreeMap<QueueKey, T>,
    in_flight: BTreeMap<QueueKey, (T, Duration)>,
    redeliver_after: Duration,
}

impl<T: Clone> DeviceQueue<T> {
    /// An empty queue that redelivers an entry not acknowledged within `redeliver_after`.
    pub fn new(redeliver_after: Duration) -> Self {
        DeviceQueue {
            pending: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            redeliver_after,
        }
    }

    /// Queues an entry (again, if it was already there: nothing changes).
    pub fn push(&mut self, key: QueueKey, item: T) {
        if !self.in_flight.contains_key(&key) {
            self.pending.entry(key).or_insert(item);
        }
    }

    /// The next entry to send at time `now` (since any fixed origin), most urgent first, unless
    /// `max_in_flight` entries already await acknowledgement.
    pub fn next(&mut self, now: Duration, max_in_flight: usize) -> Option<(QueueKey, T)> {
        self.requeue_expired(now);
        if self.in_flight.len() >= max_in_flight {
            return None;
        }
        let (key, item) = self.pending.pop_first()?;
        self.in_flight.insert(key, (item.clone(), now));
        Some((key, item))
    }

    /// The device stored the entry: it is done. Returns it, or `None` for an unknown or
    /// already acknowledged key (a duplicate ack is harmless).
    pub fn ack(&mut self, key: QueueKey) -> Option<T> {
        self.in_flight
            .remove(&key)
            .map(|(item, _)| item)
            .or_else(|| self.pending.remove(&key))
    }

    /// Puts every in-flight entry back (the device disconnected).
    pub fn requeue_all(&mut self) {
        for (key, (item, _)) in std::mem::take(&mut self.in_flight) {
            self.pending.insert(key, item);
        }
    }

    fn requeue_expired(&mut self, now: Duration) {
        let timeout = self.redeliver_after;
        let expired: Vec<QueueKey> = self
            .in_flight
            .iter()
            .filter(|(_, (_, sent))| now.saturating_sub(*sent) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some((item, _)) = self.in_flight.remove(&key) {
                self.pending.insert(key, item);
            }
        }
    }

    /// Entries not yet acknowledged, per precedence: [FLASH, IMMEDIATE, PRIORITY, ROUTINE].
    pub fn depth(&self) -> [usize; 4] {
        let mut depth = [0; 4];
        for key in self.pending.keys().chain(self.in_flight.keys()) {
            depth[usize::from(key.rank.min(3))] += 1;
        }
        depth
    }

    /// Whether nothing is pending or in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDELIVER: Duration = Duration::from_secs(30);

    fn drain(q: &mut DeviceQueue<u64>, now: Duration) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some((key, item)) = q.next(now, usize::MAX) {
            q.ack(key);
            out.push(item);
        }
        out
    }

    #[test]
    fn a_flash_queued_after_a_thousand_routine_is_delivered_first() {
        let mut q = DeviceQueue::new(REDELIVER);
        for seq in 0..1000 {
            q.push(QueueKey::new(Precedence::Routine, seq), seq);
        }
        q.push(QueueKey::new(Precedence::Flash, 1000), 1000);
        let order = drain(&mut q, Duration::ZERO);
        assert_eq!(order[0], 1000);
        assert_eq!(
            &order[1..],
            (0..1000).collect::<Vec<_>>().as_slice(),
            "then ROUTINE in arrival order"
        );
    }

    #[test]
    fn precedence_first_then_arrival() {
        let mut q = DeviceQueue::new(REDELIVER);
        let arrivals = [
            (Precedence::Routine, 0),
            (Precedence::Priority, 1),
            (Precedence::Immediate, 2),
            (Precedence::Routine, 3),
            (Precedence::Flash, 4),
            (Precedence::Immediate, 5),
        ];
        for (p, seq) in arrivals {
            q.push(QueueKey::new(p, seq), seq);
        }
        assert_eq!(q.depth(), [1, 2, 1, 2]);
        assert_eq!(drain(&mut q, Duration::ZERO), vec![4, 2, 5, 1, 0, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn an_unacknowledged_entry_is_redelivered_after_the_timeout_only() {
        let mut q = DeviceQueue::new(REDELIVER);
        q.push(QueueKey::new(Precedence::Flash, 1), 1);
        let (key, _) = q.next(Duration::ZERO, 8).unwrap();
        assert_eq!(
            q.next(REDELIVER - Duration::from_millis(1), 8),
            None,
            "still in flight"
        );
        assert_eq!(q.next(REDELIVER, 8), Some((key, 1)), "redelivered");
        assert_eq!(q.ack(key), Some(1));
        assert_eq!(q.ack(key), None, "a duplicate ack is harmless");
        assert_eq!(
            q.next(REDELIVER * 10, 8),
            None,
            "never again once acknowledged"
        );
    }

    #[test]
    fn a_disconnect_returns_everything_in_flight() {
        let mut q = DeviceQueue::new(REDELIVER);
        for seq in 0..3 {
            q.push(QueueKey::new(Precedence::Priority, seq), seq);
        }
        assert!(q.next(Duration::ZERO, 2).is_some());
        assert!(q.next(Duration::ZERO, 2).is_some());
        assert_eq!(q.next(Duration::ZERO, 2), None, "at most 2 in flight");
        q.requeue_all();
        assert_eq!(drain(&mut q, Duration::ZERO), vec![0, 1, 2]);
    }

    #[test]
    fn queue_keys_sort_on_disk_as_in_memory() {
        let keys = [
            QueueKey::new(Precedence::Routine, 5),
            QueueKey::new(Precedence::Flash, 900),
            QueueKey::new(Precedence::Flash, 2),
            QueueKey::new(Precedence::Priority, 1),
        ];
        let mut by_value = keys.to_vec();
        by_value.sort();
        let mut by_bytes = keys.to_vec();
        by_bytes.sort_by_key(|k| k.to_bytes());
        assert_eq!(by_value, by_bytes);
        for k in keys {
            assert_eq!(QueueKey::from_bytes(&k.to_bytes()), Some(k));
            assert_eq!(
                precedence_of(k.rank),
                precedence_of(rank(precedence_of(k.rank)))
            );
        }
        assert_eq!(QueueKey::from_bytes(&[0; 3]), None);
    }
}
