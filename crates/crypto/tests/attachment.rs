//! Attachment streams: what a recipient observes when chunks go missing, move or change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, Read};

use valise_crypto::attachment::{
    self, AttachmentKey, CHUNK_SIZE, COMMITMENT_LEN, SALT_LEN, StreamError, TAG_LEN,
};

const CONTEXT: &[u8] = b"cable 0123456789abcdef attachment 0";
const HEAD: usize = SALT_LEN + COMMITMENT_LEN;
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_LEN;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn encrypt(key: &AttachmentKey, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let summary = attachment::encrypt(key, CONTEXT, plain, &mut out).unwrap();
    assert_eq!(summary.plaintext_len, plain.len() as u64);
    assert_eq!(summary.ciphertext_len, out.len() as u64);
    assert_eq!(summary.ciphertext_sha256, valise_crypto::sha256(&out));
    out
}

fn decrypt(key: &AttachmentKey, sealed: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    attachment::decrypt(key, CONTEXT, sealed, &mut out).map(|_| out)
}

#[test]
fn round_trips_at_every_boundary_size() {
    let key = AttachmentKey::generate().unwrap();
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE,
        10 * 1024 * 1024,
    ] {
        let plain = pattern(len);
        let sealed = encrypt(&key, &plain);
        assert_eq!(
            sealed.len() as u64,
            attachment::ciphertext_len(len as u64),
            "size {len}"
        );
        assert_eq!(decrypt(&key, &sealed).unwrap(), plain, "size {len}");
    }
}

/// A reader that hands out at most 7 bytes at a time and is interrupted now and then, as a
/// slow network stream would be.
struct Dribble<'a> {
    data: &'a [u8],
    calls: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
        }
        let n = buf.len().min(7).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn short_reads_and_interruptions_do_not_matter() {
    let key = AttachmentKey::generate().unwrap();
    let plain = pattern(2 * CHUNK_SIZE + 100);
    let mut sealed = Vec::new();
    attachment::encrypt(
        &key,
        CONTEXT,
        Dribble {
            data: &plain,
            calls: 0,
        },
        &mut sealed,
    )
    .unwrap();
    let mut out = Vec::new();
    attachment::decrypt(
        &key,
        CONTEXT,
        Dribble {
            data: &sealed,
            calls: 0,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(out, plain);
}

#[test]
fn truncation_at_every_chunk_boundary_is_detected() {
    let key = AttachmentKey::generate().unwrap();
    let sealed = encrypt(&key, &pattern(4 * CHUNK_SIZE + 10));
    // Cut right after the header and after each complete chunk but the last.
    for chunks in 0..=4 {
        let cut = HEAD + chunks * SEALED_CHUNK;
        assert!(
            matches!(decrypt(&key, &sealed[..cut]), Err(StreamError::Truncated { chunks: c }) if c == chunks as u64),
            "cut after {chunks} chunks"
        );
    }
    // Cuts inside the header, or inside a chunk, are refused too.
    for cut in [
        0,
        1,
        HEAD - 1,
        HEAD + 5,
        HEAD + SEALED_CHUNK + 100,
        sealed.len() - 1,
    ] {
        assert!(decrypt(&key, &sealed[..cut]).is_err(), "cut at byte {cut}");
    }
}

#[test]
fn a_removed_final_chunk_flag_is_detected() {
    // The final chunk is the short one. For an exact multiple of the chunk size it is empty:
    // dropping it leaves a stream whose last chunk is full, i.e. one with no final flag.
    let key = AttachmentKey::generate().unwrap();
    let sealed = encrypt(&key, &pattern(2 * CHUNK_SIZE));
    assert_eq!(sealed.len(), HEAD + 2 * SEALED_CHUNK + TAG_LEN);
    let without_final = &sealed[..sealed.len() - TAG_LEN];
    assert!(matches!(
        decrypt(&key, without_final),
        Err(StreamError::Truncated { chunks: 2 })
    ));
    // Padding the short final chunk to full length (turning it into a non-final one) fails too.
    let sealed = encrypt(&key, &pattern(CHUNK_SIZE + 10));
    let mut padded = sealed.clone();
    padded.resize(HEAD + 2 * SEALED_CHUNK, 0);
    assert!(matches!(
        decrypt(&key, &padded),
        Err(StreamError::ChunkTampered { index: 1 })
    ));
}

#[test]
fn swapped_chunks_are_detected() {
    let key = AttachmentKey::generate().unwrap();
    let sealed = encrypt(&key, &pattern(3 * CHUNK_SIZE + 1));
    let mut swapped = sealed.clone();
    let (a, b) = (HEAD, HEAD + SEALED_CHUNK);
    let first = sealed[a..a + SEALED_CHUNK].to_vec();
    swapped.copy_within(b..b + SEALED_CHUNK, a);
    swapped[b..b + SEALED_CHUNK].copy_from_slice(&first);
    assert!(matches!(
        decrypt(&key, &swapped),
        Err(StreamError::ChunkTampered { index: 0 })
    ));
}

#[test]
fn a_duplicated_chunk_is_detected() {
    let key = AttachmentKey::generate().unwrap();
    let sealed = encrypt(&key, &pattern(2 * CHUNK_SIZE + 1));
    let mut duplicated = sealed[..HEAD + SEALED_CHUNK].to_vec();
    duplicated.extend_from_slice(&sealed[HEAD..HEAD + SEALED_CHUNK]);
    duplicated.extend_from_slice(&sealed[HEAD + SEALED_CHUNK..]);
    assert!(matches!(
        decrypt(&key, &duplicated),
        Err(StreamError::ChunkTampered { index: 1 })
    ));
}

#[test]
fn a_flipped_bit_in_any_chunk_is_detected_at_that_chunk() {
    let key = AttachmentKey::generate().unwrap();
    let sealed = encrypt(&key, &pattern(3 * CHUNK_SIZE + 7));
    for chunk in 0..4u64 {
        let mut bad = sealed.clone();
        bad[HEAD + chunk as usize * SEALED_CHUNK + 3] ^= 0x10;
        assert!(
            matches!(decrypt(&key, &bad), Err(StreamError::ChunkTampered { index }) if index == chunk)
        );
    }
}

#[test]
fn the_wrong_key_or_context_is_refused_before_any_output() {
    let key = AttachmentKey::generate().unwrap();
    let sealed = encrypt(&key, &pattern(100));
    let other = AttachmentKey::generate().unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        attachment::decrypt(&other, CONTEXT, &sealed[..], &mut out),
        Err(StreamError::WrongKey)
    ));
    assert!(matches!(
        attachment::decrypt(&key, b"another cable", &sealed[..], &mut out),
        Err(StreamError::WrongKey)
    ));
    assert!(out.is_empty());
    let mut bad_salt = sealed.clone();
    bad_salt[0] ^= 1;
    assert!(matches!(
        decrypt(&key, &bad_salt),
        Err(StreamError::WrongKey)
    ));
}

#[test]
fn the_same_file_encrypts_differently_each_time() {
    let key = AttachmentKey::generate().unwrap();
    let plain = pattern(1000);
    assert_ne!(encrypt(&key, &plain), encrypt(&key, &plain));
}

/// Produces `left` bytes on the fly, so the test itself holds no large buffer.
struct Generated {
    left: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        buf[..n].fill(0x5A);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Records the largest single write and the total, keeping nothing.
#[derive(Default)]
struct Sink {
    largest: usize,
    total: u64,
}

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.largest = self.largest.max(buf.len());
        self.total += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn large_attachments_stream_one_chunk_at_a_time() {
    let key = AttachmentKey::generate().unwrap();
    let len = 64 * 1024 * 1024u64;
    let mut sink = Sink::default();
    let summary = attachment::encrypt(&key, CONTEXT, Generated { left: len }, &mut sink).unwrap();
    assert_eq!(summary.plaintext_len, len);
    assert_eq!(sink.total, attachment::ciphertext_len(len));
    assert!(
        sink.largest <= SEALED_CHUNK,
        "a write of {} bytes",
        sink.largest
    );
}

/// Counts the bytes a stream function has pulled from its input.
struct Counting<'a> {
    data: &'a [u8],
    read: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.read += n;
        Ok(n)
    }
}

/// Takes `room` bytes, then fails, like a full disk.
struct FailsAfter {
    room: usize,
}

impl io::Write for FailsAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.room {
            return Err(io::Error::other("disk full"));
        }
        self.room -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reader → writer with one chunk in hand: when the writer fails at the first chunk of a
/// 1 MiB attachment, neither direction has read more than that chunk from its input.
#[test]
fn each_chunk_is_written_before_the_next_is_read() {
    let key = AttachmentKey::generate().unwrap();
    let plain = pattern(64 * CHUNK_SIZE);
    let sealed = encrypt(&key, &plain);

    let mut input = Counting {
        data: &sealed,
        read: 0,
    };
    let result = attachment::decrypt(&key, CONTEXT, &mut input, FailsAfter { room: 0 });
    assert!(matches!(result, Err(StreamError::Io(_))));
    assert_eq!(input.read, HEAD + SEALED_CHUNK);

    let mut input = Counting {
        data: &plain,
        read: 0,
    };
    // Room for the salt and commitment only: writing chunk 0 fails.
    let result = attachment::encrypt(&key, CONTEXT, &mut input, FailsAfter { room: HEAD });
    assert!(matches!(result, Err(StreamError::Io(_))));
    assert_eq!(input.read, CHUNK_SIZE);
}
