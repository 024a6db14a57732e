//! What a cable says of its attachments: their ids, and the list a cable carries.

use std::fmt;

/// Length of an attachment's id: the SHA-256 of its ciphertext.
pub const ATTACHMENT_ID_LEN: usize = 32;

/// An attachment's id: the SHA-256 of its ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachmentId([u8; ATTACHMENT_ID_LEN]);

impl AttachmentId {
    /// The id of `ciphertext`.
    pub fn of(ciphertext: &[u8]) -> Self {
        AttachmentId(valise_crypto::sha256(ciphertext))
    }

    /// The id in a frame's `ciphertext_sha256`, if it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(AttachmentId)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; ATTACHMENT_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for AttachmentId {
    /// The digest in lowercase hex, which is also the stored file's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Why a cable's list of attachments (`Submit.attachments`, `Forward.attachments`) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// More than a cable may carry.
    #[error(
        "the cable lists {0} attachments; a cable carries at most {max}",
        max = valise_proto::MAX_ATTACHMENTS_PER_CABLE
    )]
    TooMany(usize),
    /// An entry is not a SHA-256.
    #[error(
        "attachment {0} of the cable's list is not a 32-byte SHA-256 of an attachment ciphertext"
    )]
    NotADigest(usize),
}

/// The attachments a cable lists, each once, in the order given.
pub fn parse_list(raw: &[Vec<u8>]) -> Result<Vec<AttachmentId>, ListError> {
    if raw.len() > valise_proto::MAX_ATTACHMENTS_PER_CABLE {
        return Err(ListError::TooMany(raw.len()));
    }
    let mut ids: Vec<AttachmentId> = Vec::with_capacity(raw.len());
    for (i, bytes) in raw.iter().enumerate() {
        let id = AttachmentId::from_slice(bytes).ok_or(ListError::NotADigest(i + 1))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cable_list_is_digests_each_once_and_bounded() {
        let a = AttachmentId::of(b"a");
        let b = AttachmentId::of(b"b");
        let raw = vec![a.0.to_vec(), b.0.to_vec(), a.0.to_vec()];
        assert_eq!(parse_list(&raw).unwrap(), vec![a, b]);
        assert_eq!(parse_list(&[]).unwrap(), vec![]);
        let short = vec![a.0.to_vec(), vec![1u8; 31]];
        assert_eq!(parse_list(&short), Err(ListError::NotADigest(2)));
        let many = vec![a.0.to_vec(); valise_proto::MAX_ATTACHMENTS_PER_CABLE + 1];
        let refused = parse_list(&many).unwrap_err();
        assert_eq!(refused, ListError::TooMany(65));
        assert!(refused.to_string().contains("at most 64"), "{refused}");
        assert_eq!(a.to_string(), hex::encode(valise_crypto::sha256(b"a")));
    }
}
