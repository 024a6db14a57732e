//! Whether the node takes custody of a cable, and what it answers: one path for a device's
//! submission and a neighbour's forward. Pure: the directory and the attachments held here are
//! read through traits, the time is an argument, and every effect (the reply, the audit
//! records, the durable write, the wake-ups) comes back as data for the shell to carry out.
//!
//! It runs in two steps around the one durable write:
//! 1. [`admit`] decodes the envelope, checks it ([`crate::policy`]), routes every recipient
//!    ([`crate::routing`]) and checks the attachments it names. It answers a refusal, the
//!    attachments a neighbour must upload first, or a [`CustodyPlan`].
//! 2. The shell stores the plan (and appends [`CustodyPlan::record`] to the audit log in the
//!    same step: no custody without its record), then [`CustodyPlan::settle`]s it with what
//!    the store said, which gives the reply (a signed receipt only once the cable is durable),
//!    the further audit records, and whom to wake.
//!
//! Where a submission and a forward differ, it is because the sender differs: a device's cable
//! gets the sender's checks and must name attachments already uploaded; a neighbour's gets the
//! relay checks and is asked for the attachments it must carry.

use std::time::Duration;

use valise_crypto::custody;
use valise_crypto::envelope::decode_envelope;
use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_proto::v1::{
    AuditEventKind, CustodyReceipt, ErrorCode, ErrorFrame, Outcome, Precedence,
};

use crate::attachment::{AttachmentId, parse_list};
use crate::limits::Limits;
use crate::policy::{DirectoryView, Refusal, check_forward, check_submission};
use crate::queue::QueueKey;
use crate::reason::Reason;
use crate::record::Record;
use crate::routing::{NextHop, Routed, Routes};

/// How long a neighbour waits before offering again a cable refused because this node's
/// directory is behind the sender's.
pub const DIRECTORY_BEHIND_RETRY: Duration = Duration::from_secs(1);
/// How long a sender waits when the same cable is being stored by another request.
pub const IN_PROGRESS_RETRY: Duration = Duration::from_millis(200);
/// How long a sender waits when the store is unavailable (a full or failing disk).
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);
/// How long a sender waits after any other failure to store.
pub const INTERNAL_RETRY: Duration = Duration::from_secs(1);

/// A cable id held with other content: never answered with a receipt.
pub const CONFLICT_MESSAGE: &str = "this node already holds a different cable with this id; the \
     envelope was not accepted. Seal the cable again (it gets a new id) and send that";

/// Who offers the cable.
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    /// A device of this post, on its own connection.
    Device(&'a DeviceId),
    /// A neighbouring node, forwarding for the devices it names.
    Neighbour {
        /// The neighbour's name.
        name: &'a str,
        /// The devices the neighbour asks this node to answer for.
        devices: &'a [Vec<u8>],
        /// When custody was first taken in the network (Unix ms).
        accepted_at_ms: u64,
    },
}

/// A cable offered for custody.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    /// Who offers it.
    pub sender: Sender<'a>,
    /// The envelope, as received.
    pub envelope: &'a [u8],
    /// The attachments it names (`Submit.attachments`, `Forward.attachments`).
    pub attachments: &'a [Vec<u8>],
}

/// What this node is: its name, its limits, its place in the network, and its directory.
#[derive(Debug, Clone, Copy)]
pub struct Here<'a, D> {
    /// The node's name, which signs its receipts.
    pub name: &'a str,
    /// Its limits.
    pub limits: &'a Limits,
    /// Its routes.
    pub routes: &'a Routes,
    /// Its directory.
    pub directory: &'a D,
}

/// What the node holds besides the directory: the attachments and the cables already taken.
/// The shell answers from its stores; an error is a failure to look, not an answer.
pub trait Holdings {
    /// Those of `ids` not held here at `now_ms` (missing or expired), in the order given.
    fn missing(&self, ids: &[AttachmentId], now_ms: u64) -> Result<Vec<AttachmentId>, String>;
    /// Whether this node already took custody of `cable`.
    fn seen(&self, cable: &[u8; 16]) -> Result<bool, String>;
}

/// What [`admit`] decided.
#[derive(Debug)]
#[must_use]
pub enum Admission<'a> {
    /// Not taken: answer the sender, record and count why.
    Refused(Refused),
    /// A neighbour must upload these attachments first, then offer the cable again.
    Wanted(Vec<AttachmentId>),
    /// Take custody as planned, then [`CustodyPlan::settle`].
    Custody(CustodyPlan<'a>),
}

/// A refusal before custody: nothing was stored, the sender keeps the cable.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The answer.
    pub error: ErrorFrame,
    /// What the audit log records.
    pub record: Record,
    /// Why, for the refusal metrics.
    pub reason: Reason,
}

/// A cable to take custody of: the durable write and the audit record that goes with it.
#[derive(Debug)]
pub struct CustodyPlan<'a> {
    sender: Sender<'a>,
    /// The cable.
    pub cable: [u8; 16],
    /// Its precedence: the order of every queue it joins.
    pub precedence: Precedence,
    /// The envelope, as received.
    pub envelope: &'a [u8],
    /// Where each recipient device goes next.
    pub routed: Routed,
    /// When custody was first taken in the network (Unix ms).
    pub accepted_at_ms: u64,
    /// The time of this custody (Unix ms): the receipt's.
    pub now_ms: u64,
    /// The attachments it carries, all held here.
    pub attachments: Vec<AttachmentId>,
    /// The custody record: appended once the cable is stored, before any receipt.
    pub record: Record,
    digest: [u8; 32],
    /// Devices the neighbour named that were revoked since: not delivered, and recorded.
    revoked: bool,
}

/// What the store said of a [`CustodyPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored durably at arrival number `seq`, its custody record with it.
    New {
        /// The arrival number: with the precedence, the cable's place in every queue.
        seq: u64,
    },
    /// Already held, byte for byte, and durable: custody was taken before.
    Duplicate,
    /// Another envelope with this id is held.
    Conflict,
    /// The same cable is being stored right now by another request.
    InProgress,
    /// The store, or the audit log, cannot write now (a full or failing disk).
    Unavailable(String),
    /// Storing failed otherwise.
    Failed(String),
}

/// The end of an admission, for the shell to carry out.
#[derive(Debug)]
#[must_use]
pub struct Settled {
    /// The answer: a signed receipt, or why not.
    pub reply: Reply,
    /// Further audit records (the custody record itself was appended with the write).
    pub records: Vec<Record>,
    /// Why it was refused, for the refusal metrics.
    pub refused: Option<Reason>,
    /// Delivery streams to tell: these devices have the cable queued here, at `queued`.
    pub wake_devices: Vec<DeviceId>,
    /// Where the cable sits in every queue it joined, when it was newly queued.
    pub queued: Option<QueueKey>,
    /// Links to wake: these next hops have a cable to forward.
    pub wake_hops: Vec<NextHop>,
}

/// An answer to the sender.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Custody was taken: the signed receipt.
    Receipt(CustodyReceipt),
    /// It was not.
    Error(ErrorFrame),
}

impl Reply {
    /// Whether custody was taken.
    pub fn is_receipt(&self) -> bool {
        matches!(self, Reply::Receipt(_))
    }
}

/// Decides whether to take custody of `offer` at `now_ms`.
pub fn admit<'a, D: DirectoryView>(
    here: &Here<'_, D>,
    offer: Offer<'a>,
    holdings: &impl Holdings,
    now_ms: u64,
) -> Admission<'a> {
    let digest = valise_crypto::sha256(offer.envelope);
    let refuse = |cable: &[u8], reason: Reason, code: ErrorCode, message: String| {
        let retry = match code {
            ErrorCode::DirectoryBehind => DIRECTORY_BEHIND_RETRY,
            _ => Duration::ZERO,
        };
        Admission::Refused(Refused {
            error: error_frame(code, message, retry),
            record: refusal_record(offer.sender, &digest, cable).reason(reason.clone()),
            reason,
        })
    };
    let envelope = match decode_envelope(offer.envelope) {
        Ok(envelope) => envelope,
        Err(e) => return refuse(&[], Reason::Malformed, ErrorCode::Malformed, e.to_string()),
    };
    let cable_of = envelope
        .header
        .as_ref()
        .map(|h| h.cable_id.clone())
        .unwrap_or_default();
    let policy_refused = |refusal: Refusal| {
        refuse(
            &cable_of,
            refusal.audit_reason(),
            refusal.code(),
            refusal.to_string(),
        )
    };
    let size = offer.envelope.len();
    let (cable, precedence, recipients, revoked, accepted_at_ms) = match offer.sender {
        Sender::Device(device) => {
            match check_submission(here.limits, here.directory, device, size, &envelope) {
                Ok(a) => (a.cable_id, a.precedence, a.recipients, false, now_ms),
                Err(refusal) => return policy_refused(refusal),
            }
        }
        Sender::Neighbour {
            devices,
            accepted_at_ms,
            ..
        } => match check_forward(here.limits, here.directory, size, &envelope, devices) {
            Ok(a) => (
                a.cable_id,
                a.precedence,
                a.devices,
                !a.revoked.is_empty(),
                accepted_at_ms,
            ),
            Err(refusal) => return policy_refused(refusal),
        },
    };
    // One unroutable recipient refuses the cable before custody, so nothing is half-sent.
    let posts: Vec<(DeviceId, String)> = recipients
        .iter()
        .filter_map(|d| here.directory.device(d).map(|v| (*d, v.post)))
        .collect();
    let routed = match here.routes.route(&posts) {
        Ok(routed) => routed,
        Err(e) => return refuse(&cable, Reason::NoRoute, ErrorCode::Malformed, e.to_string()),
    };
    let attachments = match parse_list(offer.attachments) {
        Ok(ids) => ids,
        Err(e) => {
            return refuse(
                &cable,
                Reason::Malformed,
                ErrorCode::Malformed,
                e.to_string(),
            );
        }
    };
    // A cable already held came with its attachments: it is answered with a receipt again,
    // and a resend learns nothing about which attachments this node holds.
    let missing = if attachments.is_empty() {
        Ok(Vec::new())
    } else {
        holdings.seen(&cable).and_then(|seen| {
            if seen {
                Ok(Vec::new())
            } else {
                holdings.missing(&attachments, now_ms)
            }
        })
    };
    let missing = match missing {
        Ok(missing) => missing,
        Err(e) => {
            return refuse(
                &cable,
                Reason::Internal,
                ErrorCode::Internal,
                format!("the node could not check the cable's attachments ({e}); retry later"),
            );
        }
    };
    match (offer.sender, missing.first()) {
        (_, None) => {}
        // Custody of a forwarded cable includes its attachments: the neighbour uploads them.
        (Sender::Neighbour { .. }, Some(_)) => return Admission::Wanted(missing),
        (Sender::Device(_), Some(id)) => {
            return refuse(
                &cable,
                Reason::AttachmentMissing,
                ErrorCode::NotFound,
                format!(
                    "the cable names attachment {id}, which this node does not hold; upload \
                     every attachment before the cable that carries it, then submit again"
                ),
            );
        }
    }
    Admission::Custody(CustodyPlan {
        sender: offer.sender,
        cable,
        precedence,
        envelope: offer.envelope,
        routed,
        accepted_at_ms,
        now_ms,
        attachments,
        record: actor(
            Record::new(AuditEventKind::CustodyTaken, Outcome::Success),
            offer.sender,
        )
        .object("envelope", &cable, &digest),
        digest,
        revoked,
    })
}

impl CustodyPlan<'_> {
    /// What the node answers, records and wakes once the store has said `stored`. The receipt
    /// is signed with `node_key` only for a cable now durable here.
    pub fn settle(self, stored: Stored, node_key: &IdentityKeyPair, name: &str) -> Settled {
        let refused = |reason: Reason, error: ErrorFrame| Settled {
            reply: Reply::Error(error),
            records: vec![
                refusal_record(self.sender, &self.digest, &self.cable).reason(reason.clone()),
            ],
            refused: Some(reason),
            wake_devices: Vec::new(),
            queued: None,
            wake_hops: Vec::new(),
        };
        let unstored = |reason: Reason, error: ErrorFrame| Settled {
            reply: Reply::Error(error),
            records: Vec::new(),
            refused: Some(reason),
            wake_devices: Vec::new(),
            queued: None,
            wake_hops: Vec::new(),
        };
        let queued = match stored {
            Stored::New { seq } => Some(QueueKey::new(self.precedence, seq)),
            _ => None,
        };
        match stored {
            Stored::New { .. } | Stored::Duplicate => {
                let receipt =
                    custody::sign(node_key, name, &self.cable, self.envelope, self.now_ms);
                let mut records = Vec::new();
                if self.revoked {
                    records.push(
                        refusal_record(self.sender, &self.digest, &self.cable)
                            .reason(Reason::RecipientRevoked),
                    );
                }
                Settled {
                    reply: Reply::Receipt(receipt),
                    records,
                    refused: None,
                    wake_devices: self.routed.local,
                    queued,
                    wake_hops: self.routed.onward.into_iter().map(|(hop, _)| hop).collect(),
                }
            }
            Stored::Conflict => refused(
                Reason::IdConflict,
                error_frame(ErrorCode::Conflict, CONFLICT_MESSAGE.into(), Duration::ZERO),
            ),
            // Not refused: the other request will answer for the cable.
            Stored::InProgress => Settled {
                reply: Reply::Error(error_frame(
                    ErrorCode::Busy,
                    "this cable is being stored by another request; retry shortly".into(),
                    IN_PROGRESS_RETRY,
                )),
                records: Vec::new(),
                refused: None,
                wake_devices: Vec::new(),
                queued: None,
                wake_hops: Vec::new(),
            },
            // Nothing was acknowledged: the sender keeps the cable and retries.
            Stored::Unavailable(e) => unstored(
                Reason::Unavailable,
                error_frame(ErrorCode::Unavailable, not_stored(&e), UNAVAILABLE_RETRY),
            ),
            Stored::Failed(e) => unstored(
                Reason::Unavailable,
                error_frame(ErrorCode::Internal, not_stored(&e), INTERNAL_RETRY),
            ),
        }
    }
}

fn not_stored(e: &str) -> String {
    format!(
        "the node could not store the cable ({e}); it was not accepted: keep it and retry later"
    )
}

fn error_frame(code: ErrorCode, message: String, retry: Duration) -> ErrorFrame {
    ErrorFrame {
        code: code as i32,
        message,
        retry_after_ms: u64::try_from(retry.as_millis()).unwrap_or(u64::MAX),
    }
}

/// A refusal as the audit log records it: a device's refused submission, or a neighbour's
/// refused offer of custody.
fn refusal_record(sender: Sender<'_>, digest: &[u8; 32], cable: &[u8]) -> Record {
    let kind = match sender {
        Sender::Device(_) => AuditEventKind::CableSubmitted,
        Sender::Neighbour { .. } => AuditEventKind::CustodyTaken,
    };
    actor(Record::new(kind, Outcome::Refused), sender).object("envelope", cable, digest)
}

fn actor(record: Record, sender: Sender<'_>) -> Record {
    match sender {
        Sender::Device(device) => record.by_device(device),
        Sender::Neighbour { name, .. } => record.by_node(name),
    }
}
