//! C2SP signed notes (`signed-note`) with Ed25519, checkpoints (`tlog-checkpoint`) and Ed25519
//! witness cosignatures (`tlog-cosignature`, `cosignature/v1`).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use valise_crypto::identity::{IdentityKeyPair, IdentityPublicKey};

use crate::merkle::Hash;

/// Signature type byte of plain Ed25519 note signatures.
const TYPE_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 cosignatures.
const TYPE_COSIGNATURE: u8 = 0x04;
/// A note longer than this is refused before parsing.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// A note with more signature lines than this is refused.
pub const MAX_SIGNATURES: usize = 64;
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note, key or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is malformed.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// A key string is malformed.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// A checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
    /// No signature by the expected key is on the note.
    #[error("the note carries no signature by {0}")]
    NotSigned(String),
    /// A signature by the expected key does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// The 4-byte key id: SHA-256(name ‖ "\n" ‖ type ‖ public key)[..4], big-endian.
pub fn key_id(name: &str, signature_type: u8, public: &[u8]) -> u32 {
    let digest = valise_crypto::sha256_parts(&[name.as_bytes(), b"\n", &[signature_type], public]);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::BadKey(
            "key names must be non-empty, without spaces or '+'",
        ));
    }
    Ok(())
}

/// Signs notes: a log signing its checkpoints (type 0x01).
pub struct NoteSigner {
    name: String,
    key: IdentityKeyPair,
    id: u32,
}

impl NoteSigner {
    /// A signer named `name` (for a log: its origin) with an Ed25519 key.
    pub fn new(name: &str, key: IdentityKeyPair) -> Result<Self, NoteError> {
        check_name(name)?;
        let id = key_id(name, TYPE_ED25519, key.public().as_bytes());
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// Reads a Go-style signer key: `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::BadKey("no PRIVATE+KEY+ prefix"))?;
        let (name, id, key) = split_key(rest)?;
        let (&kind, seed) = key.split_first().ok_or(NoteError::BadKey("empty key"))?;
        if kind != TYPE_ED25519 {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        }
        let key =
            IdentityKeyPair::from_seed(seed).map_err(|_| NoteError::BadKey("bad Ed25519 seed"))?;
        let signer = NoteSigner::new(name, key)?;
        if signer.id != id {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(signer)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this signer.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: *self.key.public(),
            id: self.id,
            kind: TYPE_ED25519,
        }
    }

    /// Signs `text` (which must end in a newline) and returns the whole signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let mut sig = self.id.to_be_bytes().to_vec();
        sig.extend_from_slice(&self.key.sign(text.as_bytes()));
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(sig)
        ))
    }
}

/// A public key that verifies note signatures or cosignatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: IdentityPublicKey,
    id: u32,
    kind: u8,
}

impl NoteVerifier {
    /// A verifier for plain Ed25519 note signatures (a log's checkpoints).
    pub fn ed25519(name: &str, key: IdentityPublicKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            id: key_id(name, TYPE_ED25519, key.as_bytes()),
            key,
            kind: TYPE_ED25519,
        })
    }

    /// A verifier for a witness's `cosignature/v1` signatures.
    pub fn cosigner(name: &str, key: IdentityPublicKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            id: key_id(name, TYPE_COSIGNATURE, key.as_bytes()),
            key,
            kind: TYPE_COSIGNATURE,
        })
    }

    /// Reads a verifier key: `<name>+<hex id>+<base64(type ‖ public key)>`, type 0x01 or 0x04.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(vkey)?;
        let (&kind, public) = key.split_first().ok_or(NoteError::BadKey("empty key"))?;
        let public = IdentityPublicKey::from_slice(public)
            .map_err(|_| NoteError::BadKey("not a 32-byte Ed25519 key"))?;
        let verifier = match kind {
            TYPE_ED25519 => NoteVerifier::ed25519(name, public)?,
            TYPE_COSIGNATURE => NoteVerifier::cosigner(name, public)?,
            _ => return Err(NoteError::BadKey("unsupported signature type")),
        };
        if verifier.id != id {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(verifier)
    }

    /// The key as a verifier key string.
    pub fn to_vkey(&self) -> String {
        let mut key = vec![self.kind];
        key.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(key))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies this key's signature on `note`. For a cosigner, returns the cosignature's
    /// timestamp; for a plain signer, 0.
    pub fn verify(&self, note: &Note) -> Result<u64, NoteError> {
        let sig = note
            .signatures
            .iter()
            .find(|s| s.name == self.name && s.key_id == self.id)
            .ok_or_else(|| NoteError::NotSigned(self.name.clone()))?;
        let bad = || NoteError::BadSignature(self.name.clone());
        match self.kind {
            TYPE_COSIGNATURE => {
                let (ts, signature) = sig.bytes.split_at_checked(8).ok_or_else(bad)?;
                let timestamp = u64::from_be_bytes(ts.try_into().map_err(|_| bad())?);
                let message = cosigned_message(timestamp, &note.text);
                self.key
                    .verify(message.as_bytes(), signature)
                    .map_err(|_| bad())?;
                Ok(timestamp)
            }
            _ => {
                self.key
                    .verify(note.text.as_bytes(), &sig.bytes)
                    .map_err(|_| bad())?;
                Ok(0)
            }
        }
    }
}

/// Splits `<name>+<hex id>+<base64>`.
fn split_key(s: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    // Base64 may itself contain '+', so the key is everything after the second one.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::BadKey("expected <name>+<key id>+<key>"));
    };
    check_name(name)?;
    if id.len() != 8 {
        return Err(NoteError::BadKey("the key id must be 8 hex digits"));
    }
    let id = u32::from_str_radix(id, 16)
        .map_err(|_| NoteError::BadKey("the key id must be 8 hex digits"))?;
    let key = B64
        .decode(key)
        .map_err(|_| NoteError::BadKey("the key is not base64"))?;
    Ok((name, id, key))
}

/// Signs `cosignature/v1` statements about other logs' checkpoints (a witness).
pub struct CosignatureSigner {
    name: String,
    key: IdentityKeyPair,
    id: u32,
}

impl CosignatureSigner {
    /// A cosigner named `name` with an Ed25519 key.
    pub fn new(name: &str, key: IdentityKeyPair) -> Result<Self, NoteError> {
        check_name(name)?;
        let id = key_id(name, TYPE_COSIGNATURE, key.public().as_bytes());
        Ok(CosignatureSigner {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// The verifier for this cosigner.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: *self.key.public(),
            id: self.id,
            kind: TYPE_COSIGNATURE,
        }
    }

    /// The cosignature line for a checkpoint note text at `timestamp` (Unix seconds).
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> String {
        let mut sig = self.id.to_be_bytes().to_vec();
        sig.extend_from_slice(&timestamp.to_be_bytes());
        sig.extend_from_slice(
            &self
                .key
                .sign(cosigned_message(timestamp, checkpoint_text).as_bytes()),
        );
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(sig))
    }
}

fn cosigned_message(timestamp: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub key_id: u32,
    /// The signature bytes after the key id.
    pub bytes: Vec<u8>,
}

/// A parsed signed note. Its text is meaningless until a trusted key's signature verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("longer than the 64 KiB limit"));
        }
        if note.chars().any(|c| c.is_ascii_control() && c != '\n') {
            return Err(NoteError::Malformed("contains control characters"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let text = &note[..split + 1];
        let sigs = &note[split + 2..];
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "the last signature line does not end in a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
            let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
                "a signature line does not start with an em dash",
            ))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("a signature line has no signature"))?;
            check_name(name)
                .map_err(|_| NoteError::Malformed("a signature line has a bad key name"))?;
            let bytes = B64
                .decode(b64)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if bytes.len() < 5 {
                return Err(NoteError::Malformed("a signature is too short"));
            }
            let key_id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id,
                bytes: bytes[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signatures"));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note with its signature lines, as it is stored and sent.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", self.text);
        for s in &self.signatures {
            let mut bytes = s.key_id.to_be_bytes().to_vec();
            bytes.extend_from_slice(&s.bytes);
            let _ = writeln!(out, "{SIG_PREFIX}{} {}", s.name, B64.encode(bytes));
        }
        out
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') || text.contains("\n\n") || text.starts_with('\n') {
        return Err(NoteError::Malformed(
            "the text must be non-empty lines, ending in a newline",
        ));
    }
    if text.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(NoteError::Malformed("contains control characters"));
    }
    Ok(())
}

/// A checkpoint body: origin, tree size and root hash (no extension lines are written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin, e.g. `valise/mfa.example/paris/audit`.
    pub origin: String,
    /// The number of entries.
    pub size: u64,
    /// The RFC 9162 root hash at that size.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body (extension lines are accepted and ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text
            .strip_suffix('\n')
            .ok_or(NoteError::BadCheckpoint("no final newline"))?
            .split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::BadCheckpoint("no origin"))?;
        let size = lines
            .next()
            .ok_or(NoteError::BadCheckpoint("no tree size"))?;
        if size.is_empty()
            || (size.len() > 1 && size.starts_with('0'))
            || !size.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(NoteError::BadCheckpoint(
                "the tree size is not a decimal number without leading zeros",
            ));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::BadCheckpoint("the tree size is too large"))?;
        let root = lines
            .next()
            .ok_or(NoteError::BadCheckpoint("no root hash"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::BadCheckpoint(
                "the root hash is not 32 bytes of base64",
            ))?;
        if lines.any(str::is_empty) {
            return Err(NoteError::BadCheckpoint("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// A checkpoint together with the signed note that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The note: checkpoint text, log signature, and any cosignatures.
    pub note: Note,
}

impl SignedCheckpoint {
    /// Parses a checkpoint note and verifies the log's signature on it.
    pub fn verify(note_text: &str, log: &NoteVerifier) -> Result<Self, NoteError> {
        let note = Note::parse(note_text)?;
        log.verify(&note)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        Ok(SignedCheckpoint { checkpoint, note })
    }
}
