//! The node's audit records as it writes them: each one also an operator log event (ids and
//! reasons only), appended durably, from blocking or async code.

use valise_proto::v1::{AuditEvent, AuditEventKind, Outcome};

use super::{Shared, now_ms};
use crate::record::Record;

impl Shared {
    /// Appends an event, blocking until it is durable. A failure is kept by the log for health
    /// reporting; the request it describes has already been answered or refused.
    /// Every audited event is also an operator log event.
    pub(super) fn record(&self, record: Record) {
        let event = record.event(&self.name, now_ms());
        log_event(&event);
        if let Err(e) = self.audit.append(event) {
            tracing::error!(error = %e, "audit append failed; /healthz now reports the node unhealthy");
        }
    }
}

/// The operator's view of an audit event: kind, outcome, who, from where, why and object ids.
/// Routine per-cable events are at debug level, so a busy node's log stays readable.
pub(super) fn log_event(event: &AuditEvent) {
    let kind = AuditEventKind::try_from(event.kind).unwrap_or(AuditEventKind::Unspecified);
    let outcome = Outcome::try_from(event.outcome).unwrap_or(Outcome::Unspecified);
    let routine = outcome != Outcome::Failure
        && matches!(
            (kind, outcome),
            (
                AuditEventKind::CustodyTaken | AuditEventKind::CableDelivered,
                _
            ) | (AuditEventKind::CableSubmitted, Outcome::Success)
        );
    // Two events per cable: their words are built only if someone reads them.
    if routine && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let objects: Vec<String> = event
        .objects
        .iter()
        .map(|o| format!("{}:{}", o.kind, hex::encode(&o.id)))
        .collect();
    let objects = objects.join(",");
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                kind = kind.as_str_name(),
                outcome = outcome.as_str_name(),
                actor = %event.actor_id,
                source = %event.source,
                reason = %event.reason,
                objects = %objects,
                "audited"
            )
        };
    }
    match (kind, outcome) {
        (_, Outcome::Failure) => emit!(error),
        (AuditEventKind::CustodyTaken | AuditEventKind::CableDelivered, _)
        | (AuditEventKind::CableSubmitted, Outcome::Success) => emit!(debug),
        (_, Outcome::Refused) => emit!(warn),
        _ => emit!(info),
    }
}

/// Records an event from async code: returns once it is durable, holding no thread.
pub(super) async fn record_async(shared: &Shared, record: Record) {
    record_all(shared, vec![record]).await;
}

/// Records events in order from async code: returns once they are durable, holding no thread
/// meanwhile. A failure is kept by the log for health reporting.
pub(super) async fn record_all(shared: &Shared, records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    let events = stamped(shared, records);
    match completed(|done| shared.audit.append_then(events, done)).await {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            tracing::error!(error = %e, "audit append failed; /healthz now reports the node unhealthy");
        }
        None => tracing::error!("the audit log closed before an append completed"),
    }
}

/// The records as events of this node, stamped now, each also an operator log event.
fn stamped(shared: &Shared, records: Vec<Record>) -> Vec<AuditEvent> {
    let now = now_ms();
    records
        .into_iter()
        .map(|record| {
            let event = record.event(&shared.name, now);
            log_event(&event);
            event
        })
        .collect()
}

/// Records events in order without waiting for them to be durable: for what follows a durable
/// fact the node does not answer for (a neighbour's custody receipt it already holds). The
/// append keeps its place in the log; a failure is kept by the log for health reporting.
pub(super) fn record_later(shared: &Shared, records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    shared.audit.append_then(
        stamped(shared, records),
        Box::new(|appended| {
            if let Err(e) = appended {
                tracing::error!(error = %e, "audit append failed; /healthz now reports the node unhealthy");
            }
        }),
    );
}

/// Waits, without holding a thread, for a completion another thread calls: the group
/// committers of the store and of the audit log. `None` if it was dropped uncalled.
pub(super) async fn completed<T: Send + 'static>(
    start: impl FnOnce(Box<dyn FnOnce(T) + Send>),
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    start(Box::new(move |value| {
        let _ = tx.send(value);
    }));
    rx.await.ok()
}

impl crate::operations::Recorder for Shared {
    fn record(&self, record: Record) {
        Shared::record(self, record);
    }
}
