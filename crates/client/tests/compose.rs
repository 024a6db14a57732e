//! The checks a draft passes before anything is sealed, as a diplomat meets them: the right
//! devices are chosen once each, and every refusal names who and why. No network, no store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_client::compose::{CableDraft, ComposeError, recipients};
use valise_crypto::directory::{Directory, Enroller, sign_device_record, sign_revocation};
use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_proto::canonical;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{Caveat, Classification, DeviceRecord, Precedence, Revocation};

const NOW: u64 = 1_000_000;

struct Post {
    directory: Directory,
    enroller: IdentityKeyPair,
}

impl Post {
    fn new() -> Post {
        let root = IdentityKeyPair::generate().unwrap();
        let enroller = IdentityKeyPair::generate().unwrap();
        let mut cert =
            Enroller::unsigned_certificate("mfa.example", "paris", enroller.public(), 0, u64::MAX);
        cert.signature = root
            .sign(&canonical::enrolment_certificate(&cert).unwrap())
            .to_vec();
        let mut directory = Directory::new("mfa.example", *root.public());
        directory.apply(Update::Enroller(cert)).unwrap();
        Post {
            directory,
            enroller,
        }
    }

    /// Enrols a device; its receive key is valid from `from` to `until`.
    fn enrol(
        &mut self,
        user: &str,
        clearance: Classification,
        offices: &[&str],
        (from, until): (u64, u64),
    ) -> DeviceId {
        let device = IdentityKeyPair::generate().unwrap();
        let key = ReceiveKeyPair::generate(from, until).unwrap();
        let mut record = DeviceRecord {
            device_id: device.device_id().as_bytes().to_vec(),
            user: user.into(),
            post: "paris".into(),
            offices: offices.iter().map(|o| (*o).into()).collect(),
            clearance: clearance as i32,
            identity_key: device.public().as_bytes().to_vec(),
            receive_keys: vec![key.to_signed_record(&device).unwrap()],
            enrolled_at_ms: 1,
            ..Default::default()
        };
        sign_device_record(&mut record, &self.enroller).unwrap();
        self.directory.apply(Update::Device(record)).unwrap();
        device.device_id()
    }

    fn revoke(&mut self, id: DeviceId) {
        let mut revocation = Revocation {
            device_id: id.as_bytes().to_vec(),
            reason: "lost".into(),
            revoked_at_ms: 2,
            signature: vec![],
        };
        sign_revocation(&mut revocation, &self.enroller).unwrap();
        self.directory
            .apply(Update::Revocation(revocation))
            .unwrap();
    }
}

const ALWAYS: (u64, u64) = (0, u64::MAX);

fn draft(to: &[&str], info: &[&str], classification: Classification) -> CableDraft {
    CableDraft {
        action: to.iter().map(|s| (*s).into()).collect(),
        info: info.iter().map(|s| (*s).into()).collect(),
        classification,
        precedence: Precedence::Immediate,
        niact: false,
        caveats: vec![],
        tags: vec!["PREL".into()],
        subject: "Subject".into(),
        text: "Text".into(),
        attachments: vec![],
        references: Vec::new(),
    }
}

#[test]
fn every_device_reached_is_sealed_for_once() {
    let mut post = Post::new();
    let alice = post.enrol("alice", Classification::Secret, &["POL"], ALWAYS);
    let bob = post.enrol("bob", Classification::Secret, &["POL", "ECON"], ALWAYS);
    let bob_phone = post.enrol("bob", Classification::Secret, &[], ALWAYS);
    // Alice directly and through POL, Bob through POL and ECON and by name.
    let chosen = recipients(
        &post.directory,
        &draft(
            &["alice@paris", "POL@paris"],
            &["ECON@paris", "bob@paris"],
            Classification::Secret,
        ),
        NOW,
    )
    .unwrap();
    let mut ids: Vec<DeviceId> = chosen.iter().map(|r| r.device).collect();
    ids.sort();
    let mut expected = vec![alice, bob, bob_phone];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(chosen.iter().all(|r| r.key.is_valid_at(NOW)));
}

#[test]
fn a_recipient_below_the_classification_is_named_even_through_an_office() {
    let mut post = Post::new();
    post.enrol("alice", Classification::TopSecret, &["POL"], ALWAYS);
    post.enrol("carol", Classification::Confidential, &["POL"], ALWAYS);
    let err = recipients(
        &post.directory,
        &draft(&["POL@paris"], &[], Classification::Secret),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, ComposeError::Clearance { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "carol@paris",
        "CONFIDENTIAL",
        "SECRET",
        "POL@paris",
        "not sent",
    ] {
        assert!(text.contains(part), "{text} lacks {part}");
    }
    // The same office at CONFIDENTIAL is fine.
    let ok = recipients(
        &post.directory,
        &draft(&["POL@paris"], &[], Classification::Confidential),
        NOW,
    );
    assert_eq!(ok.unwrap().len(), 2);
}

#[test]
fn nodis_goes_to_people_only() {
    let mut post = Post::new();
    post.enrol("alice", Classification::Secret, &["POL"], ALWAYS);
    let mut d = draft(&["alice@paris"], &["POL@paris"], Classification::Secret);
    d.caveats = vec![Caveat::Nodis];
    let err = recipients(&post.directory, &d, NOW).unwrap_err();
    assert_eq!(err, ComposeError::NodisToOffice("POL@paris".into()));
    d.info.clear();
    assert_eq!(recipients(&post.directory, &d, NOW).unwrap().len(), 1);
}

#[test]
fn a_revoked_addressee_is_named_as_revoked_and_an_unknown_one_as_unknown() {
    let mut post = Post::new();
    let dave = post.enrol("dave", Classification::Secret, &[], ALWAYS);
    post.enrol("alice", Classification::Secret, &[], ALWAYS);
    post.revoke(dave);
    let err = recipients(
        &post.directory,
        &draft(&["alice@paris", "dave@paris"], &[], Classification::Secret),
        NOW,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ComposeError::Revoked {
            address: "dave@paris".into(),
            devices: 1
        }
    );
    let err = recipients(
        &post.directory,
        &draft(&["nobody@paris"], &[], Classification::Secret),
        NOW,
    )
    .unwrap_err();
    assert!(err.to_string().contains("nobody@paris"), "{err}");
    let err = recipients(
        &post.directory,
        &draft(&["alice@rome"], &[], Classification::Secret),
        NOW,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rome"), "{err}");
}

#[test]
fn a_recipient_without_a_key_valid_now_is_refused_by_name() {
    let mut post = Post::new();
    post.enrol("erin", Classification::Secret, &[], (0, NOW - 1));
    let err = recipients(
        &post.directory,
        &draft(&["erin@paris"], &[], Classification::Secret),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err, ComposeError::NoReceiveKey("erin@paris".into()));
}

#[test]
fn a_draft_missing_what_a_cable_needs_is_refused() {
    let post = Post::new();
    let mut d = draft(&[], &[], Classification::Secret);
    assert_eq!(
        recipients(&post.directory, &d, NOW).unwrap_err(),
        ComposeError::NoActionAddressee
    );
    d.action = vec!["alice@paris".into()];
    d.subject = "  ".into();
    assert_eq!(
        recipients(&post.directory, &d, NOW).unwrap_err(),
        ComposeError::NoSubject
    );
    d.subject = "S".into();
    d.classification = Classification::Unspecified;
    assert_eq!(
        recipients(&post.directory, &d, NOW).unwrap_err(),
        ComposeError::Missing("classification")
    );
    d.classification = Classification::Secret;
    d.attachments = (0..=valise_proto::MAX_ATTACHMENTS_PER_CABLE)
        .map(|i| format!("annex-{i}.pdf").into())
        .collect();
    let refused = recipients(&post.directory, &d, NOW).unwrap_err();
    assert_eq!(refused, ComposeError::TooManyAttachments(65));
    assert!(refused.to_string().contains("at most 64"), "{refused}");
}
