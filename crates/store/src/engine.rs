//! The storage trait every durable part of a node is written against: atomic batches, a
//! sync that reaches stable storage, reads and prefix scans. Tests put fault-injecting or
//! observing engines behind it; the simulation an in-memory one.

use crate::StoreError;

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One change in an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Sets a key.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a key (absent keys are fine).
    Delete(Vec<u8>),
}

impl From<KeyValue> for Write {
    fn from((key, value): KeyValue) -> Self {
        Write::Put(key, value)
    }
}

/// Keys and values in key order, as [`Store::scan`] yields them.
pub type Scan<'a> = Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + 'a>;

/// What the log needs from storage.
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies all writes atomically: after a crash, all or none are present.
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Makes every applied write durable (survives power loss) before returning.
    fn sync(&self) -> Result<(), StoreError>;
    /// All keys with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Scan<'_>;
    /// The keys with `prefix` from `start` on (`start` itself included), in key order: a page
    /// of a long range without reading what comes before it. Engines that can seek override
    /// this; the default reads the whole prefix.
    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Scan<'_> {
        let start = start.to_vec();
        Box::new(self.scan(prefix).filter(move |item| match item {
            Ok((k, _)) => *k >= start,
            Err(_) => true,
        }))
    }
}

/// A shared store is a store: one sled database can back several users (e.g. a witness and
/// the state beside it).
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        (**self).apply(writes)
    }
    fn sync(&self) -> Result<(), StoreError> {
        (**self).sync()
    }
    fn scan(&self, prefix: &[u8]) -> Scan<'_> {
        (**self).scan(prefix)
    }
    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Scan<'_> {
        (**self).scan_from(prefix, start)
    }
}
