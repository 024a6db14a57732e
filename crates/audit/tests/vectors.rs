//! Known-answer tests: RFC 9162 hashing and proofs (transparency-dev vectors, corrupted ones
//! included) and C2SP signed notes (Go's sumdb/note vector).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use valise_audit::merkle::{self, CompactRange, verify_consistency, verify_inclusion};
use valise_audit::note::{Note, NoteSigner, NoteVerifier};

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn b64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

/// Every JSON file under a vector folder, recursively.
fn vector_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(vector_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[derive(serde::Deserialize)]
struct Tree {
    leaf_inputs_hex: Vec<String>,
    root_hashes_by_size_hex: Vec<String>,
}

#[test]
fn roots_for_every_size_match() {
    let tree: Tree =
        serde_json::from_str(&std::fs::read_to_string(data("merkle/tree.json")).unwrap()).unwrap();
    let mut range = CompactRange::new();
    assert_eq!(
        hex::encode(range.root()),
        tree.root_hashes_by_size_hex[0],
        "size 0"
    );
    for (i, leaf) in tree.leaf_inputs_hex.iter().enumerate() {
        range.push(merkle::leaf_hash(&hex::decode(leaf).unwrap()));
        assert_eq!(
            hex::encode(range.root()),
            tree.root_hashes_by_size_hex[i + 1],
            "size {}",
            i + 1
        );
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(default)]
    want_err: bool,
}

#[test]
fn every_inclusion_vector_verifies_or_fails_as_expected() {
    let files = vector_files(&data("merkle/inclusion"));
    assert!(
        files.len() >= 50,
        "only {} inclusion vectors found",
        files.len()
    );
    let (mut good, mut bad) = (0, 0);
    for file in files {
        let v: Inclusion = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = v.proof.unwrap_or_default().iter().map(|p| b64(p)).collect();
        let result = verify_inclusion(
            v.leaf_idx,
            v.tree_size,
            &b64(&v.leaf_hash),
            &proof,
            &b64(&v.root),
        );
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{}: {} gave {result:?}",
            file.display(),
            v.desc
        );
        if v.want_err { bad += 1 } else { good += 1 }
    }
    assert!(good > 0 && bad > 0);
}

#[derive(serde::Deserialize)]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(default, rename = "wantErr")]
    want_err: bool,
}

#[test]
fn every_consistency_vector_verifies_or_fails_as_expected() {
    let files = vector_files(&data("merkle/consistency"));
    assert!(
        files.len() >= 50,
        "only {} consistency vectors found",
        files.len()
    );
    let (mut good, mut bad) = (0, 0);
    for file in files {
        let v: Consistency =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = v.proof.unwrap_or_default().iter().map(|p| b64(p)).collect();
        let result = verify_consistency(v.size1, v.size2, &proof, &b64(&v.root1), &b64(&v.root2));
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{}: {} gave {result:?}",
            file.display(),
            v.desc
        );
        if v.want_err { bad += 1 } else { good += 1 }
    }
    assert!(good > 0 && bad > 0);
}

#[derive(serde::Deserialize)]
struct SignedNoteVector {
    verifier_key: String,
    signer_key: String,
    note_text: String,
    signed_note: String,
}

fn note_vector() -> SignedNoteVector {
    serde_json::from_str(&std::fs::read_to_string(data("signed-note.json")).unwrap()).unwrap()
}

#[test]
fn signing_reproduces_the_signed_note_vector_exactly() {
    let v = note_vector();
    let signer = NoteSigner::from_skey(&v.signer_key).unwrap();
    assert_eq!(signer.sign(&v.note_text).unwrap(), v.signed_note);
    assert_eq!(
        signer.verifier().to_vkey(),
        v.verifier_key,
        "key id and verifier key encoding"
    );
}

#[test]
fn the_vector_note_verifies_and_a_changed_one_does_not() {
    let v = note_vector();
    let verifier = NoteVerifier::from_vkey(&v.verifier_key).unwrap();
    let note = Note::parse(&v.signed_note).unwrap();
    assert_eq!(note.text, v.note_text);
    verifier.verify(&note).unwrap();
    assert_eq!(note.to_text(), v.signed_note);

    let altered = v.signed_note.replace("cryptography", "cryptografy");
    assert!(verifier.verify(&Note::parse(&altered).unwrap()).is_err());
    // A key with the right name but another id is ignored: the note counts as unsigned.
    let other = NoteSigner::new(
        "PeterNeumann",
        valise_crypto::identity::IdentityKeyPair::generate().unwrap(),
    )
    .unwrap();
    assert!(other.verifier().verify(&note).is_err());
}

#[test]
fn malformed_keys_and_notes_are_refused_with_a_reason() {
    let v = note_vector();
    for bad in [
        "",
        "PeterNeumann",
        "PeterNeumann+zzzzzzzz+ARpc",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ] {
        assert!(NoteVerifier::from_vkey(bad).is_err(), "{bad:?}");
    }
    // The right key with the wrong id.
    let wrong_id = v.verifier_key.replace("c74f20a3", "c74f20a4");
    assert!(NoteVerifier::from_vkey(&wrong_id).is_err());
    for bad in [
        "no signatures\n",
        "text\n\n",
        "text\n\n— name notbase64!\n",
        "te\u{7}xt\n\n— a AAAAAAAA\n",
    ] {
        assert!(Note::parse(bad).is_err(), "{bad:?}");
    }
}
