//! Why the node refused, dropped or did something, as its audit log and its metrics name it.
//!
//! Each reason's name ([`Reason::as_str`]) is what an auditor greps for and what the
//! `valise_refusals_total{reason=…}` metric is labelled with: the names are stable, and a test
//! pins each one. Reasons an operator or a device states in their own words are kept as given.

use std::fmt;

use valise_proto::v1::ErrorCode;

/// A reason recorded in an audit event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    // Connections.
    /// The TLS handshake failed.
    TlsHandshake,
    /// Too many connections without a certificate, in all.
    UnauthenticatedFull,
    /// Too many connections without a certificate from one source address.
    SourceFull,
    /// The node is at its cap of connections or submissions.
    Busy,
    /// A connection without a device certificate asked for a device's service.
    NoDeviceCertificate,
    /// A device connection asked for another protocol.
    WrongAlpn,
    /// The certificate names a device no post enrolled.
    UnknownDevice,
    /// The certificate was issued by another post than the device's own.
    DeviceOfAnotherPost,
    /// The device is revoked.
    RevokedDevice,
    /// A second device presents the same identity at once.
    ClonedDevice,

    // Submissions, forwards and the policy.
    /// The request or the envelope does not decode.
    Malformed,
    /// The envelope is over the size limit.
    Oversize,
    /// The cable is sealed for more devices than the limit.
    TooManyRecipients,
    /// The envelope's version is not one this node reads.
    UnsupportedVersion,
    /// The envelope's sender is not the submitting device.
    SenderMismatch,
    /// The sender is not in the directory.
    UnknownSender,
    /// The sender is revoked.
    RevokedSender,
    /// The sender's address is not the sender's user.
    ForgedSender,
    /// The sender's signature does not verify.
    BadSignature,
    /// The sender is not cleared for the cable's classification.
    SenderClearance,
    /// An addressee is not in the directory.
    UnknownAddressee,
    /// A recipient device is not in the directory.
    UnknownRecipient,
    /// A recipient device is not one of an addressee's.
    UnaddressedRecipient,
    /// A recipient is not cleared for the cable.
    Clearance,
    /// A NODIS cable is addressed to an office.
    NodisToOffice,
    /// A NOFORN cable is addressed to a foreign national.
    Noforn,
    /// The directory here is behind the sender's.
    DirectoryBehind,
    /// No route to a recipient's post.
    NoRoute,
    /// A cable id already held for another envelope.
    IdConflict,
    /// The store cannot take custody now.
    Unavailable,
    /// Something failed inside the node.
    Internal,

    // Attachments and forwarding.
    /// A cable names an attachment this node does not hold.
    AttachmentMissing,
    /// An upload is over the attachment size limit.
    AttachmentOversize,
    /// An upload's content does not match its digest.
    DigestMismatch,
    /// An attachment expired here before its cable was forwarded.
    AttachmentExpired,
    /// The next hop refused the cable, with this code.
    RefusedByNextHop(ErrorCode),
    /// A queued cable's recipient was revoked.
    RecipientRevoked,
    /// A queued cable's recipient's clearance was lowered below it.
    RecipientClearanceLowered,

    // Witnessing.
    /// A neighbour refused to cosign this node's checkpoint.
    RefusedByWitness,
    /// This node's log was rolled back (a neighbour cosigned a later tree).
    ThisLogRolledBack,
    /// A neighbour's checkpoint is older than one it showed before.
    Rollback,
    /// A neighbour's checkpoint is not consistent with one it showed before.
    Fork,
    /// A neighbour's consistency proof does not verify.
    BadProof,

    // Enrolment.
    /// This node enrols no devices.
    NoDesk,
    /// The certificate request is unusable.
    Csr,
    /// Too many attempts from one source.
    RateLimited,
    /// The one-time code is unknown, used or expired.
    Code,
    /// The identity belongs to another user.
    IdentityConflict,
    /// The device record cannot be recorded.
    Record,

    // A device's own requests: wipe and keys.
    /// A wipe asked of a node that enrols no devices.
    WipeNoDesk,
    /// A wipe asked of another post than the device's.
    WipeOtherPost,
    /// The wipe's revocation failed.
    WipeFailed,
    /// The device is not in the directory.
    Unknown,
    /// The device is revoked.
    Revoked,
    /// The device belongs to another post.
    OtherPost,
    /// No receive keys were given.
    NoKeys,
    /// More receive keys than a device may publish.
    TooManyKeys,
    /// A receive key does not verify.
    BadKey,
    /// Every receive key given has expired.
    ExpiredKeys,
    /// The post's key could not sign.
    Signing,
    /// The store could not write.
    Store,

    // Operators.
    /// An operator exported the audit log.
    AuditExport,
    /// An operator issued an enrolment code.
    Enroll,
    /// An operator revoked a device.
    Revoke,
    /// The fields an operator changed about a user, e.g. `clearance,offices`.
    Changed(String),
    /// A reason an operator or a device gave in their own words, recorded as given.
    Stated(String),
}

impl Reason {
    /// The name recorded in the audit log and used as the metrics label.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Changed(text) | Reason::Stated(text) => text,
            other => other.label(),
        }
    }

    /// A name with no free text in it, for a metrics label: a stated reason is `stated`.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::TlsHandshake => "tls_handshake",
            Reason::UnauthenticatedFull => "unauthenticated_full",
            Reason::SourceFull => "source_full",
            Reason::Busy => "busy",
            Reason::NoDeviceCertificate => "no_device_certificate",
            Reason::WrongAlpn => "wrong_alpn",
            Reason::UnknownDevice => "unknown_device",
            Reason::DeviceOfAnotherPost => "device_of_another_post",
            Reason::RevokedDevice => "revoked_device",
            Reason::ClonedDevice => "cloned_device",
            Reason::Malformed => "malformed",
            Reason::Oversize => "oversize",
            Reason::TooManyRecipients => "too_many_recipients",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::SenderMismatch => "sender_mismatch",
            Reason::UnknownSender => "unknown_sender",
            Reason::RevokedSender => "revoked_sender",
            Reason::ForgedSender => "forged_sender",
            Reason::BadSignature => "bad_signature",
            Reason::SenderClearance => "sender_clearance",
            Reason::UnknownAddressee => "unknown_addressee",
            Reason::UnknownRecipient => "unknown_recipient",
            Reason::UnaddressedRecipient => "unaddressed_recipient",
            Reason::Clearance => "clearance",
            Reason::NodisToOffice => "nodis_to_office",
            Reason::Noforn => "noforn",
            Reason::DirectoryBehind => "directory_behind",
            Reason::NoRoute => "no_route",
            Reason::IdConflict => "id_conflict",
            Reason::Unavailable => "unavailable",
            Reason::Internal => "internal",
            Reason::AttachmentMissing => "attachment_missing",
            Reason::AttachmentOversize => "attachment_oversize",
            Reason::DigestMismatch => "digest_mismatch",
            Reason::AttachmentExpired => "attachment_expired",
            Reason::RefusedByNextHop(code) => code.as_str_name(),
            Reason::RecipientRevoked => "recipient_revoked",
            Reason::RecipientClearanceLowered => "recipient_clearance_lowered",
            Reason::RefusedByWitness => "refused_by_witness",
            Reason::ThisLogRolledBack => "this_log_rolled_back",
            Reason::Rollback => "rollback",
            Reason::Fork => "fork",
            Reason::BadProof => "bad_proof",
            Reason::NoDesk => "no_desk",
            Reason::Csr => "csr",
            Reason::RateLimited => "rate_limited",
            Reason::Code => "code",
            Reason::IdentityConflict => "identity_conflict",
            Reason::Record => "record",
            Reason::WipeNoDesk => "wipe_no_desk",
            Reason::WipeOtherPost => "wipe_other_post",
            Reason::WipeFailed => "wipe_failed",
            Reason::Unknown => "unknown",
            Reason::Revoked => "revoked",
            Reason::OtherPost => "other_post",
            Reason::NoKeys => "no_keys",
            Reason::TooManyKeys => "too_many_keys",
            Reason::BadKey => "bad_key",
            Reason::ExpiredKeys => "expired_keys",
            Reason::Signing => "signing",
            Reason::Store => "store",
            Reason::AuditExport => "audit_export",
            Reason::Enroll => "enroll",
            Reason::Revoke => "revoke",
            Reason::Changed(_) => "changed",
            Reason::Stated(_) => "stated",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
