//! Attachments: streaming authenticated encryption with bounded memory, following C2SP
//! `chunked-encryption` (v1) with HKDF-SHA256 and AES-256-GCM.
//!
//! Format: `salt (24) ‖ commitment (32) ‖ chunk₀ ‖ chunk₁ ‖ …`. Each chunk holds 16 KiB of
//! plaintext plus a 16-byte tag, except the last, which holds *less than* 16 KiB (possibly
//! nothing). That short last chunk is the end-of-stream flag: its length is authenticated, so
//! a stream that stops after a full chunk has lost its final chunk and is reported truncated.
//! Chunk `i` is sealed with nonce `base_nonce XOR i`, so a reordered, duplicated or dropped
//! chunk fails at the first position where it does not belong.
//!
//! Memory use is one chunk whatever the attachment's size. Decryption writes a chunk only after
//! it authenticates, but the end of the stream is known only at the end: on any error the
//! output so far is incomplete, and the caller must discard it.

use std::io::{self, ErrorKind, Read, Write};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest::{Context as DigestContext, SHA256};
use ring::hkdf;
use subtle::ConstantTimeEq;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::hpke::OutputLen;
use crate::random::{self, RandomError};

/// Plaintext bytes per full chunk.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// Length of the random salt that starts a stream.
pub const SALT_LEN: usize = 24;
/// Length of the key commitment that follows the salt.
pub const COMMITMENT_LEN: usize = 32;
/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of an attachment key.
pub const KEY_LEN: usize = 32;
/// The AEAD's name in the IANA registry, part of the key derivation.
const AEAD_NAME: &[u8] = b"AEAD_AES_256_GCM";
const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+";
/// The spec's chunk-count ceiling (4 PiB).
const MAX_CHUNKS: u64 = 1 << 38;
const NONCE_LEN: usize = 12;

/// Why an attachment stream failed. After an error, discard whatever was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Reading the input or writing the output failed.
    #[error("attachment I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The key commitment does not match: wrong attachment key or context, or a damaged start.
    #[error(
        "the attachment was not encrypted with this key for this cable (key commitment mismatch)"
    )]
    WrongKey,
    /// The stream ends too early: a chunk or the final short chunk is missing.
    #[error("the attachment is truncated after {chunks} complete chunks; fetch it again")]
    Truncated {
        /// Complete chunks read before the stream ended.
        chunks: u64,
    },
    /// A chunk fails authentication: altered, reordered, duplicated or from another stream.
    #[error("attachment chunk {index} was altered, reordered or duplicated")]
    ChunkTampered {
        /// Position of the chunk that failed.
        index: u64,
    },
    /// The attachment exceeds the format's 4 PiB ceiling.
    #[error("the attachment exceeds the 4 PiB limit of the stream format")]
    TooLong,
    /// Randomness failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// An attachment's key. It travels inside the encrypted cable body. Wiped when dropped.
#[derive(ZeroizeOnDrop)]
pub struct AttachmentKey(Zeroizing<[u8; KEY_LEN]>);

impl AttachmentKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, RandomError> {
        random::secret().map(AttachmentKey)
    }

    /// Reads a key from its 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let key: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(AttachmentKey(Zeroizing::new(key)))
    }

    /// The key's bytes, for the cable body. Never log them.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// What encryption produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// Plaintext bytes read.
    pub plaintext_len: u64,
    /// Ciphertext bytes written.
    pub ciphertext_len: u64,
    /// SHA-256 of the ciphertext: the attachment's storage id.
    pub ciphertext_sha256: [u8; 32],
}

/// Encrypts `input` to `output`. `context` binds the stream to its use (e.g. cable id and
/// attachment index); decryption must give the same context.
pub fn encrypt<R: Read, W: Write>(
    key: &AttachmentKey,
    context: &[u8],
    mut input: R,
    output: W,
) -> Result<Encrypted, StreamError> {
    let mut salt = [0u8; SALT_LEN];
    random::fill(&mut salt)?;
    let keys = StreamKeys::derive(key, &salt, context)?;
    let mut out = HashingWriter::new(output);
    out.write_all(&salt)?;
    out.write_all(&keys.commitment[..])?;

    let mut buf = Zeroizing::new(vec![0u8; CHUNK_SIZE + TAG_LEN]);
    let mut index = 0u64;
    let mut plaintext_len = 0u64;
    loop {
        let n = read_full(&mut input, &mut buf[..CHUNK_SIZE])?;
        plaintext_len += n as u64;
        let tag = keys
            .aead
            .seal_in_place_separate_tag(keys.nonce(index)?, Aad::empty(), &mut buf[..n])
            .map_err(|_| StreamError::TooLong)?;
        buf[n..n + TAG_LEN].copy_from_slice(tag.as_ref());
        out.write_all(&buf[..n + TAG_LEN])?;
        if n < CHUNK_SIZE {
            break;
        }
        index += 1;
    }
    let (mut output, ciphertext_len, ciphertext_sha256) = out.finish();
    output.flush()?;
    Ok(Encrypted {
        plaintext_len,
        ciphertext_len,
        ciphertext_sha256,
    })
}

/// Decrypts `input` to `output` and returns the plaintext length. On error, the output is
/// incomplete and must be discarded.
pub fn decrypt<R: Read, W: Write>(
    key: &AttachmentKey,
    context: &[u8],
    mut input: R,
    mut output: W,
) -> Result<u64, StreamError> {
    let mut head = [0u8; SALT_LEN + COMMITMENT_LEN];
    if read_full(&mut input, &mut head)? < head.len() {
        return Err(StreamError::Truncated { chunks: 0 });
    }
    let (salt, commitment) = head.split_at(SALT_LEN);
    let keys = StreamKeys::derive(key, salt, context)?;
    if !bool::from(keys.commitment[..].ct_eq(commitment)) {
        return Err(StreamError::WrongKey);
    }

    let mut buf = Zeroizing::new(vec![0u8; CHUNK_SIZE + TAG_LEN]);
    let mut index = 0u64;
    let mut plaintext_len = 0u64;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n < TAG_LEN {
            // Nothing, or less than a tag, where a chunk must be: the final chunk is missing.
            return Err(StreamError::Truncated { chunks: index });
        }
        let plain = keys
            .aead
            .open_in_place(keys.nonce(index)?, Aad::empty(), &mut buf[..n])
            .map_err(|_| StreamError::ChunkTampered { index })?;
        output.write_all(plain)?;
        plaintext_len += plain.len() as u64;
        if n < CHUNK_SIZE + TAG_LEN {
            // A short chunk is the last one; read_full only returns short at end of input.
            output.flush()?;
            return Ok(plaintext_len);
        }
        index += 1;
    }
}

/// The length of the ciphertext of a `plaintext_len`-byte attachment.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let chunks = plaintext_len / CHUNK_SIZE as u64 + 1;
    (SALT_LEN + COMMITMENT_LEN) as u64 + plaintext_len + chunks * TAG_LEN as u64
}

struct StreamKeys {
    aead: LessSafeKey,
    base_nonce: [u8; NONCE_LEN],
    commitment: Zeroizing<[u8; COMMITMENT_LEN]>,
}

impl StreamKeys {
    /// key ‖ base nonce ‖ commitment = HKDF-Expand(input key, prefix ‖ aead ‖ 0 ‖ salt ‖ context).
    fn derive(key: &AttachmentKey, salt: &[u8], context: &[u8]) -> Result<Self, StreamError> {
        const OUT: usize = KEY_LEN + NONCE_LEN + COMMITMENT_LEN;
        let mut okm = Zeroizing::new([0u8; OUT]);
        let info = [INFO_PREFIX, AEAD_NAME, &[0u8][..], salt, context];
        hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &key.0[..])
            .expand(&info, OutputLen(OUT))
            .and_then(|o| o.fill(&mut okm[..]))
            .map_err(|_| StreamError::TooLong)?;
        let aead =
            UnboundKey::new(&AES_256_GCM, &okm[..KEY_LEN]).map_err(|_| StreamError::TooLong)?;
        let mut base_nonce = [0u8; NONCE_LEN];
        base_nonce.copy_from_slice(&okm[KEY_LEN..KEY_LEN + NONCE_LEN]);
        let mut commitment = Zeroizing::new([0u8; COMMITMENT_LEN]);
        commitment.copy_from_slice(&okm[KEY_LEN + NONCE_LEN..]);
        Ok(StreamKeys {
            aead: LessSafeKey::new(aead),
            base_nonce,
            commitment,
        })
    }

    fn nonce(&self, index: u64) -> Result<Nonce, StreamError> {
        if index >= MAX_CHUNKS {
            return Err(StreamError::TooLong);
        }
        let mut nonce = self.base_nonce;
        for (n, i) in nonce[NONCE_LEN - 8..].iter_mut().zip(index.to_be_bytes()) {
            *n ^= i;
        }
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Counts and hashes what passes through to the inner writer.
struct HashingWriter<W> {
    inner: W,
    len: u64,
    digest: DigestContext,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            len: 0,
            digest: DigestContext::new(&SHA256),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.digest.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn finish(self) -> (W, u64, [u8; 32]) {
        let mut sha = [0u8; 32];
        sha.copy_from_slice(self.digest.finish().as_ref());
        (self.inner, self.len, sha)
    }
}
