//! The node's hourly housekeeping, so that nothing grows without bound: expired attachments
//! and abandoned uploads go, the dedup set forgets delivered cables past its retention, and
//! the queues of revoked devices (which nothing will ever take) are purged and audited.

use std::sync::Arc;
use std::time::Duration;

use valise_crypto::identity::DeviceId;

use super::{Shared, blocking_store, now_ms};

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
            let _ =
                tokio::task::spawn_blocking(move || shared.operator().purge_queues(&devices)).await;
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "the queues of revoked devices could not be listed"),
    }
}
