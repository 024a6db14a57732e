//! Witnessing over a link: each end offers its audit checkpoints to the other with a
//! consistency proof, and cosigns the other's, refusing (with evidence kept) a log that was
//! rolled back or forked.

use std::sync::{Arc, PoisonError};

use valise_audit::merkle::Hash;
use valise_audit::note::{CosignatureSigner, NoteVerifier};
use valise_audit::{Witness, WitnessError};
use valise_crypto::identity::{IdentityKeyPair, IdentityPublicKey};
use valise_proto::v1::{
    AuditEventKind, Cosignature, ErrorCode, ErrorFrame, LinkReply, LinkRequest, Outcome,
    WitnessRefused, WitnessRequest, WitnessSize, link_reply, link_request,
};

use super::wire::{ask, link_error};
use super::{Neighbour, PRIORITY_CONTROL, WITNESS_EVERY};
use crate::node::{Record, Shared, now_ms, record_async};
use crate::reason::Reason;
use crate::routing::NextHop;

/// Offers this node's newest checkpoint to the neighbour for witnessing whenever it grows.
pub(super) async fn offer_checkpoints(shared: Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    let witness_name = shared.links.witness_name(&neighbour.name);
    let Ok(verifier) = NoteVerifier::cosigner(&witness_name, neighbour.key) else {
        return;
    };
    let mut their_size = 0u64;
    let mut offered = None;
    // The checkpoint signed as the node last stopped goes first: a newer one would leave it
    // without a cosignature of its own.
    let mut startup = shared.startup_checkpoint.clone();
    loop {
        let pending = startup
            .as_ref()
            .filter(|s| s.checkpoint.size > their_size && offered != Some(s.checkpoint.size));
        let Some(latest) = pending
            .cloned()
            .or_else(|| shared.audit.latest_checkpoint())
        else {
            tokio::time::sleep(WITNESS_EVERY).await;
            continue;
        };
        if pending.is_none() {
            startup = None;
        }
        let size = latest.checkpoint.size;
        if offered == Some(size) {
            tokio::time::sleep(WITNESS_EVERY).await;
            continue;
        }
        let old = their_size.min(size);
        let audit = Arc::clone(&shared.audit);
        let proof = if old == 0 {
            Ok(Vec::new())
        } else {
            tokio::task::spawn_blocking(move || audit.consistency_proof(old, size))
                .await
                .map_err(|e| e.to_string())
                .and_then(|p| p.map_err(|e| e.to_string()))
        };
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                shared
                    .links
                    .failed(&hop, format!("cannot prove consistency from {old}: {e}"));
                offered = Some(size);
                continue;
            }
        };
        let request = LinkRequest {
            request: Some(link_request::Request::Witness(WitnessRequest {
                old_size: old,
                consistency_proof: proof.iter().map(|h| h.to_vec()).collect(),
                checkpoint: latest.note.to_text(),
            })),
        };
        let reply = match ask(&neighbour.connection, request, PRIORITY_CONTROL).await {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(WITNESS_EVERY).await;
                continue;
            }
        };
        match reply.reply {
            Some(link_reply::Reply::Cosignature(c)) => {
                let stored = {
                    let (shared, hop) = (Arc::clone(&shared), hop.clone());
                    let (name, check) = (neighbour.name.clone(), verifier.clone());
                    tokio::task::spawn_blocking(move || {
                        let cosigned = shared.audit.add_cosignature(size, &c.line, &check)?;
                        keep_witnessed(&shared, &hop, &name, &cosigned);
                        Ok::<_, valise_audit::LogError>(())
                    })
                    .await
                };
                match stored {
                    Ok(Ok(())) => {
                        their_size = size;
                        offered = Some(size);
                        shared
                            .links
                            .update(&hop, |s| s.witnessed = Some((size, now_ms())));
                    }
                    _ => {
                        shared.links.failed(
                            &hop,
                            format!("node {}'s cosignature does not verify", neighbour.name),
                        );
                        offered = Some(size);
                    }
                }
            }
            Some(link_reply::Reply::WitnessSize(WitnessSize {
                size: theirs,
                checkpoint,
            })) => {
                check_not_rolled_back(&shared, &neighbour.name, theirs, &checkpoint).await;
                // The witness last cosigned another size: prove from there at once.
                if theirs == their_size {
                    offered = Some(size);
                }
                their_size = theirs;
            }
            Some(reply @ (link_reply::Reply::Error(_) | link_reply::Reply::WitnessRefused(_))) => {
                let e = match reply {
                    link_reply::Reply::WitnessRefused(refused) => {
                        check_not_rolled_back(
                            &shared,
                            &neighbour.name,
                            refused.size,
                            &refused.checkpoint,
                        )
                        .await;
                        refused.error.unwrap_or_default()
                    }
                    link_reply::Reply::Error(e) => e,
                    _ => ErrorFrame::default(),
                };
                tracing::error!(
                    witness = %neighbour.name,
                    size,
                    reason = %e.message,
                    "a witness refused this node's audit checkpoint"
                );
                shared.links.failed(
                    &hop,
                    format!(
                        "witness {} refused checkpoint {size}: {}",
                        neighbour.name, e.message
                    ),
                );
                let refused = Record::new(AuditEventKind::CheckpointWitnessed, Outcome::Refused)
                    .by_node(&neighbour.name)
                    .reason(Reason::RefusedByWitness);
                record_async(&shared, refused).await;
                offered = Some(size);
            }
            _ => offered = Some(size),
        }
    }
}

/// What a witness last cosigned of this log must still be in it: a checkpoint this node signed
/// of a larger log, or of another tree at that size, means the log was rolled back (its data
/// folder restored from an older copy) or rewritten. Only the neighbours can see that when the
/// anchor and the witnessed notes were restored along with it. The node raises an alarm,
/// which `/healthz`, `status` and `audit verify` show, and records it.
pub(super) async fn check_not_rolled_back(
    shared: &Arc<Shared>,
    witness: &str,
    size: u64,
    note: &str,
) {
    if note.is_empty() || size == 0 {
        return;
    }
    let audit = Arc::clone(&shared.audit);
    let note = note.to_owned();
    let finding = tokio::task::spawn_blocking(move || {
        let signed = valise_audit::note::SignedCheckpoint::verify(&note, audit.verifier()).ok()?;
        let ours = audit.size();
        if signed.checkpoint.size > ours {
            return Some(format!(
                "{ours} entries, but it signed a checkpoint of size {size} that witness {{w}} \
                 cosigned"
            ));
        }
        match audit.root(signed.checkpoint.size) {
            Ok(root) if root == signed.checkpoint.root => None,
            _ => Some(format!(
                "entries other than those of the checkpoint of size {size} it signed and \
                 witness {{w}} cosigned"
            )),
        }
    })
    .await
    .ok()
    .flatten();
    let Some(finding) = finding else {
        return;
    };
    let message = format!(
        "ROLLED BACK: this node's audit log holds {}: its data folder (and anchor) were \
         restored from an older copy or rewritten. Stop the node, keep the data as evidence, \
         and restore the latest backup; report it to ministry IT security",
        finding.replace("{w}", witness)
    );
    if shared.raise(&format!("rollback:{witness}"), &message) {
        tracing::error!(witness = %witness, size, "{message}");
        let record = Record::new(AuditEventKind::CheckpointWitnessed, Outcome::Failure)
            .by_node(witness)
            .reason(Reason::ThisLogRolledBack);
        record_async(shared, record).await;
    }
}

/// Keeps the newest checkpoint `neighbour` cosigned outside the audit store, for `audit
/// verify` to check the log against.
pub(super) fn keep_witnessed(shared: &Shared, hop: &NextHop, neighbour: &str, note: &str) {
    let Some(dir) = &shared.links.state_dir else {
        return;
    };
    if let Err(e) = crate::witnessed::keep(dir, neighbour, note) {
        shared.links.failed(
            hop,
            format!(
                "cannot keep the checkpoint {neighbour} cosigned in {}: {e}",
                dir.display()
            ),
        );
    }
}

/// Cosigns a neighbour's checkpoint if it extends the last one cosigned; keeps the evidence
/// and refuses if the neighbour's log was rolled back or forked.
pub(super) fn witness(
    shared: &Shared,
    hop: &NextHop,
    name: &str,
    key: IdentityPublicKey,
    request: WitnessRequest,
) -> LinkReply {
    let Some(state) = &shared.links.state else {
        return link_error(ErrorCode::Malformed, "this node witnesses no log");
    };
    let origin = valise_audit::log::origin(&shared.links.ministry, name);
    let (Ok(log), Ok(seed)) = (
        NoteVerifier::ed25519(&origin, key),
        IdentityKeyPair::from_seed(&shared.node_key.seed()[..]),
    ) else {
        return link_error(ErrorCode::Internal, "the witness keys could not be loaded");
    };
    let Ok(signer) = CosignatureSigner::new(&shared.links.witness_name(&shared.name), seed) else {
        return link_error(ErrorCode::Internal, "the witness key could not be loaded");
    };
    let vkey = signer.verifier().to_vkey();
    let proof: Option<Vec<Hash>> = request
        .consistency_proof
        .iter()
        .map(|h| h.as_slice().try_into().ok())
        .collect();
    let Some(proof) = proof else {
        return link_error(ErrorCode::Malformed, "a proof hash is not 32 bytes");
    };
    let _one = shared
        .links
        .witnessing
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let witness = Witness::new(Arc::clone(state), signer, [log]);
    let now = now_ms() / 1000;
    let result = witness.add_checkpoint(request.old_size, &proof, &request.checkpoint, now);
    match result {
        // Not audited: each record would grow this log, which the neighbour then witnesses
        // in turn, and the two would never go idle. The cosignature itself is the evidence,
        // kept with the neighbour's checkpoint and in this witness's state.
        Ok(line) => {
            let size = witness.cosigned(&origin).ok().flatten().map(|c| c.size);
            shared.links.update(hop, |s| s.cosigned = size);
            LinkReply {
                reply: Some(link_reply::Reply::Cosignature(Cosignature {
                    line,
                    witness_vkey: vkey,
                })),
            }
        }
        // With the checkpoint itself: a log restored from an older copy learns from it that it
        // was rolled back, since it holds its own signature on a tree it no longer extends.
        Err(WitnessError::StaleSize { witness_size, .. }) => LinkReply {
            reply: Some(link_reply::Reply::WitnessSize(WitnessSize {
                size: witness_size,
                checkpoint: witness
                    .cosigned(&origin)
                    .ok()
                    .flatten()
                    .map(|c| c.note)
                    .unwrap_or_default(),
            })),
        },
        Err(
            e @ (WitnessError::Rollback { .. }
            | WitnessError::Fork { .. }
            | WitnessError::BadProof { .. }),
        ) => {
            tracing::error!(node = %name, error = %e, "refused a neighbour's audit checkpoint; evidence kept");
            shared
                .links
                .failed(hop, format!("refused node {name}'s checkpoint: {e}"));
            let reason = match e {
                WitnessError::Rollback { .. } => Reason::Rollback,
                WitnessError::Fork { .. } => Reason::Fork,
                _ => Reason::BadProof,
            };
            shared.record(
                Record::new(AuditEventKind::CheckpointWitnessed, Outcome::Refused)
                    .by_node(name)
                    .reason(reason),
            );
            let cosigned = witness.cosigned(&origin).ok().flatten();
            LinkReply {
                reply: Some(link_reply::Reply::WitnessRefused(WitnessRefused {
                    error: Some(ErrorFrame {
                        code: ErrorCode::WitnessRefused as i32,
                        message: e.to_string(),
                        retry_after_ms: 0,
                    }),
                    size: cosigned.as_ref().map_or(0, |c| c.size),
                    checkpoint: cosigned.map(|c| c.note).unwrap_or_default(),
                })),
            }
        }
        Err(e) => link_error(ErrorCode::Malformed, &e.to_string()),
    }
}
