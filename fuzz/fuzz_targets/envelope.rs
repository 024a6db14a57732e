//! Envelope bytes from the network: decode, then open as a recipient. Must never panic.
//!
//! An input starting with 0 is raw envelope bytes. Any other input is a list of
//! (offset, xor) edits applied to a valid cable for this recipient, so the fuzzer also reaches
//! the layers behind the signature and key-wrap checks.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use valise_crypto::envelope::{decode_envelope, new_cable_id, open, seal};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_proto::v1;

struct Fixture {
    sender: IdentityKeyPair,
    me: IdentityKeyPair,
    keys: Vec<ReceiveKeyPair>,
    valid: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let sender = IdentityKeyPair::from_seed(&[1; 32]).expect("seed");
        let me = IdentityKeyPair::from_seed(&[2; 32]).expect("seed");
        let key = ReceiveKeyPair::generate(0, u64::MAX).expect("key");
        let published = VerifiedReceiveKey::verify(&key.to_signed_record(&me).expect("sign"), me.public()).expect("verify");
        let header = v1::RoutingHeader {
            cable_id: new_cable_id().expect("id").to_vec(),
            from: "alice@paris".into(),
            action_addressees: vec!["bob@paris".into()],
            classification: v1::Classification::Secret as i32,
            precedence: v1::Precedence::Flash as i32,
            niact: true,
            created_at_ms: 1,
            ..Default::default()
        };
        let body = v1::CableBody { subject: "s".into(), text: "t".into(), ..Default::default() };
        let valid = seal(&sender, header, &body, &[published]).expect("seal").encode_to_vec();
        Fixture { sender, me, keys: vec![key], valid }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let bytes = match data.split_first() {
        Some((0, raw)) => raw.to_vec(),
        _ => {
            let mut edited = f.valid.clone();
            for edit in data.chunks_exact(3) {
                let at = usize::from(u16::from_be_bytes([edit[0], edit[1]])) % edited.len();
                edited[at] ^= edit[2];
            }
            edited
        }
    };
    if let Ok(envelope) = decode_envelope(&bytes) {
        let _ = open(&envelope, f.sender.public(), &f.me.device_id(), &f.keys);
    }
});
