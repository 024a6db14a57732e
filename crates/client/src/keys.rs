//! The device's keys, kept in the sealed store: its identity key, its receive keys (the
//! current one and older ones still within their validity), and its TLS key and certificate.

use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_crypto::tls::CertifiedKey;
use zeroize::Zeroizing;

use crate::store::{LocalStore, StoreError, Table};

const IDENTITY: &[u8] = b"identity";
const RECEIVE_PREFIX: &[u8] = b"receive/";
const TLS_KEY: &[u8] = b"tls/key";
const TLS_CHAIN: &[u8] = b"tls/chain";

/// How long a receive key is published for: 30 days. Rotation on schedule replaces it before.
pub const RECEIVE_KEY_VALIDITY_MS: u64 = 30 * 24 * 3_600_000;

/// How long a replaced receive key is kept after its successor was made: 30 days, long enough
/// for cables sealed to it by a sender with an older directory to cross slow or cut links.
pub const RECEIVE_KEY_RETENTION_MS: u64 = 30 * 24 * 3_600_000;

/// Errors of the keystore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key does not parse.
    #[error("the stored {0} is damaged; wipe and re-enrol this device")]
    Damaged(&'static str),
    /// Generating a key failed.
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// Everything secret a device holds.
pub struct DeviceKeys {
    /// Signs envelopes and receipts; its hash is the device id.
    pub identity: IdentityKeyPair,
    /// Decrypt cables; newest last.
    pub receive: Vec<ReceiveKeyPair>,
    /// The TLS client key and the chain the post issued for it.
    pub tls: CertifiedKey,
}

impl DeviceKeys {
    /// Stores every key.
    pub fn save(&self, store: &LocalStore) -> Result<(), KeyError> {
        store.put(Table::Keys, IDENTITY, &self.identity.seed()[..])?;
        for key in &self.receive {
            save_receive_key(store, key)?;
        }
        store.put(Table::Keys, TLS_KEY, self.tls.key_pem.as_bytes())?;
        store.put(Table::Keys, TLS_CHAIN, self.tls.chain_pem.as_bytes())?;
        Ok(())
    }

    /// Loads every key.
    pub fn load(store: &LocalStore) -> Result<Self, KeyError> {
        let seed = store
            .get(Table::Keys, IDENTITY)?
            .ok_or(KeyError::Damaged("identity key"))?;
        let identity =
            IdentityKeyPair::from_seed(&seed).map_err(|_| KeyError::Damaged("identity key"))?;
        let mut receive = Vec::new();
        for (key, value) in store.scan(Table::Keys)? {
            if key.starts_with(RECEIVE_PREFIX) {
                receive.push(
                    ReceiveKeyPair::from_bytes(&value)
                        .map_err(|_| KeyError::Damaged("receive key"))?,
                );
            }
        }
        receive.sort_by_key(ReceiveKeyPair::valid_from_ms);
        let text = |name: &'static str, bytes: Option<Zeroizing<Vec<u8>>>| {
            bytes
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .ok_or(KeyError::Damaged(name))
        };
        let tls = CertifiedKey {
            chain_pem: text("TLS certificate", store.get(Table::Keys, TLS_CHAIN)?)?,
            key_pem: Zeroizing::new(text("TLS key", store.get(Table::Keys, TLS_KEY)?)?),
        };
        Ok(DeviceKeys {
            identity,
            receive,
            tls,
        })
    }

    /// Erases the receive keys past their retention at `now_ms`: replaced by a newer key more
    /// than [`RECEIVE_KEY_RETENTION_MS`] ago, and no longer valid. Cables sealed to them can no
    /// longer be opened by anyone who later seizes this device. The newest key is kept even
    /// past its validity: the next sync replaces it. Returns how many were erased.
    pub fn erase_expired(&mut self, store: &LocalStore, now_ms: u64) -> Result<usize, KeyError> {
        let made: Vec<u64> = self.receive.iter().map(|k| k.valid_from_ms()).collect();
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.receive)
            .into_iter()
            .partition(|k| {
                let replaced_at = made.iter().filter(|&&at| at > k.valid_from_ms()).min();
                replaced_at.is_some_and(|at| {
                    let kept_until = at
                        .saturating_add(RECEIVE_KEY_RETENTION_MS)
                        .max(k.valid_until_ms());
                    kept_until < now_ms
                })
            });
        for key in &expired {
            store.delete(Table::Keys, &receive_key_name(key))?;
        }
        self.receive = kept;
        Ok(expired.len())
    }
}

/// Stores one receive key.
pub fn save_receive_key(store: &LocalStore, key: &ReceiveKeyPair) -> Result<(), KeyError> {
    store.put(Table::Keys, &receive_key_name(key), &key.to_bytes())?;
    Ok(())
}

fn receive_key_name(key: &ReceiveKeyPair) -> Vec<u8> {
    [RECEIVE_PREFIX, key.id().as_bytes()].concat()
}
