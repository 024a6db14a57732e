//! A deliberate change to a user at this post, on every one of the user's devices at once:
//! each record re-signed, durable, replicated and audited; a lowered clearance also drops what
//! is queued for the user above it.

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{AuditEventKind, Outcome};

use super::Operator;
use crate::directory::ChangeError;
use crate::reason::Reason;
use crate::record::Record;
use crate::users::Change;

impl Operator<'_> {
    /// The `user update` command: applies `change` to all of `user`'s devices at this post.
    /// Returns the devices changed.
    pub fn update_user(&self, user: &str, change: &Change) -> Result<Vec<DeviceId>, ChangeError> {
        let Some(desk) = self.desk else {
            return Err(ChangeError::NotFound(format!(
                "{user} (this node enrols no devices: change the user at their post)"
            )));
        };
        let changed =
            self.directory
                .write()
                .change_user(desk.enrolment_key, desk.post, user, change)?;
        for device in &changed {
            self.recorder.record(
                Record::new(AuditEventKind::UserUpdated, Outcome::Success)
                    .by_operator()
                    .object("device", device.as_bytes(), &[])
                    .reason(Reason::Changed(change.fields())),
            );
        }
        if let Some(clearance) = change.clearance {
            self.purge_above(&changed, clearance);
        }
        Ok(changed)
    }
}
