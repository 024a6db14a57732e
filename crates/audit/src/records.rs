//! How the audit log lays out its records in a [`Store`](valise_store::Store).
//!
//! Keys (one keyspace, so one atomic batch covers an append group):
//!
//! | key | value |
//! |---|---|
//! | `e` ‖ index (u64 BE) | entry record: the tree hashes this entry completed, then its bytes |
//! | `c` ‖ size (u64 BE) | checkpoint note (log signature, then cosignatures) |
//! | `m` ‖ name | metadata: `size`, `origin` |
//!
//! Leaf `j` completes the perfect subtrees whose last leaf it is: its own leaf hash (level 0)
//! and one more per trailing one bit of `j`. Storing them in the entry's own record means an
//! append writes one key, yet any stored subtree hash is still one read away: the subtree at
//! (level, index) is completed by leaf `((index + 1) << level) - 1`.

/// Key of entry `index`.
pub(crate) fn entry_key(index: u64) -> Vec<u8> {
    [&b"e"[..], &index.to_be_bytes()].concat()
}

/// An entry record: `count (u8) ‖ count × 32-byte hashes (level 0 first) ‖ entry bytes`.
pub(crate) fn encode_record(hashes: &[crate::merkle::Hash], entry: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + hashes.len() * 32 + entry.len());
    // A leaf completes at most 64 levels, so the count fits a byte.
    out.push(hashes.len() as u8);
    for h in hashes {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(entry);
    out
}

/// Splits an entry record into its hashes and entry bytes.
pub(crate) fn decode_record(record: &[u8]) -> Option<(Vec<crate::merkle::Hash>, &[u8])> {
    let (&count, rest) = record.split_first()?;
    let (hashes, entry) = rest.split_at_checked(usize::from(count) * 32)?;
    let hashes = hashes
        .chunks_exact(32)
        .map(|h| h.try_into().ok())
        .collect::<Option<Vec<_>>>()?;
    (!hashes.is_empty()).then_some((hashes, entry))
}

/// The leaf whose record holds the perfect subtree at (`level`, `index`).
pub(crate) fn completing_leaf(level: u8, index: u64) -> Option<u64> {
    index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(u32::from(level))?)?
        .checked_sub(1)
}

/// Key of the checkpoint of `size`.
pub(crate) fn checkpoint_key(size: u64) -> Vec<u8> {
    [&b"c"[..], &size.to_be_bytes()].concat()
}

/// Key of a metadata value.
pub(crate) fn meta_key(name: &str) -> Vec<u8> {
    [&b"m"[..], name.as_bytes()].concat()
}

/// Reads a big-endian u64 key suffix.
pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}
