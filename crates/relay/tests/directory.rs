//! The node's directory: what it accepts, and what the policy then sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_crypto::directory::{Enroller, sign_device_record, sign_revocation};
use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_proto::canonical;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{
    Classification, DeviceRecord, EnrolmentCertificate, Envelope, KeyWrap, Precedence, Revocation,
    RoutingHeader,
};
use valise_relay::directory::{Directory, DurableDirectory, UpdateError};
use valise_relay::limits::Limits;
use valise_relay::policy::{DirectoryView, Refusal, check_submission};

struct Ministry {
    root: IdentityKeyPair,
    paris: IdentityKeyPair,
    nairobi: IdentityKeyPair,
}

impl Ministry {
    fn new() -> Self {
        Ministry {
            root: IdentityKeyPair::generate().unwrap(),
            paris: IdentityKeyPair::generate().unwrap(),
            nairobi: IdentityKeyPair::generate().unwrap(),
        }
    }

    fn certificate(&self, post: &str, key: &IdentityKeyPair) -> EnrolmentCertificate {
        let mut cert =
            Enroller::unsigned_certificate("mfa.example", post, key.public(), 0, u64::MAX);
        cert.signature = self
            .root
            .sign(&canonical::enrolment_certificate(&cert).unwrap())
            .to_vec();
        cert
    }

    fn directory(&self) -> Directory {
        let mut d = Directory::new("mfa.example", *self.root.public());
        d.apply(Update::Enroller(self.certificate("paris", &self.paris)))
            .unwrap();
        d.apply(Update::Enroller(self.certificate("nairobi", &self.nairobi)))
            .unwrap();
        d
    }
}

fn record(
    user: &str,
    post: &str,
    offices: &[&str],
    clearance: Classification,
    signer: &IdentityKeyPair,
) -> (DeviceId, DeviceRecord) {
    let (device, record) = keyed_record(user, post, offices, clearance, signer);
    (device.device_id(), record)
}

/// A device record, and the device's identity key pair (to sign cables with).
fn keyed_record(
    user: &str,
    post: &str,
    offices: &[&str],
    clearance: Classification,
    signer: &IdentityKeyPair,
) -> (IdentityKeyPair, DeviceRecord) {
    let device = IdentityKeyPair::generate().unwrap();
    let mut r = DeviceRecord {
        device_id: device.device_id().as_bytes().to_vec(),
        user: user.into(),
        post: post.into(),
        offices: offices.iter().map(|o| (*o).into()).collect(),
        clearance: clearance as i32,
        identity_key: device.public().as_bytes().to_vec(),
        enrolled_at_ms: 1,
        ..Default::default()
    };
    sign_device_record(&mut r, signer).unwrap();
    (device, r)
}

#[test]
fn addresses_resolve_to_unrevoked_devices_of_people_and_offices() {
    let m = Ministry::new();
    let mut d = m.directory();
    let (alice, r) = record(
        "alice",
        "paris",
        &["POL", "FRONT"],
        Classification::Secret,
        &m.paris,
    );
    d.apply(Update::Device(r)).unwrap();
    let (bob, r) = record(
        "bob",
        "paris",
        &["POL"],
        Classification::TopSecret,
        &m.paris,
    );
    d.apply(Update::Device(r)).unwrap();
    assert_eq!(d.devices_for("alice@paris"), Some(vec![alice]));
    let mut pol = d.devices_for("POL@paris").unwrap();
    pol.sort();
    let mut expected = vec![alice, bob];
    expected.sort();
    assert_eq!(pol, expected);
    assert_eq!(
        d.devices_for("paris"),
        Some(vec![alice]),
        "a bare post is its front office"
    );
    assert!(d.is_office("POL@paris") && d.is_office("paris") && !d.is_office("alice@paris"));
    assert_eq!(d.devices_for("nobody@paris"), None);
    assert_eq!(d.devices_for("alice@nairobi"), None);
    assert_eq!(d.device(&bob).unwrap().user, "bob@paris");
}

#[test]
fn a_revocation_takes_effect_at_once_for_the_policy() {
    let m = Ministry::new();
    let mut d = m.directory();
    let (alice_key, r) = keyed_record("alice", "paris", &[], Classification::Secret, &m.paris);
    let alice = alice_key.device_id();
    d.apply(Update::Device(r)).unwrap();
    let (bob, r) = record("bob", "paris", &[], Classification::Secret, &m.paris);
    d.apply(Update::Device(r)).unwrap();
    let mut cable = Envelope {
        header: Some(RoutingHeader {
            version: 1,
            cable_id: vec![1; 16],
            sender_device: alice.as_bytes().to_vec(),
            from: "alice@paris".into(),
            action_addressees: vec!["bob@paris".into()],
            classification: Classification::Secret as i32,
            precedence: Precedence::Flash as i32,
            ..Default::default()
        }),
        key_wraps: vec![KeyWrap {
            device_id: bob.as_bytes().to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    cable.signature = alice_key
        .sign(&valise_crypto::envelope::signed_bytes(&cable).unwrap())
        .to_vec();
    assert!(check_submission(&Limits::default(), &d, &alice, 100, &cable).is_ok());

    let mut revocation = Revocation {
        device_id: alice.as_bytes().to_vec(),
        reason: "device lost".into(),
        revoked_at_ms: 2,
        signature: vec![],
    };
    sign_revocation(&mut revocation, &m.paris).unwrap();
    d.apply(Update::Revocation(revocation)).unwrap();
    assert!(!d.is_active(&alice));
    assert_eq!(
        check_submission(&Limits::default(), &d, &alice, 100, &cable),
        Err(Refusal::RevokedSender)
    );
    assert_eq!(d.devices_for("alice@paris"), None, "no longer reachable");
}

#[test]
fn untrusted_updates_are_refused_and_change_nothing() {
    let m = Ministry::new();
    let mut d = m.directory();
    let before = d.version();
    // Nairobi's key signing a Paris device.
    let (_, r) = record("eve", "paris", &[], Classification::TopSecret, &m.nairobi);
    assert!(matches!(
        d.apply(Update::Device(r)),
        Err(UpdateError::Untrusted(_))
    ));
    // A post with no certified key.
    let (_, r) = record("eve", "rome", &[], Classification::TopSecret, &m.paris);
    assert_eq!(
        d.apply(Update::Device(r)).err(),
        Some(UpdateError::UnknownPost("rome".into()))
    );
    // An enrolment certificate from another root.
    let rogue = Ministry::new();
    assert!(
        d.apply(Update::Enroller(rogue.certificate("paris", &rogue.paris)))
            .is_err()
    );
    // Nairobi revoking a Paris device.
    let (alice, r) = record("alice", "paris", &[], Classification::Secret, &m.paris);
    d.apply(Update::Device(r)).unwrap();
    let mut revocation = Revocation {
        device_id: alice.as_bytes().to_vec(),
        reason: "x".into(),
        revoked_at_ms: 2,
        signature: vec![],
    };
    sign_revocation(&mut revocation, &m.nairobi).unwrap();
    assert!(d.apply(Update::Revocation(revocation)).is_err());
    assert!(d.is_active(&alice));
    assert_eq!(d.version(), before + 1, "only the valid record was applied");
}

#[test]
fn a_revoked_device_cannot_come_back() {
    let m = Ministry::new();
    let mut d = m.directory();
    let (alice, r) = record("alice", "paris", &[], Classification::Secret, &m.paris);
    d.apply(Update::Device(r.clone())).unwrap();
    let mut revocation = Revocation {
        device_id: alice.as_bytes().to_vec(),
        reason: "seized".into(),
        revoked_at_ms: 2,
        signature: vec![],
    };
    sign_revocation(&mut revocation, &m.paris).unwrap();
    d.apply(Update::Revocation(revocation)).unwrap();
    assert_eq!(
        d.apply(Update::Device(r)).err(),
        Some(UpdateError::Revoked(alice))
    );
}

#[test]
fn peers_sync_from_a_version_on() {
    let m = Ministry::new();
    let dir = tempfile::tempdir().unwrap();
    let mut d = DurableDirectory::open(dir.path(), "mfa.example", *m.root.public()).unwrap();
    for post in [("paris", &m.paris), ("nairobi", &m.nairobi)] {
        d.apply(Update::Enroller(m.certificate(post.0, post.1)))
            .unwrap();
    }
    for user in ["alice", "bob", "carol"] {
        let (_, r) = record(user, "paris", &[], Classification::Secret, &m.paris);
        d.apply(Update::Device(r)).unwrap();
    }
    assert_eq!(d.view().version(), 5);
    let tail = d.updates_after(3, 10, 1 << 20).unwrap();
    assert_eq!(
        tail.iter().map(|u| u.version).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(d.updates_after(99, 10, 1 << 20).unwrap().is_empty());
    // A replica replaying the history reaches the same state.
    let mut replica = Directory::new("mfa.example", *m.root.public());
    for update in d.updates_after(0, 10, 1 << 20).unwrap() {
        replica.apply_received(update).unwrap();
    }
    assert_eq!(replica.version(), 5);
    assert!(replica.devices_for("carol@paris").is_some());
    assert_eq!(
        replica.apply_received(Default::default()).err(),
        Some(UpdateError::OutOfOrder {
            expected: 6,
            got: 0
        })
    );
}

#[test]
fn a_durable_directory_survives_a_restart_and_stores_only_what_verified() {
    let m = Ministry::new();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = {
        let mut d = DurableDirectory::open(dir.path(), "mfa.example", *m.root.public()).unwrap();
        d.apply(Update::Enroller(m.certificate("paris", &m.paris)))
            .unwrap();
        let (alice, r) = record("alice", "paris", &[], Classification::Secret, &m.paris);
        d.apply(Update::Device(r)).unwrap();
        let (bob, r) = record("bob", "paris", &[], Classification::Secret, &m.paris);
        d.apply(Update::Device(r)).unwrap();
        let mut revocation = Revocation {
            device_id: bob.as_bytes().to_vec(),
            reason: "lost".into(),
            revoked_at_ms: 3,
            signature: vec![],
        };
        sign_revocation(&mut revocation, &m.paris).unwrap();
        d.apply(Update::Revocation(revocation)).unwrap();
        // A forged record is refused and not stored.
        let (_, forged) = record("eve", "paris", &[], Classification::TopSecret, &m.nairobi);
        assert!(d.apply(Update::Device(forged)).is_err());
        (alice, bob)
    };
    let d = DurableDirectory::open(dir.path(), "mfa.example", *m.root.public()).unwrap();
    assert_eq!(d.view().version(), 4);
    assert!(d.view().is_active(&alice));
    assert!(
        !d.view().is_active(&bob),
        "the revocation survived the restart"
    );
    assert_eq!(d.view().devices_for("eve@paris"), None);
    // Reopened under another root, the stored history no longer verifies: refused.
    let other = IdentityKeyPair::generate().unwrap();
    drop(d);
    assert!(DurableDirectory::open(dir.path(), "mfa.example", *other.public()).is_err());
}

#[test]
fn enrolment_codes_survive_a_restart_and_stay_spent() {
    use valise_relay::enrolment::{Codes, DurableCodes, Invitation};
    let dir = tempfile::tempdir().unwrap();
    let rules = || Codes::new(3_600_000, 10, 10);
    let dave = Invitation {
        user: "dave".into(),
        display_name: "Dave".into(),
        clearance: Classification::Secret,
        offices: vec![],
        foreign_national: false,
    };
    let (code, spent) = {
        let mut codes = DurableCodes::open(dir.path(), rules(), 0).unwrap();
        let code = codes.issue(dave.clone(), [1; 13], 0).unwrap().code;
        let spent = codes.issue(dave.clone(), [2; 13], 0).unwrap().code;
        assert_eq!(codes.redeem(&spent, "a", 1).unwrap(), dave);
        (code, spent)
    };
    let mut codes = DurableCodes::open(dir.path(), rules(), 2).unwrap();
    assert_eq!(
        codes.outstanding(),
        1,
        "the unspent code came back, the spent one did not"
    );
    assert!(codes.redeem(&spent, "a", 3).is_err());
    assert_eq!(codes.redeem(&code, "a", 3).unwrap(), dave);
    drop(codes);
    // A code whose time has passed is forgotten when the node next opens its store.
    {
        let mut codes = DurableCodes::open(dir.path(), rules(), 0).unwrap();
        codes.issue(dave.clone(), [3; 13], 0).unwrap();
    }
    let codes = DurableCodes::open(dir.path(), rules(), 3_600_001).unwrap();
    assert_eq!(codes.outstanding(), 0);
}
