//! What crosses a simulated link: the relay protocol's requests and answers, reduced to what
//! the core decides on. A message belongs to one connection (an epoch of its link): one sent
//! on a connection that has since dropped is lost, as a QUIC stream would be.

use valise_proto::v1::{CustodyReceipt, ErrorFrame};
use valise_relay_core::admission::Reply;
use valise_relay_core::queue::QueueKey;

/// An end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addr {
    /// A relay node, by index (0 is the hub).
    Node(usize),
    /// A device, by index.
    Device(usize),
}

/// A message.
#[derive(Debug, Clone)]
pub enum Msg {
    /// Device → post: a cable to take custody of.
    Submit {
        /// The envelope.
        envelope: Vec<u8>,
    },
    /// Post → device: the answer to a submission.
    Submitted {
        /// The cable.
        cable: [u8; 16],
        /// The receipt, or why not.
        reply: Reply,
    },
    /// Device → post: start (or resume) delivery.
    Subscribe,
    /// Post → device: a queued cable.
    Delivery {
        /// Its queue entry.
        key: QueueKey,
        /// The envelope.
        envelope: Vec<u8>,
    },
    /// Device → post: stored; drop the entry.
    Ack {
        /// The entry.
        key: QueueKey,
    },
    /// Node → node: take custody of a cable for these devices.
    Forward {
        /// The sender's queue entry, echoed in the answer.
        key: QueueKey,
        /// The envelope.
        envelope: Vec<u8>,
        /// The devices the receiver answers for.
        devices: Vec<Vec<u8>>,
        /// When custody was first taken.
        accepted_at_ms: u64,
    },
    /// Node → node: the answer to a forward.
    Forwarded {
        /// The sender's queue entry.
        key: QueueKey,
        /// A receipt, or a refusal.
        reply: Result<CustodyReceipt, ErrorFrame>,
    },
    /// Node → node: cosign my checkpoint.
    Witness {
        /// The size the proof starts from.
        old_size: u64,
        /// The consistency proof.
        proof: Vec<[u8; 32]>,
        /// The signed checkpoint note.
        note: String,
    },
    /// Node → node: the answer to a witness request.
    Witnessed {
        /// The size of the checkpoint offered.
        size: u64,
        /// `Ok` once cosigned; otherwise the size the witness holds, for the next offer.
        result: Result<(), Option<u64>>,
    },
}
