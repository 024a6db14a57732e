//! The verified directory as a client syncing from its node observes it: addresses resolve to
//! the devices to seal for, revoked devices drop out, forged updates are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_crypto::directory::{
    Directory, DirectoryError, Enroller, ResolveError, UpdateError, sign_device_record,
    sign_revocation,
};
use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_proto::canonical;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{
    Classification, DeviceRecord, DirectoryUpdate, EnrolmentCertificate, Revocation,
};

const MINISTRY: &str = "mfa.example";

struct Ministry {
    root: IdentityKeyPair,
    paris: IdentityKeyPair,
}

impl Ministry {
    fn new() -> Self {
        Ministry {
            root: IdentityKeyPair::generate().unwrap(),
            paris: IdentityKeyPair::generate().unwrap(),
        }
    }

    fn certificate(&self, post: &str, key: &IdentityKeyPair) -> EnrolmentCertificate {
        let mut cert = Enroller::unsigned_certificate(MINISTRY, post, key.public(), 0, u64::MAX);
        cert.signature = self
            .root
            .sign(&canonical::enrolment_certificate(&cert).unwrap())
            .to_vec();
        cert
    }

    /// A directory that knows Paris's enrolment key, as a client has after its first sync.
    fn directory(&self) -> Directory {
        let mut d = Directory::new(MINISTRY, *self.root.public());
        d.apply(Update::Enroller(self.certificate("paris", &self.paris)))
            .unwrap();
        d
    }
}

fn record(user: &str, offices: &[&str], signer: &IdentityKeyPair) -> (DeviceId, DeviceRecord) {
    let device = IdentityKeyPair::generate().unwrap();
    let mut r = DeviceRecord {
        device_id: device.device_id().as_bytes().to_vec(),
        user: user.into(),
        post: "paris".into(),
        display_name: format!("{user} (Paris)"),
        offices: offices.iter().map(|o| (*o).into()).collect(),
        clearance: Classification::Secret as i32,
        identity_key: device.public().as_bytes().to_vec(),
        enrolled_at_ms: 1,
        ..Default::default()
    };
    sign_device_record(&mut r, signer).unwrap();
    (device.device_id(), r)
}

fn revoke(id: DeviceId, signer: &IdentityKeyPair) -> Revocation {
    let mut revocation = Revocation {
        device_id: id.as_bytes().to_vec(),
        reason: "device lost".into(),
        revoked_at_ms: 2,
        signature: vec![],
    };
    sign_revocation(&mut revocation, signer).unwrap();
    revocation
}

fn ids(devices: &[&valise_crypto::directory::VerifiedDevice]) -> Vec<DeviceId> {
    devices.iter().map(|d| d.id).collect()
}

#[test]
fn an_address_resolves_to_its_devices() {
    let m = Ministry::new();
    let mut d = m.directory();
    let (laptop, r) = record("alice", &["POL", "FRONT"], &m.paris);
    d.apply(Update::Device(r)).unwrap();
    let (phone, r) = record("alice", &["POL", "FRONT"], &m.paris);
    d.apply(Update::Device(r)).unwrap();
    let (bob, r) = record("bob", &["POL"], &m.paris);
    d.apply(Update::Device(r)).unwrap();

    let mut alice = vec![laptop, phone];
    alice.sort();
    let found = d.resolve("alice@paris").unwrap();
    assert_eq!(ids(&found), alice, "every device of hers, by device id");
    assert!(found.iter().all(|v| v.address() == "alice@paris"));
    assert_eq!(found[0].display_name, "alice (Paris)");

    let mut pol = ids(&d.resolve("POL@paris").unwrap());
    pol.sort();
    let mut members = vec![laptop, phone, bob];
    members.sort();
    assert_eq!(pol, members, "an office reaches the devices of its members");
    assert_eq!(
        ids(&d.resolve("paris").unwrap()),
        alice,
        "a bare post is its front office"
    );

    assert_eq!(d.version(), 4);
    assert_eq!(d.active_devices().len(), 3);
}

#[test]
fn an_unknown_address_is_a_clear_error() {
    let m = Ministry::new();
    let mut d = m.directory();
    let (_, r) = record("alice", &[], &m.paris);
    d.apply(Update::Device(r)).unwrap();

    let err = d.resolve("nobody@paris").unwrap_err();
    assert_eq!(err, ResolveError::Unknown("nobody@paris".into()));
    assert!(err.to_string().contains("nobody@paris"), "{err}");
    assert_eq!(
        d.resolve("alice@rome").unwrap_err(),
        ResolveError::UnknownPost {
            address: "alice@rome".into(),
            post: "rome".into()
        }
    );
    assert_eq!(
        d.resolve("alice@").unwrap_err(),
        ResolveError::Malformed("alice@".into())
    );
    assert_eq!(
        d.resolve("POL@paris").unwrap_err(),
        ResolveError::Unknown("POL@paris".into()),
        "an office nobody belongs to is unknown, not an empty distribution"
    );
}

#[test]
fn a_revoked_device_is_not_resolved_but_is_reported_revoked() {
    let m = Ministry::new();
    let mut d = m.directory();
    let (laptop, r) = record("alice", &[], &m.paris);
    d.apply(Update::Device(r)).unwrap();
    let (phone, r) = record("alice", &[], &m.paris);
    d.apply(Update::Device(r)).unwrap();
    d.apply(Update::Revocation(revoke(laptop, &m.paris)))
        .unwrap();

    assert_eq!(ids(&d.resolve("alice@paris").unwrap()), vec![phone]);
    assert_eq!(ids(&d.active_devices()), vec![phone]);
    let entry = d.lookup(&laptop).expect("a revoked device is still known");
    assert!(entry.revoked);
    assert_eq!(entry.device.address(), "alice@paris");
    assert!(!d.is_active(&laptop));
    assert!(!d.lookup(&phone).unwrap().revoked);
    assert!(
        d.lookup(&IdentityKeyPair::generate().unwrap().device_id())
            .is_none()
    );

    // With her last device revoked, nobody answers to her address.
    d.apply(Update::Revocation(revoke(phone, &m.paris)))
        .unwrap();
    assert_eq!(
        d.resolve("alice@paris").unwrap_err(),
        ResolveError::Unknown("alice@paris".into())
    );
    // ... and the sender can be told why.
    let mut revoked = ids(&d.revoked_at("alice@paris"));
    revoked.sort();
    let mut both = vec![laptop, phone];
    both.sort();
    assert_eq!(revoked, both);
    assert!(d.revoked_at("bob@paris").is_empty());
}

#[test]
fn an_update_signed_by_an_unknown_enrolment_key_is_refused() {
    let m = Ministry::new();
    let mut d = m.directory();
    let before = d.version();

    // A key the root never certified signs a Paris device.
    let stranger = IdentityKeyPair::generate().unwrap();
    let (eve, r) = record("eve", &["POL"], &stranger);
    assert_eq!(
        d.apply(Update::Device(r.clone())),
        Err(UpdateError::Untrusted(DirectoryError::BadSignature(
            "device record"
        )))
    );
    assert!(d.check(&Update::Device(r)).is_err());
    // A certificate for that key from another root is refused too.
    let rogue = Ministry::new();
    assert_eq!(
        d.apply(Update::Enroller(rogue.certificate("paris", &stranger))),
        Err(UpdateError::Untrusted(DirectoryError::BadSignature(
            "enrolment certificate"
        )))
    );

    assert_eq!(d.version(), before, "nothing was applied");
    assert!(d.lookup(&eve).is_none());
    assert!(d.resolve("eve@paris").is_err());
}

#[test]
fn a_client_replays_a_nodes_history_in_order_to_the_same_state() {
    let m = Ministry::new();
    let (alice, r) = record("alice", &[], &m.paris);
    let updates = [
        Update::Enroller(m.certificate("paris", &m.paris)),
        Update::Device(r),
        Update::Revocation(revoke(alice, &m.paris)),
    ];
    // What the node sends: each update with its version.
    let mut node = Directory::new(MINISTRY, *m.root.public());
    let mut node_history = Vec::new();
    for update in updates {
        let version = node.apply(update.clone()).unwrap();
        node_history.push(DirectoryUpdate {
            version,
            update: Some(update),
        });
    }

    let mut client = Directory::new(MINISTRY, *m.root.public());
    // A skipped update is caught, not silently applied out of order.
    let err = client.apply_received(node_history[1].clone()).unwrap_err();
    assert_eq!(
        err,
        UpdateError::OutOfOrder {
            expected: 1,
            got: 2
        }
    );
    assert!(
        err.to_string().contains("sync again from version 0"),
        "{err}"
    );
    assert_eq!(client.version(), 0, "a refused update changes nothing");
    for update in node_history.clone() {
        client.apply_received(update).unwrap();
    }
    assert_eq!(client.version(), node.version());
    assert!(client.has_enroller("paris"));
    assert!(client.lookup(&alice).unwrap().revoked);
    // A replayed update is caught too.
    assert!(matches!(
        client.apply_received(node_history[2].clone()),
        Err(UpdateError::OutOfOrder {
            expected: 4,
            got: 3
        })
    ));
    assert_eq!(
        client.apply_received(DirectoryUpdate {
            version: 4,
            update: None
        }),
        Err(UpdateError::Empty)
    );
}
