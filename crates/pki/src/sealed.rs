//! The root's key at rest: sealed under a passphrase (Argon2id) so that the file on the CA's
//! disk is useless without it. The file is a sealed storage key followed by the PEM key sealed
//! under that storage key.

use valise_crypto::at_rest::{AtRestError, KdfParams, SealedStorageKey, StorageKey};

use crate::certificate::CertificateError;
use crate::root::MinistryCa;

/// The length of the sealed storage key at the start of the file.
const SEALED_KEY_LEN: usize = 93;
/// Where the key is sealed: the record's table and key, to which its sealing is bound.
const TABLE: &str = "ca";
const RECORD: &[u8] = b"key";

/// Why the root's key could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedKeyError {
    /// Sealing failed (the random number generator, or the key derivation).
    #[error("cannot seal the CA key: {0}")]
    Seal(#[source] AtRestError),
    /// The sealed key did not open: a wrong passphrase, or a damaged file.
    #[error("cannot open the CA key: {0}")]
    Open(#[source] AtRestError),
    /// The key opened, but it and the certificate do not make a root.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

impl MinistryCa {
    /// The CA key sealed under a passphrase (Argon2id), safe to write to disk.
    pub fn seal_key(
        &self,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<Vec<u8>, SealedKeyError> {
        let storage =
            StorageKey::generate().map_err(|e| SealedKeyError::Seal(AtRestError::from(e)))?;
        let sealed = storage
            .seal_with_passphrase(passphrase, params)
            .map_err(SealedKeyError::Seal)?;
        let record = storage
            .record_sealer()
            .map_err(SealedKeyError::Seal)?
            .seal(TABLE, RECORD, self.issuer.key().serialize_pem().as_bytes())
            .map_err(SealedKeyError::Seal)?;
        Ok([sealed.as_bytes(), &record].concat())
    }

    /// Opens a key sealed by [`Self::seal_key`] and reloads the root.
    pub fn open_sealed(
        ministry: &str,
        cert_pem: &str,
        sealed: &[u8],
        passphrase: &[u8],
    ) -> Result<Self, SealedKeyError> {
        let (key_file, record) =
            sealed
                .split_at_checked(SEALED_KEY_LEN)
                .ok_or(SealedKeyError::Open(AtRestError::BadKeyFile(
                    "the sealed CA key file is too short",
                )))?;
        let storage = SealedStorageKey::from_bytes(key_file)
            .and_then(|key| key.unseal(passphrase))
            .map_err(SealedKeyError::Open)?;
        let pem = storage
            .record_sealer()
            .and_then(|sealer| sealer.open(TABLE, RECORD, record))
            .map_err(SealedKeyError::Open)?;
        let pem = std::str::from_utf8(&pem).map_err(|_| CertificateError::Pem {
            what: "CA key",
            reason: "not UTF-8".into(),
        })?;
        Ok(Self::from_pem(ministry, cert_pem, pem)?)
    }
}
