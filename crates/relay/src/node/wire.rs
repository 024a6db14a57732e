//! Frames on a device's stream: reading the next one within the limits, writing one, and
//! the error frame a refusal is.

use valise_proto::framing::{self, FrameDecoder};
use valise_proto::v1::{ClientFrame, ErrorCode, ErrorFrame, NodeFrame, node_frame};

pub(super) fn error(code: ErrorCode, message: impl Into<String>) -> NodeFrame {
    NodeFrame {
        frame: Some(node_frame::Frame::Error(ErrorFrame {
            code: code as i32,
            message: message.into(),
            retry_after_ms: 0,
        })),
    }
}

pub(super) async fn send_frame(send: &mut quinn::SendStream, frame: &NodeFrame) -> bool {
    send.write_all(&framing::encode(frame)).await.is_ok()
}

/// Reads the next frame, or `None` when the stream ends or breaks (after telling the peer why
/// where that helps).
pub(super) async fn next_frame(
    recv: &mut quinn::RecvStream,
    decoder: &mut FrameDecoder,
    send: Option<&mut quinn::SendStream>,
) -> Option<ClientFrame> {
    loop {
        match decoder.next_frame::<ClientFrame>() {
            Ok(Some(frame)) => return Some(frame),
            Ok(None) => {}
            Err(e) => {
                if let Some(send) = send {
                    let reply = match e {
                        // Most often a cable over the envelope limit, so the answer names it.
                        framing::FrameError::TooLarge { len, max } => error(
                            ErrorCode::TooLarge,
                            format!(
                                "the request is {len} bytes, over this node's {max}-byte limit \
                                 (an envelope may be at most limits.max_envelope_bytes, less a \
                                 little for its frame); shorten the cable or send the long \
                                 part as an attachment"
                            ),
                        ),
                        other => error(ErrorCode::Malformed, other.to_string()),
                    };
                    send_frame(send, &reply).await;
                    let _ = send.finish();
                }
                return None;
            }
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            _ => return None,
        }
    }
}
