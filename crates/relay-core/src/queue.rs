//! Delivery order: every FLASH before any IMMEDIATE, and so on; within one precedence, first
//! in, first out. The key here orders the durable queue on disk, so a restart resumes in the
//! same order; [`crate::delivery`] paces a device's stream over it.

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
