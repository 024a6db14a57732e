//! Enrolment, the one path without a device certificate: one request redeems a one-time
//! code, and the node signs the device's record and issues its certificate.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use valise_crypto::directory::sign_device_record;
use valise_crypto::identity::{IdentityKeyPair, IdentityPublicKey};
use valise_crypto::receive_key::VerifiedReceiveKey;
use valise_pki::{PostCa, Validity};
use valise_proto::framing::FrameDecoder;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{
    AuditEventKind, DeviceRecord, EnrolRequest, EnrolResponse, ErrorCode, NodeFrame, Outcome,
    client_frame, node_frame,
};

use super::{CLOSE_UNAUTHORISED, Shared, error, next_frame, now_ms, send_frame};
use crate::enrolment::{CodeError, DurableCodeError, DurableCodes};
use crate::reason::Reason;
use crate::record::Record;

/// The enrolment desk's state inside the running node.
pub(super) struct Desk {
    pub(super) post: String,
    pub(super) enrolment_key: IdentityKeyPair,
    pub(super) post_ca: PostCa,
    pub(super) codes: Mutex<DurableCodes>,
    pub(super) certificate_validity: Duration,
}

/// How long an enrolling device has to send its request: short, since it holds a place at
/// the unauthenticated gate meanwhile.
pub(super) const ENROLMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The one unauthenticated path: one stream, one `EnrolRequest`, one answer, then goodbye.
pub(super) async fn serve_enrolment(connection: quinn::Connection, shared: Arc<Shared>) {
    let source = connection.remote_address().to_string();
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(ENROLMENT_TIMEOUT, connection.accept_bi()).await
    else {
        connection.close(CLOSE_UNAUTHORISED.into(), b"no enrolment request");
        return;
    };
    // A request is keys, a CSR and a code: a few kilobytes at most.
    let mut decoder = FrameDecoder::new(64 * 1024);
    let frame = tokio::time::timeout(
        ENROLMENT_TIMEOUT,
        next_frame(&mut recv, &mut decoder, Some(&mut send)),
    )
    .await
    .ok()
    .flatten();
    let reply = match frame.and_then(|f| f.frame) {
        Some(client_frame::Frame::Enrol(request)) => {
            let shared = Arc::clone(&shared);
            let source = source.clone();
            tokio::task::spawn_blocking(move || enrol(&shared, request, &source))
                .await
                .unwrap_or_else(|_| {
                    error(
                        ErrorCode::Internal,
                        "enrolment failed inside the node; try again",
                    )
                })
        }
        _ => error(
            ErrorCode::EnrolmentRefused,
            "only an enrolment request is accepted without a certificate",
        ),
    };
    send_frame(&mut send, &reply).await;
    let _ = send.finish();
    let _ = send.stopped().await;
    connection.close(0u32.into(), b"enrolment done");
}

/// Redeems the code, signs the device's record, applies it, and issues its certificate.
pub(super) fn enrol(shared: &Shared, request: EnrolRequest, source: &str) -> NodeFrame {
    let refuse = |reason: Reason, message: String| {
        shared.record(
            Record::new(AuditEventKind::DeviceEnrolled, Outcome::Refused)
                .reason(reason)
                .source(source.to_owned()),
        );
        error(ErrorCode::EnrolmentRefused, message)
    };
    let Some(desk) = &shared.desk else {
        return refuse(
            Reason::NoDesk,
            "this node does not enrol devices; enrol at your post's node".into(),
        );
    };
    let identity = match IdentityPublicKey::from_slice(&request.identity_key) {
        Ok(k) => k,
        Err(e) => {
            return refuse(
                Reason::Malformed,
                format!("the identity key is malformed: {e}"),
            );
        }
    };
    // Everything the code does not decide is checked before the code is spent, so a faulty
    // request from a device does not cost its user a new code.
    if request.receive_keys.is_empty() {
        return refuse(
            Reason::Malformed,
            "the request carries no receive key; the device must publish one".into(),
        );
    }
    for key in &request.receive_keys {
        if let Err(e) = VerifiedReceiveKey::verify(key, &identity) {
            return refuse(
                Reason::Malformed,
                format!("a receive key does not verify: {e}"),
            );
        }
    }
    let device = identity.device_id();
    let start = OffsetDateTime::now_utc();
    let until = start
        + time::Duration::seconds(
            i64::try_from(desk.certificate_validity.as_secs()).unwrap_or(i64::MAX / 2),
        );
    let validity = Validity {
        not_before: start - time::Duration::minutes(5),
        not_after: until,
    };
    // Issued now but handed over only once the code redeems.
    let chain =
        match desk
            .post_ca
            .issue_device_from_csr(&device.to_string(), &request.csr, validity)
        {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    Reason::Csr,
                    format!("the certificate request is not acceptable: {e}"),
                );
            }
        };
    let now = now_ms();
    let invitation = match desk
        .codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .redeem(&request.code, &source_ip(source), now)
    {
        Ok(i) => i,
        Err(DurableCodeError::Code(CodeError::RateLimited)) => {
            return refuse(Reason::RateLimited, CodeError::RateLimited.to_string());
        }
        Err(e) => return refuse(Reason::Code, e.to_string()),
    };
    // The user's other devices may have changed since the code was issued.
    if let Err(conflict) =
        crate::operations::enrol::same_person(&shared.directory, &desk.post, &invitation)
    {
        return refuse(
            Reason::IdentityConflict,
            format!("{conflict}; ask ministry IT for a new code"),
        );
    }
    let mut record = DeviceRecord {
        device_id: device.as_bytes().to_vec(),
        user: invitation.user,
        post: desk.post.clone(),
        display_name: invitation.display_name,
        offices: invitation.offices,
        clearance: invitation.clearance as i32,
        identity_key: identity.as_bytes().to_vec(),
        receive_keys: request.receive_keys,
        enrolled_at_ms: now,
        signature: Vec::new(),
        foreign_national: invitation.foreign_national,
    };
    if let Err(e) = sign_device_record(&mut record, &desk.enrolment_key) {
        return refuse(
            Reason::Malformed,
            format!("the request cannot be recorded: {e}"),
        );
    }
    let version = {
        let mut directory = shared.directory.write();
        match directory.apply(Update::Device(record.clone())) {
            Ok(v) => v,
            Err(e) => {
                return refuse(
                    Reason::Record,
                    format!("the device cannot be enrolled: {e}"),
                );
            }
        }
    };
    shared.record(
        Record::new(AuditEventKind::DeviceEnrolled, Outcome::Success)
            .by_device(&device)
            .source(source.to_owned())
            .object("device", device.as_bytes(), &[]),
    );
    NodeFrame {
        frame: Some(node_frame::Frame::Enrolled(EnrolResponse {
            record: Some(record),
            certificate_chain: chain,
            directory_version: version,
        })),
    }
}

/// The IP address in `ip:port` (rate limits key on the address: every new connection has a
/// new port).
pub(super) fn source_ip(source: &str) -> String {
    source
        .parse::<SocketAddr>()
        .map_or_else(|_| source.to_owned(), |a| a.ip().to_string())
}
