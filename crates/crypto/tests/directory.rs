//! Directory trust as a client checking records it received observes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_crypto::directory::{
    DirectoryError, Enroller, sign_device_record, sign_revocation, verify_device_record,
    verify_revocation,
};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_proto::canonical;
use valise_proto::v1::{Classification, DeviceRecord, Revocation};

const MINISTRY: &str = "mfa.example";
const YEAR_MS: u64 = 365 * 86_400_000;

struct World {
    root: IdentityKeyPair,
    paris_key: IdentityKeyPair,
    paris: Enroller,
    nairobi_key: IdentityKeyPair,
    nairobi: Enroller,
}

fn certify(root: &IdentityKeyPair, post: &str, key: &IdentityKeyPair) -> Enroller {
    let mut cert = Enroller::unsigned_certificate(MINISTRY, post, key.public(), 0, YEAR_MS);
    cert.signature = root
        .sign(&canonical::enrolment_certificate(&cert).unwrap())
        .to_vec();
    Enroller::verify(&cert, root.public(), MINISTRY).unwrap()
}

fn world() -> World {
    let root = IdentityKeyPair::generate().unwrap();
    let paris_key = IdentityKeyPair::generate().unwrap();
    let nairobi_key = IdentityKeyPair::generate().unwrap();
    let paris = certify(&root, "paris", &paris_key);
    let nairobi = certify(&root, "nairobi", &nairobi_key);
    World {
        root,
        paris_key,
        paris,
        nairobi_key,
        nairobi,
    }
}

fn alice_record(signer: &IdentityKeyPair) -> (IdentityKeyPair, DeviceRecord) {
    let device = IdentityKeyPair::generate().unwrap();
    let key = ReceiveKeyPair::generate(0, YEAR_MS).unwrap();
    let mut record = DeviceRecord {
        device_id: device.device_id().as_bytes().to_vec(),
        user: "alice".into(),
        post: "paris".into(),
        display_name: "Alice Martin".into(),
        offices: vec!["POL".into()],
        clearance: Classification::Secret as i32,
        identity_key: device.public().as_bytes().to_vec(),
        receive_keys: vec![key.to_signed_record(&device).unwrap()],
        enrolled_at_ms: 1000,
        signature: vec![],
        foreign_national: false,
    };
    sign_device_record(&mut record, signer).unwrap();
    (device, record)
}

#[test]
fn a_record_signed_by_its_posts_certified_key_is_trusted() {
    let w = world();
    let (device, record) = alice_record(&w.paris_key);
    let verified = verify_device_record(&record, &w.paris).unwrap();
    assert_eq!(verified.address(), "alice@paris");
    assert_eq!(verified.id, device.device_id());
    assert_eq!(verified.clearance, Classification::Secret);
    assert_eq!(verified.receive_keys.len(), 1);
}

#[test]
fn one_post_cannot_enrol_devices_for_another() {
    let w = world();
    // Nairobi's key signs a record claiming to be a Paris device.
    let (_, record) = alice_record(&w.nairobi_key);
    assert_eq!(
        verify_device_record(&record, &w.nairobi).err(),
        Some(DirectoryError::WrongPost {
            enroller: "nairobi".into(),
            record: "paris".into()
        })
    );
    assert_eq!(
        verify_device_record(&record, &w.paris).err(),
        Some(DirectoryError::BadSignature("device record"))
    );
}

#[test]
fn a_certificate_not_from_the_pinned_root_is_refused() {
    let w = world();
    let rogue_root = IdentityKeyPair::generate().unwrap();
    let mut cert =
        Enroller::unsigned_certificate(MINISTRY, "paris", w.paris_key.public(), 0, YEAR_MS);
    cert.signature = rogue_root
        .sign(&canonical::enrolment_certificate(&cert).unwrap())
        .to_vec();
    assert_eq!(
        Enroller::verify(&cert, w.root.public(), MINISTRY).err(),
        Some(DirectoryError::BadSignature("enrolment certificate"))
    );
    // A genuine certificate for another ministry is refused too.
    let mut other =
        Enroller::unsigned_certificate("mfa.other", "paris", w.paris_key.public(), 0, YEAR_MS);
    other.signature = w
        .root
        .sign(&canonical::enrolment_certificate(&other).unwrap())
        .to_vec();
    assert!(matches!(
        Enroller::verify(&other, w.root.public(), MINISTRY),
        Err(DirectoryError::WrongMinistry { .. })
    ));
}

#[test]
fn any_change_to_a_record_breaks_it() {
    let w = world();
    let (_, record) = alice_record(&w.paris_key);
    let edits: [fn(&mut DeviceRecord); 6] = [
        |r| r.clearance = Classification::TopSecret as i32,
        |r| r.foreign_national = true,
        |r| r.offices.push("ADMIN".into()),
        |r| r.user = "mallory".into(),
        |r| r.receive_keys.clear(),
        |r| r.identity_key[0] ^= 1,
    ];
    for edit in edits {
        let mut r = record.clone();
        edit(&mut r);
        assert!(verify_device_record(&r, &w.paris).is_err());
    }
}

/// A locally employed (foreign national) user's record says so under its post's signature,
/// and a node cannot take the mark off to let a NOFORN cable through.
#[test]
fn the_foreign_national_mark_is_signed_and_kept() {
    let w = world();
    let (_, mut record) = alice_record(&w.paris_key);
    record.foreign_national = true;
    sign_device_record(&mut record, &w.paris_key).unwrap();
    let verified = verify_device_record(&record, &w.paris).unwrap();
    assert!(verified.foreign_national);
    record.foreign_national = false;
    assert!(verify_device_record(&record, &w.paris).is_err());
}

#[test]
fn a_record_outside_its_enrolment_keys_validity_is_refused() {
    let w = world();
    let (_, mut record) = alice_record(&w.paris_key);
    record.enrolled_at_ms = 2 * YEAR_MS;
    sign_device_record(&mut record, &w.paris_key).unwrap();
    assert!(matches!(
        verify_device_record(&record, &w.paris),
        Err(DirectoryError::OutsideValidity { .. })
    ));
}

#[test]
fn a_device_id_not_derived_from_its_key_is_refused() {
    let w = world();
    let (_, mut record) = alice_record(&w.paris_key);
    record.device_id = vec![7; 16];
    sign_device_record(&mut record, &w.paris_key).unwrap();
    assert_eq!(
        verify_device_record(&record, &w.paris).err(),
        Some(DirectoryError::DeviceIdMismatch)
    );
}

#[test]
fn only_the_devices_own_post_can_revoke_it() {
    let w = world();
    let (device, record) = alice_record(&w.paris_key);
    let alice = verify_device_record(&record, &w.paris).unwrap();
    let mut revocation = Revocation {
        device_id: device.device_id().as_bytes().to_vec(),
        reason: "device lost".into(),
        revoked_at_ms: 5,
        signature: vec![],
    };
    sign_revocation(&mut revocation, &w.paris_key).unwrap();
    assert_eq!(
        verify_revocation(&revocation, &alice, &w.paris),
        Ok(device.device_id())
    );

    let mut forged = revocation.clone();
    sign_revocation(&mut forged, &w.nairobi_key).unwrap();
    assert!(
        verify_revocation(&forged, &alice, &w.nairobi).is_err(),
        "nairobi cannot revoke a paris device"
    );
    assert!(verify_revocation(&forged, &alice, &w.paris).is_err());
    let mut edited = revocation.clone();
    edited.reason = "other".into();
    assert_eq!(
        verify_revocation(&edited, &alice, &w.paris),
        Err(DirectoryError::BadSignature("revocation"))
    );
}
