//! An audit event as the relay's decisions describe it: what, who, from where, about what,
//! how it ended, and why. The shell stamps the time and appends it to the log.

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{ActorKind, AuditEvent, AuditEventKind, AuditObject, Outcome};

use crate::reason::Reason;

/// An audit event being built: what, who, from where, about what, how it ended. Ids and
/// digests only, never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    kind: AuditEventKind,
    outcome: Outcome,
    actor_kind: ActorKind,
    actor_id: String,
    source: String,
    reason: String,
    objects: Vec<AuditObject>,
}

impl Record {
    /// An event of `kind` that ended in `outcome`, by no one in particular yet.
    pub fn new(kind: AuditEventKind, outcome: Outcome) -> Self {
        Record {
            kind,
            outcome,
            actor_kind: ActorKind::Unspecified,
            actor_id: String::new(),
            source: String::new(),
            reason: String::new(),
            objects: Vec::new(),
        }
    }

    /// Done by `device`.
    pub fn by_device(mut self, device: &DeviceId) -> Self {
        self.actor_kind = ActorKind::Device;
        self.actor_id = device.to_string();
        self
    }

    /// Done by an operator, through the admin socket or the command line.
    pub fn by_operator(mut self) -> Self {
        self.actor_kind = ActorKind::Operator;
        self.actor_id = "admin-socket".into();
        self
    }

    /// Done by the node `node` (a neighbour, or this node on its own account).
    pub fn by_node(mut self, node: &str) -> Self {
        self.actor_kind = ActorKind::Node;
        self.actor_id = node.to_owned();
        self
    }

    /// From `source`: the network address or channel.
    pub fn source(mut self, source: String) -> Self {
        self.source = source;
        self
    }

    /// Why.
    pub fn reason(mut self, reason: Reason) -> Self {
        self.reason = reason.as_str().to_owned();
        self
    }

    /// About an object of `kind` (`envelope`, `device`, `attachment`), by id and digest.
    pub fn object(mut self, kind: &str, id: &[u8], sha256: &[u8]) -> Self {
        self.objects.push(AuditObject {
            kind: kind.to_owned(),
            id: id.to_vec(),
            sha256: sha256.to_vec(),
        });
        self
    }

    /// The event, as recorded by `node` at `time_ms`.
    pub fn event(self, node: &str, time_ms: u64) -> AuditEvent {
        AuditEvent {
            index: 0,
            time_ms,
            node: node.to_owned(),
            kind: self.kind as i32,
            actor_kind: self.actor_kind as i32,
            actor_id: self.actor_id,
            source: self.source,
            objects: self.objects,
            outcome: self.outcome as i32,
            reason: self.reason,
        }
    }
}
