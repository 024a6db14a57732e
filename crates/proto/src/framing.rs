//! Frames on QUIC streams: a protobuf varint length, then that many bytes of one message.
//!
//! [`FrameDecoder`] does no I/O: the connection code pushes bytes as they arrive and pulls
//! whole frames out. It refuses a frame as soon as its length prefix exceeds the limit, before
//! buffering any of it, so a peer cannot make a node hold more than one frame's worth of memory
//! per stream. Client and node share this code.

use prost::Message;

/// The longest a varint length prefix can be (a u64).
const MAX_VARINT_LEN: usize = 10;

/// Why a frame was refused. After any error the stream must be closed: its framing is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces a frame larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The length prefix is not a valid varint.
    #[error("malformed frame length prefix")]
    BadLength,
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame ({missing} bytes missing)")]
    Truncated {
        /// Bytes still expected.
        missing: usize,
    },
    /// The frame's bytes are not the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes one message as a frame.
pub fn encode<M: Message>(message: &M) -> Vec<u8> {
    message.encode_length_delimited_to_vec()
}

/// Reassembles frames from bytes pushed in any pieces.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            buf: Vec::new(),
        }
    }

    /// Adds bytes received from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next whole frame, if one has arrived, decoded as `M`.
    pub fn next_frame<M: Message + Default>(&mut self) -> Result<Option<M>, FrameError> {
        let Some((len, prefix)) = self.length()? else {
            return Ok(None);
        };
        let end = prefix + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        let message =
            M::decode(&self.buf[prefix..end]).map_err(|e| FrameError::Malformed(e.to_string()));
        self.buf.drain(..end);
        message.map(Some)
    }

    /// Takes every byte buffered past the frames already returned: the start of raw bytes that
    /// follow a frame on the same stream (attachment bodies).
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Call when the stream has ended: refuses a partial frame left behind. A whole frame
    /// still buffered is not an error; [`Self::next_frame`] returns it.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.length()? {
            None if self.buf.is_empty() => Ok(()),
            None => Err(FrameError::Truncated { missing: 1 }),
            Some((len, prefix)) => match (prefix + len).saturating_sub(self.buf.len()) {
                0 => Ok(()),
                missing => Err(FrameError::Truncated { missing }),
            },
        }
    }

    /// The announced frame length and the prefix's size, once the prefix is complete.
    fn length(&self) -> Result<Option<(usize, usize)>, FrameError> {
        let mut len = 0u64;
        for (i, &byte) in self.buf.iter().take(MAX_VARINT_LEN).enumerate() {
            let bits = u64::from(byte & 0x7f);
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err(FrameError::BadLength);
            }
            len |= bits << (7 * i);
            if byte & 0x80 == 0 {
                let max = self.max_frame;
                let size = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= max)
                    .ok_or(FrameError::TooLarge { len, max })?;
                return Ok(Some((size, i + 1)));
            }
        }
        if self.buf.len() >= MAX_VARINT_LEN {
            return Err(FrameError::BadLength);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{ClientFrame, Hello, client_frame::Frame};

    fn hello(software: &str) -> ClientFrame {
        ClientFrame {
            frame: Some(Frame::Hello(Hello {
                protocol_version: 1,
                software: software.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn frames_split_at_any_byte_are_reassembled() {
        let stream = [
            encode(&hello("a")),
            encode(&hello(&"b".repeat(300))),
            encode(&hello("")),
        ]
        .concat();
        for split in 0..=stream.len() {
            let mut d = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for piece in [&stream[..split], &stream[split..]] {
                d.push(piece);
                while let Some(f) = d.next_frame::<ClientFrame>().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(
                got,
                vec![hello("a"), hello(&"b".repeat(300)), hello("")],
                "split at {split}"
            );
            assert_eq!(d.finish(), Ok(()));
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_prefix_alone() {
        let mut d = FrameDecoder::new(100);
        // A prefix announcing 1 MiB, and not one byte of the frame.
        d.push(&[0x80, 0x80, 0x40]);
        assert_eq!(
            d.next_frame::<ClientFrame>(),
            Err(FrameError::TooLarge {
                len: 1 << 20,
                max: 100
            })
        );
        assert!(d.buffered() <= 3, "nothing of the frame was buffered");
    }

    /// Found by the `frames` fuzz target: a malformed frame followed by a whole empty frame
    /// made `finish` underflow.
    #[test]
    fn finishing_after_a_malformed_frame_does_not_panic() {
        let mut d = FrameDecoder::new(4096);
        d.push(&[1, 0, 0, 0]);
        assert!(matches!(
            d.next_frame::<ClientFrame>(),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn malformed_input_gets_a_precise_error() {
        let mut d = FrameDecoder::new(1 << 20);
        d.push(&[0xff; 11]);
        assert_eq!(d.next_frame::<ClientFrame>(), Err(FrameError::BadLength));

        let mut d = FrameDecoder::new(1 << 20);
        d.push(&[3, 0xff, 0xff, 0xff]);
        assert!(matches!(
            d.next_frame::<ClientFrame>(),
            Err(FrameError::Malformed(_))
        ));

        let mut d = FrameDecoder::new(1 << 20);
        d.push(&encode(&hello("truncated"))[..5]);
        assert_eq!(d.next_frame::<ClientFrame>(), Ok(None));
        assert!(matches!(d.finish(), Err(FrameError::Truncated { .. })));
    }

    #[test]
    fn raw_bytes_after_a_frame_are_handed_back_whole() {
        let mut stream = encode(&hello("a"));
        stream.extend_from_slice(b"raw attachment bytes");
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&stream);
        let frame: ClientFrame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame, hello("a"));
        assert_eq!(decoder.take_rest(), b"raw attachment bytes");
        assert_eq!(decoder.buffered(), 0);
    }
}
