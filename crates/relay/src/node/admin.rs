//! The admin socket's commands served by a running node, through the operations it shares
//! with the commands that work on a stopped node.

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{AuditEventKind, Outcome};

use super::{Shared, close_connections, now_ms};
use crate::enrolment::Invitation;
use crate::operations::Operator;
use crate::reason::Reason;
use crate::record::Record;

impl Shared {
    /// The operator's view of this node: the operations its admin socket shares with the
    /// commands that work on a stopped node.
    pub(super) fn operator(&self) -> Operator<'_> {
        let desk = self.desk.as_ref().map(|d| crate::operations::Desk {
            post: &d.post,
            enrolment_key: &d.enrolment_key,
            codes: &d.codes,
        });
        Operator::new(desk, &self.directory, &self.store, self)
    }
}

impl crate::admin::AdminTarget for Shared {
    fn audit_export(&self, path: &std::path::Path) -> Result<u64, String> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let entries = valise_audit::export::export(&self.audit, file).map_err(|e| e.to_string())?;
        self.record(
            Record::new(AuditEventKind::AdminCommand, Outcome::Success)
                .by_operator()
                .reason(Reason::AuditExport),
        );
        Ok(entries)
    }

    fn stop(&self, reason: &str) {
        self.record(
            Record::new(AuditEventKind::Destruction, Outcome::Success)
                .by_operator()
                .reason(Reason::Stated(reason.to_owned())),
        );
        self.stop.notify_one();
    }

    fn status(&self) -> Result<valise_proto::v1::NodeStatus, String> {
        let delivery = self.store.depth().map_err(|e| e.to_string())?;
        let onward = self.store.onward_depth().map_err(|e| e.to_string())?;
        Ok(crate::status::assemble(crate::status::Parts {
            node: self.name.clone(),
            kind: self.links.routes.kind,
            running: true,
            links: self.links.status(),
            onward,
            delivery,
            audit_entries: self.audit.size(),
            alarms: self.alarms(),
            overdue: self
                .store
                .past_objective(now_ms())
                .map_err(|e| e.to_string())?,
        }))
    }

    fn audit_prove(&self, index: u64) -> Result<String, String> {
        valise_audit::bundle::prove(&self.audit, index).map_err(|e| e.to_string())
    }

    fn enroll(&self, invitation: Invitation) -> Result<(String, String, String), String> {
        let code = self
            .operator()
            .enroll(invitation)
            .map_err(|e| e.to_string())?;
        Ok((code, self.ca_fingerprint.clone(), self.name.clone()))
    }

    fn update_user(
        &self,
        user: &str,
        change: &crate::users::Change,
    ) -> Result<Vec<DeviceId>, String> {
        self.operator()
            .update_user(user, change)
            .map_err(|e| e.to_string())
    }

    fn revoke(
        &self,
        device: Option<DeviceId>,
        user: &str,
        reason: &str,
    ) -> Result<Vec<DeviceId>, String> {
        self.operator()
            .revoke(device, user, reason, |devices| {
                close_connections(self, devices)
            })
            .map_err(|e| e.to_string())
    }
}
