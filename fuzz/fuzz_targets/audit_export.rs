//! An audit export handed to an auditor. Must never panic, whatever the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valise_audit::VerifyKeys;
use valise_audit::export::verify_export;
use valise_audit::note::NoteVerifier;
use valise_crypto::identity::IdentityKeyPair;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = IdentityKeyPair::from_seed(&[4; 32]) else { return };
    let Ok(log) = NoteVerifier::ed25519("valise/mfa.example/paris/audit", *key.public()) else { return };
    let _ = verify_export(data, &VerifyKeys { log, witnesses: vec![] }, None);
});
