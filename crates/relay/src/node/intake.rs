//! Taking custody, as the shell carries it out: runs the core's one admission path
//! ([`crate::admission`]) for a device's submission or a neighbour's forward, makes the plan
//! durable with its audit record, and does what the settlement says.

use valise_store::StoreError;

use super::{Shared, log_event, now_ms};
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

/// Decides on `offer`, takes custody if it may, and returns the answer. Blocks on the store
/// and the audit log: run it off the async runtime.
pub(super) fn take(shared: &Shared, offer: Offer<'_>) -> Taken {
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
            shared.record(refused.record);
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
    let stored = match shared.store.take_custody(custody, plan.now_ms) {
        Ok(Enqueued::Stored { seq }) => {
            let event = plan.record.clone().event(&shared.name, now_ms());
            log_event(&event);
            match shared.audit.append(event) {
                Ok(_) => Stored::New,
                Err(e) => {
                    // No custody without its record: undo it, so the sender's resend is stored
                    // afresh once the audit log can write again.
                    if let Err(undo) = shared.store.abandon(custody, seq) {
                        tracing::error!(error = %undo, "a cable whose custody record failed could not be removed");
                    }
                    Stored::Unavailable(format!("the audit log: {e}"))
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
    for record in settled.records {
        shared.record(record);
    }
    for device in &settled.wake_devices {
        shared.waker(device).notify_one();
    }
    for hop in &settled.wake_hops {
        shared.links.wake(hop);
    }
    Taken::Reply(settled.reply)
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
