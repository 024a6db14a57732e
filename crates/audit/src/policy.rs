//! When to sign a checkpoint: every N entries or every T, whichever comes first. Pure, with
//! time as an argument, so it is tested without clocks.

use std::time::Duration;

/// Checkpoint cadence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Sign once this many entries are unsigned.
    pub every_entries: u64,
    /// Sign once the oldest unsigned entry is this old.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    /// 256 entries or 1 second (DESIGN §8).
    fn default() -> Self {
        CheckpointPolicy {
            every_entries: 256,
            every: Duration::from_secs(1),
        }
    }
}

impl CheckpointPolicy {
    /// Whether a checkpoint is due, with `unsigned` entries of which the oldest has waited
    /// `waited`.
    pub fn due(&self, unsigned: u64, waited: Duration) -> bool {
        unsigned > 0 && (unsigned >= self.every_entries || waited >= self.every)
    }

    /// How long a committer may sleep before the time rule could make a checkpoint due.
    pub fn sleep_budget(&self, unsigned: u64, waited: Duration) -> Option<Duration> {
        (unsigned > 0).then(|| self.every.saturating_sub(waited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_due_after_n_entries_or_t_whichever_first() {
        let p = CheckpointPolicy::default();
        assert!(!p.due(0, Duration::from_secs(10)), "nothing to sign");
        assert!(!p.due(255, Duration::from_millis(999)));
        assert!(p.due(256, Duration::ZERO));
        assert!(p.due(1, Duration::from_secs(1)));
        assert_eq!(p.sleep_budget(0, Duration::ZERO), None);
        assert_eq!(
            p.sleep_budget(3, Duration::from_millis(300)),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            p.sleep_budget(3, Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
    }
}
