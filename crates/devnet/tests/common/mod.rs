//! Helpers for this crate's integration tests: reading a node's frames, and attachments over a
//! device connection. The relay's own tests keep the same helpers (`crates/relay/tests/common`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{ClientFrame, ErrorCode, NodeFrame, client_frame, node_frame};

/// The next frame on a node's stream, or `None` once the node has finished it. Waits at most
/// 30 s for the node to say something.
pub async fn next_node_frame(
    recv: &mut quinn::RecvStream,
    decoder: &mut FrameDecoder,
) -> Option<NodeFrame> {
    loop {
        if let Some(frame) = decoder.next_frame::<NodeFrame>().unwrap() {
            return Some(frame);
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), recv.read_chunk(1 << 16, true))
            .await
            .expect("the node neither sent a frame nor finished the stream")
            .unwrap();
        match chunk {
            Some(chunk) => decoder.push(&chunk.bytes),
            None => {
                decoder.finish().unwrap();
                return None;
            }
        }
    }
}

/// The code and message of an error frame, or `None` for any other frame.
pub fn refusal(frame: &NodeFrame) -> Option<(ErrorCode, String)> {
    match &frame.frame {
        Some(node_frame::Frame::Error(e)) => {
            Some((ErrorCode::try_from(e.code).unwrap(), e.message.clone()))
        }
        _ => None,
    }
}

/// Deterministic bytes that are not a repeating pattern.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn upload_frame(sha256: &[u8], size: u64) -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::AttachmentUpload(
            valise_proto::v1::AttachmentUpload {
                ciphertext_sha256: sha256.to_vec(),
                size,
            },
        )),
    }
}

/// Uploads `body` announced as `size` bytes hashing to `sha256`, in uneven pieces, and returns
/// the node's answer. Writing may fail once the node has refused and stopped reading.
pub async fn upload(conn: &quinn::Connection, sha256: &[u8], size: u64, body: &[u8]) -> NodeFrame {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut bytes = encode(&upload_frame(sha256, size));
    // Some raw bytes travel with the frame, as a client writing both at once would send them.
    let head = body.len().min(1000);
    bytes.extend_from_slice(&body[..head]);
    let writing = async {
        send.write_all(&bytes).await?;
        for piece in body[head..].chunks(77_777) {
            send.write_all(piece).await?;
        }
        send.finish().map_err(|_| quinn::WriteError::ClosedStream)
    };
    let _ = writing.await;
    let reply = tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(1 << 20))
        .await
        .unwrap()
        .unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&reply);
    decoder.next_frame::<NodeFrame>().unwrap().unwrap()
}

/// Fetches an attachment: its announced size and bytes, or the refusal.
pub async fn fetch(
    conn: &quinn::Connection,
    sha256: &[u8],
) -> Result<(u64, Vec<u8>), (ErrorCode, String)> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let frame = ClientFrame {
        frame: Some(client_frame::Frame::AttachmentFetch(
            valise_proto::v1::AttachmentFetch {
                ciphertext_sha256: sha256.to_vec(),
            },
        )),
    };
    send.write_all(&encode(&frame)).await.unwrap();
    send.finish().unwrap();
    let all = tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(64 << 20))
        .await
        .unwrap()
        .unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&all);
    let first = decoder.next_frame::<NodeFrame>().unwrap().unwrap();
    match first.frame {
        Some(node_frame::Frame::AttachmentFollows(follows)) => {
            Ok((follows.size, decoder.take_rest()))
        }
        _ => Err(refusal(&first).unwrap()),
    }
}
