//! A witness: it cosigns other logs' checkpoints once it has checked that each one extends the
//! last it cosigned (C2SP tlog-witness semantics), and keeps evidence when a log contradicts
//! itself. No clock and no network: time is an argument, storage is a [`Store`].

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use prost::Message;
use valise_proto::v1::WitnessEvidence;

use crate::merkle::{self, Hash};
use crate::note::{Checkpoint, CosignatureSigner, Note, NoteVerifier};
use valise_store::{Store, StoreError, Write};

/// Why a witness refused a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The witness does not follow this log.
    #[error("unknown log {0:?}: this witness is not configured to follow it")]
    UnknownLog(String),
    /// The note or checkpoint is malformed.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The log's signature does not verify.
    #[error("the checkpoint of {0:?} is not validly signed by that log")]
    BadSignature(String),
    /// The log's idea of the last cosigned size is out of date; it should retry from
    /// `witness_size`.
    #[error(
        "stale size: the log sent a proof from size {claimed}, but this witness last cosigned size {witness_size}; retry from {witness_size}"
    )]
    StaleSize {
        /// The size the witness last cosigned.
        witness_size: u64,
        /// The old size the log claimed.
        claimed: u64,
    },
    /// A smaller checkpoint than one already cosigned: the log was rolled back. Evidence kept.
    #[error(
        "refused: {origin:?} presented size {new_size} after this witness cosigned size {witness_size}; the log was rolled back (evidence kept)"
    )]
    Rollback {
        /// The log.
        origin: String,
        /// The size the witness last cosigned.
        witness_size: u64,
        /// The smaller size presented.
        new_size: u64,
    },
    /// A different root for a size already cosigned: the log forked. Evidence kept.
    #[error(
        "refused: {origin:?} signed two different trees of size {size}; the log forked (evidence kept)"
    )]
    Fork {
        /// The log.
        origin: String,
        /// The size with two roots.
        size: u64,
    },
    /// The consistency proof does not verify. Evidence kept: the log signed a tree that
    /// cannot be shown to extend the one cosigned.
    #[error(
        "refused: the consistency proof of {origin:?} from {old} to {new} does not verify (evidence kept)"
    )]
    BadProof {
        /// The log.
        origin: String,
        /// The size the witness last cosigned.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// The witness's storage failed; nothing was cosigned.
    #[error("witness storage failed: {0}")]
    Store(String),
}

impl From<StoreError> for WitnessError {
    fn from(e: StoreError) -> Self {
        WitnessError::Store(e.to_string())
    }
}

/// The last checkpoint cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// Its size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// Its note, as the log signed it.
    pub note: String,
}

/// A witness over a set of logs.
pub struct Witness<S: Store> {
    store: S,
    signer: CosignatureSigner,
    logs: BTreeMap<String, NoteVerifier>,
    /// One checkpoint at a time: check-then-persist must not interleave.
    lock: Mutex<()>,
}

impl<S: Store> Witness<S> {
    /// A witness signing with `signer`, following `logs` (each named by its origin).
    pub fn new(
        store: S,
        signer: CosignatureSigner,
        logs: impl IntoIterator<Item = NoteVerifier>,
    ) -> Self {
        let logs = logs.into_iter().map(|v| (v.name().to_owned(), v)).collect();
        Witness {
            store,
            signer,
            logs,
            lock: Mutex::new(()),
        }
    }

    /// The key that verifies this witness's cosignatures.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The last checkpoint cosigned for `origin`.
    pub fn cosigned(&self, origin: &str) -> Result<Option<Cosigned>, WitnessError> {
        let Some(v) = self.store.get(&state_key(origin))? else {
            return Ok(None);
        };
        let corrupt = || WitnessError::Store(format!("the state of {origin:?} is damaged"));
        let (size, rest) = v.split_at_checked(8).ok_or_else(corrupt)?;
        let (root, note) = rest.split_at_checked(32).ok_or_else(corrupt)?;
        Ok(Some(Cosigned {
            size: u64::from_be_bytes(size.try_into().map_err(|_| corrupt())?),
            root: root.try_into().map_err(|_| corrupt())?,
            note: String::from_utf8(note.to_vec()).map_err(|_| corrupt())?,
        }))
    }

    /// The evidence kept for `origin`, oldest first.
    pub fn evidence(&self, origin: &str) -> Result<Vec<WitnessEvidence>, WitnessError> {
        self.store
            .scan(&evidence_prefix(origin))
            .map(|r| {
                let (_, v) = r?;
                WitnessEvidence::decode(v.as_slice())
                    .map_err(|_| WitnessError::Store("evidence record damaged".into()))
            })
            .collect()
    }

    /// tlog-witness `add-checkpoint`: checks that `note` (a checkpoint signed by its log)
    /// extends the last one cosigned, from `old_size`, with `proof`; persists it; returns the
    /// cosignature line, timestamped `now` (Unix seconds).
    pub fn add_checkpoint(
        &self,
        old_size: u64,
        proof: &[Hash],
        note: &str,
        now: u64,
    ) -> Result<String, WitnessError> {
        let parsed = Note::parse(note).map_err(|e| WitnessError::Malformed(e.to_string()))?;
        let checkpoint =
            Checkpoint::parse(&parsed.text).map_err(|e| WitnessError::Malformed(e.to_string()))?;
        let origin = checkpoint.origin.clone();
        let log = self
            .logs
            .get(&origin)
            .ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
        log.verify(&parsed)
            .map_err(|_| WitnessError::BadSignature(origin.clone()))?;

        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = self.cosigned(&origin)?;
        let (have_size, have_root) = previous
            .as_ref()
            .map_or((0, merkle::empty_root()), |p| (p.size, p.root));
        if let Some(prev) = &previous {
            if checkpoint.size < prev.size {
                self.keep_evidence(&origin, "rollback", prev, note, now)?;
                return Err(WitnessError::Rollback {
                    origin,
                    witness_size: prev.size,
                    new_size: checkpoint.size,
                });
            }
            if checkpoint.size == prev.size {
                if checkpoint.root != prev.root {
                    self.keep_evidence(&origin, "fork", prev, note, now)?;
                    return Err(WitnessError::Fork {
                        origin,
                        size: checkpoint.size,
                    });
                }
                return Ok(self.signer.cosign(&parsed.text, now));
            }
        }
        if old_size != have_size {
            return Err(WitnessError::StaleSize {
                witness_size: have_size,
                claimed: old_size,
            });
        }
        if let Some(prev) = &previous
            && prev.size > 0
            && merkle::verify_consistency(
                have_size,
                checkpoint.size,
                proof,
                &have_root,
                &checkpoint.root,
            )
            .is_err()
        {
            self.keep_evidence(&origin, "inconsistent", prev, note, now)?;
            return Err(WitnessError::BadProof {
                origin,
                old: have_size,
                new: checkpoint.size,
            });
        }

        let mut state = checkpoint.size.to_be_bytes().to_vec();
        state.extend_from_slice(&checkpoint.root);
        state.extend_from_slice(note.as_bytes());
        self.store
            .apply(vec![Write::Put(state_key(&origin), state)])?;
        self.store.sync()?;
        Ok(self.signer.cosign(&parsed.text, now))
    }

    fn keep_evidence(
        &self,
        origin: &str,
        reason: &str,
        cosigned: &Cosigned,
        conflicting: &str,
        now: u64,
    ) -> Result<(), WitnessError> {
        let seq = self.store.scan(&evidence_prefix(origin)).count() as u64;
        let record = WitnessEvidence {
            origin: origin.to_owned(),
            reason: reason.to_owned(),
            cosigned_note: cosigned.note.clone(),
            conflicting_note: conflicting.to_owned(),
            observed_at: now,
        };
        let key = [evidence_prefix(origin), seq.to_be_bytes().to_vec()].concat();
        self.store
            .apply(vec![Write::Put(key, record.encode_to_vec())])?;
        self.store.sync()?;
        Ok(())
    }
}

fn state_key(origin: &str) -> Vec<u8> {
    [&b"w"[..], origin.as_bytes()].concat()
}

fn evidence_prefix(origin: &str) -> Vec<u8> {
    [&b"x"[..], origin.as_bytes(), &[0]].concat()
}
