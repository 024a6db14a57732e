//! The local store: sled, every value sealed under the device's storage key, which is itself
//! sealed under the passphrase with Argon2id (DESIGN §5).
//!
//! Files in the data directory:
//!
//! | file | holds |
//! |---|---|
//! | `storage.key` | the storage key, sealed under the passphrase |
//! | `store/` | the sled database: one tree per [`Table`], values sealed and bound to their place |
//!
//! Writes are durable when they return: sled's flush, then an fsync of its file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use valise_crypto::at_rest::{AtRestError, KdfParams, RecordSealer, SealedStorageKey, StorageKey};
use zeroize::Zeroizing;

/// The sealed storage key's file.
pub const STORAGE_KEY_FILE: &str = "storage.key";
/// The database's folder.
pub const STORE_DIR: &str = "store";

/// What the store holds, one sled tree each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The device's keys and certificate.
    Keys,
    /// Who this device is, and its node.
    Profile,
    /// The verified directory updates, by version.
    Directory,
    /// Received cables.
    Inbox,
    /// Sent cables and their per-recipient status.
    Sent,
    /// Sealed envelopes waiting for the node.
    Outbox,
    /// Contacts verified in person: the devices compared, and when.
    Contacts,
}

impl Table {
    /// Its tree name, also the sealing table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Keys => "client/keys",
            Table::Profile => "client/profile",
            Table::Directory => "client/directory",
            Table::Inbox => "client/inbox",
            Table::Sent => "client/sent",
            Table::Outbox => "client/outbox",
            Table::Contacts => "client/contacts",
        }
    }
}

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No store in this data directory.
    #[error("no Valise store in {0}; enrol this device first with `valise enroll`")]
    NotEnrolled(PathBuf),
    /// A store already exists here.
    #[error("a Valise store already exists in {0}; use another --data-dir, or wipe this one")]
    AlreadyExists(PathBuf),
    /// The passphrase does not unlock the storage key.
    #[error("wrong passphrase (or {0} was altered); nothing was changed")]
    WrongPassphrase(PathBuf),
    /// The sealed key file is unreadable.
    #[error("{path} is damaged: {reason}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another `valise` process holds the store.
    #[error("the store in {0} is in use by another valise process; wait for it or stop it")]
    InUse(PathBuf),
    /// A stored record does not open: altered, moved or damaged.
    #[error(
        "the local store record {key} in table {table} is damaged or was tampered with; \
             restore the data directory from backup, or wipe and re-enrol"
    )]
    Damaged {
        /// The table.
        table: &'static str,
        /// The record's key, hex.
        key: String,
    },
    /// Reading or writing failed.
    #[error("local store I/O failed: {0}")]
    Io(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// One record: its key and its opened value (wiped on drop).
pub type Record = (Vec<u8>, Zeroizing<Vec<u8>>);

/// An unlocked local store.
pub struct LocalStore {
    db: sled::Db,
    db_file: File,
    sealer: RecordSealer,
    dir: PathBuf,
}

/// Longest wait for sled's lock to be released by a store that just closed.
const LOCK_WAIT_LIMIT: Duration = Duration::from_millis(640);

impl LocalStore {
    /// Whether `dir` holds a store.
    pub fn exists(dir: &Path) -> bool {
        dir.join(STORAGE_KEY_FILE).exists()
    }

    /// Creates a new store in `dir`, sealed under `passphrase`.
    pub fn create(dir: &Path, passphrase: &[u8], params: KdfParams) -> Result<Self, StoreError> {
        if Self::exists(dir) {
            return Err(StoreError::AlreadyExists(dir.to_owned()));
        }
        std::fs::create_dir_all(dir)?;
        let key = StorageKey::generate().map_err(|e| StoreError::Io(e.to_string()))?;
        let sealed = key
            .seal_with_passphrase(passphrase, params)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        write_owner_only(&dir.join(STORAGE_KEY_FILE), sealed.as_bytes())?;
        Self::open_with(dir, &key)
    }

    /// Unlocks the store in `dir` with `passphrase`.
    pub fn unlock(dir: &Path, passphrase: &[u8]) -> Result<Self, StoreError> {
        let path = dir.join(STORAGE_KEY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotEnrolled(dir.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let sealed = SealedStorageKey::from_bytes(&bytes).map_err(|e| StoreError::BadKeyFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let key = sealed.unseal(passphrase).map_err(|e| match e {
            AtRestError::WrongPassphrase => StoreError::WrongPassphrase(path.clone()),
            other => StoreError::BadKeyFile {
                path: path.clone(),
                reason: other.to_string(),
            },
        })?;
        Self::open_with(dir, &key)
    }

    fn open_with(dir: &Path, key: &StorageKey) -> Result<Self, StoreError> {
        let sealer = key
            .record_sealer()
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let path = dir.join(STORE_DIR);
        let config = sled::Config::new().path(&path);
        // sled releases its lock from a background thread after a close: wait for that
        // briefly, so commands run back to back do not fail; a live holder still fails.
        let mut pause = Duration::from_millis(5);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().starts_with("could not acquire lock") => {
                    if pause >= LOCK_WAIT_LIMIT {
                        return Err(StoreError::InUse(dir.to_owned()));
                    }
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let db_file = File::open(path.join("db"))?;
        Ok(LocalStore {
            db,
            db_file,
            sealer,
            dir: dir.to_owned(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `value` at (`table`, `key`), durably.
    pub fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let sealed = self
            .sealer
            .seal(table.name(), key, value)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        self.db.open_tree(table.name())?.insert(key, sealed)?;
        self.sync()
    }

    /// The value at (`table`, `key`).
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        match self.db.open_tree(table.name())?.get(key)? {
            Some(sealed) => self.open(table, key, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Every record of `table`, in key order.
    pub fn scan(&self, table: Table) -> Result<Vec<Record>, StoreError> {
        self.db
            .open_tree(table.name())?
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let value = self.open(table, &k, &v)?;
                Ok((k.to_vec(), value))
            })
            .collect()
    }

    /// The message stored at (`table`, `key`); one that does not decode is damaged.
    pub fn get_message<M: prost::Message + Default>(
        &self,
        table: Table,
        key: &[u8],
    ) -> Result<Option<M>, StoreError> {
        self.get(table, key)?
            .map(|value| decode(table, key, &value))
            .transpose()
    }

    /// Every message of `table`, in key order, with its key.
    pub fn scan_messages<M: prost::Message + Default>(
        &self,
        table: Table,
    ) -> Result<Vec<(Vec<u8>, M)>, StoreError> {
        self.scan(table)?
            .into_iter()
            .map(|(key, value)| decode(table, &key, &value).map(|m| (key, m)))
            .collect()
    }

    /// Removes the record at (`table`, `key`), durably.
    pub fn delete(&self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree(table.name())?.remove(key)?;
        self.sync()
    }

    fn open(
        &self,
        table: Table,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.sealer
            .open(table.name(), key, sealed)
            .map_err(|_| StoreError::Damaged {
                table: table.name(),
                key: hex::encode(key),
            })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.db_file.sync_all()?;
        Ok(())
    }
}

/// Decodes a stored message; one that does not decode is named as damaged.
fn decode<M: prost::Message + Default>(
    table: Table,
    key: &[u8],
    value: &[u8],
) -> Result<M, StoreError> {
    M::decode(value).map_err(|_| StoreError::Damaged {
        table: table.name(),
        key: hex::encode(key),
    })
}

/// Erases the store in `dir`: the sealed storage key first (overwritten, synced, deleted), so
/// every record is unreadable from that moment, then the database. Returns whether a key was
/// erased.
pub fn wipe(dir: &Path) -> Result<bool, StoreError> {
    let key = dir.join(STORAGE_KEY_FILE);
    let erased = match std::fs::metadata(&key) {
        Ok(meta) => {
            let mut noise = vec![0u8; usize::try_from(meta.len()).unwrap_or(0).max(128)];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut noise)
                .map_err(|_| StoreError::Io("the random number generator failed".into()))?;
            write_owner_only(&key, &noise)?;
            std::fs::remove_file(&key)?;
            true
        }
        Err(_) => false,
    };
    let store = dir.join(STORE_DIR);
    if store.exists() {
        std::fs::remove_dir_all(&store)?;
    }
    Ok(erased)
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
