//! Dropping what is queued for devices that may no longer have it: a revoked device's whole
//! queue (nothing will ever take it), or what lies above a user's lowered clearance. Each
//! entry dropped is audited; a store that cannot be read is logged, and housekeeping tries
//! the revoked devices again within the hour.

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{AuditEventKind, Classification, Outcome};

use super::Operator;
use crate::queue::QueueKey;
use crate::reason::Reason;
use crate::record::Record;
use crate::store::CableId;

impl Operator<'_> {
    /// Drops what is queued for each of `devices` (revoked), auditing every entry dropped.
    pub(crate) fn purge_queues(&self, devices: &[DeviceId]) {
        for device in devices {
            match self.store.purge_device(device) {
                Ok(dropped) => {
                    self.record_dropped(device, &dropped, Reason::RecipientRevoked);
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

    /// Drops what is queued for each of `devices` above `clearance` (just lowered): cables
    /// accepted under the old clearance that the user may no longer read.
    pub(crate) fn purge_above(&self, devices: &[DeviceId], clearance: Classification) {
        for device in devices {
            let above = |cable: &CableId| {
                self.store
                    .envelope(cable)
                    .ok()
                    .flatten()
                    .and_then(|bytes| valise_crypto::envelope::decode_envelope(&bytes).ok())
                    .and_then(|e| e.header)
                    .is_some_and(|h| h.classification > clearance as i32)
            };
            match self.store.purge_device_where(device, above) {
                Ok(dropped) => {
                    self.record_dropped(device, &dropped, Reason::RecipientClearanceLowered);
                }
                Err(e) => {
                    tracing::error!(device = %device, error = %e, "the queue of a device whose clearance was lowered could not be checked")
                }
            }
        }
    }

    fn record_dropped(&self, device: &DeviceId, dropped: &[(QueueKey, CableId)], why: Reason) {
        for (key, cable) in dropped {
            self.recorder.record(
                Record::new(AuditEventKind::CableDelivered, Outcome::Refused)
                    .reason(why.clone())
                    .object("device", device.as_bytes(), &[])
                    .object("envelope", cable, &[])
                    .object("queue_entry", &key.to_bytes(), &[]),
            );
        }
    }
}
