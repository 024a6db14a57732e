//! Sealing at rest: what someone holding a seized disk, or a damaged one, observes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_crypto::at_rest::{AtRestError, KdfParams, SealedStorageKey, StorageKey};

/// Small parameters keep the tests fast; the default is checked separately.
const FAST: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn the_right_passphrase_recovers_a_working_key() {
    let key = StorageKey::generate().unwrap();
    let sealed = key.seal_with_passphrase(b"correct horse", FAST).unwrap();
    let from_disk = SealedStorageKey::from_bytes(sealed.as_bytes()).unwrap();
    assert_eq!(from_disk.params(), FAST);
    let recovered = from_disk.unseal(b"correct horse").unwrap();
    let record = key
        .record_sealer()
        .unwrap()
        .seal("inbox", b"k1", b"cable text")
        .unwrap();
    assert_eq!(
        recovered
            .record_sealer()
            .unwrap()
            .open("inbox", b"k1", &record)
            .unwrap()
            .as_slice(),
        b"cable text"
    );
}

#[test]
fn a_wrong_passphrase_is_refused() {
    let sealed = StorageKey::generate()
        .unwrap()
        .seal_with_passphrase(b"correct horse", FAST)
        .unwrap();
    assert_eq!(
        sealed.unseal(b"correct horsf").err(),
        Some(AtRestError::WrongPassphrase)
    );
    assert_eq!(sealed.unseal(b"").err(), Some(AtRestError::WrongPassphrase));
}

#[test]
fn weakened_parameters_in_the_file_are_caught() {
    let sealed = StorageKey::generate()
        .unwrap()
        .seal_with_passphrase(b"pw", FAST)
        .unwrap();
    let mut bytes = sealed.as_bytes().to_vec();
    bytes[12] = 2; // iterations 1 -> 2: the parameters are authenticated
    let edited = SealedStorageKey::from_bytes(&bytes).unwrap();
    assert_eq!(
        edited.unseal(b"pw").err(),
        Some(AtRestError::WrongPassphrase)
    );
}

#[test]
fn every_byte_of_the_key_file_is_protected() {
    let sealed = StorageKey::generate()
        .unwrap()
        .seal_with_passphrase(b"pw", FAST)
        .unwrap();
    for i in 0..sealed.as_bytes().len() {
        let mut bytes = sealed.as_bytes().to_vec();
        bytes[i] ^= 0x01;
        let result = SealedStorageKey::from_bytes(&bytes).and_then(|s| s.unseal(b"pw"));
        assert!(result.is_err(), "byte {i} changed unnoticed");
    }
}

#[test]
fn damaged_or_hostile_key_files_get_a_clear_error() {
    assert!(matches!(
        SealedStorageKey::from_bytes(b"not a key"),
        Err(AtRestError::BadKeyFile(_))
    ));
    let sealed = StorageKey::generate()
        .unwrap()
        .seal_with_passphrase(b"pw", FAST)
        .unwrap();
    assert!(matches!(
        SealedStorageKey::from_bytes(&sealed.as_bytes()[..50]),
        Err(AtRestError::BadKeyFile(_))
    ));
    // A file asking for 16 GiB of memory is refused before any is allocated.
    let mut bytes = sealed.as_bytes().to_vec();
    bytes[5..9].copy_from_slice(&(16u32 * 1024 * 1024).to_be_bytes());
    let err = SealedStorageKey::from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, AtRestError::BadParams(_)), "{err}");
    assert!(
        StorageKey::generate()
            .unwrap()
            .seal_with_passphrase(
                b"pw",
                KdfParams {
                    memory_kib: 1,
                    iterations: 1,
                    parallelism: 1
                }
            )
            .is_err()
    );
}

#[test]
fn the_default_parameters_are_accepted() {
    assert_eq!(KdfParams::default().validate(), Ok(()));
    assert!(KdfParams::default().memory_kib >= 64 * 1024);
}

#[test]
fn a_record_moved_to_another_place_no_longer_opens() {
    let sealer = StorageKey::generate().unwrap().record_sealer().unwrap();
    let record = sealer.seal("inbox", b"cable-1", b"secret text").unwrap();
    assert!(matches!(
        sealer.open("inbox", b"cable-2", &record),
        Err(AtRestError::RecordTampered { .. })
    ));
    assert!(matches!(
        sealer.open("outbox", b"cable-1", &record),
        Err(AtRestError::RecordTampered { .. })
    ));
    let mut flipped = record.clone();
    flipped[20] ^= 1;
    assert!(matches!(
        sealer.open("inbox", b"cable-1", &flipped),
        Err(AtRestError::RecordTampered { .. })
    ));
    assert!(matches!(
        sealer.open("inbox", b"cable-1", &record[..10]),
        Err(AtRestError::BadRecord { .. })
    ));
}

#[test]
fn a_record_from_another_store_does_not_open() {
    let ours = StorageKey::generate().unwrap().record_sealer().unwrap();
    let theirs = StorageKey::generate().unwrap().record_sealer().unwrap();
    let record = theirs.seal("inbox", b"k", b"v").unwrap();
    assert!(ours.open("inbox", b"k", &record).is_err());
}

#[test]
fn records_never_contain_their_plaintext() {
    let sealer = StorageKey::generate().unwrap().record_sealer().unwrap();
    let record = sealer
        .seal("inbox", b"k", b"MEETING WITH THE MINISTER")
        .unwrap();
    assert!(!record.windows(7).any(|w| w == b"MEETING"));
}

#[test]
fn a_raw_node_key_file_round_trips_and_a_wrong_length_is_refused() {
    let key = StorageKey::generate().unwrap();
    let back = StorageKey::from_bytes(&key.to_bytes()[..]).unwrap();
    let record = key
        .record_sealer()
        .unwrap()
        .seal("envelope", b"id", b"routing header")
        .unwrap();
    assert_eq!(
        back.record_sealer()
            .unwrap()
            .open("envelope", b"id", &record)
            .unwrap()
            .as_slice(),
        b"routing header"
    );
    for len in [0, 31, 33] {
        assert!(matches!(
            StorageKey::from_bytes(&vec![7u8; len]),
            Err(AtRestError::BadKeyFile(_))
        ));
    }
}
