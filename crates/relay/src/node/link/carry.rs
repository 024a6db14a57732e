//! Carrying a cable's attachments to the next hop, so that a recipient at another post fetches
//! them from its own node, even while the sender's post is cut off.
//!
//! The forwarding node offers the cable with the attachments it holds. The next hop answers
//! `AttachmentsWanted` with those it lacks ([`wanted`]); each is then uploaded on its own
//! stream at the cable's priority ([`upload`]), and the cable offered again. The next hop takes
//! custody only once it holds every attachment listed, so the two cross each hop together.

use std::sync::Arc;
use std::time::Duration;

use valise_proto::framing;
use valise_proto::v1::{
    AttachmentUpload, ErrorCode, ErrorFrame, LinkReply, LinkRequest, link_reply, link_request,
};

use super::super::attachments::{Uploader, store_upload};
use super::super::{Shared, blocking, now_ms};
use super::wire::read_one;
use super::{Neighbour, REQUEST_TIMEOUT};
use crate::attachments::{AttachmentId, read_piece};

/// How much of an attachment is read from disk and written to the stream at once.
const PIECE: usize = 64 * 1024;
/// Longest one piece may take to leave: an upload slower than a piece per this long (about
/// 0.5 KiB/s) has stalled, and is tried again later.
const PIECE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for a neighbour's refusal after it stopped reading an upload.
const REFUSAL_WAIT: Duration = Duration::from_secs(10);

/// Why an attachment was not carried.
#[derive(Debug)]
pub(super) enum CarryError {
    /// This node no longer holds it (past its retention): the cable goes on without it.
    NotHeld(AttachmentId),
    /// The next hop refuses it for good (larger than its limit): the cable is held here.
    Refused(ErrorFrame),
    /// The link failed, the upload stalled, or the next hop asked for a pause: try again
    /// after the delay.
    Retry(Duration, String),
}

impl CarryError {
    /// When to try the cable again, and why, as the link's last problem.
    pub(super) fn into_retry(self) -> (Duration, String) {
        match self {
            CarryError::NotHeld(id) => (
                crate::outbound::LOCAL_FAILURE_RETRY,
                format!("attachment {id} is no longer held by this node"),
            ),
            CarryError::Refused(e) => (crate::outbound::HELD_RETRY, e.message),
            CarryError::Retry(after, why) => (after, why),
        }
    }
}

/// Answers an `attachment` request: stores the raw bytes that follow it on the stream.
pub(super) async fn receive(
    shared: &Arc<Shared>,
    neighbour: &Neighbour,
    recv: &mut quinn::RecvStream,
    decoder: &mut framing::FrameDecoder,
    upload: AttachmentUpload,
) -> LinkReply {
    let uploader = Uploader::Node(&neighbour.name);
    let reply = match store_upload(recv, decoder, true, uploader, shared, &upload).await {
        Ok(stored) => link_reply::Reply::AttachmentStored(stored),
        Err(refusal) => {
            let _ = recv.stop(0u32.into());
            link_reply::Reply::Error(refusal)
        }
    };
    LinkReply { reply: Some(reply) }
}

/// Uploads one attachment to the neighbour, read from disk a piece at a time, on its own
/// stream at `priority`. Returns its size once the neighbour holds it durably.
pub(super) async fn upload(
    shared: &Arc<Shared>,
    connection: &quinn::Connection,
    id: AttachmentId,
    priority: i32,
) -> Result<u64, CarryError> {
    let store = Arc::clone(shared);
    let now = now_ms();
    let (file, held) = match blocking(move || store.attachments.open_for_fetch(&id, now)).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(CarryError::NotHeld(id)),
        Err(e) => {
            return Err(CarryError::Retry(
                Duration::from_secs(30),
                format!("cannot read attachment {id} to carry it: {e}"),
            ));
        }
    };
    let link_failed = |what: String| CarryError::Retry(Duration::ZERO, what);
    let (mut send, mut recv) = tokio::time::timeout(REQUEST_TIMEOUT, connection.open_bi())
        .await
        .map_err(|_| link_failed(format!("no stream opened within {REQUEST_TIMEOUT:?}")))?
        .map_err(|e| link_failed(e.to_string()))?;
    let _ = send.set_priority(priority);
    let request = LinkRequest {
        request: Some(link_request::Request::Attachment(AttachmentUpload {
            ciphertext_sha256: id.as_bytes().to_vec(),
            size: held.size,
        })),
    };
    let sent = send_bytes(&mut send, &framing::encode(&request), file, held.size, id).await;
    match sent {
        Ok(()) => {}
        Err(Unsent::Local(e)) => return Err(e),
        // A neighbour that refuses an upload stops reading before it ends: its answer, if it
        // gave one, says whether to hold the cable or try again.
        Err(Unsent::Write(why)) => {
            return match tokio::time::timeout(
                REFUSAL_WAIT,
                read_one::<LinkReply>(&mut recv, 64 * 1024),
            )
            .await
            {
                Ok(Some(reply)) => Err(classify(reply, id)
                    .err()
                    .unwrap_or_else(|| link_failed(why))),
                _ => Err(link_failed(why)),
            };
        }
    }
    let _ = send.finish();
    let reply = tokio::time::timeout(REQUEST_TIMEOUT, read_one::<LinkReply>(&mut recv, 64 * 1024))
        .await
        .map_err(|_| link_failed(format!("no reply within {REQUEST_TIMEOUT:?}")))?
        .ok_or_else(|| link_failed("the reply did not decode".into()))?;
    classify(reply, id).map(|()| held.size)
}

/// The neighbour's answer to an upload: stored, refused for good, or try again.
fn classify(reply: LinkReply, id: AttachmentId) -> Result<(), CarryError> {
    match reply.reply {
        Some(link_reply::Reply::AttachmentStored(stored))
            if stored.ciphertext_sha256 == id.as_bytes() =>
        {
            Ok(())
        }
        Some(link_reply::Reply::Error(e)) if e.code == ErrorCode::TooLarge as i32 => {
            Err(CarryError::Refused(e))
        }
        Some(link_reply::Reply::Error(e)) => Err(CarryError::Retry(
            Duration::from_millis(e.retry_after_ms),
            e.message,
        )),
        _ => Err(CarryError::Retry(
            Duration::ZERO,
            "expected AttachmentStored for the attachment sent".into(),
        )),
    }
}

/// Why an upload's bytes did not all leave.
enum Unsent {
    /// The stream failed: the neighbour may have refused and stopped reading.
    Write(String),
    /// This node could not read its own copy.
    Local(CarryError),
}

/// Sends the request frame, then the file's `size` bytes, a piece at a time.
async fn send_bytes(
    send: &mut quinn::SendStream,
    frame: &[u8],
    file: std::fs::File,
    size: u64,
    id: AttachmentId,
) -> Result<(), Unsent> {
    write(send, frame).await?;
    let mut file = Some(file);
    let mut remaining = size;
    while remaining > 0 {
        let Some(mut reading) = file.take() else {
            break;
        };
        let want = usize::try_from(remaining.min(PIECE as u64)).unwrap_or(PIECE);
        let piece = blocking(move || read_piece(&mut reading, want).map(|p| (reading, p))).await;
        let piece = match piece {
            Ok((reading, piece)) if !piece.is_empty() => {
                file = Some(reading);
                piece
            }
            // Shorter than it was, or unreadable: the neighbour must not take it as whole.
            _ => {
                let _ = send.reset(0u32.into());
                return Err(Unsent::Local(CarryError::Retry(
                    Duration::from_secs(30),
                    format!("attachment {id} could not be read to its end on this node"),
                )));
            }
        };
        write(send, &piece).await?;
        remaining = remaining.saturating_sub(piece.len() as u64);
    }
    Ok(())
}

async fn write(send: &mut quinn::SendStream, bytes: &[u8]) -> Result<(), Unsent> {
    match tokio::time::timeout(PIECE_TIMEOUT, send.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Unsent::Write(e.to_string())),
        Err(_) => Err(Unsent::Write(format!(
            "the upload stalled: nothing moved for {PIECE_TIMEOUT:?}"
        ))),
    }
}
