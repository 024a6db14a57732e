//! Proof generation (RFC 9162 §2.1.3.1 and §2.1.4.1) over stored perfect-subtree hashes.
//!
//! A log stores, for every complete subtree, its hash at (level, index): the subtree of 2^level
//! leaves starting at leaf index × 2^level. Any root or proof then needs O(log n) reads.

use super::{Hash, node_hash, split_point};

/// Reads stored perfect-subtree hashes.
pub trait NodeReader {
    /// The reader's error.
    type Error;

    /// The hash of the complete subtree of 2^`level` leaves starting at leaf `index << level`.
    fn perfect(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// The hash of leaves `[start, start + len)`, where `start` is a multiple of the largest power of
/// two not above `len` (as in every range the RFC's recursion visits). `len` must be at least 1.
pub fn subtree_hash<R: NodeReader>(reader: &R, start: u64, len: u64) -> Result<Hash, R::Error> {
    if len.is_power_of_two() {
        return reader.perfect(len.trailing_zeros() as u8, start >> len.trailing_zeros());
    }
    let k = split_point(len);
    let left = reader.perfect(k.trailing_zeros() as u8, start >> k.trailing_zeros())?;
    let right = subtree_hash(reader, start + k, len - k)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the first `size` leaves.
pub fn root<R: NodeReader>(reader: &R, size: u64) -> Result<Hash, R::Error> {
    if size == 0 {
        return Ok(super::empty_root());
    }
    subtree_hash(reader, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` (`index < size`).
pub fn inclusion_proof<R: NodeReader>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, R::Error> {
    let mut proof = Vec::new();
    let (mut m, mut start, mut n) = (index, 0u64, size);
    // Walk down from the root, collecting siblings; the RFC lists them leaf first.
    while n > 1 {
        let k = split_point(n);
        if m < k {
            proof.push(subtree_hash(reader, start + k, n - k)?);
            n = k;
        } else {
            proof.push(reader.perfect(k.trailing_zeros() as u8, start >> k.trailing_zeros())?);
            m -= k;
            start += k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves
/// (`0 < old ≤ new`; empty when equal).
pub fn consistency_proof<R: NodeReader>(
    reader: &R,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, R::Error> {
    let mut proof = Vec::new();
    if old == 0 || old >= new {
        return Ok(proof);
    }
    let (mut m, mut start, mut n, mut whole) = (old, 0u64, new, true);
    while m != n {
        let k = split_point(n);
        if m <= k {
            proof.push(subtree_hash(reader, start + k, n - k)?);
            n = k;
        } else {
            proof.push(reader.perfect(k.trailing_zeros() as u8, start >> k.trailing_zeros())?);
            m -= k;
            start += k;
            n -= k;
            whole = false;
        }
    }
    if !whole {
        proof.push(subtree_hash(reader, start, n)?);
    }
    proof.reverse();
    Ok(proof)
}
