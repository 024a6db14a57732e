//! Directory input from the network and keystores: receive keys (protobuf and stored bytes),
//! device records and enrolment certificates, checked as a client would.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use valise_crypto::directory::{Enroller, verify_device_record};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_proto::v1;

struct Keys {
    owner: IdentityKeyPair,
    root: IdentityKeyPair,
    enroller: Enroller,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let root = IdentityKeyPair::from_seed(&[1; 32]).expect("seed");
        let post = IdentityKeyPair::from_seed(&[2; 32]).expect("seed");
        let enroller = Enroller { ministry: "mfa.example".into(), post: "paris".into(), key: *post.public(), valid_from_ms: 0, valid_until_ms: u64::MAX };
        Keys { owner: IdentityKeyPair::from_seed(&[3; 32]).expect("seed"), root, enroller }
    })
}

fuzz_target!(|data: &[u8]| {
    let k = keys();
    if let Ok(record) = v1::ReceiveKey::decode(data) {
        let _ = VerifiedReceiveKey::verify(&record, k.owner.public());
    }
    let _ = ReceiveKeyPair::from_bytes(data);
    if let Ok(record) = v1::DeviceRecord::decode(data) {
        let _ = verify_device_record(&record, &k.enroller);
    }
    if let Ok(cert) = v1::EnrolmentCertificate::decode(data) {
        let _ = Enroller::verify(&cert, k.root.public(), "mfa.example");
    }
});
