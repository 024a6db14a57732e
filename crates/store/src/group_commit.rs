//! Group commit over any [`Store`]: many writers share one sync, and each learns of its
//! commit only once a sync that covers its writes has returned.
//!
//! A writer either blocks ([`GroupCommit::commit`]) or hands over a completion that the
//! committer calls ([`GroupCommit::commit_then`]): an async shell wraps the latter in its own
//! one-shot channel, so no thread waits and this crate needs no runtime.

use std::time::Duration;

use crate::{Store, StoreError, Write};

/// What the committer calls once a commit is durable, or failed.
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Which commits go first. Urgent commits (a FLASH or IMMEDIATE cable's custody) are
/// committed in a group of their own ahead of every bulk commit waiting, so they wait for at
/// most the one group already being written, never behind a queue of bulk ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Ahead of bulk commits.
    Urgent,
    /// Everything else.
    Bulk,
}

/// One caller's writes, its lane, and what to call with the outcome.
type CommitRequest = (Vec<Write>, Lane, Completion);

/// Most writes one bulk group applies: bounds how long an urgent commit that arrives during
/// a group waits for it (an apply and a sync of this many writes).
const MAX_BULK_WRITES: usize = 256;

/// How often a degraded store tries to sync again on its own.
const RECOVERY_EVERY: Duration = Duration::from_secs(1);

/// Group commit over any [`Store`]: each caller's writes are applied atomically and made
/// durable before `commit` returns, and every caller waiting when a sync starts shares it.
///
/// A failed apply or sync leaves the store *degraded*: writes of the failed group may be
/// visible to readers without being durable. Until a sync succeeds again, every commit fails
/// at once with [`StoreError::Unavailable`] and applies nothing; the committer retries the sync
/// every second by itself, so the store recovers when the disk does. An empty commit is
/// therefore a durability barrier: it returns `Ok` only once everything visible before it is
/// durable.
pub struct GroupCommit {
    requests: Option<std::sync::mpsc::Sender<CommitRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
    degraded: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl GroupCommit {
    /// Starts the committer thread for `store`.
    pub fn start<S: Store + ?Sized>(store: std::sync::Arc<S>) -> Result<Self, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel::<CommitRequest>();
        let degraded = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let state = std::sync::Arc::clone(&degraded);
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || commit_loop(&*store, &rx, &state))
            .map_err(|e| StoreError::Io(format!("cannot start the group-commit thread: {e}")))?;
        Ok(GroupCommit {
            requests: Some(tx),
            thread: Some(thread),
            degraded,
        })
    }

    /// Applies `writes` atomically and returns once they are durable.
    pub fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.commit_then(
            writes,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv().map_err(|_| closed())?
    }

    /// Applies `writes` atomically and calls `done` once they are durable (or failed), on the
    /// committer's thread: `done` must be quick and must not block. It is called exactly once,
    /// at once if the store is closed.
    pub fn commit_then(&self, writes: Vec<Write>, done: Completion) {
        self.commit_in(Lane::Bulk, writes, done);
    }

    /// As [`Self::commit_then`], in `lane`.
    pub fn commit_in(&self, lane: Lane, writes: Vec<Write>, done: Completion) {
        let Some(requests) = &self.requests else {
            return done(Err(closed()));
        };
        if let Err(std::sync::mpsc::SendError((_, _, done))) = requests.send((writes, lane, done)) {
            done(Err(closed()));
        }
    }

    /// Why the store is degraded (it cannot make writes durable), or `None` when it is well.
    pub fn degraded(&self) -> Option<String> {
        self.degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn closed() -> StoreError {
    StoreError::Io("the store is closed".into())
}

fn commit_loop<S: Store + ?Sized>(
    store: &S,
    rx: &std::sync::mpsc::Receiver<CommitRequest>,
    state: &std::sync::Mutex<Option<String>>,
) {
    let set = |value: Option<String>| {
        *state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    };
    let mut degraded: Option<String> = None;
    // Bulk commits taken from the channel and not yet committed, oldest first.
    let mut waiting: std::collections::VecDeque<CommitRequest> = Default::default();
    loop {
        let first = if !waiting.is_empty() {
            rx.try_recv().ok()
        } else if degraded.is_some() {
            match rx.recv_timeout(RECOVERY_EVERY) {
                Ok(request) => Some(request),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(request) => Some(request),
                Err(_) => return,
            }
        };
        if degraded.is_some() {
            // Whatever a failed group left visible becomes durable with this sync, or not.
            match store.sync() {
                Ok(()) => {
                    degraded = None;
                    set(None);
                }
                Err(e) => {
                    degraded = Some(e.to_string());
                    set(degraded.clone());
                }
            }
        }
        let mut urgent = Vec::new();
        for request in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match request.1 {
                Lane::Urgent => urgent.push(request),
                Lane::Bulk => waiting.push_back(request),
            }
        }
        let group = if urgent.is_empty() {
            let mut group = Vec::new();
            let mut writes = 0;
            while let Some(request) = waiting.pop_front() {
                writes += request.0.len();
                group.push(request);
                if writes >= MAX_BULK_WRITES {
                    break;
                }
            }
            group
        } else {
            urgent
        };
        if group.is_empty() {
            continue;
        }
        if let Some(why) = &degraded {
            for (_, _, done) in group.into_iter().chain(waiting.drain(..)) {
                done(Err(StoreError::Unavailable(why.clone())));
            }
            continue;
        }
        commit_group(store, group, &mut degraded, &set);
    }
}

/// Applies one group's writes as one batch, syncs once, and tells each caller.
fn commit_group<S: Store + ?Sized>(
    store: &S,
    mut group: Vec<CommitRequest>,
    degraded: &mut Option<String>,
    set: &impl Fn(Option<String>),
) {
    let writes: Vec<Write> = group
        .iter_mut()
        .flat_map(|(w, _, _)| std::mem::take(w))
        .collect();
    let result = if writes.is_empty() {
        store.sync()
    } else {
        store.apply(writes).and_then(|()| store.sync())
    };
    let result = result.map_err(|e| {
        let why = e.to_string();
        *degraded = Some(why.clone());
        set(Some(why.clone()));
        StoreError::Unavailable(why)
    });
    for (_, _, done) in group {
        done(match &result {
            Ok(()) => Ok(()),
            Err(StoreError::Unavailable(why)) => Err(StoreError::Unavailable(why.clone())),
            Err(e) => Err(StoreError::Io(e.to_string())),
        });
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
