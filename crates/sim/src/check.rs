//! The invariants a run must keep, recorded as the run goes and checked when it has settled.

use std::collections::{BTreeMap, BTreeSet};

use valise_relay_core::queue::QueueKey;

/// A tree of a log: its size and root.
pub type Tree = (u64, [u8; 32]);

/// What the checker saw, and what went wrong.
#[derive(Debug, Default)]
pub struct Checker {
    /// Every broken invariant, in words.
    pub violations: Vec<String>,
    /// FLASH entries queued for a device at a node and not yet sent, with how many entries of
    /// lower precedence were first sent to that device meanwhile.
    flash_waiting: BTreeMap<(usize, usize, QueueKey), usize>,
    /// Entries sent at least once, per node and device.
    first_sent: BTreeSet<(usize, usize, QueueKey)>,
    /// Checkpoints each node signed: (size, root, the history they belong to).
    pub signed: BTreeMap<usize, Vec<(u64, [u8; 32], u32)>>,
    /// Each node's history: bumped when its log is put back to an older copy.
    pub history: BTreeMap<usize, u32>,
    /// Checkpoints each witness cosigned, per origin node, in order.
    pub cosigned: BTreeMap<(usize, usize), Vec<Tree>>,
    /// Checkpoints a witness refused (a fork or a rollback it caught).
    pub refused_checkpoints: usize,
}

impl Checker {
    /// Records a broken invariant.
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// A FLASH entry joined `device`'s queue at `node`.
    pub fn flash_queued(&mut self, node: usize, device: usize, key: QueueKey) {
        self.flash_waiting.insert((node, device, key), 0);
    }

    /// `node` sent entry `key` to `device`; a FLASH must not have waited behind any cable of
    /// lower precedence sent to that device for the first time after it was queued.
    pub fn delivery_sent(&mut self, node: usize, device: usize, key: QueueKey) {
        if !self.first_sent.insert((node, device, key)) {
            return;
        }
        if key.rank == 0 {
            if let Some(behind) = self.flash_waiting.remove(&(node, device, key))
                && behind > 0
            {
                self.violation(format!(
                    "node {node} sent {behind} cables of lower precedence to device {device} \
                     while a FLASH waited for it"
                ));
            }
            return;
        }
        for ((n, d, _), behind) in self.flash_waiting.iter_mut() {
            if *n == node && *d == device {
                *behind += 1;
            }
        }
    }

    /// `node` signed a checkpoint of `size` with `root`, in its current history.
    pub fn signed(&mut self, node: usize, size: u64, root: [u8; 32]) {
        let history = self.history.get(&node).copied().unwrap_or(0);
        self.signed
            .entry(node)
            .or_default()
            .push((size, root, history));
    }

    /// Checks what the witnesses cosigned: per origin, sizes never go back, one size has one
    /// root, and every tree a witness cosigned belongs to one history of the log (a witness
    /// that cosigned before a rewrite cosigns nothing that only the rewritten log signed).
    pub fn check_cosigned(&mut self) {
        let mut found = Vec::new();
        for ((witness, origin), seen) in &self.cosigned {
            let signed = self.signed.get(origin).map(Vec::as_slice).unwrap_or(&[]);
            let mut common: Option<BTreeSet<u32>> = None;
            for (size, root) in seen {
                let histories: BTreeSet<u32> = signed
                    .iter()
                    .filter(|(s, r, _)| s == size && r == root)
                    .map(|(_, _, h)| *h)
                    .collect();
                if histories.is_empty() {
                    found.push(format!(
                        "witness {witness} cosigned size {size} of node {origin}, which it never signed"
                    ));
                }
                common = Some(match common {
                    None => histories,
                    Some(c) => c.intersection(&histories).copied().collect(),
                });
            }
            if common.is_some_and(|c| c.is_empty()) {
                found.push(format!(
                    "witness {witness} cosigned trees of two histories of node {origin}"
                ));
            }
            let mut by_size: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
            let mut largest = 0;
            for (size, root) in seen {
                if *size < largest {
                    found.push(format!(
                        "witness {witness} cosigned size {size} of node {origin} after {largest}"
                    ));
                }
                largest = largest.max(*size);
                if let Some(other) = by_size.insert(*size, *root)
                    && other != *root
                {
                    found.push(format!(
                        "witness {witness} cosigned two trees of size {size} of node {origin}"
                    ));
                }
            }
        }
        for f in found {
            self.violation(f);
        }
    }
}
