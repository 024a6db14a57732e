//! Which queued cables a link forwards next, and when a link or a cable is tried again. Pure:
//! time is an argument, the durable queue is read by the caller.
//!
//! A link keeps up to a window of cables awaiting the next hop's custody receipt, and a second
//! window of the same size for FLASH and IMMEDIATE alone. Each pick takes the most urgent
//! entries not already in flight, so a FLASH queued behind thousands of ROUTINE cables (during
//! a partition, say) goes in the very next pick, even while a full window of ROUTINE cables is
//! still crossing a slow link with their attachments. An entry the next hop
//! could not take yet (its directory is behind, it is busy) waits, with a growing delay. Each
//! link has its own `Outbound`, so an entry in flight when the link drops is sent again on the
//! next link, and the next hop dedups it by cable id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use valise_proto::v1::ErrorCode;

use crate::queue::QueueKey;

/// The first delay before retrying a cable or redialling a link.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// The delay before attempt `attempt` (1 for the first retry): doubling from [`FIRST_RETRY`]
/// up to [`MAX_RETRY`], then spread by `jitter` (0.0 to 1.0, from the caller's randomness)
/// between half and all of it, so posts cut off together do not all redial at once.
pub fn retry_delay(attempt: u32, jitter: f64) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = doubled.min(MAX_RETRY);
    capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// How many times a node dials a neighbour quickly after losing the link to it.
pub const QUICK_REDIALS: u32 = 8;
/// The delay between two quick redials.
pub const QUICK_REDIAL: Duration = Duration::from_millis(250);

/// How long a node waits before dialling a neighbour again, after `failed` dials in a row
/// since the link was last up: at once after a link drops (its end may have just restarted,
/// and its stateless reset is what ended the link), then every quarter second for a couple
/// of seconds, then backing off as [`retry_delay`] does, so a post cut off for hours does not
/// dial all the time. `jitter` (0.0 to 1.0) spreads posts that lost the hub together.
pub fn redial_delay(failed: u32, jitter: f64) -> Duration {
    match failed {
        0 => Duration::ZERO,
        n if n <= QUICK_REDIALS => QUICK_REDIAL.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0),
        n => retry_delay(n - QUICK_REDIALS, jitter),
    }
}

/// How long a cable the next hop refuses for good waits before it is offered again: this
/// node acknowledged it, so it never drops it, and the neighbour may be reconfigured or
/// upgraded meanwhile.
pub const HELD_RETRY: Duration = Duration::from_secs(15 * 60);
/// After a failure on this node's side of a forward: the cable cannot be read, the receipt
/// does not verify, or the neighbour asks again for attachments just uploaded.
pub const LOCAL_FAILURE_RETRY: Duration = Duration::from_secs(30);
/// After an answer that is neither a receipt nor an error, or a queue that could not be read
/// or released.
pub const UNEXPECTED_RETRY: Duration = Duration::from_secs(5);

/// What a next hop's refusal means for the cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHopRefusal {
    /// The next hop can never take this cable as it is configured (lower limits, an older
    /// version, an id it holds for other bytes): hold it, say so, and offer it again after
    /// [`HELD_RETRY`].
    Lasting(ErrorCode),
    /// It may take the cable later (busy, directory behind, a transient failure): after at
    /// least this, never longer than a held cable waits.
    Later(Duration),
}

/// Classifies a next hop's refusal by its code and the delay it asked for.
pub fn classify_refusal(code: i32, retry_after_ms: u64) -> NextHopRefusal {
    let code = ErrorCode::try_from(code).unwrap_or(ErrorCode::Unspecified);
    match code {
        ErrorCode::Malformed
        | ErrorCode::TooLarge
        | ErrorCode::TooManyRecipients
        | ErrorCode::UnsupportedVersion
        | ErrorCode::BadSignature
        | ErrorCode::Conflict => NextHopRefusal::Lasting(code),
        _ => NextHopRefusal::Later(Duration::from_millis(retry_after_ms).min(HELD_RETRY)),
    }
}

/// One link's forwarding state.
#[derive(Debug)]
pub struct Outbound {
    window: usize,
    in_flight: BTreeSet<QueueKey>,
    /// Entries to leave alone until the given time, and how many attempts they have had.
    deferred: BTreeMap<QueueKey, (Duration, u32)>,
}

impl Outbound {
    /// A link that keeps at most `window` cables in flight.
    pub fn new(window: usize) -> Self {
        Outbound {
            window: window.max(1),
            in_flight: BTreeSet::new(),
            deferred: BTreeMap::new(),
        }
    }

    /// The entries to send now, most urgent first, from `queued` (the head of the durable
    /// queue, in order). They count as in flight until [`Self::taken`] or
    /// [`Self::retry_later`].
    pub fn pick(&mut self, queued: &[QueueKey], now: Duration) -> Vec<QueueKey> {
        let mut room = [self.room(true), self.room(false)];
        let mut picked = Vec::new();
        for key in queued {
            let class = usize::from(!urgent(key));
            if room[class] == 0
                || self.in_flight.contains(key)
                || self
                    .deferred
                    .get(key)
                    .is_some_and(|(until, _)| *until > now)
            {
                continue;
            }
            room[class] -= 1;
            picked.push(*key);
        }
        self.in_flight.extend(picked.iter().copied());
        picked
    }

    /// Room left in the window of urgent (FLASH, IMMEDIATE) or other cables.
    fn room(&self, urgent_class: bool) -> usize {
        let busy = self
            .in_flight
            .iter()
            .filter(|k| urgent(k) == urgent_class)
            .count();
        self.window.saturating_sub(busy)
    }

    /// The next hop took custody (or the entry is gone): forget it.
    pub fn taken(&mut self, key: QueueKey) {
        self.in_flight.remove(&key);
        self.deferred.remove(&key);
    }

    /// The next hop could not take the entry yet: try it again after a delay that grows with
    /// each attempt, or after `at_least` if the hop asked for longer. Returns the delay.
    pub fn retry_later(
        &mut self,
        key: QueueKey,
        now: Duration,
        at_least: Duration,
        jitter: f64,
    ) -> Duration {
        self.in_flight.remove(&key);
        let attempts = self.deferred.get(&key).map_or(0, |(_, n)| *n) + 1;
        let delay = retry_delay(attempts, jitter).max(at_least);
        self.deferred.insert(key, (now + delay, attempts));
        delay
    }

    /// Cables awaiting a custody receipt.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Cables waiting out a retry delay.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Whether there is room for another cable of some precedence.
    pub fn has_room(&self) -> bool {
        self.room(true) > 0 || self.room(false) > 0
    }

    /// When the earliest deferred entry not in flight becomes due, if any.
    pub fn next_due(&self) -> Option<Duration> {
        self.deferred
            .iter()
            .filter(|(key, _)| !self.in_flight.contains(key))
            .map(|(_, (until, _))| *until)
            .min()
    }
}

/// FLASH and IMMEDIATE: sent on the urgent stream priority, with a window of their own.
fn urgent(key: &QueueKey) -> bool {
    key.rank <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_the_next_hop_will_repeat_holds_the_cable_and_others_wait_as_asked() {
        for code in [
            ErrorCode::Malformed,
            ErrorCode::TooLarge,
            ErrorCode::TooManyRecipients,
            ErrorCode::UnsupportedVersion,
            ErrorCode::BadSignature,
            ErrorCode::Conflict,
        ] {
            assert_eq!(
                classify_refusal(code as i32, 1_000),
                NextHopRefusal::Lasting(code),
                "{code:?}"
            );
        }
        assert_eq!(
            classify_refusal(ErrorCode::Busy as i32, 200),
            NextHopRefusal::Later(Duration::from_millis(200))
        );
        assert_eq!(
            classify_refusal(ErrorCode::DirectoryBehind as i32, 1_000),
            NextHopRefusal::Later(Duration::from_secs(1))
        );
        assert_eq!(
            classify_refusal(ErrorCode::Unavailable as i32, u64::MAX),
            NextHopRefusal::Later(HELD_RETRY),
            "a neighbour cannot park a cable for longer than a held one"
        );
        assert_eq!(
            classify_refusal(9_999, 0),
            NextHopRefusal::Later(Duration::ZERO),
            "an unknown code from a newer node is not taken as lasting"
        );
    }
    use valise_proto::v1::Precedence;

    fn routine(seq: u64) -> QueueKey {
        QueueKey::new(Precedence::Routine, seq)
    }

    /// The durable queue's order: what the store's scan returns.
    fn sorted(mut keys: Vec<QueueKey>) -> Vec<QueueKey> {
        keys.sort();
        keys
    }

    #[test]
    fn a_flash_queued_behind_routine_bulk_goes_in_the_very_next_pick() {
        let mut out = Outbound::new(8);
        let mut queue: Vec<QueueKey> = (0..1000).map(routine).collect();
        let first = out.pick(&queue, Duration::ZERO);
        assert_eq!(first, (0..8).map(routine).collect::<Vec<_>>());
        // A FLASH arrives while eight ROUTINE are in flight, none of them taken yet (slow
        // attachments, say): it goes at once, and no more ROUTINE with it.
        queue.push(QueueKey::new(Precedence::Flash, 1000));
        let queue = sorted(queue);
        assert!(out.has_room());
        let next = out.pick(&queue[..16], Duration::ZERO);
        assert_eq!(next, vec![QueueKey::new(Precedence::Flash, 1000)]);
        assert_eq!(out.in_flight(), 9);
    }

    #[test]
    fn the_window_bounds_what_is_in_flight_and_nothing_is_sent_twice() {
        let mut out = Outbound::new(3);
        let mut queue: Vec<QueueKey> = (0..10).map(routine).collect();
        assert_eq!(out.pick(&queue, Duration::ZERO).len(), 3);
        assert!(out.pick(&queue, Duration::ZERO).is_empty());
        // Custody taken: the caller removes the entry from the durable queue.
        out.taken(routine(1));
        queue.retain(|k| *k != routine(1));
        assert_eq!(out.pick(&queue, Duration::ZERO), vec![routine(3)]);
        assert_eq!(out.in_flight(), 3);
    }

    #[test]
    fn urgent_cables_have_a_window_of_their_own_just_as_bounded() {
        let mut out = Outbound::new(2);
        let flash = |seq| QueueKey::new(Precedence::Flash, seq);
        let immediate = |seq| QueueKey::new(Precedence::Immediate, seq);
        let mut queue = sorted(vec![
            flash(0),
            immediate(1),
            flash(2),
            routine(3),
            routine(4),
            routine(5),
        ]);
        assert_eq!(
            out.pick(&queue, Duration::ZERO),
            vec![flash(0), flash(2), routine(3), routine(4)]
        );
        assert!(!out.has_room());
        assert!(out.pick(&queue, Duration::ZERO).is_empty());
        out.taken(flash(0));
        queue.retain(|k| *k != flash(0));
        assert_eq!(out.pick(&queue, Duration::ZERO), vec![immediate(1)]);
    }

    #[test]
    fn a_deferred_cable_waits_its_delay_while_others_go_and_the_delay_grows() {
        let mut out = Outbound::new(4);
        let mut queue: Vec<QueueKey> = (0..3).map(routine).collect();
        out.pick(&queue, Duration::ZERO);
        let first = out.retry_later(routine(0), Duration::ZERO, Duration::ZERO, 1.0);
        assert_eq!(first, FIRST_RETRY);
        out.taken(routine(1));
        out.taken(routine(2));
        queue.truncate(1);
        assert!(out.pick(&queue, Duration::from_millis(999)).is_empty());
        assert_eq!(out.next_due(), Some(FIRST_RETRY));
        assert_eq!(out.pick(&queue, FIRST_RETRY), vec![routine(0)]);
        // In flight again, it is no longer waited for: nothing is due.
        assert_eq!(out.next_due(), None);
        let second = out.retry_later(routine(0), FIRST_RETRY, Duration::ZERO, 1.0);
        assert_eq!(second, FIRST_RETRY * 2);
        // A hop that asks for longer gets longer.
        out.pick(&queue, FIRST_RETRY * 3);
        let asked = out.retry_later(routine(0), FIRST_RETRY * 3, Duration::from_secs(30), 1.0);
        assert_eq!(asked, Duration::from_secs(30));
    }

    #[test]
    fn a_lost_link_is_dialled_again_at_once_then_quickly_then_backing_off() {
        assert_eq!(redial_delay(0, 0.7), Duration::ZERO);
        for failed in 1..=QUICK_REDIALS {
            assert_eq!(redial_delay(failed, 1.0), QUICK_REDIAL);
            assert_eq!(redial_delay(failed, 0.0), QUICK_REDIAL / 2);
        }
        assert_eq!(redial_delay(QUICK_REDIALS + 1, 1.0), FIRST_RETRY);
        assert_eq!(redial_delay(QUICK_REDIALS + 2, 1.0), FIRST_RETRY * 2);
        assert_eq!(redial_delay(u32::MAX, 1.0), MAX_RETRY);
        let quick: Duration = (1..=QUICK_REDIALS).map(|n| redial_delay(n, 1.0)).sum();
        assert!(
            quick <= Duration::from_secs(2),
            "the quick phase spans {quick:?}"
        );
    }

    #[test]
    fn retry_delays_double_to_a_cap_and_jitter_spreads_them() {
        assert_eq!(retry_delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(6, 1.0), Duration::from_secs(32));
        assert_eq!(retry_delay(7, 1.0), MAX_RETRY);
        assert_eq!(retry_delay(u32::MAX, 1.0), MAX_RETRY);
        assert_eq!(retry_delay(7, 0.0), MAX_RETRY / 2);
        assert_eq!(retry_delay(3, -5.0), Duration::from_secs(2));
    }
}
