//! Directory addresses: `alice@paris` is the user `alice` at `paris` (all her unrevoked
//! devices); `POL@paris` is the office mailbox `POL` at `paris` (the devices of its members); a
//! bare `paris` is that post's front office, the office [`FRONT_OFFICE`].

/// The office a bare post address reaches.
pub const FRONT_OFFICE: &str = "FRONT";

/// Why an address does not resolve to any device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The address is not of the form `user@post`, `OFFICE@post` or `post`.
    #[error("{0:?} is not an address; write user@post, OFFICE@post or a bare post name")]
    Malformed(String),
    /// The address names a post the directory has no certified enrolment key for.
    #[error(
        "{address}: no post {post:?} in the directory; check the post's name, or sync the directory"
    )]
    UnknownPost {
        /// The address as given.
        address: String,
        /// Its post.
        post: String,
    },
    /// No enrolled, unrevoked device answers to the address.
    #[error("no enrolled, unrevoked device answers to {0}; check the name, or sync the directory")]
    Unknown(String),
}

/// An address split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address<'a> {
    /// The user's name, or the office's (e.g. `POL`, or [`FRONT_OFFICE`] for a bare post).
    pub name: &'a str,
    /// The post.
    pub post: &'a str,
    /// Whether the address is an office mailbox rather than a person: its name is upper-case
    /// letters, digits and hyphens.
    pub office: bool,
}

impl<'a> Address<'a> {
    /// Splits an address: `alice@paris`, `POL@paris`, or a bare post `paris`.
    pub fn parse(address: &'a str) -> Result<Self, ResolveError> {
        let (name, post) = match address.split_once('@') {
            Some((name, post)) if !name.is_empty() && !post.is_empty() => (name, post),
            Some(_) => return Err(ResolveError::Malformed(address.to_owned())),
            None if !address.is_empty() => (FRONT_OFFICE, address),
            None => return Err(ResolveError::Malformed(address.to_owned())),
        };
        let office = name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        Ok(Address { name, post, office })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn people_offices_and_bare_posts() {
        let alice = Address::parse("alice@paris").unwrap();
        assert_eq!(
            (alice.name, alice.post, alice.office),
            ("alice", "paris", false)
        );
        let pol = Address::parse("POL@paris").unwrap();
        assert_eq!((pol.name, pol.post, pol.office), ("POL", "paris", true));
        let front = Address::parse("paris").unwrap();
        assert_eq!(
            (front.name, front.post, front.office),
            (FRONT_OFFICE, "paris", true)
        );
    }

    #[test]
    fn empty_parts_are_malformed() {
        for bad in ["", "@paris", "alice@", "@"] {
            assert_eq!(
                Address::parse(bad),
                Err(ResolveError::Malformed(bad.to_owned()))
            );
        }
    }
}
