//! What a device may change about itself (its receive keys, its wipe notice), and closing
//! the connections of devices that are revoked.

use std::sync::{Arc, PoisonError};

use valise_crypto::directory::sign_device_record;
use valise_crypto::identity::DeviceId;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{
    AuditEventKind, ErrorCode, NodeFrame, Outcome, ReceiveKey, ReceiveKeysPublished, WipeConfirmed,
    node_frame,
};

use super::{Shared, WIPE_CONFIRM_WAIT, error, now_ms, send_frame};
use crate::reason::Reason;
use crate::record::Record;

pub(super) const CLOSE_REVOKED: u32 = 3;

/// Closes the devices' connections at once: they are revoked.
pub(super) fn close_connections(shared: &Shared, devices: &[DeviceId]) {
    let mut connections = shared
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for device in devices {
        for connection in connections.remove(device).unwrap_or_default() {
            connection.close(
                CLOSE_REVOKED.into(),
                b"this device has just been revoked by its post: contact ministry IT to enrol a \
                  new one",
            );
        }
    }
}

/// The device asks to be revoked because its user is wiping it. The confirmation goes out
/// before its connections close, so the device knows the revocation is durable.
pub(super) async fn wipe(
    mut send: quinn::SendStream,
    device: DeviceId,
    shared: Arc<Shared>,
    reason: String,
) {
    let revoking = Arc::clone(&shared);
    let reply = tokio::task::spawn_blocking(move || wipe_device(&revoking, &device, &reason))
        .await
        .unwrap_or_else(|_| {
            error(
                ErrorCode::Internal,
                "the wipe notice could not be processed inside the node; send it again",
            )
        });
    let confirmed = matches!(reply.frame, Some(node_frame::Frame::WipeConfirmed(_)));
    send_frame(&mut send, &reply).await;
    let _ = send.finish();
    if confirmed {
        let _ = tokio::time::timeout(WIPE_CONFIRM_WAIT, send.stopped()).await;
        close_connections(&shared, &[device]);
    }
}

/// Audits a device's refused request about itself, and answers why.
pub(super) fn refuse_own_request(
    shared: &Shared,
    kind: AuditEventKind,
    device: &DeviceId,
    audit_reason: Reason,
    code: ErrorCode,
    message: String,
) -> NodeFrame {
    shared.record(
        Record::new(kind, Outcome::Refused)
            .by_device(device)
            .object("device", device.as_bytes(), &[])
            .reason(audit_reason),
    );
    error(code, message)
}

pub(super) fn wipe_device(shared: &Shared, device: &DeviceId, reason: &str) -> NodeFrame {
    let refuse = |audit_reason: Reason, code: ErrorCode, message: String| {
        refuse_own_request(
            shared,
            AuditEventKind::DeviceRevoked,
            device,
            audit_reason,
            code,
            message,
        )
    };
    let Some(desk) = &shared.desk else {
        return refuse(
            Reason::WipeNoDesk,
            ErrorCode::EnrolmentRefused,
            "this node holds no enrolment key and cannot revoke devices; send the wipe notice \
             to your post's node, or ask its operators to revoke the device"
                .into(),
        );
    };
    let post = shared
        .directory
        .read()
        .view()
        .lookup(device)
        .map(|entry| entry.device.post.clone());
    if post.as_deref() != Some(desk.post.as_str()) {
        return refuse(
            Reason::WipeOtherPost,
            ErrorCode::EnrolmentRefused,
            format!(
                "this device is not enrolled at {}; send the wipe notice to its own post's node",
                desk.post
            ),
        );
    }
    let reason = crate::devices::wipe_reason(reason);
    match shared
        .operator()
        .revoke_in_directory(Some(*device), "", &reason, Some(device))
    {
        Ok((_, directory_version)) => NodeFrame {
            frame: Some(node_frame::Frame::WipeConfirmed(WipeConfirmed {
                directory_version,
            })),
        },
        Err(e) => {
            tracing::error!(device = %device, error = %e, "a wipe notice could not be recorded");
            refuse(
                Reason::WipeFailed,
                ErrorCode::Internal,
                format!("the node could not revoke this device ({e}); send the notice again"),
            )
        }
    }
}

/// Replaces the device's receive keys in its record, re-signed with the post's enrolment key
/// and durable before the answer.
pub(super) fn publish_receive_keys(
    shared: &Shared,
    device: &DeviceId,
    keys: Vec<ReceiveKey>,
) -> NodeFrame {
    let refuse = |audit_reason: Reason, code: ErrorCode, message: String| {
        refuse_own_request(
            shared,
            AuditEventKind::ReceiveKeysPublished,
            device,
            audit_reason,
            code,
            message,
        )
    };
    let Some(desk) = &shared.desk else {
        return refuse(
            Reason::NoDesk,
            ErrorCode::EnrolmentRefused,
            "this node holds no enrolment key; publish receive keys through your post's node"
                .into(),
        );
    };
    let published = {
        let mut directory = shared.directory.write();
        match directory.view().lookup(device) {
            None => Err((
                Reason::Unknown,
                ErrorCode::UnknownSender,
                "this device is not in the directory; enrol it first".to_owned(),
            )),
            Some(entry) if entry.revoked => Err((
                Reason::Revoked,
                ErrorCode::Revoked,
                "this device is revoked; enrol a new device".to_owned(),
            )),
            Some(entry) => {
                crate::devices::with_receive_keys(&entry.device, keys, &desk.post, now_ms())
                    .map_err(|e| (e.audit_reason(), ErrorCode::EnrolmentRefused, e.to_string()))
                    .and_then(|mut record| {
                        sign_device_record(&mut record, &desk.enrolment_key).map_err(|e| {
                            (
                                Reason::Signing,
                                ErrorCode::Internal,
                                format!("the new record could not be signed ({e})"),
                            )
                        })?;
                        let version = directory.apply(Update::Device(record.clone())).map_err(
                            |e| match e {
                                crate::directory::DurableError::Refused(e) => (
                                    Reason::Record,
                                    ErrorCode::EnrolmentRefused,
                                    format!("the new record is not acceptable: {e}"),
                                ),
                                crate::directory::DurableError::Store(_) => (
                                    Reason::Store,
                                    ErrorCode::Internal,
                                    format!(
                                        "the node could not store the new record ({e}); \
                                         publish the keys again later"
                                    ),
                                ),
                            },
                        )?;
                        Ok((record, version))
                    })
            }
        }
    };
    match published {
        Ok((record, directory_version)) => {
            shared.record(
                Record::new(AuditEventKind::ReceiveKeysPublished, Outcome::Success)
                    .by_device(device)
                    .object("device", device.as_bytes(), &[]),
            );
            NodeFrame {
                frame: Some(node_frame::Frame::ReceiveKeysPublished(
                    ReceiveKeysPublished {
                        record: Some(record),
                        directory_version,
                    },
                )),
            }
        }
        Err((audit_reason, code, message)) => refuse(audit_reason, code, message),
    }
}
