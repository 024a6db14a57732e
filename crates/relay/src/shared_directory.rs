//! The node's directory behind its lock, with a signal for those waiting on a change: a
//! neighbour's held directory pull answers as soon as an update lands, instead of polling.

use std::ops::{Deref, DerefMut};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::Notify;

use crate::directory::DurableDirectory;

/// The directory, shared by every connection and link of the node.
pub(crate) struct SharedDirectory {
    lock: RwLock<DurableDirectory>,
    changed: Notify,
}

impl SharedDirectory {
    pub(crate) fn new(directory: DurableDirectory) -> Self {
        SharedDirectory {
            lock: RwLock::new(directory),
            changed: Notify::new(),
        }
    }

    /// Reads the directory. A panic elsewhere while it was held leaves it as it was: each
    /// update is applied whole or not at all.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, DurableDirectory> {
        self.lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the directory; those waiting in [`Self::changed`] wake when the guard drops.
    pub(crate) fn write(&self) -> DirectoryWrite<'_> {
        DirectoryWrite {
            guard: self.lock.write().unwrap_or_else(PoisonError::into_inner),
            changed: &self.changed,
        }
    }

    /// Completes after the next write. Create it before reading the version it waits to see
    /// change: it counts writes from its creation, so one in between is not missed.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

/// A write to the directory in progress.
pub(crate) struct DirectoryWrite<'a> {
    guard: RwLockWriteGuard<'a, DurableDirectory>,
    changed: &'a Notify,
}

impl Deref for DirectoryWrite<'_> {
    type Target = DurableDirectory;
    fn deref(&self) -> &DurableDirectory {
        &self.guard
    }
}

impl DerefMut for DirectoryWrite<'_> {
    fn deref_mut(&mut self) -> &mut DurableDirectory {
        &mut self.guard
    }
}

impl Drop for DirectoryWrite<'_> {
    fn drop(&mut self) {
        // Runs before the guard field drops: a woken waiter may block for an instant on its
        // read lock until the write lock is released right after.
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use valise_crypto::identity::IdentityKeyPair;

    use super::*;

    fn ready(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        future.poll(&mut Context::from_waker(Waker::noop())) == Poll::Ready(())
    }

    #[test]
    fn a_waiter_wakes_on_a_write_made_after_it_was_created_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let root = IdentityKeyPair::from_seed(&[7; 32]).unwrap();
        let shared = SharedDirectory::new(
            DurableDirectory::open(dir.path(), "mfa.example", *root.public()).unwrap(),
        );

        // A write before the waiter exists does not count for it.
        drop(shared.write());
        let mut waiting = pin!(shared.changed());
        assert!(!ready(waiting.as_mut()), "nothing was written since");
        // Reads do not wake it; a write does, even though it has not been polled in between.
        drop(shared.read());
        assert!(!ready(waiting.as_mut()), "a read is not a change");
        drop(shared.write());
        assert!(ready(waiting.as_mut()), "the write woke the waiter");

        // A waiter created and never polled before the write still sees it.
        let unpolled = pin!(shared.changed());
        drop(shared.write());
        assert!(
            ready(unpolled),
            "created before the write, it was not missed"
        );
    }
}
