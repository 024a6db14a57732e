//! Signed notes, checkpoints and verifier keys from peers and disk. Must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use valise_audit::note::{Checkpoint, Note, NoteVerifier, SignedCheckpoint};
use valise_crypto::identity::IdentityKeyPair;

fn verifier() -> &'static NoteVerifier {
    static V: OnceLock<NoteVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let key = IdentityKeyPair::from_seed(&[4; 32]).expect("seed");
        NoteVerifier::ed25519("valise/mfa.example/paris/audit", *key.public()).expect("verifier")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(note) = Note::parse(text) {
        let _ = verifier().verify(&note);
        let _ = note.to_text();
    }
    let _ = Checkpoint::parse(text);
    let _ = SignedCheckpoint::verify(text, verifier());
    let _ = NoteVerifier::from_vkey(text);
});
