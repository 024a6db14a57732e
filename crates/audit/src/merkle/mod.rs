//! RFC 9162 §2.1 Merkle trees: hashing, proofs and their verification. No I/O: generation reads
//! stored subtree hashes through [`NodeReader`].

mod compact;
mod prove;
mod verify;

use ring::digest::{Context, SHA256};

pub use compact::CompactRange;
pub use prove::{NodeReader, consistency_proof, inclusion_proof, root, subtree_hash};
pub use verify::{ProofError, verify_consistency, verify_inclusion};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Hash of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    digest(&[])
}

/// Leaf hash: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    digest(&[&[0x00], entry])
}

/// Interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    digest(&[&[0x01], left, right])
}

fn digest(parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}
