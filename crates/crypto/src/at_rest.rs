//! Sealing at rest: a random storage key, wrapped under a passphrase through Argon2id, and
//! record sealing for the client and relay stores.
//!
//! Destroying a store means destroying its storage key first (crypto-shredding): every sealed
//! record is unreadable from that moment, whatever the disk keeps.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::hpke::OutputLen;
use crate::random::{self, RandomError};

/// Length of a storage key.
pub const STORAGE_KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"VSK\x01";
const ALGORITHM_ARGON2ID_13: u8 = 1;
/// magic ‖ algorithm ‖ m ‖ t ‖ p ‖ salt: authenticated as the AAD.
const SEALED_HEADER_LEN: usize = 4 + 1 + 4 + 4 + 4 + SALT_LEN;
const SEALED_LEN: usize = SEALED_HEADER_LEN + NONCE_LEN + STORAGE_KEY_LEN + TAG_LEN;
const RECORD_FORMAT_V1: u8 = 1;

/// Errors of at-rest sealing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AtRestError {
    /// The passphrase is wrong, or the sealed key file was altered.
    #[error("wrong passphrase, or the sealed key file was altered")]
    WrongPassphrase,
    /// The sealed key bytes are not a sealed storage key this build reads.
    #[error("the sealed key file is damaged or not a Valise key file: {0}")]
    BadKeyFile(&'static str),
    /// The Argon2id parameters are outside the accepted range.
    #[error("Argon2id parameters out of range: {0}")]
    BadParams(String),
    /// A sealed record does not authenticate: altered, or moved from another table or key.
    #[error(
        "the stored record in {table:?} was altered or moved; the store is damaged or tampered with"
    )]
    RecordTampered {
        /// The table it was read from.
        table: String,
    },
    /// A sealed record is too short or of an unknown format.
    #[error("the stored record in {table:?} is damaged (format byte {format})")]
    BadRecord {
        /// The table it was read from.
        table: String,
        /// Its format byte.
        format: u8,
    },
    /// Randomness failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A cryptographic primitive refused its key (internal error).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Argon2id cost parameters. They are stored beside the sealed key, so they can be raised
/// later without breaking older files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The largest memory accepted from a key file: 4 GiB. A damaged or hostile file cannot
    /// make unlocking exhaust the machine.
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// The most passes accepted from a key file.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The most lanes accepted from a key file.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks the parameters against the accepted range and Argon2's own rules.
    pub fn validate(&self) -> Result<(), AtRestError> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.parallelism > Self::MAX_PARALLELISM
        {
            return Err(AtRestError::BadParams(format!(
                "{self:?} exceeds the maximum of {} KiB, {} iterations, {} lanes",
                Self::MAX_MEMORY_KIB,
                Self::MAX_ITERATIONS,
                Self::MAX_PARALLELISM
            )));
        }
        self.argon2().map(drop)
    }

    fn argon2(&self) -> Result<Argon2<'static>, AtRestError> {
        let params = Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(STORAGE_KEY_LEN),
        )
        .map_err(|e| AtRestError::BadParams(format!("{self:?}: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for KdfParams {
    /// RFC 9106's second recommended option (64 MiB, 3 passes), on one lane.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The random key that seals a store. Wiped when dropped.
#[derive(ZeroizeOnDrop)]
pub struct StorageKey(Zeroizing<[u8; STORAGE_KEY_LEN]>);

impl StorageKey {
    /// A fresh random storage key.
    pub fn generate() -> Result<Self, RandomError> {
        random::secret().map(StorageKey)
    }

    /// A storage key read back from raw bytes: a node's key file, which unattended restarts
    /// must read without a passphrase.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AtRestError> {
        let key: [u8; STORAGE_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| AtRestError::BadKeyFile("a storage key is 32 bytes"))?;
        Ok(StorageKey(Zeroizing::new(key)))
    }

    /// The raw key, for a node's owner-only key file. Clients seal theirs under a passphrase
    /// with [`StorageKey::seal_with_passphrase`] instead.
    pub fn to_bytes(&self) -> Zeroizing<[u8; STORAGE_KEY_LEN]> {
        self.0.clone()
    }

    /// Seals the key under a passphrase, for writing to disk.
    pub fn seal_with_passphrase(
        &self,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<SealedStorageKey, AtRestError> {
        params.validate()?;
        let mut salt = [0u8; SALT_LEN];
        random::fill(&mut salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        random::fill(&mut nonce)?;
        let mut bytes = sealed_header(params, &salt);
        let kek = derive_kek(passphrase, &salt, params)?;
        let mut ct = self.0.to_vec();
        kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&bytes[..]),
            &mut ct,
        )
        .map_err(|_| AtRestError::Internal("sealing the storage key failed"))?;
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Ok(SealedStorageKey { bytes, params })
    }

    /// A sealer for the records of one store, under a key derived for that purpose.
    pub fn record_sealer(&self) -> Result<RecordSealer, AtRestError> {
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &self.0[..])
            .expand(&[b"valise/1 record-sealing"], OutputLen(32))
            .and_then(|okm| okm.fill(&mut key[..]))
            .map_err(|_| AtRestError::Internal("deriving the record key failed"))?;
        let key = UnboundKey::new(&AES_256_GCM, &key[..])
            .map_err(|_| AtRestError::Internal("record key refused"))?;
        Ok(RecordSealer {
            aead: LessSafeKey::new(key),
        })
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageKey(..)")
    }
}

/// A storage key sealed under a passphrase. Its bytes are safe to write to disk.
///
/// Layout (93 bytes): `"VSK" 0x01` ‖ algorithm (1 = Argon2id v1.3) ‖ memory KiB (u32 BE) ‖
/// iterations (u32 BE) ‖ lanes (u32 BE) ‖ salt (16) ‖ nonce (12) ‖ AES-256-GCM(key) (48).
/// Everything before the nonce is the AAD, so the parameters cannot be changed unnoticed.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedStorageKey {
    bytes: Vec<u8>,
    params: KdfParams,
}

impl SealedStorageKey {
    /// Reads sealed key bytes, checking their format and parameters.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AtRestError> {
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            return Err(AtRestError::BadKeyFile(
                "it does not start with the Valise key file marker",
            ));
        }
        if bytes.len() != SEALED_LEN {
            return Err(AtRestError::BadKeyFile("it has the wrong length"));
        }
        if bytes[4] != ALGORITHM_ARGON2ID_13 {
            return Err(AtRestError::BadKeyFile(
                "it names an unknown key derivation algorithm",
            ));
        }
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let params = KdfParams {
            memory_kib: word(5),
            iterations: word(9),
            parallelism: word(13),
        };
        params.validate()?;
        Ok(SealedStorageKey {
            bytes: bytes.to_vec(),
            params,
        })
    }

    /// The bytes to write to disk.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The Argon2id parameters it was sealed with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Recovers the storage key with the passphrase.
    pub fn unseal(&self, passphrase: &[u8]) -> Result<StorageKey, AtRestError> {
        let (header, rest) = self.bytes.split_at(SEALED_HEADER_LEN);
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let salt = &header[SEALED_HEADER_LEN - SALT_LEN..];
        let kek = derive_kek(passphrase, salt, self.params)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| AtRestError::BadKeyFile("bad nonce"))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let key = kek
            .open_in_place(nonce, Aad::from(header), &mut buf[..])
            .map_err(|_| AtRestError::WrongPassphrase)?;
        let key: [u8; STORAGE_KEY_LEN] = (&*key)
            .try_into()
            .map_err(|_| AtRestError::BadKeyFile("bad key length"))?;
        Ok(StorageKey(Zeroizing::new(key)))
    }
}

impl fmt::Debug for SealedStorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStorageKey")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn sealed_header(params: KdfParams, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(MAGIC);
    out.push(ALGORITHM_ARGON2ID_13);
    out.extend_from_slice(&params.memory_kib.to_be_bytes());
    out.extend_from_slice(&params.iterations.to_be_bytes());
    out.extend_from_slice(&params.parallelism.to_be_bytes());
    out.extend_from_slice(salt);
    out
}

fn derive_kek(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<LessSafeKey, AtRestError> {
    let mut kek = Zeroizing::new([0u8; STORAGE_KEY_LEN]);
    params
        .argon2()?
        .hash_password_into(passphrase, salt, &mut kek[..])
        .map_err(|e| AtRestError::BadParams(e.to_string()))?;
    let key = UnboundKey::new(&AES_256_GCM, &kek[..])
        .map_err(|_| AtRestError::Internal("key-encryption key refused"))?;
    Ok(LessSafeKey::new(key))
}

/// Seals and opens the records of one store. Each record is bound to its table and key, so a
/// record copied to another place in the store no longer opens.
///
/// Nonces are random (96 bits): keep well under 2³² records per storage key; rotate the key
/// (re-seal the store) long before.
pub struct RecordSealer {
    aead: LessSafeKey,
}

impl RecordSealer {
    /// Seals `value`, stored at (`table`, `key`). Output: format ‖ nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, table: &str, key: &[u8], value: &[u8]) -> Result<Vec<u8>, AtRestError> {
        let mut nonce = [0u8; NONCE_LEN];
        random::fill(&mut nonce)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + value.len() + TAG_LEN);
        out.push(RECORD_FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(value);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(location(table, key)),
                &mut out[1 + NONCE_LEN..],
            )
            .map_err(|_| AtRestError::Internal("record sealing failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a record read from (`table`, `key`). The plaintext is wiped on drop.
    pub fn open(
        &self,
        table: &str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
        let format = sealed.first().copied().unwrap_or(0);
        if format != RECORD_FORMAT_V1 || sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(AtRestError::BadRecord {
                table: table.to_owned(),
                format,
            });
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN]).map_err(|_| {
            AtRestError::BadRecord {
                table: table.to_owned(),
                format,
            }
        })?;
        let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let len = self
            .aead
            .open_in_place(nonce, Aad::from(location(table, key)), &mut buf[..])
            .map_err(|_| AtRestError::RecordTampered {
                table: table.to_owned(),
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// The AAD naming a record's place: length-prefixed table and key.
fn location(table: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + table.len() + key.len());
    aad.extend_from_slice(&(table.len() as u64).to_be_bytes());
    aad.extend_from_slice(table.as_bytes());
    aad.extend_from_slice(key);
    aad
}
