//! A store in memory that keeps only what was synced when its node crashes, and can be put
//! back to an older copy (a data folder restored from backup).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use valise_store::{KeyValue, Scan, Store, StoreError, Write};

/// A store's content, key to value.
pub type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct State {
    /// What reads see.
    live: Map,
    /// What survives a crash.
    durable: Map,
}

/// An in-memory [`Store`], shared by a node across its restarts.
#[derive(Debug, Clone, Default)]
pub struct MemStore(Arc<Mutex<State>>);

impl MemStore {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The node crashed: what was not synced is gone.
    pub fn crash(&self) {
        let mut state = self.state();
        state.live = state.durable.clone();
    }

    /// A copy of what is durable now.
    pub fn snapshot(&self) -> Map {
        self.state().durable.clone()
    }

    /// Replaces everything with an older copy.
    pub fn restore(&self, copy: Map) {
        let mut state = self.state();
        state.live = copy.clone();
        state.durable = copy;
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().live.get(key).cloned())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut state = self.state();
        for write in writes {
            match write {
                Write::Put(k, v) => {
                    state.live.insert(k, v);
                }
                Write::Delete(k) => {
                    state.live.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        state.durable = state.live.clone();
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Scan<'_> {
        let found: Vec<Result<KeyValue, StoreError>> = self
            .state()
            .live
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(found.into_iter())
    }
}
