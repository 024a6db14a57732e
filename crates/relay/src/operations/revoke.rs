//! Revoking devices: each revocation signed with the post's enrolment key and durable before
//! it takes effect, then what was queued for the devices dropped, each step audited.

use valise_crypto::identity::DeviceId;
use valise_proto::v1::directory_update::Update;
use valise_proto::v1::{AuditEventKind, Outcome};

use super::{Operator, now_ms};
use crate::reason::Reason;
use crate::record::Record;

/// Why devices could not be revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// This node holds no enrolment key: revoke at the device's post.
    #[error("this node holds no enrolment key; revoke the device at its post's node")]
    NoDesk,
    /// Nothing matched.
    #[error("no active device of {0} at this post")]
    NotFound(String),
    /// The directory refused or could not store the revocation.
    #[error(transparent)]
    Directory(#[from] crate::directory::DurableError),
    /// Signing failed.
    #[error("the revocation could not be signed: {0}")]
    Signing(String),
}

impl Operator<'_> {
    /// The `revoke` command: revokes `device`, or every active device of `user` at this post,
    /// for `reason` ([`Self::revoke_devices`]), and records the command, refused or not.
    pub fn revoke(
        &self,
        device: Option<DeviceId>,
        user: &str,
        reason: &str,
        on_revoked: impl FnOnce(&[DeviceId]),
    ) -> Result<Vec<DeviceId>, RevokeError> {
        let result = self.revoke_devices(device, user, reason, on_revoked);
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Refused
        };
        self.recorder.record(
            Record::new(AuditEventKind::AdminCommand, outcome)
                .by_operator()
                .reason(Reason::Revoke),
        );
        result
    }

    /// Revokes `device`, or every active device of `user` at this post, for `reason`: signs
    /// the revocations, makes them durable and records them, calls `on_revoked` with the
    /// devices (a running node closes their connections), then drops what was queued for
    /// them. Returns the devices revoked.
    pub fn revoke_devices(
        &self,
        device: Option<DeviceId>,
        user: &str,
        reason: &str,
        on_revoked: impl FnOnce(&[DeviceId]),
    ) -> Result<Vec<DeviceId>, RevokeError> {
        let (targets, _) = self.revoke_in_directory(device, user, reason, None)?;
        on_revoked(&targets);
        self.purge_queues(&targets);
        Ok(targets)
    }

    /// Signs and durably applies the revocations, and records them (done `by` the device
    /// itself for a wipe). Returns the devices and the directory version that includes them.
    pub(crate) fn revoke_in_directory(
        &self,
        device: Option<DeviceId>,
        user: &str,
        reason: &str,
        by: Option<&DeviceId>,
    ) -> Result<(Vec<DeviceId>, u64), RevokeError> {
        let desk = self.desk.ok_or(RevokeError::NoDesk)?;
        let mut directory = self.directory.write();
        let targets: Vec<DeviceId> = match device {
            Some(d) => vec![d]
                .into_iter()
                .filter(|d| directory.view().is_active(d))
                .collect(),
            None => crate::policy::DirectoryView::devices_for(
                directory.view(),
                &format!("{user}@{}", desk.post),
            )
            .unwrap_or_default(),
        };
        if targets.is_empty() {
            return Err(RevokeError::NotFound(device.map_or_else(
                || format!("{user}@{}", desk.post),
                |d| d.to_string(),
            )));
        }
        let mut version = directory.view().version();
        for target in &targets {
            let mut revocation = valise_proto::v1::Revocation {
                device_id: target.as_bytes().to_vec(),
                reason: reason.to_owned(),
                revoked_at_ms: now_ms(),
                signature: Vec::new(),
            };
            valise_crypto::directory::sign_revocation(&mut revocation, desk.enrolment_key)
                .map_err(|e| RevokeError::Signing(e.to_string()))?;
            version = directory.apply(Update::Revocation(revocation))?;
        }
        drop(directory);
        for target in &targets {
            let mut record = Record::new(AuditEventKind::DeviceRevoked, Outcome::Success)
                .object("device", target.as_bytes(), &[])
                .reason(Reason::Stated(reason.to_owned()));
            if let Some(by) = by {
                record = record.by_device(by);
            }
            self.recorder.record(record);
        }
        Ok((targets, version))
    }
}
