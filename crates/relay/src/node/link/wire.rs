//! One request per stream between two nodes: sending it, reading the one reply, and the
//! refusals a node answers with.

use std::time::Duration;

use prost::Message;
use valise_proto::framing::{self, FrameDecoder};
use valise_proto::v1::{ErrorCode, ErrorFrame, LinkReply, LinkRequest, link_reply};

use super::REQUEST_TIMEOUT;

/// Sends one request on its own stream and reads the one reply.
pub(super) async fn ask(
    connection: &quinn::Connection,
    request: LinkRequest,
    priority: i32,
) -> Result<LinkReply, String> {
    let bytes = framing::encode(&request);
    let (mut send, mut recv) = tokio::time::timeout(REQUEST_TIMEOUT, connection.open_bi())
        .await
        .map_err(|_| format!("no stream opened within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = send.set_priority(priority);
    // A large cable on a lossy satellite link may take long to send; bound the upload by its
    // size (1 KiB/s at worst), and only then wait for the reply.
    let upload = REQUEST_TIMEOUT
        + Duration::from_secs(u64::try_from(bytes.len() / 1024).unwrap_or(u64::MAX));
    tokio::time::timeout(upload, send.write_all(&bytes))
        .await
        .map_err(|_| format!("the request was not sent within {upload:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_one::<LinkReply>(&mut recv, 16 * 1024 * 1024),
    )
    .await
    .map_err(|_| format!("no reply within {REQUEST_TIMEOUT:?}"))?
    .ok_or_else(|| "the reply did not decode".to_owned())
}

/// Reads exactly one frame of at most `max` bytes.
pub(super) async fn read_one<M: Message + Default>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Option<M> {
    read_first(recv, max).await.map(|(frame, _)| frame)
}

/// Reads the first frame of at most `max` bytes, with the decoder holding whatever was read
/// past it (the start of an attachment's raw bytes).
pub(super) async fn read_first<M: Message + Default>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Option<(M, FrameDecoder)> {
    let mut decoder = FrameDecoder::new(max);
    loop {
        if let Ok(Some(frame)) = decoder.next_frame::<M>() {
            return Some((frame, decoder));
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            _ => return None,
        }
    }
}

pub(super) fn link_error(code: ErrorCode, message: &str) -> LinkReply {
    link_error_retry(code, message, Duration::ZERO)
}

/// A refusal the neighbour may retry after `after`.
pub(super) fn link_error_retry(code: ErrorCode, message: &str, after: Duration) -> LinkReply {
    LinkReply {
        reply: Some(link_reply::Reply::Error(ErrorFrame {
            code: code as i32,
            message: message.to_owned(),
            retry_after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        })),
    }
}

pub(super) fn refusal_text(reply: LinkReply, expected: &str) -> String {
    match reply.reply {
        Some(link_reply::Reply::Error(e)) => e.message,
        _ => format!("expected {expected}, got something else"),
    }
}
