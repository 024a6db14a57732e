//! A compact range: the hashes of the perfect subtrees that make up a tree, at most 64 of
//! them. It appends leaves and yields the root at any moment with O(log n) memory, which is
//! what lets a verifier stream a whole log.

use super::{Hash, empty_root, node_hash};

/// The right edge of a growing tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// (level, hash) of each perfect subtree, largest first.
    stack: Vec<(u8, Hash)>,
}

impl CompactRange {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the range of a tree of `size` leaves from its perfect subtrees, largest first,
    /// as [`perfect_subtrees`](Self::perfect_subtrees) lists them.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        let levels: Vec<u8> = Self::perfect_subtrees(size)
            .map(|(level, _)| level)
            .collect();
        if levels.len() != hashes.len() {
            return None;
        }
        Some(CompactRange {
            size,
            stack: levels.into_iter().zip(hashes).collect(),
        })
    }

    /// The (level, index) of the perfect subtrees that make up a tree of `size`, largest first.
    pub fn perfect_subtrees(size: u64) -> impl Iterator<Item = (u8, u64)> {
        (0..64u8)
            .rev()
            .filter(move |l| size >> l & 1 == 1)
            .map(move |l| {
                let start = (size >> (l + 1)) << (l + 1);
                (l, start >> l)
            })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. Returns the perfect subtrees completed by it, including the leaf
    /// itself, as (level, index, hash), for a store to keep.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let mut completed = vec![(0, self.size, leaf)];
        let mut node = (0u8, leaf);
        while let Some(&(level, left)) = self.stack.last() {
            if level != node.0 {
                break;
            }
            self.stack.pop();
            node = (level + 1, node_hash(&left, &node.1));
            completed.push((node.0, self.size >> node.0, node.1));
        }
        self.stack.push(node);
        self.size += 1;
        completed
    }

    /// The root hash of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}
