//! The set of cable ids a node has seen, with a time-to-live: a cable resent after a lost
//! custody receipt, or replayed by an attacker, is recognised and not queued twice. Pure: time
//! is an argument.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Seen cable ids, remembered for `ttl`.
#[derive(Debug)]
pub struct Dedup {
    ttl: Duration,
    seen: HashMap<[u8; 16], Duration>,
    /// Ids in the order they were first seen, to expire the oldest first.
    order: VecDeque<([u8; 16], Duration)>,
}

impl Dedup {
    /// Remembers ids for `ttl`; it must outlast the longest a sender may keep resending.
    pub fn new(ttl: Duration) -> Self {
        Dedup {
            ttl,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `id` seen at `now`. Returns `true` the first time within the TTL, `false` for a
    /// duplicate.
    pub fn first_sighting(&mut self, id: [u8; 16], now: Duration) -> bool {
        self.expire(now);
        if self.seen.contains_key(&id) {
            return false;
        }
        self.seen.insert(id, now);
        self.order.push_back((id, now));
        true
    }

    /// Forgets ids seen more than the TTL before `now`.
    pub fn expire(&mut self, now: Duration) {
        while let Some(&(id, at)) = self.order.front() {
            if now.saturating_sub(at) < self.ttl {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_replayed_cable_is_recognised_within_the_ttl() {
        let mut d = Dedup::new(7 * DAY);
        assert!(d.first_sighting([1; 16], Duration::ZERO));
        assert!(!d.first_sighting([1; 16], DAY), "replayed a day later");
        assert!(d.first_sighting([2; 16], DAY), "another cable");
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn ids_are_forgotten_after_the_ttl_oldest_first() {
        let mut d = Dedup::new(DAY);
        d.first_sighting([1; 16], Duration::ZERO);
        d.first_sighting([2; 16], DAY / 2);
        d.expire(DAY);
        assert_eq!(d.len(), 1, "the first expired, the second not yet");
        assert!(
            d.first_sighting([1; 16], DAY),
            "seen again after its TTL: new"
        );
        d.expire(3 * DAY);
        assert!(d.is_empty());
    }
}
