//! Structural checks of a routing header, shared by sealing and opening.

use valise_proto::v1::{Caveat, Classification, Precedence, RoutingHeader};

use super::CABLE_ID_LEN;
use crate::identity::DEVICE_ID_LEN;

/// A routing header that is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The cable id is not 16 bytes.
    #[error("the cable id must be {CABLE_ID_LEN} bytes, got {0}")]
    BadCableId(usize),
    /// The sender device id is not 16 bytes.
    #[error("the sender device id must be {DEVICE_ID_LEN} bytes, got {0}")]
    BadSenderDevice(usize),
    /// There is no sender address.
    #[error("the cable has no sender address (`from`)")]
    NoSender,
    /// There is no action addressee.
    #[error("the cable has no action addressee; every cable needs at least one")]
    NoActionAddressee,
    /// The classification is missing or unknown.
    #[error("the classification value {0} is missing or unknown")]
    BadClassification(i32),
    /// The precedence is missing or unknown.
    #[error("the precedence value {0} is missing or unknown")]
    BadPrecedence(i32),
    /// A caveat is unknown or repeated.
    #[error("the caveat value {0} is unknown or repeated")]
    BadCaveat(i32),
    /// The header is too large to encode canonically.
    #[error("the routing header is too large to encode")]
    TooLarge,
}

/// Checks the fields that every header must have, and that enum values are known.
pub(super) fn validate(h: &RoutingHeader) -> Result<(), HeaderError> {
    if h.cable_id.len() != CABLE_ID_LEN {
        return Err(HeaderError::BadCableId(h.cable_id.len()));
    }
    if h.sender_device.len() != DEVICE_ID_LEN {
        return Err(HeaderError::BadSenderDevice(h.sender_device.len()));
    }
    if h.from.is_empty() {
        return Err(HeaderError::NoSender);
    }
    if h.action_addressees.is_empty() {
        return Err(HeaderError::NoActionAddressee);
    }
    match Classification::try_from(h.classification) {
        Ok(c) if c != Classification::Unspecified => {}
        _ => return Err(HeaderError::BadClassification(h.classification)),
    }
    match Precedence::try_from(h.precedence) {
        Ok(p) if p != Precedence::Unspecified => {}
        _ => return Err(HeaderError::BadPrecedence(h.precedence)),
    }
    for (i, &c) in h.caveats.iter().enumerate() {
        let known = matches!(Caveat::try_from(c), Ok(v) if v != Caveat::Unspecified);
        if !known || h.caveats[..i].contains(&c) {
            return Err(HeaderError::BadCaveat(c));
        }
    }
    Ok(())
}
