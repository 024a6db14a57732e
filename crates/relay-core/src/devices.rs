//! What an enrolled device may change about itself, decided without I/O: publishing new
//! receive keys after a rotation (its record, re-signed by the post), and asking to be revoked
//! when its user wipes it.

use valise_crypto::directory::VerifiedDevice;
use valise_crypto::receive_key::{ReceiveKeyError, VerifiedReceiveKey};
use valise_proto::v1::{DeviceRecord, ReceiveKey};

use crate::reason::Reason;

/// Most receive keys a device may publish at once: the current one and a few still being
/// phased out are plenty, and the record every client syncs stays small.
pub const MAX_RECEIVE_KEYS: usize = 8;
/// Longest wipe reason kept, in characters: it is signed into the directory every client syncs.
pub const MAX_WIPE_REASON_CHARS: usize = 100;

/// Why published receive keys were refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The device belongs to another post, whose enrolment key alone may sign its record.
    #[error(
        "this device is enrolled at {device_post}, not at {here}; publish its keys through \
         {device_post}'s node"
    )]
    OtherPost {
        /// The device's post.
        device_post: String,
        /// This node's post.
        here: String,
    },
    /// No key: senders could no longer reach the device.
    #[error("no receive key was published; publish at least one")]
    NoKeys,
    /// Too many keys.
    #[error("{count} receive keys were published; publish at most {max}")]
    TooMany {
        /// How many came.
        count: usize,
        /// The most accepted.
        max: usize,
    },
    /// A key is not this device's, or is malformed.
    #[error("receive key {index} does not verify against this device's identity key: {reason}")]
    BadKey {
        /// Its position in the request, from 0.
        index: usize,
        /// Why.
        reason: ReceiveKeyError,
    },
    /// Every key has expired: senders could no longer reach the device.
    #[error("every published receive key has expired; publish a key valid from now on")]
    AllExpired,
}

impl PublishError {
    /// A short reason for the audit log.
    pub fn audit_reason(&self) -> Reason {
        match self {
            PublishError::OtherPost { .. } => Reason::OtherPost,
            PublishError::NoKeys => Reason::NoKeys,
            PublishError::TooMany { .. } => Reason::TooManyKeys,
            PublishError::BadKey { .. } => Reason::BadKey,
            PublishError::AllExpired => Reason::ExpiredKeys,
        }
    }
}

/// The record of `device` with `keys` in place of its receive keys, unsigned: everything else
/// stays as the post enrolled it. `here` is this node's post, `now_ms` the time.
pub fn with_receive_keys(
    device: &VerifiedDevice,
    keys: Vec<ReceiveKey>,
    here: &str,
    now_ms: u64,
) -> Result<DeviceRecord, PublishError> {
    if device.post != here {
        return Err(PublishError::OtherPost {
            device_post: device.post.clone(),
            here: here.to_owned(),
        });
    }
    if keys.is_empty() {
        return Err(PublishError::NoKeys);
    }
    if keys.len() > MAX_RECEIVE_KEYS {
        return Err(PublishError::TooMany {
            count: keys.len(),
            max: MAX_RECEIVE_KEYS,
        });
    }
    let mut current = false;
    for (index, key) in keys.iter().enumerate() {
        // Checks the signature by the device's identity key, and that it names this device.
        let verified = VerifiedReceiveKey::verify(key, &device.identity)
            .map_err(|reason| PublishError::BadKey { index, reason })?;
        current |= key.valid_until_ms > now_ms && verified.device_id() == device.id;
    }
    if !current {
        return Err(PublishError::AllExpired);
    }
    Ok(DeviceRecord {
        device_id: device.id.as_bytes().to_vec(),
        user: device.user.clone(),
        post: device.post.clone(),
        display_name: device.display_name.clone(),
        offices: device.offices.clone(),
        clearance: device.clearance as i32,
        identity_key: device.identity.as_bytes().to_vec(),
        receive_keys: keys,
        enrolled_at_ms: device.enrolled_at_ms,
        signature: Vec::new(),
        foreign_national: device.foreign_national,
    })
}

/// The revocation reason for a device wiped by its user: `given` on one line, without
/// control characters, and short.
pub fn wipe_reason(given: &str) -> String {
    let clean: String = given
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean: String = clean
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_WIPE_REASON_CHARS)
        .collect();
    match clean.trim_end() {
        "" => "wiped by its user".to_owned(),
        reason => format!("wiped by its user: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use valise_crypto::identity::IdentityKeyPair;
    use valise_crypto::receive_key::ReceiveKeyPair;
    use valise_proto::v1::Classification;

    fn device(identity: &IdentityKeyPair) -> VerifiedDevice {
        VerifiedDevice {
            id: identity.device_id(),
            user: "alice".into(),
            post: "paris".into(),
            display_name: "Alice Martin".into(),
            offices: vec!["POL".into()],
            clearance: Classification::Secret,
            identity: *identity.public(),
            receive_keys: Vec::new(),
            enrolled_at_ms: 7,
            foreign_national: false,
        }
    }

    fn key(identity: &IdentityKeyPair, until: u64) -> ReceiveKey {
        ReceiveKeyPair::generate(0, until)
            .unwrap()
            .to_signed_record(identity)
            .unwrap()
    }

    #[test]
    fn new_keys_replace_the_old_and_nothing_else_changes() {
        let identity = IdentityKeyPair::generate().unwrap();
        let keys = vec![key(&identity, 100), key(&identity, u64::MAX)];
        let record = with_receive_keys(&device(&identity), keys.clone(), "paris", 50).unwrap();
        assert_eq!(record.receive_keys, keys);
        assert_eq!(
            (
                record.user.as_str(),
                record.post.as_str(),
                record.offices.len()
            ),
            ("alice", "paris", 1)
        );
        assert_eq!(record.enrolled_at_ms, 7);
        assert_eq!(record.clearance, Classification::Secret as i32);
        assert_eq!(record.identity_key, identity.public().as_bytes());
    }

    #[test]
    fn keys_that_cannot_serve_the_device_are_refused() {
        let identity = IdentityKeyPair::generate().unwrap();
        let other = IdentityKeyPair::generate().unwrap();
        let me = device(&identity);
        let refuse = |keys, here, now| with_receive_keys(&me, keys, here, now).unwrap_err();
        assert_eq!(refuse(vec![], "paris", 0), PublishError::NoKeys);
        assert!(matches!(
            refuse(vec![key(&other, u64::MAX)], "paris", 0),
            PublishError::BadKey { index: 0, .. }
        ));
        let mut altered = key(&identity, u64::MAX);
        altered.valid_until_ms -= 1;
        assert!(matches!(
            refuse(vec![key(&identity, u64::MAX), altered], "paris", 0),
            PublishError::BadKey { index: 1, .. }
        ));
        assert_eq!(
            refuse(vec![key(&identity, 10)], "paris", 10),
            PublishError::AllExpired
        );
        let many = (0..=MAX_RECEIVE_KEYS)
            .map(|_| key(&identity, u64::MAX))
            .collect();
        assert!(matches!(
            refuse(many, "paris", 0),
            PublishError::TooMany { count: 9, max: 8 }
        ));
        let message = refuse(vec![key(&identity, u64::MAX)], "rome", 0).to_string();
        assert!(message.contains("enrolled at paris"), "{message}");
    }

    #[test]
    fn a_wipe_reason_is_one_short_line() {
        assert_eq!(wipe_reason(""), "wiped by its user");
        assert_eq!(wipe_reason(" \n\t"), "wiped by its user");
        assert_eq!(
            wipe_reason("emergency\n\x1b[31m evacuation "),
            "wiped by its user: emergency [31m evacuation"
        );
        let long = wipe_reason(&"é".repeat(500));
        assert_eq!(
            long.chars().count(),
            "wiped by its user: ".len() + MAX_WIPE_REASON_CHARS
        );
    }
}
