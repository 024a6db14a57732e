//! RFC 9162 §2.1 Merkle trees: hashing, proofs and their verification. No I/O: generation reads
//! stored subtree hashes through [`NodeReader`].

use valise_crypto::sha256_parts;

mod compact;
mod prove;
mod verify;

pub use compact::CompactRange;
pub use prove::{NodeReader, consistency_proof, inclusion_proof, root, subtree_hash};
pub use verify::{ProofError, verify_consistency, verify_inclusion};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Hash of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    sha256_parts(&[])
}

/// Leaf hash: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256_parts(&[&[0x00], entry])
}

/// Interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_parts(&[&[0x01], left, right])
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::convert::Infallible;

    use proptest::prelude::*;

    use super::*;

    /// Perfect-subtree hashes in memory, as a log stores them.
    struct Nodes(HashMap<(u8, u64), Hash>);

    impl NodeReader for Nodes {
        type Error = Infallible;
        fn perfect(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
            Ok(self.0[&(level, index)])
        }
    }

    fn build(size: u64) -> (Vec<Hash>, Nodes, Vec<Hash>) {
        let mut range = CompactRange::new();
        let mut nodes = HashMap::new();
        let mut leaves = Vec::new();
        let mut roots = vec![range.root()];
        for i in 0..size {
            let leaf = leaf_hash(&i.to_be_bytes());
            leaves.push(leaf);
            for (level, index, hash) in range.push(leaf) {
                nodes.insert((level, index), hash);
            }
            roots.push(range.root());
        }
        (leaves, Nodes(nodes), roots)
    }

    /// RFC 9162 MTH, straight from its recursive definition.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    /// A reader that serves arbitrary hashes and counts reads. It stands for a store of a tree
    /// of `size` leaves, and fails the test if asked for a subtree that tree has not completed.
    struct Counting {
        size: u64,
        reads: std::cell::Cell<u64>,
    }

    impl Counting {
        fn new(size: u64) -> Self {
            Counting {
                size,
                reads: std::cell::Cell::new(0),
            }
        }

        fn take(&self) -> u64 {
            self.reads.replace(0)
        }
    }

    impl NodeReader for Counting {
        type Error = Infallible;
        fn perfect(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
            let end = (u128::from(index) + 1) << level;
            assert!(
                end <= u128::from(self.size),
                "read subtree ({level}, {index}), outside a tree of {}",
                self.size
            );
            self.reads.set(self.reads.get() + 1);
            Ok(leaf_hash(&[&[level][..], &index.to_be_bytes()].concat()))
        }
    }

    /// The number of bits in `n`: the height of a tree of `n` leaves, plus one.
    fn bits(n: u64) -> u64 {
        u64::from(64 - n.leading_zeros())
    }

    #[test]
    fn small_trees_take_logarithmic_reads_too() {
        for size in 1..=130u64 {
            let reader = Counting::new(size);
            root(&reader, size).unwrap();
            assert_eq!(
                reader.take(),
                u64::from(size.count_ones()),
                "root of {size}"
            );
            for i in 0..size {
                inclusion_proof(&reader, i, size).unwrap();
                let reads = reader.take();
                assert!(reads <= 2 * bits(size), "inclusion {i} in {size}: {reads}");
                consistency_proof(&reader, i + 1, size).unwrap();
                let reads = reader.take();
                assert!(
                    reads <= 3 * bits(size),
                    "consistency {} to {size}: {reads}",
                    i + 1
                );
            }
        }
    }

    proptest! {
        #[test]
        fn roots_and_proofs_for_any_earlier_size_take_logarithmic_reads(
            size in 1u64..(1 << 62),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            // Sizes of up to 2^62 leaves: a full recompute would never finish, and every read
            // must be a subtree the tree of that size has completed (stored, never rewritten).
            let index = (a.index(usize::MAX) as u64) % size;
            let old = 1 + (b.index(usize::MAX) as u64) % size;
            let reader = Counting::new(size);
            root(&reader, size).unwrap();
            prop_assert_eq!(reader.take(), u64::from(size.count_ones()), "one read per perfect subtree");
            inclusion_proof(&reader, index, size).unwrap();
            let reads = reader.take();
            prop_assert!(reads <= 2 * bits(size), "inclusion {index} in {size}: {reads} reads");
            consistency_proof(&reader, old, size).unwrap();
            let reads = reader.take();
            prop_assert!(reads <= 3 * bits(size), "consistency {old} to {size}: {reads} reads");
        }

        #[test]
        fn stored_roots_match_the_rfc_definition(size in 0u64..300) {
            let (leaves, nodes, roots) = build(size);
            for s in 0..=size {
                prop_assert_eq!(roots[s as usize], naive_root(&leaves[..s as usize]));
                prop_assert_eq!(root(&nodes, s).unwrap(), roots[s as usize]);
            }
        }

        #[test]
        fn generated_inclusion_proofs_verify(size in 1u64..300, pick in any::<prop::sample::Index>()) {
            let (leaves, nodes, roots) = build(size);
            let index = pick.index(size as usize) as u64;
            let proof = inclusion_proof(&nodes, index, size).unwrap();
            verify_inclusion(index, size, &leaves[index as usize], &proof, &roots[size as usize]).unwrap();
            let other = (index + 1) % size;
            if other != index {
                prop_assert!(verify_inclusion(other, size, &leaves[index as usize], &proof, &roots[size as usize]).is_err());
            }
        }

        #[test]
        fn generated_consistency_proofs_verify(new in 1u64..300, pick in any::<prop::sample::Index>()) {
            let (_, nodes, roots) = build(new);
            let old = 1 + pick.index(new as usize) as u64;
            let proof = consistency_proof(&nodes, old, new).unwrap();
            verify_consistency(old, new, &proof, &roots[old as usize], &roots[new as usize]).unwrap();
            if old < new {
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                prop_assert!(verify_consistency(old, new, &bad, &roots[old as usize], &roots[new as usize]).is_err());
            }
        }
    }
}
