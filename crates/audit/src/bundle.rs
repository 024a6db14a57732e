//! Proof bundles: everything an auditor needs to check, offline and alone, that one entry is in
//! a node's log. In the spirit of C2SP tlog-proof:
//!
//! ```text
//! valise-audit-proof/v1
//! index <entry index>
//! entry <base64 of the entry bytes>
//! <base64 inclusion proof hash, leaf to root, one per line>
//!
//! <the checkpoint's signed note, with any cosignatures>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;
use valise_proto::v1::AuditEvent;

use crate::log::{AuditLog, LogError};
use crate::merkle::{self, Hash};
use crate::note::{Checkpoint, SignedCheckpoint};
use crate::verify::VerifyKeys;

const HEADER: &str = "valise-audit-proof/v1";

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle is not in the expected format.
    #[error("malformed proof bundle: {0}")]
    Malformed(String),
    /// The checkpoint is not signed by the log.
    #[error("the bundle's checkpoint is not validly signed by the log: {0}")]
    BadCheckpoint(String),
    /// A trusted witness's cosignature is missing or does not verify.
    #[error("the cosignature of witness {0} is missing or does not verify")]
    BadCosignature(String),
    /// The inclusion proof does not verify.
    #[error("the entry is not included in the checkpoint: {0}")]
    NotIncluded(String),
}

/// A bundle that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    /// The entry's index.
    pub index: u64,
    /// The entry.
    pub event: AuditEvent,
    /// The checkpoint it is included in.
    pub checkpoint: Checkpoint,
    /// The witnesses whose cosignatures verified.
    pub cosigners: Vec<String>,
}

/// Builds the bundle for entry `index`, against the latest checkpoint (which must cover it).
pub fn prove(log: &AuditLog, index: u64) -> Result<String, LogError> {
    if index >= log.size() {
        return Err(LogError::OutOfRange {
            what: format!("entry {index} (entries are numbered from 0)"),
            size: log.size(),
        });
    }
    // The entry exists but no checkpoint covers it yet: the next one, within a second, will.
    let latest = log
        .latest_checkpoint()
        .filter(|c| c.checkpoint.size > index)
        .ok_or_else(|| LogError::OutOfRange {
            what: format!(
                "entry {index} in a signed checkpoint (it is newer than the latest; try again \
                 in a second)"
            ),
            size: log.latest_checkpoint().map_or(0, |c| c.checkpoint.size),
        })?;
    let size = latest.checkpoint.size;
    // The stored note carries any cosignatures received since signing.
    let note = log
        .checkpoint_notes()?
        .into_iter()
        .find(|(s, _)| *s == size)
        .map_or_else(|| latest.note.to_text(), |(_, n)| n);
    let mut out = format!(
        "{HEADER}\nindex {index}\nentry {}\n",
        B64.encode(log.entry(index)?)
    );
    for hash in log.inclusion_proof(index, size)? {
        out.push_str(&B64.encode(hash));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&note);
    Ok(out)
}

/// Verifies a bundle with the log's key. Every witness in `keys.witnesses` must have cosigned.
pub fn verify_bundle(bundle: &str, keys: &VerifyKeys) -> Result<VerifiedBundle, BundleError> {
    let malformed = |m: &str| BundleError::Malformed(m.to_owned());
    let (head, note) = bundle
        .split_once("\n\n")
        .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
    let mut lines = head.lines();
    if lines.next() != Some(HEADER) {
        return Err(malformed("it does not start with valise-audit-proof/v1"));
    }
    let index: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("index "))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| malformed("no `index N` line"))?;
    let entry = lines
        .next()
        .and_then(|l| l.strip_prefix("entry "))
        .and_then(|b| B64.decode(b).ok())
        .ok_or_else(|| malformed("no `entry <base64>` line"))?;
    let proof = lines
        .map(|l| B64.decode(l).ok().and_then(|h| Hash::try_from(h).ok()))
        .collect::<Option<Vec<Hash>>>()
        .ok_or_else(|| malformed("a proof line is not a base64 hash"))?;

    let signed = SignedCheckpoint::verify(note, &keys.log)
        .map_err(|e| BundleError::BadCheckpoint(e.to_string()))?;
    let mut cosigners = Vec::new();
    for witness in &keys.witnesses {
        witness
            .verify(&signed.note)
            .map_err(|_| BundleError::BadCosignature(witness.name().to_owned()))?;
        cosigners.push(witness.name().to_owned());
    }
    let checkpoint = signed.checkpoint;
    merkle::verify_inclusion(
        index,
        checkpoint.size,
        &merkle::leaf_hash(&entry),
        &proof,
        &checkpoint.root,
    )
    .map_err(|e| BundleError::NotIncluded(e.to_string()))?;
    let event = AuditEvent::decode(entry.as_slice())
        .map_err(|_| malformed("the entry is not an audit event"))?;
    if event.index != index {
        return Err(BundleError::NotIncluded(format!(
            "the entry records index {}, not {index}",
            event.index
        )));
    }
    Ok(VerifiedBundle {
        index,
        event,
        checkpoint,
        cosigners,
    })
}
