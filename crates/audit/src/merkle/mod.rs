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

    proptest! {
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
