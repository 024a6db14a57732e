//! Audit reasons are an interface: auditors grep for them and alerts match the metric labels,
//! so each name is pinned here, and no two reasons share one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use valise_proto::v1::ErrorCode;
use valise_relay_core::reason::Reason;

const PINNED: &[(Reason, &str)] = &[
    (Reason::TlsHandshake, "tls_handshake"),
    (Reason::UnauthenticatedFull, "unauthenticated_full"),
    (Reason::SourceFull, "source_full"),
    (Reason::Busy, "busy"),
    (Reason::NoDeviceCertificate, "no_device_certificate"),
    (Reason::WrongAlpn, "wrong_alpn"),
    (Reason::UnknownDevice, "unknown_device"),
    (Reason::DeviceOfAnotherPost, "device_of_another_post"),
    (Reason::RevokedDevice, "revoked_device"),
    (Reason::ClonedDevice, "cloned_device"),
    (Reason::Malformed, "malformed"),
    (Reason::Oversize, "oversize"),
    (Reason::TooManyRecipients, "too_many_recipients"),
    (Reason::UnsupportedVersion, "unsupported_version"),
    (Reason::SenderMismatch, "sender_mismatch"),
    (Reason::UnknownSender, "unknown_sender"),
    (Reason::RevokedSender, "revoked_sender"),
    (Reason::ForgedSender, "forged_sender"),
    (Reason::BadSignature, "bad_signature"),
    (Reason::SenderClearance, "sender_clearance"),
    (Reason::UnknownAddressee, "unknown_addressee"),
    (Reason::UnknownRecipient, "unknown_recipient"),
    (Reason::UnaddressedRecipient, "unaddressed_recipient"),
    (Reason::Clearance, "clearance"),
    (Reason::NodisToOffice, "nodis_to_office"),
    (Reason::Noforn, "noforn"),
    (Reason::DirectoryBehind, "directory_behind"),
    (Reason::NoRoute, "no_route"),
    (Reason::IdConflict, "id_conflict"),
    (Reason::Unavailable, "unavailable"),
    (Reason::Internal, "internal"),
    (Reason::AttachmentMissing, "attachment_missing"),
    (Reason::AttachmentOversize, "attachment_oversize"),
    (Reason::DigestMismatch, "digest_mismatch"),
    (Reason::AttachmentExpired, "attachment_expired"),
    (Reason::RecipientRevoked, "recipient_revoked"),
    (
        Reason::RecipientClearanceLowered,
        "recipient_clearance_lowered",
    ),
    (Reason::RefusedByWitness, "refused_by_witness"),
    (Reason::ThisLogRolledBack, "this_log_rolled_back"),
    (Reason::Rollback, "rollback"),
    (Reason::Fork, "fork"),
    (Reason::BadProof, "bad_proof"),
    (Reason::NoDesk, "no_desk"),
    (Reason::Csr, "csr"),
    (Reason::RateLimited, "rate_limited"),
    (Reason::Code, "code"),
    (Reason::IdentityConflict, "identity_conflict"),
    (Reason::Record, "record"),
    (Reason::WipeNoDesk, "wipe_no_desk"),
    (Reason::WipeOtherPost, "wipe_other_post"),
    (Reason::WipeFailed, "wipe_failed"),
    (Reason::Unknown, "unknown"),
    (Reason::Revoked, "revoked"),
    (Reason::OtherPost, "other_post"),
    (Reason::NoKeys, "no_keys"),
    (Reason::TooManyKeys, "too_many_keys"),
    (Reason::BadKey, "bad_key"),
    (Reason::ExpiredKeys, "expired_keys"),
    (Reason::Signing, "signing"),
    (Reason::Store, "store"),
    (Reason::AuditExport, "audit_export"),
    (Reason::Enroll, "enroll"),
    (Reason::Revoke, "revoke"),
];

#[test]
fn every_reason_keeps_its_name_and_no_two_share_one() {
    let mut seen = HashSet::new();
    for (reason, name) in PINNED {
        assert_eq!(reason.as_str(), *name);
        assert_eq!(reason.label(), *name);
        assert_eq!(reason.to_string(), *name);
        assert!(seen.insert(*name), "{name} names two reasons");
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name} is snake_case"
        );
    }
}

#[test]
fn a_next_hops_refusal_is_named_by_its_code() {
    let reason = Reason::RefusedByNextHop(ErrorCode::Clearance);
    assert_eq!(reason.as_str(), "ERROR_CODE_CLEARANCE");
    assert_eq!(reason.as_str(), ErrorCode::Clearance.as_str_name());
}

#[test]
fn words_given_by_a_person_are_recorded_as_given_and_never_become_a_label() {
    let stated = Reason::Stated("lost at the airport".into());
    assert_eq!(stated.as_str(), "lost at the airport");
    assert_eq!(stated.label(), "stated", "free text never labels a metric");
    let changed = Reason::Changed("clearance,offices".into());
    assert_eq!(changed.as_str(), "clearance,offices");
    assert_eq!(changed.label(), "changed");
}
