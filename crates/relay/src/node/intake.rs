//! Taking custody, as the shell carries it out: runs the core's one admission path
//! ([`crate::admission`]) for a device's submission or a neighbour's forward, makes the plan
//! durable with its audit record, and does what the settlement says.
//!
//! No thread waits here. The admission is pure work on the calling task; the custody write
//! and then its audit record are each handed to their group committer, which completes them
//! with every other commit waiting at the same time, one sync for all; the task is woken when
//! its own is durable.

use valise_store::StoreError;

use super::{Shared, completed, log_event, now_ms, record_all};
use crate::admission::{Admission, Here, Holdings, Offer, Reply, Sender, Stored, admit};
use crate::attachment::AttachmentId;
use crate::store::{Custody, Enqueued};

/// What became of an offer.
pub(super) enum Taken {
    /// The answer for the sender: a receipt, or why not.
    Reply(Reply),
    /// A neighbour must upload these attachments first.
    Wanted(Vec<AttachmentId>),
}

/// Decides on `offer`, takes custody if it may, and returns the answer once any custody is
/// durable and audited.
pub(super) async fn take(shared: &Shared, offer: Offer<'_>) -> Taken {
    let now = now_ms();
    let holdings = StoreHoldings {
        shared,
        // A neighbour's offer renews what it carries, so it is not swept while in transit.
        renew: matches!(offer.sender, Sender::Neighbour { .. }),
    };
    let admission = {
        let directory = shared.directory.read();
        let here = Here {
            name: &shared.name,
            limits: &shared.limits,
            routes: &shared.links.routes,
            directory: directory.view(),
        };
        admit(&here, offer, &holdings, now)
    };
    let plan = match admission {
        Admission::Refused(refused) => {
            shared.metrics.refused(&refused.reason);
            record_all(shared, vec![refused.record]).await;
            return Taken::Reply(Reply::Error(refused.error));
        }
        Admission::Wanted(ids) => return Taken::Wanted(ids),
        Admission::Custody(plan) => plan,
    };
    let custody = Custody {
        cable: plan.cable,
        precedence: plan.precedence,
        envelope: plan.envelope,
        local: &plan.routed.local,
        onward: &plan.routed.onward,
        accepted_at_ms: plan.accepted_at_ms,
        attachments: &plan.attachments,
    };
    let enqueued = match shared.store.prepare_custody(custody, plan.now_ms) {
        Ok(prepared) => completed(|done| shared.store.commit_custody(prepared, done))
            .await
            .unwrap_or_else(|| Err(StoreError::Io("the store closed".into()))),
        Err(e) => Err(e),
    };
    let stored = match enqueued {
        Ok(Enqueued::Stored { seq }) => {
            let event = plan.record.clone().event(&shared.name, now_ms());
            log_event(&event);
            let lane = if crate::queue::rank(plan.precedence) <= 1 {
                valise_store::Lane::Urgent
            } else {
                valise_store::Lane::Bulk
            };
            let audited = completed(|done| shared.audit.append_in(lane, vec![event], done)).await;
            match audited {
                Some(Ok(_)) => Stored::New { seq },
                Some(Err(e)) => {
                    // No custody without its record: undo it, so the sender's resend is
                    // stored afresh once the audit log can write again.
                    undo(shared, custody, seq).await;
                    Stored::Unavailable(format!("the audit log: {e}"))
                }
                None => {
                    undo(shared, custody, seq).await;
                    Stored::Unavailable("the audit log closed".into())
                }
            }
        }
        Ok(Enqueued::Duplicate) => Stored::Duplicate,
        Ok(Enqueued::Conflict) => Stored::Conflict,
        Ok(Enqueued::InProgress) => Stored::InProgress,
        Err(e @ StoreError::Unavailable(_)) => Stored::Unavailable(e.to_string()),
        Err(e) => Stored::Failed(e.to_string()),
    };
    if let Stored::Unavailable(e) | Stored::Failed(e) = &stored {
        tracing::error!(error = %e, "a cable could not be made durable; it was not accepted, the sender keeps it");
    }
    let settled = plan.settle(stored, &shared.node_key, &shared.name);
    if let Some(reason) = &settled.refused {
        shared.metrics.refused(reason);
    }
    record_all(shared, settled.records).await;
    if let Some(key) = settled.queued {
        for device in &settled.wake_devices {
            shared.deliveries.arrived(device, key);
        }
    }
    for hop in &settled.wake_hops {
        shared.links.wake(hop);
    }
    Taken::Reply(settled.reply)
}

/// Removes a custody whose audit record failed (a rare path, so it may hold a thread).
async fn undo(shared: &Shared, custody: Custody<'_>, seq: u64) {
    if let Err(undo) = shared.store.abandon(custody, seq) {
        tracing::error!(error = %undo, "a cable whose custody record failed could not be removed");
    }
}

/// The attachments and the cables this node holds, as the admission asks about them.
struct StoreHoldings<'a> {
    shared: &'a Shared,
    renew: bool,
}

impl Holdings for StoreHoldings<'_> {
    fn missing(&self, ids: &[AttachmentId], now_ms: u64) -> Result<Vec<AttachmentId>, String> {
        self.shared
            .attachments
            .missing(ids, now_ms, self.renew)
            .map_err(|e| e.to_string())
    }

    fn seen(&self, cable: &[u8; 16]) -> Result<bool, String> {
        self.shared.store.seen(cable).map_err(|e| e.to_string())
    }
}
