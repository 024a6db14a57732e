//! A proof bundle handed to an auditor. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valise_audit::VerifyKeys;
use valise_audit::bundle::verify_bundle;
use valise_audit::note::NoteVerifier;
use valise_crypto::identity::IdentityKeyPair;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(key) = IdentityKeyPair::from_seed(&[4; 32]) else { return };
    let Ok(log) = NoteVerifier::ed25519("valise/mfa.example/paris/audit", *key.public()) else { return };
    let _ = verify_bundle(text, &VerifyKeys { log, witnesses: vec![] });
});
