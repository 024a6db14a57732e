//! Each recipient's state for a sent cable. States only advance: a late or repeated receipt
//! never moves a recipient backwards.

use valise_proto::v1::ReceiptKind;

/// A recipient device's state, in the order it advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum DeliveryState {
    /// Sealed and waiting in the outbox.
    Queued = 0,
    /// The node signed a custody receipt: it holds the cable durably.
    Custody = 1,
    /// The device stored the cable.
    Delivered = 2,
    /// The user opened it.
    Read = 3,
    /// The user acknowledged it (FLASH and NIACT).
    Acknowledged = 4,
}

impl DeliveryState {
    /// The stable name used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Custody => "custody",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Acknowledged => "acknowledged",
        }
    }

    /// The state a receipt of `kind` attests, if it is a valid kind.
    pub fn from_receipt(kind: ReceiptKind) -> Option<Self> {
        match kind {
            ReceiptKind::Delivered => Some(DeliveryState::Delivered),
            ReceiptKind::Read => Some(DeliveryState::Read),
            ReceiptKind::Acknowledged => Some(DeliveryState::Acknowledged),
            ReceiptKind::Unspecified => None,
        }
    }
}

/// One recipient device of a sent cable.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecipientStatus {
    /// The user's address, e.g. `bob@paris`.
    #[prost(string, tag = "1")]
    pub address: String,
    /// The device (16 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub device_id: Vec<u8>,
    /// Its state.
    #[prost(enumeration = "DeliveryState", tag = "3")]
    pub state: i32,
    /// When it last changed, Unix ms.
    #[prost(uint64, tag = "4")]
    pub updated_at_ms: u64,
    /// When the device stored it (its delivered receipt, or a later one if that came first),
    /// Unix ms; 0 until then.
    #[prost(uint64, tag = "5")]
    pub delivered_at_ms: u64,
    /// When its user acknowledged it, Unix ms; 0 until then.
    #[prost(uint64, tag = "6")]
    pub acknowledged_at_ms: u64,
    /// Whether it was reached through an action addressee (asked to act and acknowledge).
    #[prost(bool, tag = "7")]
    pub action: bool,
}

/// A cable this device sent, with what it knows of each recipient.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SentCable {
    /// The cable id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub cable_id: Vec<u8>,
    /// The routing header as sealed.
    #[prost(message, optional, tag = "2")]
    pub header: Option<valise_proto::v1::RoutingHeader>,
    /// The body as sealed (kept in the sealed local store only).
    #[prost(message, optional, tag = "3")]
    pub body: Option<valise_proto::v1::CableBody>,
    /// One entry per recipient device.
    #[prost(message, repeated, tag = "4")]
    pub recipients: Vec<RecipientStatus>,
    /// When the cable was written (Unix ms).
    #[prost(uint64, tag = "5")]
    pub created_at_ms: u64,
    /// Why the node refused the cable for good; empty while it is queued or accepted.
    #[prost(string, tag = "6")]
    pub refused: String,
    /// The envelope as sealed and sent, byte for byte.
    #[prost(bytes = "vec", tag = "7")]
    pub envelope: Vec<u8>,
    /// The custody receipts the home node signed for it.
    #[prost(message, repeated, tag = "8")]
    pub custody: Vec<valise_proto::v1::CustodyReceipt>,
    /// Every verified receipt the recipients sent back, kept after their state was applied.
    #[prost(message, repeated, tag = "9")]
    pub receipts: Vec<valise_proto::v1::Receipt>,
    /// The diplomat cancelled it before the node took it.
    #[prost(bool, tag = "10")]
    pub cancelled: bool,
}

/// Why a receipt could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The device was not a recipient of the cable.
    #[error("device {0} was not a recipient of this cable")]
    NotARecipient(String),
    /// The receipt kind is not one this version knows.
    #[error("unknown receipt kind {0}")]
    UnknownKind(i32),
}

impl SentCable {
    /// The node took custody at `at_ms`: every queued recipient moves to custody.
    pub fn custody_taken(&mut self, at_ms: u64) {
        for r in &mut self.recipients {
            if r.state() < DeliveryState::Custody {
                r.set_state(DeliveryState::Custody);
                r.updated_at_ms = at_ms;
            }
        }
    }

    /// Applies a verified receipt from `device`. Returns whether anything changed.
    pub fn apply_receipt(
        &mut self,
        device: &[u8],
        kind: i32,
        at_ms: u64,
    ) -> Result<bool, StatusError> {
        let state = ReceiptKind::try_from(kind)
            .ok()
            .and_then(DeliveryState::from_receipt)
            .ok_or(StatusError::UnknownKind(kind))?;
        let recipient = self
            .recipients
            .iter_mut()
            .find(|r| r.device_id == device)
            .ok_or_else(|| StatusError::NotARecipient(hex::encode(device)))?;
        if state >= DeliveryState::Delivered && recipient.delivered_at_ms == 0 {
            recipient.delivered_at_ms = at_ms;
        }
        if state == DeliveryState::Acknowledged && recipient.acknowledged_at_ms == 0 {
            recipient.acknowledged_at_ms = at_ms;
        }
        if recipient.state() >= state {
            return Ok(false);
        }
        recipient.set_state(state);
        recipient.updated_at_ms = at_ms;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent() -> SentCable {
        SentCable {
            cable_id: vec![1; 16],
            recipients: vec![
                RecipientStatus {
                    address: "bob@paris".into(),
                    device_id: vec![2; 16],
                    ..Default::default()
                },
                RecipientStatus {
                    address: "carol@paris".into(),
                    device_id: vec![3; 16],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn states_advance_and_never_go_back() {
        let mut s = sent();
        assert_eq!(s.recipients[0].state(), DeliveryState::Queued);
        s.custody_taken(10);
        assert!(
            s.recipients
                .iter()
                .all(|r| r.state() == DeliveryState::Custody)
        );
        assert!(
            s.apply_receipt(&[2; 16], ReceiptKind::Read as i32, 20)
                .unwrap()
        );
        // A delivery receipt arriving after the read receipt changes nothing.
        assert!(
            !s.apply_receipt(&[2; 16], ReceiptKind::Delivered as i32, 30)
                .unwrap()
        );
        assert_eq!(s.recipients[0].state(), DeliveryState::Read);
        assert_eq!(s.recipients[0].updated_at_ms, 20);
        assert_eq!(s.recipients[1].state(), DeliveryState::Custody);
        // Custody after a receipt does not regress either.
        s.custody_taken(40);
        assert_eq!(s.recipients[0].state(), DeliveryState::Read);
    }

    #[test]
    fn a_receipt_from_a_stranger_or_of_no_kind_is_refused() {
        let mut s = sent();
        assert_eq!(
            s.apply_receipt(&[9; 16], ReceiptKind::Delivered as i32, 1),
            Err(StatusError::NotARecipient(hex::encode([9u8; 16])))
        );
        assert_eq!(
            s.apply_receipt(&[2; 16], 0, 1),
            Err(StatusError::UnknownKind(0))
        );
        assert_eq!(
            s.apply_receipt(&[2; 16], 77, 1),
            Err(StatusError::UnknownKind(77))
        );
    }
}
