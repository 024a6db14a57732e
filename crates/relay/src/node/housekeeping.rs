//! The node's hourly housekeeping, so that nothing grows without bound: expired attachments
//! and abandoned uploads go, the dedup set forgets delivered cables past its retention, and
//! the queues of revoked devices (which nothing will ever take) are purged and audited.

use std::sync::Arc;
use std::time::Duration;

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{AuditEventKind, Outcome};

use super::{Record, Shared, blocking_store, now_ms};
use crate::reason::Reason;

/// How often housekeeping runs; the first round runs at start.
const EVERY: Duration = Duration::from_secs(3600);

/// Runs housekeeping every hour for as long as the node runs.
pub(super) async fn housekeeping(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        super::attachments::sweep_once(&shared).await;
        forget_delivered(&shared).await;
        purge_revoked(&shared).await;
    }
}

/// Forgets the ids of cables delivered longer ago than the dedup retention.
async fn forget_delivered(shared: &Arc<Shared>) {
    let cutoff = now_ms()
        .saturating_sub(u64::try_from(shared.dedup_retention.as_millis()).unwrap_or(u64::MAX));
    let store = Arc::clone(shared);
    match blocking_store(move || store.store.forget_seen_before(cutoff)).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(forgotten = n, "forgot the ids of cables delivered long ago"),
        Err(e) => {
            tracing::error!(error = %e, "the dedup set could not be pruned; it runs again within the hour")
        }
    }
}

/// Purges the delivery queues of revoked devices, wherever the revocation came from.
async fn purge_revoked(shared: &Arc<Shared>) {
    let store = Arc::clone(shared);
    let revoked = blocking_store(move || {
        let queued = store.store.queued_devices()?;
        let directory = store.directory.read();
        Ok(queued
            .into_iter()
            .filter(|d| directory.view().lookup(d).is_some_and(|e| e.revoked))
            .collect::<Vec<DeviceId>>())
    })
    .await;
    match revoked {
        Ok(devices) if !devices.is_empty() => {
            let shared = Arc::clone(shared);
            let _ = tokio::task::spawn_blocking(move || purge_queues(&shared, &devices)).await;
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "the queues of revoked devices could not be listed"),
    }
}

/// Drops what is queued for each of `devices` above `clearance` (just lowered): cables
/// accepted under the old clearance that the user may no longer read. Each drop is audited.
pub(super) fn purge_above(
    shared: &Shared,
    devices: &[DeviceId],
    clearance: valise_proto::v1::Classification,
) {
    for device in devices {
        let above = |cable: &[u8; 16]| {
            shared
                .store
                .envelope(cable)
                .ok()
                .flatten()
                .and_then(|bytes| valise_crypto::envelope::decode_envelope(&bytes).ok())
                .and_then(|e| e.header)
                .is_some_and(|h| h.classification > clearance as i32)
        };
        match shared.store.purge_device_where(device, above) {
            Ok(dropped) => {
                for (key, cable) in &dropped {
                    shared.record(
                        Record::new(AuditEventKind::CableDelivered, Outcome::Refused)
                            .reason(Reason::RecipientClearanceLowered)
                            .object("device", device.as_bytes(), &[])
                            .object("envelope", cable, &[])
                            .object("queue_entry", &key.to_bytes(), &[]),
                    );
                }
            }
            Err(e) => {
                tracing::error!(device = %device, error = %e, "the queue of a device whose clearance was lowered could not be checked")
            }
        }
    }
}

/// Drops what is queued for each of `devices` (revoked), auditing every entry dropped.
pub(super) fn purge_queues(shared: &Shared, devices: &[DeviceId]) {
    for device in devices {
        match shared.store.purge_device(device) {
            Ok(dropped) => {
                for (key, cable) in &dropped {
                    shared.record(
                        Record::new(AuditEventKind::CableDelivered, Outcome::Refused)
                            .reason(Reason::RecipientRevoked)
                            .object("device", device.as_bytes(), &[])
                            .object("envelope", cable, &[])
                            .object("queue_entry", &key.to_bytes(), &[]),
                    );
                }
                if !dropped.is_empty() {
                    tracing::info!(device = %device, dropped = dropped.len(), "purged the queue of a revoked device");
                }
            }
            Err(e) => {
                tracing::error!(device = %device, error = %e, "the queue of a revoked device could not be purged")
            }
        }
    }
}
