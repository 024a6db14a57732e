//! Attachment ciphertext from a relay: decrypt with a fixed key into a sink.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valise_crypto::attachment::{self, AttachmentKey};

fuzz_target!(|data: &[u8]| {
    if let Some(key) = AttachmentKey::from_slice(&[7; 32]) {
        let _ = attachment::decrypt(&key, b"fuzz", data, std::io::sink());
    }
});
