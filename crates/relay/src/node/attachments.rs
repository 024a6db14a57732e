//! Attachment ciphertexts on the wire: uploads from devices and from neighbouring nodes that
//! carry them with a cable, fetches by devices, and the hourly sweep. The decisions (do the
//! bytes match, what has expired) are in [`crate::attachments`]; this is the I/O around them.

use std::sync::Arc;

use valise_crypto::identity::DeviceId;
use valise_proto::framing::FrameDecoder;
use valise_proto::v1::{
    AttachmentFetch, AttachmentFollows, AttachmentStored, AttachmentUpload, AuditEventKind,
    ErrorCode, ErrorFrame, NodeFrame, Outcome, node_frame,
};

use super::{Record, Shared, blocking, error, now_ms, record_async, send_frame};
use crate::attachments::{AttachmentId, Held, Mismatch, Swept, UploadCheck};
use crate::reason::Reason;

/// QUIC stream error code when a fetched attachment cannot be read to its end.
const RESET_UNREADABLE: u32 = 1;
/// How much of an upload or fetch is read at once, and written to disk at once: the memory an
/// attachment transfer holds, whatever its size.
const ATTACHMENT_READ: usize = 64 * 1024;
const ATTACHMENT_WRITE: usize = 256 * 1024;

/// Who an upload comes from: a device, or a neighbouring node carrying it with a cable.
#[derive(Clone, Copy)]
pub(super) enum Uploader<'a> {
    Device(&'a DeviceId),
    Node(&'a str),
}

impl Uploader<'_> {
    fn actor(self, record: Record) -> Record {
        match self {
            Uploader::Device(device) => record.by_device(device),
            Uploader::Node(node) => record.by_node(node),
        }
    }
}

/// A device's upload: takes its raw bytes into a temporary file as they arrive, checked
/// against the announced size and SHA-256, and answers once it is durable, or why not.
pub(super) async fn receive_attachment(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut decoder: FrameDecoder,
    alone: bool,
    device: DeviceId,
    shared: Arc<Shared>,
    upload: AttachmentUpload,
) {
    let uploader = Uploader::Device(&device);
    let reply = match store_upload(&mut recv, &mut decoder, alone, uploader, &shared, &upload).await
    {
        Ok(stored) => node_frame::Frame::AttachmentStored(stored),
        Err(refusal) => {
            // Whatever else the device sends is not wanted.
            let _ = recv.stop(0u32.into());
            node_frame::Frame::Error(refusal)
        }
    };
    send_frame(&mut send, &NodeFrame { frame: Some(reply) }).await;
    let _ = send.finish();
}

/// A refused upload: counted, recorded, and answered.
async fn refuse_upload(
    shared: &Arc<Shared>,
    uploader: Uploader<'_>,
    id: Option<&AttachmentId>,
    reason: Reason,
    code: ErrorCode,
    message: String,
) -> ErrorFrame {
    shared.metrics.refused(&reason);
    let mut record = uploader
        .actor(Record::new(AuditEventKind::RequestRefused, Outcome::Refused).reason(reason));
    if let Some(id) = id {
        record = record.object("attachment", id.as_bytes(), id.as_bytes());
    }
    record_async(shared, record).await;
    refusal(code, message, 0)
}

fn refusal(code: ErrorCode, message: String, retry_after_ms: u64) -> ErrorFrame {
    ErrorFrame {
        code: code as i32,
        message,
        retry_after_ms,
    }
}

fn attachment_failure(e: &std::io::Error) -> ErrorFrame {
    tracing::error!(error = %e, "an attachment could not be stored; the uploader will retry");
    refusal(
        ErrorCode::Internal,
        format!(
            "the node could not store the attachment ({e}); it was not stored, upload it again later"
        ),
        0,
    )
}

/// Takes an upload's raw bytes (what `decoder` read past the frame, then the rest of `recv`)
/// into a temporary file, checked against the announced size and SHA-256, and renames it into
/// place once it matched and is durable.
pub(super) async fn store_upload(
    recv: &mut quinn::RecvStream,
    decoder: &mut FrameDecoder,
    alone: bool,
    uploader: Uploader<'_>,
    shared: &Arc<Shared>,
    upload: &AttachmentUpload,
) -> Result<AttachmentStored, ErrorFrame> {
    if !alone {
        return Err(refuse_upload(
            shared,
            uploader,
            None,
            Reason::Malformed,
            ErrorCode::Malformed,
            "an attachment upload must be the only frame on its stream; open a new stream for it"
                .into(),
        )
        .await);
    }
    let Some(id) = AttachmentId::from_slice(&upload.ciphertext_sha256) else {
        return Err(refuse_upload(
            shared,
            uploader,
            None,
            Reason::Malformed,
            ErrorCode::Malformed,
            "ciphertext_sha256 must be the 32-byte SHA-256 of the attachment's ciphertext".into(),
        )
        .await);
    };
    let max = shared.limits.max_attachment_bytes;
    if upload.size > max {
        return Err(refuse_upload(
            shared,
            uploader,
            Some(&id),
            Reason::AttachmentOversize,
            ErrorCode::TooLarge,
            format!(
                "the attachment is {} bytes; this node accepts attachments of at most {max} \
                 bytes (Welcome.limits.max_attachment_bytes)",
                upload.size
            ),
        )
        .await);
    }
    // Already held: check the bytes all the same, but write nothing.
    let store = Arc::clone(shared);
    let now = now_ms();
    let held = blocking(move || store.attachments.held(&id, now))
        .await
        .map_err(|e| attachment_failure(&e))?;
    let mut pending = match held {
        Some(_) => None,
        None => {
            let store = Arc::clone(shared);
            Some(
                blocking(move || store.attachments.begin())
                    .await
                    .map_err(|e| attachment_failure(&e))?,
            )
        }
    };
    let mut check = UploadCheck::new(id, upload.size);
    let mut batch = Vec::with_capacity(ATTACHMENT_WRITE);
    let mut outcome = take_upload_bytes(&mut check, &mut batch, &decoder.take_rest());
    while outcome.is_ok() {
        if batch.len() >= ATTACHMENT_WRITE {
            pending = write_batch(pending, &mut batch).await?;
        }
        outcome = match recv.read_chunk(ATTACHMENT_READ, true).await {
            Ok(Some(chunk)) => take_upload_bytes(&mut check, &mut batch, &chunk.bytes),
            Ok(None) => break,
            // Reset by the uploader, or the connection is gone: the upload is incomplete.
            Err(_) => Err(Mismatch::Short {
                announced: upload.size,
                received: check.received(),
            }),
        };
    }
    // `pending` dropped on any refusal removes its temporary file.
    let outcome = outcome.and_then(|()| check.finish());
    if let Err(mismatch) = outcome {
        drop(pending);
        return Err(refuse_upload(
            shared,
            uploader,
            Some(&id),
            Reason::DigestMismatch,
            ErrorCode::DigestMismatch,
            mismatch.to_string(),
        )
        .await);
    }
    pending = write_batch(pending, &mut batch).await?;
    let store = Arc::clone(shared);
    let held: Held = match pending {
        Some(upload) => blocking(move || upload.commit(&id)).await,
        None => match blocking(move || store.attachments.renew(&id)).await {
            Ok(Some(held)) => Ok(held),
            // Swept at the end of its retention while this copy was arriving.
            Ok(None) => {
                return Err(refusal(
                    ErrorCode::Busy,
                    "the node removed its expired copy of this attachment during the upload; \
                     upload it again"
                        .into(),
                    100,
                ));
            }
            Err(e) => Err(e),
        },
    }
    .map_err(|e| attachment_failure(&e))?;
    shared.metrics.attachment_stored(upload.size);
    record_async(
        shared,
        uploader.actor(
            Record::new(AuditEventKind::AttachmentStored, Outcome::Success).object(
                "attachment",
                &[],
                &upload.ciphertext_sha256,
            ),
        ),
    )
    .await;
    Ok(AttachmentStored {
        ciphertext_sha256: upload.ciphertext_sha256.clone(),
        retained_until_ms: held.retained_until_ms,
    })
}

fn take_upload_bytes(
    check: &mut UploadCheck,
    batch: &mut Vec<u8>,
    bytes: &[u8],
) -> Result<(), Mismatch> {
    check.push(bytes)?;
    batch.extend_from_slice(bytes);
    Ok(())
}

/// Writes the batch to the upload's file (or drops it, for an attachment already held).
async fn write_batch(
    pending: Option<crate::attachments::PendingUpload>,
    batch: &mut Vec<u8>,
) -> Result<Option<crate::attachments::PendingUpload>, ErrorFrame> {
    let Some(mut upload) = pending else {
        batch.clear();
        return Ok(None);
    };
    let bytes = std::mem::take(batch);
    let (upload, bytes) = blocking(move || upload.write(&bytes).map(|()| (upload, bytes)))
        .await
        .map_err(|e| attachment_failure(&e))?;
    // The buffer is reused, so memory stays at one batch.
    *batch = bytes;
    batch.clear();
    Ok(Some(upload))
}

/// Serves an attachment: `AttachmentFollows`, its bytes read from disk a piece at a time, then
/// the end of the stream.
pub(super) async fn send_attachment(
    mut send: quinn::SendStream,
    device: DeviceId,
    shared: Arc<Shared>,
    fetch: AttachmentFetch,
) {
    let refusal = 'refusal: {
        let Some(id) = AttachmentId::from_slice(&fetch.ciphertext_sha256) else {
            break 'refusal error(
                ErrorCode::Malformed,
                "ciphertext_sha256 must be the 32-byte SHA-256 of the attachment's ciphertext",
            );
        };
        let store = Arc::clone(&shared);
        let now = now_ms();
        let (file, held) = match blocking(move || store.attachments.open_for_fetch(&id, now)).await
        {
            Ok(Some(found)) => found,
            Ok(None) => {
                tracing::info!(device = %device, attachment = %id, "attachment not held");
                break 'refusal error(
                    ErrorCode::NotFound,
                    format!(
                        "the attachment is not held by this node (never uploaded, or past its \
                         retention of {}); ask the sender to resend it",
                        shared.attachments.retention()
                    ),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, attachment = %id, "an attachment could not be opened");
                break 'refusal error(
                    ErrorCode::Internal,
                    format!("the node could not read the attachment ({e}); try again later"),
                );
            }
        };
        let follows = NodeFrame {
            frame: Some(node_frame::Frame::AttachmentFollows(AttachmentFollows {
                size: held.size,
            })),
        };
        if !send_frame(&mut send, &follows).await {
            return;
        }
        let mut file = Some(file);
        let mut remaining = held.size;
        while remaining > 0 {
            let Some(mut reading) = file.take() else {
                return;
            };
            let want = usize::try_from(remaining.min(ATTACHMENT_WRITE as u64)).unwrap_or(0);
            let piece = blocking(move || {
                crate::attachments::read_piece(&mut reading, want).map(|p| (reading, p))
            })
            .await;
            let piece = match piece {
                Ok((reading, piece)) if !piece.is_empty() => {
                    file = Some(reading);
                    piece
                }
                // Shorter than it was, or unreadable: the device must not take it as whole.
                _ => {
                    tracing::error!(attachment = %id, "an attachment could not be read to its end");
                    let _ = send.reset(RESET_UNREADABLE.into());
                    return;
                }
            };
            if send.write_all(&piece).await.is_err() {
                return;
            }
            remaining = remaining.saturating_sub(piece.len() as u64);
        }
        let _ = send.finish();
        shared.metrics.attachment_fetched(held.size);
        record_async(
            &shared,
            Record::new(AuditEventKind::AttachmentFetched, Outcome::Success)
                .by_device(&device)
                .object("attachment", &[], &fetch.ciphertext_sha256),
        )
        .await;
        return;
    };
    send_frame(&mut send, &refusal).await;
    let _ = send.finish();
}

/// Removes expired attachments and abandoned uploads (housekeeping runs it hourly).
pub(super) async fn sweep_once(shared: &Arc<Shared>) {
    let store = Arc::clone(shared);
    match blocking(move || store.attachments.sweep(now_ms())).await {
        Ok(swept) if swept == Swept::default() => {}
        Ok(swept) => tracing::info!(
            attachments = swept.attachments,
            uploads = swept.uploads,
            "removed expired attachments and abandoned uploads"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "the attachment sweep failed; it runs again within the hour"
        ),
    }
}
