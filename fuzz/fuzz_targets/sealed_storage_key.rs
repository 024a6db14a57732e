//! A sealed storage key file from disk: parse, then unseal when the parameters are cheap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valise_crypto::at_rest::SealedStorageKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(sealed) = SealedStorageKey::from_bytes(data) {
        let p = sealed.params();
        // Parsing must be safe for any input; only unseal where Argon2 costs little.
        if p.memory_kib <= 64 && p.iterations <= 2 {
            let _ = sealed.unseal(b"passphrase");
        }
    }
});
