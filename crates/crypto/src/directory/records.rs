//! The records of the trust chain, one at a time: enrolment certificates checked against the
//! root, device records and revocations signed and checked against their post's enrolment key.

use valise_proto::canonical::{self, CanonicalError};
use valise_proto::v1::{self, Classification};

use crate::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use crate::receive_key::{ReceiveKeyError, VerifiedReceiveKey};

/// Why a directory record is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// A field is missing or malformed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A signature does not verify.
    #[error("the {0} is not validly signed")]
    BadSignature(&'static str),
    /// The enrolment certificate is for another ministry.
    #[error("the enrolment certificate is for ministry {found:?}, not {expected:?}")]
    WrongMinistry {
        /// The pinned ministry.
        expected: String,
        /// The certificate's.
        found: String,
    },
    /// The enrolment certificate was not valid at the time that matters.
    #[error("the enrolment key of {post} was not valid at {at_ms} (valid {from_ms}..={until_ms})")]
    OutsideValidity {
        /// Its post.
        post: String,
        /// The time checked.
        at_ms: u64,
        /// Start of validity.
        from_ms: u64,
        /// End of validity.
        until_ms: u64,
    },
    /// A post's enrolment key signed a record of another post.
    #[error("the enrolment key of {enroller} cannot vouch for a device of {record}")]
    WrongPost {
        /// The enrolment key's post.
        enroller: String,
        /// The record's post.
        record: String,
    },
    /// The device id is not the one derived from the identity key.
    #[error("the device id does not match the identity key")]
    DeviceIdMismatch,
    /// A receive key does not verify under the device identity.
    #[error("a receive key is not valid: {0}")]
    ReceiveKey(#[from] ReceiveKeyError),
}

impl From<CanonicalError> for DirectoryError {
    fn from(_: CanonicalError) -> Self {
        DirectoryError::Malformed("record: too large to encode")
    }
}

/// A post's enrolment key, certified by the ministry root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enroller {
    /// The ministry.
    pub ministry: String,
    /// The post it enrols for.
    pub post: String,
    /// The enrolment key.
    pub key: IdentityPublicKey,
    /// Start of validity (Unix ms).
    pub valid_from_ms: u64,
    /// End of validity (Unix ms).
    pub valid_until_ms: u64,
}

impl Enroller {
    /// The certificate the root must sign, without its signature; sign its canonical bytes
    /// ([`canonical::enrolment_certificate`]) with the root key and set `signature`.
    pub fn unsigned_certificate(
        ministry: &str,
        post: &str,
        key: &IdentityPublicKey,
        valid_from_ms: u64,
        valid_until_ms: u64,
    ) -> v1::EnrolmentCertificate {
        v1::EnrolmentCertificate {
            ministry: ministry.to_owned(),
            post: post.to_owned(),
            public_key: key.as_bytes().to_vec(),
            valid_from_ms,
            valid_until_ms,
            signature: Vec::new(),
        }
    }

    /// Checks a certificate against the pinned root and ministry.
    pub fn verify(
        cert: &v1::EnrolmentCertificate,
        root: &IdentityPublicKey,
        ministry: &str,
    ) -> Result<Self, DirectoryError> {
        root.verify(&canonical::enrolment_certificate(cert)?, &cert.signature)
            .map_err(|_| DirectoryError::BadSignature("enrolment certificate"))?;
        if cert.ministry != ministry {
            return Err(DirectoryError::WrongMinistry {
                expected: ministry.to_owned(),
                found: cert.ministry.clone(),
            });
        }
        if cert.post.is_empty() {
            return Err(DirectoryError::Malformed("enrolment certificate: no post"));
        }
        let key = IdentityPublicKey::from_slice(&cert.public_key)
            .map_err(|_| DirectoryError::Malformed("enrolment certificate: key"))?;
        Ok(Enroller {
            ministry: cert.ministry.clone(),
            post: cert.post.clone(),
            key,
            valid_from_ms: cert.valid_from_ms,
            valid_until_ms: cert.valid_until_ms,
        })
    }

    fn check_valid_at(&self, at_ms: u64) -> Result<(), DirectoryError> {
        if (self.valid_from_ms..=self.valid_until_ms).contains(&at_ms) {
            return Ok(());
        }
        Err(DirectoryError::OutsideValidity {
            post: self.post.clone(),
            at_ms,
            from_ms: self.valid_from_ms,
            until_ms: self.valid_until_ms,
        })
    }
}

/// A device record that passed the chain: who the device belongs to and its keys.
#[derive(Debug, Clone)]
pub struct VerifiedDevice {
    /// The device.
    pub id: DeviceId,
    /// The user's name at the post.
    pub user: String,
    /// The post.
    pub post: String,
    /// Full name.
    pub display_name: String,
    /// Office mailboxes the user belongs to.
    pub offices: Vec<String>,
    /// The user's clearance.
    pub clearance: Classification,
    /// The device's identity key.
    pub identity: IdentityPublicKey,
    /// Its receive keys, each checked against the identity key.
    pub receive_keys: Vec<VerifiedReceiveKey>,
    /// When it was enrolled (Unix ms).
    pub enrolled_at_ms: u64,
    /// The user is not a national: NOFORN cables do not reach them.
    pub foreign_national: bool,
}

impl VerifiedDevice {
    /// The user's address, e.g. `alice@paris`.
    pub fn address(&self) -> String {
        format!("{}@{}", self.user, self.post)
    }
}

/// Signs a device record with the post's enrolment key.
pub fn sign_device_record(
    record: &mut v1::DeviceRecord,
    enrolment_key: &IdentityKeyPair,
) -> Result<(), DirectoryError> {
    record.signature = enrolment_key
        .sign(&canonical::device_record(record)?)
        .to_vec();
    Ok(())
}

/// Checks a device record against its post's certified enrolment key.
pub fn verify_device_record(
    record: &v1::DeviceRecord,
    enroller: &Enroller,
) -> Result<VerifiedDevice, DirectoryError> {
    enroller
        .key
        .verify(&canonical::device_record(record)?, &record.signature)
        .map_err(|_| DirectoryError::BadSignature("device record"))?;
    if record.post != enroller.post {
        return Err(DirectoryError::WrongPost {
            enroller: enroller.post.clone(),
            record: record.post.clone(),
        });
    }
    enroller.check_valid_at(record.enrolled_at_ms)?;
    let identity = IdentityPublicKey::from_slice(&record.identity_key)
        .map_err(|_| DirectoryError::Malformed("identity key"))?;
    if record.device_id != identity.device_id().as_bytes() {
        return Err(DirectoryError::DeviceIdMismatch);
    }
    let clearance = Classification::try_from(record.clearance)
        .ok()
        .filter(|c| *c != Classification::Unspecified)
        .ok_or(DirectoryError::Malformed("clearance"))?;
    if record.user.is_empty() || record.user.contains('@') {
        return Err(DirectoryError::Malformed("user name"));
    }
    let receive_keys = record
        .receive_keys
        .iter()
        .map(|k| VerifiedReceiveKey::verify(k, &identity))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VerifiedDevice {
        id: identity.device_id(),
        user: record.user.clone(),
        post: record.post.clone(),
        display_name: record.display_name.clone(),
        offices: record.offices.clone(),
        clearance,
        identity,
        receive_keys,
        enrolled_at_ms: record.enrolled_at_ms,
        foreign_national: record.foreign_national,
    })
}

/// Signs a revocation with the enrolment key of the device's post.
pub fn sign_revocation(
    revocation: &mut v1::Revocation,
    enrolment_key: &IdentityKeyPair,
) -> Result<(), DirectoryError> {
    revocation.signature = enrolment_key
        .sign(&canonical::revocation(revocation)?)
        .to_vec();
    Ok(())
}

/// Checks a revocation of `device` (whose verified record is given) against its post's
/// enrolment key. Returns the revoked device's id.
pub fn verify_revocation(
    revocation: &v1::Revocation,
    device: &VerifiedDevice,
    enroller: &Enroller,
) -> Result<DeviceId, DirectoryError> {
    if device.post != enroller.post {
        return Err(DirectoryError::WrongPost {
            enroller: enroller.post.clone(),
            record: device.post.clone(),
        });
    }
    if revocation.device_id != device.id.as_bytes() {
        return Err(DirectoryError::Malformed("revocation: another device"));
    }
    enroller
        .key
        .verify(&canonical::revocation(revocation)?, &revocation.signature)
        .map_err(|_| DirectoryError::BadSignature("revocation"))?;
    Ok(device.id)
}
