//! Received cables, kept opened in the sealed store, in reading order: precedence first, NIACT
//! before the rest at one precedence, then newest first.

use valise_proto::v1::{CableBody, Precedence, RoutingHeader};

/// One received cable.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InboxEntry {
    /// The routing header, as the sender signed it.
    #[prost(message, optional, tag = "1")]
    pub header: Option<RoutingHeader>,
    /// The opened body.
    #[prost(message, optional, tag = "2")]
    pub body: Option<CableBody>,
    /// When this device stored it, Unix ms.
    #[prost(uint64, tag = "3")]
    pub received_at_ms: u64,
    /// Whether the user has opened it.
    #[prost(bool, tag = "4")]
    pub read: bool,
    /// Whether the user has acknowledged it.
    #[prost(bool, tag = "5")]
    pub acknowledged: bool,
    /// The sender's identity key, as the directory gave it when the signature was verified.
    #[prost(bytes = "vec", tag = "6")]
    pub sender_identity: Vec<u8>,
    /// The sender's address from the verified directory record of the signing device (never
    /// from the header alone; the two were checked to agree before the cable was stored).
    #[prost(string, tag = "7")]
    pub sender_address: String,
    /// Whether this device's user is an action addressee (1) or an info addressee only (2);
    /// 0 for cables stored before this was kept, taken as action.
    #[prost(int32, tag = "8")]
    pub role: i32,
    /// The envelope, byte for byte as delivered: the sender's signature and every key wrap,
    /// kept so the cable can be proved later (evidence bundles).
    #[prost(bytes = "vec", tag = "9")]
    pub envelope: Vec<u8>,
    /// The receipts this device signed for the cable (delivered, read, acknowledged).
    #[prost(message, repeated, tag = "10")]
    pub receipts: Vec<valise_proto::v1::Receipt>,
}

/// An info addressee only: informed, not asked to act.
pub const ROLE_INFO: i32 = 2;
/// An action addressee (directly, or through an office or post mailbox).
pub const ROLE_ACTION: i32 = 1;

impl InboxEntry {
    /// The cable's precedence.
    pub fn precedence(&self) -> Precedence {
        self.header
            .as_ref()
            .and_then(|h| Precedence::try_from(h.precedence).ok())
            .unwrap_or(Precedence::Unspecified)
    }

    /// Whether the sender needs an explicit acknowledgement from this user: a FLASH or NIACT
    /// cable to which they are an action addressee (info addressees are only informed).
    pub fn needs_ack(&self) -> bool {
        let urgent =
            self.precedence() == Precedence::Flash || self.header.as_ref().is_some_and(|h| h.niact);
        urgent && self.role != ROLE_INFO
    }

    /// Whether this user is an info addressee only.
    pub fn info_only(&self) -> bool {
        self.role == ROLE_INFO
    }
}

/// Reading order between two entries: the more urgent first; at one precedence a NIACT cable
/// first, since it calls for action at any hour; then the newer.
pub fn order(a: &InboxEntry, b: &InboxEntry) -> std::cmp::Ordering {
    b.precedence()
        .cmp(&a.precedence())
        .then(niact(b).cmp(&niact(a)))
        .then(b.received_at_ms.cmp(&a.received_at_ms))
}

fn niact(entry: &InboxEntry) -> bool {
    entry.header.as_ref().is_some_and(|h| h.niact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(precedence: Precedence, niact: bool, at: u64) -> InboxEntry {
        InboxEntry {
            header: Some(RoutingHeader {
                precedence: precedence as i32,
                niact,
                ..Default::default()
            }),
            received_at_ms: at,
            ..Default::default()
        }
    }

    #[test]
    fn flash_first_then_newest() {
        let mut entries = [
            entry(Precedence::Routine, false, 30),
            entry(Precedence::Flash, false, 10),
            entry(Precedence::Routine, false, 50),
            entry(Precedence::Immediate, false, 20),
        ];
        entries.sort_by(order);
        let order: Vec<(Precedence, u64)> = entries
            .iter()
            .map(|e| (e.precedence(), e.received_at_ms))
            .collect();
        assert_eq!(
            order,
            [
                (Precedence::Flash, 10),
                (Precedence::Immediate, 20),
                (Precedence::Routine, 50),
                (Precedence::Routine, 30)
            ]
        );
    }

    #[test]
    fn niact_first_at_one_precedence_even_when_older() {
        let mut entries = [
            entry(Precedence::Flash, false, 20),
            entry(Precedence::Priority, true, 30),
            entry(Precedence::Flash, true, 10),
        ];
        entries.sort_by(order);
        let order: Vec<(Precedence, bool)> =
            entries.iter().map(|e| (e.precedence(), niact(e))).collect();
        assert_eq!(
            order,
            [
                (Precedence::Flash, true),
                (Precedence::Flash, false),
                (Precedence::Priority, true)
            ]
        );
    }

    #[test]
    fn flash_and_niact_need_an_acknowledgement() {
        assert!(entry(Precedence::Flash, false, 0).needs_ack());
        assert!(entry(Precedence::Routine, true, 0).needs_ack());
        assert!(!entry(Precedence::Immediate, false, 0).needs_ack());
    }
}
