//! Randomness, from the operating system through ring.

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The operating system's random number generator failed. Nothing was encrypted or signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed; check the system's entropy source")]
pub struct RandomError;

/// Fills `buf` with random bytes.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(buf).map_err(|_| RandomError)
}

/// Returns `N` random bytes that are wiped when dropped.
pub(crate) fn secret<const N: usize>() -> Result<Zeroizing<[u8; N]>, RandomError> {
    let mut out = Zeroizing::new([0u8; N]);
    fill(out.as_mut())?;
    Ok(out)
}
