//! Secrets in memory: every type that holds key material promises, through `ZeroizeOnDrop`,
//! to wipe it when dropped, and `Debug` never shows it.
//!
//! Reading freed memory to watch the wipe happen would take `unsafe`, which the workspace
//! forbids; so the promise is checked where callers rely on it, on the types.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_crypto::at_rest::StorageKey;
use valise_crypto::attachment::AttachmentKey;
use valise_crypto::envelope::body::ContentKey;
use valise_crypto::hpke;
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_crypto::xwing::{self, XWingSecretKey};
use zeroize::ZeroizeOnDrop;

fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

#[test]
fn every_secret_is_wiped_on_drop() {
    let identity = IdentityKeyPair::generate().unwrap();
    // ring's expanded Ed25519 key inside is not wiped (docs/threat-model.md); the seed is.
    wiped_on_drop(identity.seed());
    let kem = XWingSecretKey::generate().unwrap();
    wiped_on_drop(&kem);
    wiped_on_drop(kem.seed());
    let (_, shared): (_, xwing::SharedSecret) = kem.public_key().encapsulate().unwrap();
    wiped_on_drop(&shared);
    let receive = ReceiveKeyPair::generate(0, 1).unwrap();
    wiped_on_drop(&receive);
    wiped_on_drop(&receive.to_bytes());
    wiped_on_drop(&ContentKey::generate().unwrap());
    wiped_on_drop(&AttachmentKey::generate().unwrap());
    let storage = StorageKey::generate().unwrap();
    wiped_on_drop(&storage);
    wiped_on_drop(&storage.to_bytes());
    let sealer = storage.record_sealer().unwrap();
    let record = sealer.seal("inbox", b"k", b"cable").unwrap();
    wiped_on_drop(&sealer.open("inbox", b"k", &record).unwrap());
    let (enc, mut sender) = hpke::setup_sender(&kem.public_key(), b"info").unwrap();
    let mut receiver = hpke::setup_receiver(&kem, &enc, b"info").unwrap();
    let ct = sender.seal(b"", b"content key").unwrap();
    wiped_on_drop(&receiver.open(b"", &ct).unwrap());
    wiped_on_drop(&receiver.export(b"ctx", 32).unwrap());
}

#[test]
fn debug_output_never_shows_a_secret() {
    let receive = ReceiveKeyPair::generate(0, 1).unwrap();
    let storage = StorageKey::generate().unwrap();
    let identity = IdentityKeyPair::generate().unwrap();
    for (shown, secret) in [
        (format!("{receive:?}"), receive.to_bytes()[1..33].to_vec()),
        (format!("{storage:?}"), storage.to_bytes().to_vec()),
        (format!("{identity:?}"), identity.seed().to_vec()),
    ] {
        assert!(!shown.contains(&hex::encode(&secret)), "{shown}");
        assert!(!shown.contains(&format!("{:?}", &secret[..4])), "{shown}");
    }
}
