//! Fixed-length fields: keys, ids and ciphertexts read from bytes.

/// A key, id or ciphertext of the wrong length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {expected} bytes, got {got}")]
pub struct LengthError {
    /// What was being read, e.g. "an identity public key".
    pub what: &'static str,
    /// The required length.
    pub expected: usize,
    /// The length given.
    pub got: usize,
}

/// Reads exactly `N` bytes, or says what was wrong.
pub(crate) fn fixed<const N: usize>(
    bytes: &[u8],
    what: &'static str,
) -> Result<[u8; N], LengthError> {
    bytes.try_into().map_err(|_| LengthError {
        what,
        expected: N,
        got: bytes.len(),
    })
}
