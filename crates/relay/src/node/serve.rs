//! Accepting connections and dispatching their streams: the handshake gate, the device a
//! certificate names and whether it may use this node, the enrolment and link paths, and one
//! task per request stream.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use quinn::crypto::rustls::HandshakeData;
use time::OffsetDateTime;
use valise_crypto::identity::DeviceId;
use valise_crypto::tls::{ALPN, ALPN_ENROLL, ALPN_LINK};
use valise_proto::framing::FrameDecoder;
use valise_proto::v1::{AuditEventKind, ErrorCode, Outcome, client_frame};

use super::devices::{publish_receive_keys, wipe};
use super::enrol::serve_enrolment;
use super::hello::greet;
use super::submit::submit_cable;
use super::{
    CLOSE_BUSY, CLOSE_UNAUTHORISED, Shared, deliver, directory_page, error, link, next_frame,
    receive_attachment, record_async, send_attachment, send_frame,
};
use crate::reason::Reason;
use crate::record::Record;

/// How long a TLS handshake may take before the connection is dropped, freeing its place at
/// the handshake gate.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = Arc::clone(&shared);
        // A handshake holds a place for at most HANDSHAKE_TIMEOUT, and one address may hold
        // only a few: a flood of handshakes cannot keep enrolled devices from theirs.
        let pass = match shared.handshaking.enter(incoming.remote_address().ip()) {
            Ok(pass) => pass,
            Err(full) => {
                shared.metrics.refused(&full.reason());
                incoming.refuse();
                continue;
            }
        };
        tokio::spawn(async move {
            let source = incoming.remote_address().to_string();
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(connection)) => serve_connection(connection, shared, pass).await,
                // No certificate, another CA, an expired one, not TLS 1.3, or too slow.
                Ok(Err(_)) | Err(_) => {
                    drop(pass);
                    shared.metrics.refused(&Reason::TlsHandshake);
                    let refused = Record::new(AuditEventKind::RequestRefused, Outcome::Refused)
                        .reason(Reason::TlsHandshake)
                        .source(source);
                    record_async(&shared, refused).await;
                }
            }
        });
    }
}

/// The DNS names in the certificate the peer presented (already verified to the root).
pub(super) fn certificate_names(connection: &quinn::Connection) -> Vec<String> {
    connection
        .peer_identity()
        .and_then(|i| {
            i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|certs| certs.first().map(|c| valise_pki::dns_names(c)))
        .unwrap_or_default()
}

/// The device on the other end and the post whose CA certified it, from its certificate's
/// name `<device id>.devices.<post>.<ministry>`. The root constrains each post CA to its own
/// `devices.<post>` names, so the post here is the one that issued the certificate.
pub(super) fn peer_device(connection: &quinn::Connection) -> Option<(DeviceId, String)> {
    certificate_names(connection).iter().find_map(|dns| {
        let (label, rest) = dns.split_once('.')?;
        let (post, _) = rest.strip_prefix("devices.")?.split_once('.')?;
        let device = DeviceId::from_slice(&hex::decode(label).ok()?).ok()?;
        Some((device, post.to_owned()))
    })
}

/// Whether a device may use this node: enrolled, unrevoked, and certified by its own post. A
/// compromised post can mint certificates for any device id, but only under its own name.
pub(super) fn device_admission(
    directory: &crate::directory::Directory,
    device: &DeviceId,
    certified_by: &str,
) -> Result<(), (Reason, String)> {
    let Some(entry) = directory.lookup(device) else {
        return Err((
            Reason::UnknownDevice,
            "this device is not enrolled at any post this node knows".into(),
        ));
    };
    if entry.device.post != certified_by {
        return Err((
            Reason::DeviceOfAnotherPost,
            "this device certificate was issued by another post than the device's own".into(),
        ));
    }
    if entry.revoked {
        return Err((
            Reason::RevokedDevice,
            format!(
                "this device was revoked on {} by its post: contact ministry IT to enrol a new \
                 one",
                utc(entry.revoked_at_ms)
            ),
        ));
    }
    Ok(())
}

/// A time for people: `2026-12-04 10:15 UTC`.
pub(super) fn utc(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms after 1970"))
}

pub(super) async fn serve_connection(
    connection: quinn::Connection,
    shared: Arc<Shared>,
    pass: crate::gate::Pass,
) {
    let alpn = connection
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol);
    drop(pass);
    if alpn.as_deref() == Some(ALPN_ENROLL) {
        // Without a certificate: it holds a place at the enrolling gate until it is done, and
        // idle ones from one address or a few fill that gate, not the room of enrolled devices.
        let enrolling = match shared.enrolling.enter(connection.remote_address().ip()) {
            Ok(enrolling) => enrolling,
            Err(full) => {
                shared.metrics.refused(&full.reason());
                connection.close(
                    CLOSE_BUSY.into(),
                    b"too many connections without a certificate; retry in a minute",
                );
                return;
            }
        };
        serve_enrolment(connection, shared).await;
        drop(enrolling);
        return;
    }
    if alpn.as_deref() == Some(ALPN_LINK) {
        return link::accept(connection, shared).await;
    }
    let certified = peer_device(&connection);
    let admitted = match &certified {
        Some((device, post)) => device_admission(shared.directory.read().view(), device, post),
        None => Err((
            Reason::NoDeviceCertificate,
            "not an active enrolled device".to_owned(),
        )),
    };
    let device = certified.as_ref().map(|(d, _)| *d);
    let (Some(device), Ok(()), Some(ALPN)) = (device, &admitted, alpn.as_deref()) else {
        // Enrolment has its own path; anything else without an active device is refused.
        let (reason, message) = match admitted {
            Err(refused) => refused,
            Ok(()) => (
                Reason::WrongAlpn,
                "not an active enrolled device".to_owned(),
            ),
        };
        connection.close(CLOSE_UNAUTHORISED.into(), message.as_bytes());
        let source = connection.remote_address().to_string();
        let audit = Arc::clone(&shared);
        let _ = tokio::task::spawn_blocking(move || {
            let mut record = Record::new(AuditEventKind::RequestRefused, Outcome::Refused)
                .reason(reason)
                .source(source);
            if let Some(d) = device {
                record = record.by_device(&d);
            }
            audit.record(record);
        })
        .await;
        return;
    };
    // Enrolled devices have their own room, which no unauthenticated flood can fill.
    let Ok(_permit) = Arc::clone(&shared.connection_permits).try_acquire_owned() else {
        shared.metrics.refused(&Reason::Busy);
        connection.close(
            CLOSE_BUSY.into(),
            b"the node serves as many devices as it may; retry in a minute",
        );
        return;
    };
    shared.metrics.connected();
    shared
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(device)
        .or_default()
        .push(connection.clone());
    while let Ok((send, recv)) = connection.accept_bi().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_stream(send, recv, device, shared).await;
        });
    }
    // The connection ended: forget it.
    shared.metrics.disconnected();
    let mut connections = shared
        .connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(list) = connections.get_mut(&device) {
        list.retain(|c| c.stable_id() != connection.stable_id());
        if list.is_empty() {
            connections.remove(&device);
        }
    }
}

pub(super) async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    device: DeviceId,
    shared: Arc<Shared>,
) {
    // An envelope at the limit, plus its frame's few bytes of overhead and the hashes of the
    // most attachments a cable may name (34 bytes each on the wire).
    let mut decoder = FrameDecoder::new(
        shared.limits.max_envelope_bytes + 64 + valise_proto::MAX_ATTACHMENTS_PER_CABLE * 40,
    );
    let mut frames = 0u32;
    while let Some(frame) = next_frame(&mut recv, &mut decoder, Some(&mut send)).await {
        frames += 1;
        if frames > shared.limits.max_frames_per_stream {
            send_frame(
                &mut send,
                &error(
                    ErrorCode::Malformed,
                    "too many frames on one stream; open a new stream",
                ),
            )
            .await;
            break;
        }
        let reply = match frame.frame {
            Some(client_frame::Frame::Hello(hello)) => {
                let shared = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || greet(&shared, &device, hello.session))
                    .await
                    .unwrap_or_else(|_| {
                        error(ErrorCode::Internal, "the node failed inside; try again")
                    })
            }
            Some(client_frame::Frame::Submit(submit)) => {
                submit_cable(&shared, &device, submit).await
            }
            Some(client_frame::Frame::Subscribe(subscribe)) => {
                let lane = subscribe.lane();
                deliver::deliver(send, recv, decoder, device, shared, lane).await;
                return;
            }
            Some(client_frame::Frame::DirectorySync(sync)) => {
                directory_page(&shared, sync.after_version)
            }
            // Raw bytes follow the frame: the stream carries nothing else.
            Some(client_frame::Frame::AttachmentUpload(upload)) => {
                receive_attachment(send, recv, decoder, frames == 1, device, shared, upload).await;
                return;
            }
            Some(client_frame::Frame::AttachmentFetch(fetch)) => {
                send_attachment(send, device, shared, fetch).await;
                return;
            }
            Some(client_frame::Frame::PublishReceiveKeys(publish)) => {
                let shared = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || {
                    publish_receive_keys(&shared, &device, publish.receive_keys)
                })
                .await
                .unwrap_or_else(|_| {
                    error(
                        ErrorCode::Internal,
                        "the keys could not be published inside the node; try again",
                    )
                })
            }
            Some(client_frame::Frame::WipeNotice(notice)) => {
                wipe(send, device, shared, notice.reason).await;
                return;
            }
            Some(client_frame::Frame::DeliveryAck(_) | client_frame::Frame::Enrol(_)) | None => {
                error(
                    ErrorCode::Malformed,
                    "expected Hello, Submit, Subscribe, DirectorySync, AttachmentUpload, \
                     AttachmentFetch, PublishReceiveKeys or WipeNotice on a new stream",
                )
            }
        };
        if !send_frame(&mut send, &reply).await {
            return;
        }
    }
    let _ = send.finish();
}
