//! The local store as a user, a thief with the disk, or a damaged disk would observe it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_client::store::{LocalStore, STORE_DIR, StoreError, Table, wipe};
use valise_crypto::at_rest::KdfParams;

const FAST: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(all_bytes(&path));
        } else {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

#[test]
fn records_survive_a_reopen_and_are_sealed_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalStore::create(dir.path(), b"pass phrase", FAST).unwrap();
        store
            .put(
                Table::Inbox,
                b"cable-1",
                b"SUBJECT: EVACUATION PLAN NAIROBI",
            )
            .unwrap();
        store.put(Table::Outbox, b"cable-2", b"queued").unwrap();
        store.delete(Table::Outbox, b"cable-2").unwrap();
    }
    assert!(
        !all_bytes(dir.path())
            .windows(10)
            .any(|w| w == b"EVACUATION"),
        "a subject is readable on disk"
    );
    let store = LocalStore::unlock(dir.path(), b"pass phrase").unwrap();
    assert_eq!(
        store
            .get(Table::Inbox, b"cable-1")
            .unwrap()
            .unwrap()
            .as_slice(),
        b"SUBJECT: EVACUATION PLAN NAIROBI"
    );
    assert!(store.get(Table::Outbox, b"cable-2").unwrap().is_none());
    assert_eq!(store.scan(Table::Inbox).unwrap().len(), 1);
}

#[test]
fn a_wrong_passphrase_or_a_missing_store_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalStore::unlock(dir.path(), b"x").err().unwrap();
    assert!(matches!(err, StoreError::NotEnrolled(_)));
    assert!(err.to_string().contains("valise enroll"), "{err}");
    drop(LocalStore::create(dir.path(), b"right", FAST).unwrap());
    let err = LocalStore::unlock(dir.path(), b"wrong").err().unwrap();
    assert!(matches!(err, StoreError::WrongPassphrase(_)), "{err}");
    let err = LocalStore::create(dir.path(), b"right", FAST)
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
}

#[test]
fn a_record_moved_between_tables_is_named_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalStore::create(dir.path(), b"p", FAST).unwrap();
        store.put(Table::Inbox, b"k", b"value").unwrap();
    }
    // Copy the sealed bytes into another table, as an attacker with the disk could.
    {
        // sled frees its lock from a background thread after a close: retry briefly.
        let db = (0..50)
            .find_map(|_| {
                sled::open(dir.path().join(STORE_DIR))
                    .map_err(|_| std::thread::sleep(std::time::Duration::from_millis(20)))
                    .ok()
            })
            .unwrap();
        let sealed = db
            .open_tree("client/inbox")
            .unwrap()
            .get(b"k")
            .unwrap()
            .unwrap();
        db.open_tree("client/sent")
            .unwrap()
            .insert(b"k", sealed)
            .unwrap();
        db.flush().unwrap();
    }
    let store = LocalStore::unlock(dir.path(), b"p").unwrap();
    let err = store.get(Table::Sent, b"k").unwrap_err();
    assert!(
        matches!(&err, StoreError::Damaged { table: "client/sent", key } if key == "6b"),
        "{err}"
    );
    assert!(err.to_string().contains("tampered"), "{err}");
    assert_eq!(
        store.get(Table::Inbox, b"k").unwrap().unwrap().as_slice(),
        b"value"
    );
}

#[test]
fn wiping_erases_the_key_first_and_then_the_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalStore::create(dir.path(), b"p", FAST).unwrap();
        store.put(Table::Keys, b"identity", b"secret seed").unwrap();
    }
    assert!(wipe(dir.path()).unwrap());
    assert!(!LocalStore::exists(dir.path()));
    assert!(!dir.path().join(STORE_DIR).exists());
    assert!(matches!(
        LocalStore::unlock(dir.path(), b"p").err().unwrap(),
        StoreError::NotEnrolled(_)
    ));
    assert!(!wipe(dir.path()).unwrap(), "nothing left to erase");
}
