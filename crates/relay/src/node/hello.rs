//! A device's hello: the welcome (protocol version, node, clock, limits, keys), or, for a
//! connection number seen before, the alarm of a cloned device.

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{
    AuditEventKind, ErrorCode, Limits as WireLimits, NodeFrame, Outcome, Welcome, node_frame,
};

use super::{Shared, error, now_ms};
use crate::reason::Reason;
use crate::record::Record;

/// Answers a device's hello: welcome, unless its connection number was seen before, which
/// means two copies of its data folder are in use (a cloned device). Then the node raises an
/// alarm, audits it, and tells the device; the operator decides whether to revoke it.
pub(super) fn greet(shared: &Shared, device: &DeviceId, session: u64) -> NodeFrame {
    if session == 0 {
        return welcome(shared);
    }
    let last = match shared.store.note_session(device, session) {
        Ok(last) => last,
        Err(e) => {
            tracing::error!(error = %e, "a device's connection number could not be kept");
            return welcome(shared);
        }
    };
    let Some(last) = last.filter(|l| session <= *l) else {
        return welcome(shared);
    };
    let owner = shared
        .directory
        .read()
        .view()
        .lookup(device)
        .map(|e| e.device.address())
        .unwrap_or_default();
    let message = format!(
        "CLONED DEVICE? device {device} of {owner} connected as number {session}, after number \
         {last}: two copies of its data folder are in use. If its owner did not copy it, revoke \
         the device (`valise-relay revoke --device {device}`) and enrol a new one"
    );
    if shared.raise(&format!("clone:{device}"), &message) {
        tracing::error!(device = %device, session, last, "{message}");
    }
    shared.record(
        Record::new(AuditEventKind::RequestRefused, Outcome::Refused)
            .by_device(device)
            .reason(Reason::ClonedDevice),
    );
    error(
        ErrorCode::ClonedDevice,
        "this device's identity is in use from another copy of its data folder (the node has \
         seen this connection number before). If you did not copy it, the device may be \
         compromised: contact ministry IT, who can revoke it and enrol a new one",
    )
}

pub(super) fn welcome(shared: &Shared) -> NodeFrame {
    NodeFrame {
        frame: Some(node_frame::Frame::Welcome(Welcome {
            protocol_version: valise_proto::PROTOCOL_VERSION,
            node: shared.name.clone(),
            node_time_ms: now_ms(),
            limits: Some(WireLimits {
                max_envelope_bytes: shared.limits.max_envelope_bytes as u64,
                max_recipients: u32::try_from(shared.limits.max_recipients).unwrap_or(u32::MAX),
                max_attachment_bytes: shared.limits.max_attachment_bytes,
            }),
            node_key: shared.node_key.public().as_bytes().to_vec(),
            extra_tags: shared.extra_tags.clone(),
            node_key_certificate: shared.node_key_certificate.clone(),
            delivery_lanes: true,
        })),
    }
}
