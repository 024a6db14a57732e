//! Cables sealed and waiting for the node. Whenever the node is reached, everything waiting
//! goes, the most urgent first; while it cannot be reached, a running client tries again after
//! [`retry_delay`] (exponential, capped).

use std::time::Duration;

/// The first retry delay after the node could not be reached.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// How many times the node may break off one cable's stream, while the connection stays up,
/// before the cable is taken as refused for good (and leaves the outbox).
pub const MAX_STREAM_FAILURES: u32 = 3;

/// One sealed cable waiting for the node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutboxEntry {
    /// The cable id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub cable_id: Vec<u8>,
    /// The envelope, encoded.
    #[prost(bytes = "vec", tag = "2")]
    pub envelope: Vec<u8>,
    /// Its precedence (a `Precedence` value).
    #[prost(int32, tag = "3")]
    pub precedence: i32,
    /// When it was queued, Unix ms.
    #[prost(uint64, tag = "4")]
    pub queued_at_ms: u64,
    /// Failed attempts so far.
    #[prost(uint32, tag = "5")]
    pub attempts: u32,
    // Tag 6 held the next attempt's time; retries now follow the connection, not the entry.
    /// Why the last attempt failed.
    #[prost(string, tag = "7")]
    pub last_error: String,
    /// Whether this is a receipt envelope rather than a cable.
    #[prost(bool, tag = "8")]
    pub is_receipt: bool,
    /// SHA-256 of each attachment ciphertext to upload before the envelope.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub attachments: Vec<Vec<u8>>,
    /// The node refused the cable for good (e.g. a recipient was revoked meanwhile): it is not
    /// retried, and the sender sees why in `last_error`.
    #[prost(bool, tag = "10")]
    pub refused: bool,
}

/// The delay after `attempts` failures: 1 s, 2 s, 4 s … capped at 5 minutes.
pub fn retry_delay(attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    FIRST_RETRY.saturating_mul(factor).min(MAX_RETRY)
}

impl OutboxEntry {
    /// Records an attempt that failed for now (node unreachable or busy).
    pub fn failed(&mut self, error: &str) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_error = error.to_owned();
    }
}

/// The order in which waiting entries go: refused ones never, then FLASH first, then the
/// oldest.
pub fn send_order(entries: &[OutboxEntry]) -> Vec<&OutboxEntry> {
    let mut waiting: Vec<&OutboxEntry> = entries.iter().filter(|e| !e.refused).collect();
    waiting.sort_by(|a, b| {
        b.precedence
            .cmp(&a.precedence)
            .then(a.queued_at_ms.cmp(&b.queued_at_ms))
    });
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_stop_growing_at_the_cap() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(16));
        assert_eq!(retry_delay(9), Duration::from_secs(256));
        assert_eq!(retry_delay(10), MAX_RETRY);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY);
        let mut e = OutboxEntry::default();
        e.failed("node unreachable");
        e.failed("node busy");
        assert_eq!((e.attempts, e.last_error.as_str()), (2, "node busy"));
    }

    #[test]
    fn flash_goes_first_then_the_oldest() {
        let entry = |id: u8, precedence: i32, queued_at_ms: u64| OutboxEntry {
            cable_id: vec![id],
            precedence,
            queued_at_ms,
            ..Default::default()
        };
        let mut refused = entry(4, 4, 40);
        refused.refused = true;
        let entries = [entry(1, 1, 10), entry(2, 4, 30), entry(3, 1, 5), refused];
        let order: Vec<u8> = send_order(&entries).iter().map(|e| e.cable_id[0]).collect();
        assert_eq!(
            order,
            [2, 3, 1],
            "FLASH first, then ROUTINE oldest first; 4 was refused for good"
        );
    }
}
