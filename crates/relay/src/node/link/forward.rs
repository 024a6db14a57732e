//! Custody across a link: the queue for a next hop sent most urgent first within the
//! outbound window, each entry dropped only on the neighbour's verified receipt; and a
//! neighbour's forward taken through the one admission path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use valise_crypto::custody;
use valise_proto::v1::{
    AttachmentsWanted, AuditEventKind, Forward, LinkReply, LinkRequest, Outcome, link_reply,
    link_request,
};
use valise_store::StoreError;

use crate::admission::{Offer, Reply, Sender};
use crate::attachments::AttachmentId;
use crate::node::{Record, Shared, blocking_store, record_async, record_later};
use crate::outbound::{
    HELD_RETRY, LOCAL_FAILURE_RETRY, NextHopRefusal, Outbound, UNEXPECTED_RETRY, classify_refusal,
};
use crate::queue::QueueKey;
use crate::reason::Reason;
use crate::routing::NextHop;
use crate::store::Onward;

use carry::CarryError;

use super::wire::ask;
use super::{Neighbour, PRIORITY_OTHER, PRIORITY_URGENT, carry, jitter};

/// Takes custody of a forwarded cable: checks it, routes its devices onward or here, makes it
/// durable, and signs the receipt.
pub(super) async fn take_forward(
    shared: &Arc<Shared>,
    from: &Neighbour,
    forward: Forward,
) -> LinkReply {
    let offer = Offer {
        sender: Sender::Neighbour {
            name: &from.name,
            devices: &forward.devices,
            accepted_at_ms: forward.accepted_at_ms,
        },
        envelope: &forward.envelope,
        attachments: &forward.attachments,
    };
    let reply = match crate::node::intake::take(shared, offer).await {
        crate::node::intake::Taken::Reply(Reply::Receipt(receipt)) => {
            link_reply::Reply::CustodyReceipt(receipt)
        }
        crate::node::intake::Taken::Reply(Reply::Error(error)) => link_reply::Reply::Error(error),
        crate::node::intake::Taken::Wanted(missing) => {
            link_reply::Reply::AttachmentsWanted(AttachmentsWanted {
                ciphertext_sha256: missing.iter().map(|id| id.as_bytes().to_vec()).collect(),
            })
        }
    };
    LinkReply { reply: Some(reply) }
}

/// Forwards the hop's queue over this link, most urgent first, until the link ends.
pub(super) async fn forward_queue(shared: Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    enum Sent {
        Taken,
        Retry(Duration),
    }
    let window = shared.links.federation.as_ref().map_or(1, |d| d.window);
    let mut out = Outbound::new(window);
    // Owned here, so that ending the link also ends the forwards in progress.
    let mut sending = tokio::task::JoinSet::new();
    let (done_tx, mut done) = mpsc::unbounded_channel::<(QueueKey, Sent)>();
    let waker = shared.links.waker(&hop);
    let started = Instant::now();
    let settle = |out: &mut Outbound, key: QueueKey, sent: Sent| match sent {
        Sent::Taken => out.taken(key),
        Sent::Retry(after) => {
            out.retry_later(key, started.elapsed(), after, jitter());
        }
    };
    loop {
        while sending.try_join_next().is_some() {}
        while let Ok((key, sent)) = done.try_recv() {
            settle(&mut out, key, sent);
        }
        if out.has_room() {
            let limit = out.in_flight() + out.deferred() + window;
            let store = Arc::clone(&shared);
            let scan_hop = hop.clone();
            let queued = match blocking_store(move || store.store.onward(&scan_hop, limit)).await {
                Ok(q) => q,
                Err(e) => {
                    shared
                        .links
                        .failed(&hop, format!("cannot read the queue: {e}"));
                    tokio::time::sleep(UNEXPECTED_RETRY).await;
                    continue;
                }
            };
            let keys: Vec<QueueKey> = queued.iter().map(|(k, _)| *k).collect();
            let mut entries: HashMap<QueueKey, Onward> = queued.into_iter().collect();
            for key in out.pick(&keys, started.elapsed()) {
                let Some(entry) = entries.remove(&key) else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                let hop = hop.clone();
                let neighbour = neighbour.clone();
                let done_tx = done_tx.clone();
                sending.spawn(async move {
                    let sent = match send_forward(&shared, &hop, &neighbour, key, entry).await {
                        Ok(()) => Sent::Taken,
                        Err(after) => Sent::Retry(after),
                    };
                    let _ = done_tx.send((key, sent));
                });
            }
        }
        let idle = out
            .next_due()
            .map_or(Duration::from_secs(5), |due| {
                due.saturating_sub(started.elapsed())
            })
            .max(Duration::from_millis(10));
        tokio::select! {
            () = waker.notified() => {}
            Some((key, sent)) = done.recv() => settle(&mut out, key, sent),
            () = tokio::time::sleep(idle) => {}
            _ = neighbour.connection.closed() => return,
        }
    }
}

/// Forwards one cable and waits for custody. `Err` carries how long to wait before trying it
/// again; a cable the neighbour can never take is dropped here, with an audit record.
pub(super) async fn send_forward(
    shared: &Arc<Shared>,
    hop: &NextHop,
    neighbour: &Neighbour,
    key: QueueKey,
    entry: Onward,
) -> Result<(), Duration> {
    let store = Arc::clone(shared);
    let cable = entry.cable;
    let read = blocking_store(move || {
        let envelope = store.store.envelope(&cable)?;
        Ok(envelope.map(|e| (e, store.store.attachments(&cable))))
    })
    .await;
    let (envelope, mut attachments) = match read {
        Ok(Some((e, Ok(attachments)))) => (e, attachments),
        Ok(Some((_, Err(e)))) | Err(e) => {
            shared.links.failed(
                hop,
                format!("cannot read cable {}: {e}", hex::encode(cable)),
            );
            return Err(LOCAL_FAILURE_RETRY);
        }
        Ok(None) => {
            // Nothing left to send: the entry is stale.
            let _ = release(shared, hop, key).await;
            return Ok(());
        }
    };
    let digest = valise_crypto::sha256(&envelope);
    let priority = if key.rank <= 1 {
        PRIORITY_URGENT
    } else {
        PRIORITY_OTHER
    };
    let forwarded = |outcome| {
        Record::new(AuditEventKind::CableForwarded, outcome)
            .by_node(&shared.name)
            .object("envelope", &cable, &digest)
            .source(neighbour.name.clone())
    };
    // Offered once, then again after uploading the attachments the neighbour asked for.
    let mut offers = 0;
    let reply = loop {
        offers += 1;
        let request = LinkRequest {
            request: Some(link_request::Request::Forward(Forward {
                envelope: envelope.clone(),
                devices: entry
                    .devices
                    .iter()
                    .map(|d| d.as_bytes().to_vec())
                    .collect(),
                accepted_at_ms: entry.accepted_at_ms,
                attachments: attachments
                    .iter()
                    .map(|id| id.as_bytes().to_vec())
                    .collect(),
            })),
        };
        let reply = ask(&neighbour.connection, request, priority)
            .await
            .map_err(|_| Duration::ZERO)?;
        let Some(link_reply::Reply::AttachmentsWanted(wanted)) = reply.reply else {
            break reply;
        };
        if offers > 2 {
            shared.links.failed(
                hop,
                format!(
                    "node {} still asks for the attachments of cable {} after they were uploaded",
                    neighbour.name,
                    hex::encode(cable)
                ),
            );
            return Err(LOCAL_FAILURE_RETRY);
        }
        match carry_wanted(shared, neighbour, &attachments, &wanted, priority).await {
            Ok(expired) if expired.is_empty() => {}
            Ok(expired) => {
                // Past their retention on this node: the cable goes on, and its recipients
                // are told such an attachment is gone when they fetch it.
                for id in &expired {
                    tracing::warn!(
                        cable = %hex::encode(cable),
                        attachment = %id,
                        "an attachment expired on this node before its cable could be forwarded; the cable goes on without it"
                    );
                    let lost = forwarded(Outcome::Failure)
                        .reason(Reason::AttachmentExpired)
                        .object("attachment", &[], id.as_bytes());
                    record_async(shared, lost).await;
                }
                attachments.retain(|held| !expired.contains(held));
                // Kept shorter, so a later retry neither asks for them nor audits them again.
                let store = Arc::clone(shared);
                let kept = attachments.clone();
                let _ = blocking_store(move || store.store.set_attachments(&cable, &kept)).await;
            }
            Err(CarryError::Refused(e)) => {
                break LinkReply {
                    reply: Some(link_reply::Reply::Error(e)),
                };
            }
            Err(other) => {
                let (after, why) = other.into_retry();
                shared.links.failed(hop, why);
                return Err(after);
            }
        }
    };
    match reply.reply {
        Some(link_reply::Reply::CustodyReceipt(receipt)) => {
            if let Err(e) =
                custody::verify(&receipt, &neighbour.name, &neighbour.key, &cable, &envelope)
            {
                shared.links.failed(
                    hop,
                    format!(
                        "node {} sent a custody receipt that does not verify: {e}",
                        neighbour.name
                    ),
                );
                return Err(LOCAL_FAILURE_RETRY);
            }
            // The neighbour holds it durably: only now is this node's copy let go. The record
            // of it takes its place in the log without holding the window.
            release(shared, hop, key)
                .await
                .map_err(|_| UNEXPECTED_RETRY)?;
            record_later(shared, vec![forwarded(Outcome::Success)]);
            Ok(())
        }
        Some(link_reply::Reply::Error(e)) => match classify_refusal(e.code, e.retry_after_ms) {
            NextHopRefusal::Lasting(code) => {
                // This node acknowledged the cable, so it never drops it: a neighbour with
                // lower limits or an older version may be reconfigured or upgraded. It is held,
                // shown in status, audited, and offered again now and then.
                tracing::error!(
                    cable = %hex::encode(cable),
                    node = %neighbour.name,
                    reason = %e.message,
                    "the next hop refuses a cable; it is held here and offered again later"
                );
                shared.links.failed(
                    hop,
                    format!(
                        "node {} refuses cable {} ({}): {}; it is held here, retried every {} minutes; align the nodes' [limits] or versions",
                        neighbour.name,
                        hex::encode(cable),
                        code.as_str_name(),
                        e.message,
                        HELD_RETRY.as_secs() / 60
                    ),
                );
                record_async(
                    shared,
                    forwarded(Outcome::Refused).reason(Reason::RefusedByNextHop(code)),
                )
                .await;
                Err(HELD_RETRY)
            }
            NextHopRefusal::Later(after) => Err(after),
        },
        _ => Err(UNEXPECTED_RETRY),
    }
}

/// Uploads each attachment the neighbour asked for, stopping at the first that could not be
/// carried. Returns those this node no longer holds, which the cable must go on without.
pub(super) async fn carry_wanted(
    shared: &Arc<Shared>,
    neighbour: &Neighbour,
    listed: &[AttachmentId],
    wanted: &AttachmentsWanted,
    priority: i32,
) -> Result<Vec<AttachmentId>, CarryError> {
    // Each at most once, and only those the cable carries: a faulty neighbour cannot make
    // this node send an attachment over and over.
    let wanted = crate::attachments::parse_list(&wanted.ciphertext_sha256)
        .ok()
        .filter(|ids| ids.iter().all(|id| listed.contains(id)))
        .ok_or_else(|| {
            CarryError::Retry(
                LOCAL_FAILURE_RETRY,
                format!(
                    "node {} asked for attachments the cable does not carry",
                    neighbour.name
                ),
            )
        })?;
    let mut expired = Vec::new();
    for id in wanted {
        match carry::upload(shared, &neighbour.connection, id, priority).await {
            Ok(bytes) => shared.metrics.attachment_carried(bytes),
            Err(CarryError::NotHeld(id)) => expired.push(id),
            Err(CarryError::Retry(after, why)) => {
                return Err(CarryError::Retry(
                    after,
                    format!("attachment {id} did not reach {}: {why}", neighbour.name),
                ));
            }
            Err(other) => return Err(other),
        }
    }
    Ok(expired)
}

pub(super) async fn release(
    shared: &Arc<Shared>,
    hop: &NextHop,
    key: QueueKey,
) -> Result<bool, StoreError> {
    let store = Arc::clone(shared);
    let hop = hop.clone();
    blocking_store(move || store.store.forwarded(&hop, key)).await
}
