//! Envelope bytes from the network: decode, then open as a recipient. Must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use valise_crypto::envelope::{decode_envelope, open};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::ReceiveKeyPair;

struct Fixture {
    sender: IdentityKeyPair,
    me: IdentityKeyPair,
    keys: Vec<ReceiveKeyPair>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        sender: IdentityKeyPair::from_seed(&[1; 32]).expect("seed"),
        me: IdentityKeyPair::from_seed(&[2; 32]).expect("seed"),
        keys: vec![ReceiveKeyPair::generate(0, u64::MAX).expect("key")],
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(envelope) = decode_envelope(data) {
        let _ = open(&envelope, f.sender.public(), &f.me.device_id(), &f.keys);
    }
});
