//! Receive keys from the directory (protobuf) and from a keystore (stored bytes).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_proto::v1;

fn owner() -> &'static IdentityKeyPair {
    static O: OnceLock<IdentityKeyPair> = OnceLock::new();
    O.get_or_init(|| IdentityKeyPair::from_seed(&[3; 32]).expect("seed"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = v1::ReceiveKey::decode(data) {
        let _ = VerifiedReceiveKey::verify(&record, owner().public());
    }
    let _ = ReceiveKeyPair::from_bytes(data);
});
