//! The node's submission policy, as a diplomat sending a cable observes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use valise_crypto::identity::DeviceId;
use valise_proto::v1::{Caveat, Classification, Envelope, ErrorCode, Precedence};
use valise_relay_core::limits::Limits;
use valise_relay_core::policy::{Refusal, check_forward, check_submission};

fn check(env: &Envelope) -> Result<valise_relay_core::policy::Accepted, Refusal> {
    check_submission(&Limits::default(), &Paris::new(), &id(1), 1000, env)
}

#[test]
fn a_proper_cable_is_accepted_for_its_devices() {
    let accepted = check(&cable(&["bob@paris"], &[id(3), id(2)])).unwrap();
    assert_eq!(
        accepted.recipients,
        vec![id(3), id(2)],
        "bob, and the sender's own other device"
    );
    assert_eq!(accepted.precedence, Precedence::Immediate);
    assert_eq!(accepted.cable_id, [9; 16]);
}

#[test]
fn a_recipient_below_the_classification_is_refused_by_name() {
    let err = check(&cable(&["carol@paris"], &[id(4)])).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Clearance);
    assert_eq!(err.audit_reason().as_str(), "clearance");
    assert!(
        err.to_string().contains(
            "carol@paris is cleared for CONFIDENTIAL, below this cable's classification SECRET"
        ),
        "{err}"
    );
}

#[test]
fn nodis_to_an_office_is_refused() {
    let mut env = cable(&["POL@paris"], &[id(3)]);
    env.header.as_mut().unwrap().caveats = vec![Caveat::Nodis as i32];
    let err = check(&env).unwrap_err();
    assert_eq!(err, Refusal::NodisToOffice("POL@paris".into()));
    assert_eq!(err.code(), ErrorCode::NodisToOffice);
    // The same cable without NODIS may go to the office.
    assert!(check(&cable(&["POL@paris"], &[id(3)])).is_ok());
}

#[test]
fn unknown_and_revoked_senders_are_refused() {
    let dir = Paris::new();
    let mut env = cable(&["bob@paris"], &[id(3)]);
    env.header.as_mut().unwrap().sender_device = id(5).as_bytes().to_vec();
    let err = check_submission(&Limits::default(), &dir, &id(5), 1000, &env).unwrap_err();
    assert_eq!(err, Refusal::RevokedSender);
    assert_eq!(err.code(), ErrorCode::Revoked);
    env.header.as_mut().unwrap().sender_device = id(77).as_bytes().to_vec();
    assert_eq!(
        check_submission(&Limits::default(), &dir, &id(77), 1000, &env),
        Err(Refusal::UnknownSender)
    );
}

#[test]
fn a_cable_claiming_another_sender_is_refused() {
    let mut env = cable(&["bob@paris"], &[id(3)]);
    env.header.as_mut().unwrap().sender_device = id(3).as_bytes().to_vec();
    assert_eq!(check(&env), Err(Refusal::SenderMismatch));
}

#[test]
fn recipients_must_be_enrolled_unrevoked_and_addressed() {
    assert_eq!(
        check(&cable(&["bob@paris"], &[id(5)])),
        Err(Refusal::UnknownRecipient(id(5))),
        "revoked"
    );
    assert_eq!(
        check(&cable(&["bob@paris"], &[id(42)])),
        Err(Refusal::UnknownRecipient(id(42))),
        "never enrolled"
    );
    // Carol is enrolled but not addressed: a hidden recipient.
    let mut env = cable(&["bob@paris"], &[id(3), id(4)]);
    env.header.as_mut().unwrap().classification = Classification::Confidential as i32;
    assert_eq!(check(&env), Err(Refusal::UnaddressedRecipient(id(4))));
    assert_eq!(
        check(&cable(&["nobody@paris"], &[id(3)])),
        Err(Refusal::UnknownAddressee("nobody@paris".into()))
    );
}

#[test]
fn limits_are_enforced_with_clear_messages() {
    let limits = Limits {
        max_envelope_bytes: 500,
        max_recipients: 1,
        ..Limits::default()
    };
    let dir = Paris::new();
    let err =
        check_submission(&limits, &dir, &id(1), 501, &cable(&["bob@paris"], &[id(3)])).unwrap_err();
    assert_eq!(
        err,
        Refusal::TooLarge {
            size: 501,
            max: 500
        }
    );
    assert!(
        err.to_string()
            .contains("send large content as attachments")
    );
    let err = check_submission(
        &limits,
        &dir,
        &id(1),
        100,
        &cable(&["POL@paris"], &[id(3), id(2)]),
    )
    .unwrap_err();
    assert_eq!(err, Refusal::TooManyRecipients { count: 2, max: 1 });
}

#[test]
fn malformed_envelopes_are_refused_without_panicking() {
    assert_eq!(
        check(&Envelope::default()),
        Err(Refusal::Malformed("no routing header"))
    );
    assert_eq!(
        check(&cable(&["bob@paris"], &[])),
        Err(Refusal::Malformed("no key wraps"))
    );
    assert_eq!(
        check(&cable(&["bob@paris"], &[id(3), id(3)])),
        Err(Refusal::Malformed("two key wraps for one device"))
    );
    let mut env = cable(&["bob@paris"], &[id(3)]);
    env.header.as_mut().unwrap().version = 9;
    assert_eq!(check(&env), Err(Refusal::UnsupportedVersion(9)));
    let mut env = cable(&["bob@paris"], &[id(3)]);
    env.header.as_mut().unwrap().precedence = 0;
    assert_eq!(check(&env), Err(Refusal::Malformed("precedence")));
    let mut env = cable(&["bob@paris"], &[id(3)]);
    env.key_wraps[0].device_id.truncate(3);
    assert_eq!(check(&env), Err(Refusal::Malformed("key wrap device id")));
}

#[test]
fn a_cable_naming_another_sender_than_its_signing_device_is_refused() {
    // Carol's own device signs a cable that says it is from alice.
    let mut env = unsigned_cable(&["bob@paris"], &[id(3)]);
    env.header.as_mut().unwrap().sender_device = id(4).as_bytes().to_vec();
    env.header.as_mut().unwrap().classification = Classification::Confidential as i32;
    let env = signed_by(4, env);
    let err = check_submission(&Limits::default(), &Paris::new(), &id(4), 1000, &env).unwrap_err();
    assert_eq!(
        err,
        Refusal::ForgedSender {
            claimed: "alice@paris".into(),
            actual: "carol@paris".into()
        }
    );
    assert_eq!(err.code(), ErrorCode::BadSignature);
    assert_eq!(err.audit_reason().as_str(), "forged_sender");
    assert!(
        err.to_string()
            .contains("says it is from alice@paris, but it is signed by a device of carol@paris"),
        "{err}"
    );
}

#[test]
fn a_cable_whose_signature_does_not_verify_is_refused_before_custody() {
    let mut env = cable(&["bob@paris"], &[id(3)]);
    env.body_ciphertext = b"altered after signing".to_vec();
    let err = check(&env).unwrap_err();
    assert!(matches!(err, Refusal::BadSignature(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::BadSignature);
    assert_eq!(err.audit_reason().as_str(), "bad_signature");
    // Signed by another key than the sending device's.
    let env = signed_by(3, unsigned_cable(&["bob@paris"], &[id(3)]));
    assert!(matches!(check(&env), Err(Refusal::BadSignature(_))));
    // The same cable, signed properly, goes through.
    assert!(check(&cable(&["bob@paris"], &[id(3)])).is_ok());
}

#[test]
fn a_sender_may_not_mark_a_cable_above_their_own_clearance() {
    // alice is cleared SECRET; bob, the addressee, TOP SECRET.
    let mut env = unsigned_cable(&["bob@paris"], &[id(3)]);
    env.header.as_mut().unwrap().classification = Classification::TopSecret as i32;
    let err = check(&resigned(env)).unwrap_err();
    assert_eq!(
        err,
        Refusal::SenderClearance {
            user: "alice@paris".into(),
            clearance: Classification::Secret,
            classification: Classification::TopSecret,
        }
    );
    assert_eq!(err.code(), ErrorCode::Clearance);
    assert_eq!(err.audit_reason().as_str(), "sender_clearance");
    assert!(
        err.to_string()
            .contains("alice@paris is cleared for SECRET and may not send a TOP SECRET cable"),
        "{err}"
    );
}

#[test]
fn a_neighbour_forwarding_a_forged_or_altered_cable_is_refused() {
    let limits = Limits::default();
    let mut forged = unsigned_cable(&["bob@paris"], &[id(3)]);
    forged.header.as_mut().unwrap().from = "bob@paris".into();
    let forged = resigned(forged);
    assert!(matches!(
        check_forward(&limits, &Paris::new(), 1000, &forged, &claim(&[id(3)])),
        Err(Refusal::ForgedSender { .. })
    ));
    let mut altered = cable(&["bob@paris"], &[id(3)]);
    altered.key_commitment = vec![7; 32];
    assert!(matches!(
        check_forward(&limits, &Paris::new(), 1000, &altered, &claim(&[id(3)])),
        Err(Refusal::BadSignature(_))
    ));
}

#[test]
fn a_noforn_cable_never_reaches_a_foreign_national() {
    let mut env = unsigned_cable(&["carol@paris"], &[id(4)]);
    env.header.as_mut().unwrap().classification = Classification::Confidential as i32;
    env.header.as_mut().unwrap().caveats = vec![Caveat::Noforn as i32];
    let err = check(&resigned(env.clone())).unwrap_err();
    assert_eq!(err, Refusal::Noforn("carol@paris".into()));
    assert_eq!(err.audit_reason().as_str(), "noforn");
    assert!(
        err.to_string().contains("recorded as a foreign national"),
        "{err}"
    );
    // Without the caveat, carol may have it.
    env.header.as_mut().unwrap().caveats.clear();
    assert!(check(&resigned(env)).is_ok());
}

fn claim(devices: &[DeviceId]) -> Vec<Vec<u8>> {
    devices.iter().map(|d| d.as_bytes().to_vec()).collect()
}

#[test]
fn a_forwarded_cable_is_taken_for_its_claimed_devices_and_a_revoked_one_is_set_aside() {
    let env = cable(&["bob@paris"], &[id(3), id(5)]);
    let limits = Limits::default();
    let taken = check_forward(&limits, &Paris::new(), 1000, &env, &claim(&[id(3), id(5)])).unwrap();
    assert_eq!(taken.devices, vec![id(3)]);
    assert_eq!(
        taken.revoked,
        vec![id(5)],
        "mallory was revoked since sealing"
    );
    assert_eq!(taken.precedence, Precedence::Immediate);
}

#[test]
fn a_forward_naming_an_unknown_device_is_retried_not_refused_for_good() {
    let env = cable(&["bob@paris"], &[id(3), id(42)]);
    let refusal = check_forward(
        &Limits::default(),
        &Paris::new(),
        1000,
        &env,
        &claim(&[id(42)]),
    )
    .unwrap_err();
    assert_eq!(refusal, Refusal::DirectoryBehind(id(42)));
    assert_eq!(refusal.code(), ErrorCode::DirectoryBehind);
    assert!(refusal.to_string().contains("retry"), "{refusal}");
    // An unknown sender too: the origin's enrolment has not replicated here yet.
    let mut from_stranger = cable(&["bob@paris"], &[id(3)]);
    from_stranger.header.as_mut().unwrap().sender_device = id(43).as_bytes().to_vec();
    assert_eq!(
        check_forward(
            &Limits::default(),
            &Paris::new(),
            1000,
            &from_stranger,
            &claim(&[id(3)])
        ),
        Err(Refusal::DirectoryBehind(id(43)))
    );
}

#[test]
fn a_forward_claiming_a_device_without_a_key_wrap_or_twice_is_malformed() {
    let env = cable(&["bob@paris"], &[id(3)]);
    let limits = Limits::default();
    for claimed in [
        claim(&[id(4)]),
        claim(&[id(3), id(3)]),
        Vec::new(),
        vec![vec![1, 2]],
    ] {
        let refusal = check_forward(&limits, &Paris::new(), 1000, &env, &claimed).unwrap_err();
        assert_eq!(
            refusal.code(),
            ErrorCode::Malformed,
            "{claimed:?}: {refusal}"
        );
    }
    let oversize = check_forward(
        &limits,
        &Paris::new(),
        limits.max_envelope_bytes + 1,
        &env,
        &claim(&[id(3)]),
    );
    assert!(matches!(oversize, Err(Refusal::TooLarge { .. })));
}
