//! The store on disk, whichever engine holds it: fjall for every store made now, sled for a
//! store an earlier version made (it is opened as it is, never converted behind the
//! operator's back).

use std::path::Path;

use crate::fjall_engine::{FjallStore, is_fjall};
use crate::sled_engine::{SledStore, is_sled};
use crate::{Scan, Store, StoreError, Write};

/// A store in a folder of its own.
pub enum DiskStore {
    /// Made by this version: fjall.
    Fjall(FjallStore),
    /// Made by an earlier version: sled 0.34.7.
    Sled(SledStore),
}

impl DiskStore {
    /// Opens the store in `dir`, creating a fjall store if there is none.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // A folder that holds a fjall store is one, whatever else was put beside it.
        if is_sled(dir) && !is_fjall(dir) {
            return SledStore::open(dir).map(DiskStore::Sled);
        }
        FjallStore::open(dir).map(DiskStore::Fjall)
    }

    /// Whether `dir` holds a store of either engine (opening a folder without one creates a
    /// store; a reader that must not do that asks first).
    pub fn exists(dir: &Path) -> bool {
        is_sled(dir) || is_fjall(dir)
    }

    /// The engine's name, for the operator.
    pub fn engine(&self) -> &'static str {
        match self {
            DiskStore::Fjall(_) => "fjall",
            DiskStore::Sled(_) => "sled",
        }
    }

    fn inner(&self) -> &dyn Store {
        match self {
            DiskStore::Fjall(store) => store,
            DiskStore::Sled(store) => store,
        }
    }
}

impl Store for DiskStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner().get(key)
    }
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner().apply(writes)
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.inner().sync()
    }
    fn scan(&self, prefix: &[u8]) -> Scan<'_> {
        self.inner().scan(prefix)
    }
    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Scan<'_> {
        self.inner().scan_from(prefix, start)
    }
}
