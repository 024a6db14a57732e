//! The keystore: keys survive a lock and unlock, and expired receive keys are erased for good.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_client::keys::DeviceKeys;
use valise_client::profile::Profile;
use valise_client::store::LocalStore;
use valise_crypto::at_rest::KdfParams;
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_crypto::tls::CertifiedKey;
use zeroize::Zeroizing;

const DAY: u64 = 24 * 3_600_000;

const FAST: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn keys_survive_a_restart_and_expired_receive_keys_are_erased() {
    let dir = tempfile::tempdir().unwrap();
    let identity = IdentityKeyPair::generate().unwrap();
    // Weekly rotation: the old key was replaced after 7 of its 30 days.
    let old = ReceiveKeyPair::generate(0, 30 * DAY).unwrap();
    let current = ReceiveKeyPair::generate(7 * DAY, 37 * DAY).unwrap();
    let (old_id, current_id) = (old.id(), current.id());
    {
        let store = LocalStore::create(dir.path(), b"p", FAST).unwrap();
        DeviceKeys {
            identity: IdentityKeyPair::from_seed(&identity.seed()[..]).unwrap(),
            receive: vec![current, old],
            tls: CertifiedKey {
                chain_pem: "CHAIN".into(),
                key_pem: Zeroizing::new("KEY".into()),
            },
        }
        .save(&store)
        .unwrap();
    }
    let store = LocalStore::unlock(dir.path(), b"p").unwrap();
    let mut keys = DeviceKeys::load(&store).unwrap();
    assert_eq!(keys.identity.public(), identity.public());
    assert_eq!(
        keys.receive
            .iter()
            .map(ReceiveKeyPair::id)
            .collect::<Vec<_>>(),
        [old_id, current_id],
        "oldest first"
    );
    assert_eq!(keys.tls.chain_pem, "CHAIN");
    assert_eq!(keys.tls.key_pem.as_str(), "KEY");

    // Past its validity, the replaced key is still kept for cables on slow links: 30 days
    // after it was replaced, not after it was made.
    assert_eq!(keys.erase_expired(&store, 30 * DAY + 1).unwrap(), 0);
    assert_eq!(keys.erase_expired(&store, 37 * DAY).unwrap(), 0);
    assert_eq!(keys.erase_expired(&store, 37 * DAY + 1).unwrap(), 1);
    assert_eq!(keys.receive.len(), 1);
    // The newest key stays even past its validity, until a sync replaces it.
    assert_eq!(keys.erase_expired(&store, 400 * DAY).unwrap(), 0);
    drop(store);
    let store = LocalStore::unlock(dir.path(), b"p").unwrap();
    let keys = DeviceKeys::load(&store).unwrap();
    assert_eq!(
        keys.receive
            .iter()
            .map(ReceiveKeyPair::id)
            .collect::<Vec<_>>(),
        [current_id],
        "the expired key is gone from the store too"
    );
}

#[test]
fn a_long_lived_key_replaced_early_is_kept_until_its_own_validity_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::create(dir.path(), b"p", FAST).unwrap();
    // Valid for 60 days, replaced a day after it was made: 30 days of retention would end on
    // day 41, but senders may seal to it until day 70.
    let early = ReceiveKeyPair::generate(10 * DAY, 70 * DAY).unwrap();
    let newer = ReceiveKeyPair::generate(11 * DAY, 41 * DAY).unwrap();
    let mut keys = DeviceKeys {
        identity: IdentityKeyPair::generate().unwrap(),
        receive: vec![early, newer],
        tls: CertifiedKey {
            chain_pem: "CHAIN".into(),
            key_pem: Zeroizing::new("KEY".into()),
        },
    };
    keys.save(&store).unwrap();
    assert_eq!(keys.erase_expired(&store, 41 * DAY + 1).unwrap(), 0);
    assert_eq!(keys.erase_expired(&store, 70 * DAY).unwrap(), 0);
    assert_eq!(keys.erase_expired(&store, 70 * DAY + 1).unwrap(), 1);
    assert_eq!(keys.receive.len(), 1);
}

#[test]
fn a_store_without_a_profile_says_to_enrol() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::create(dir.path(), b"p", FAST).unwrap();
    let err = Profile::load(&store).unwrap_err();
    assert!(err.to_string().contains("valise enroll"), "{err}");
}
