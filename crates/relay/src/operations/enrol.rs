//! One-time enrolment codes issued by an operator for a diplomat at this post: only for the
//! same person the user's devices here already describe, durable before they are handed out.

use std::sync::PoisonError;

use valise_proto::v1::{AuditEventKind, Outcome};

use super::{Operator, now_ms};
use crate::enrolment::{CODE_ENTROPY_BYTES, DurableCodeError, Invitation};
use crate::reason::Reason;
use crate::record::Record;
use crate::shared_directory::SharedDirectory;
use crate::users::Conflict;

/// Why an enrolment code could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// This node does not enrol devices.
    #[error("this node does not enrol devices (it has no enrolment key)")]
    NoDesk,
    /// The code could not be issued.
    #[error(transparent)]
    Code(#[from] DurableCodeError),
    /// Randomness failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The user is enrolled with other details.
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

/// Checks that `invitation` describes the same person as the user's active devices at `post`.
pub(crate) fn same_person(
    directory: &SharedDirectory,
    post: &str,
    invitation: &Invitation,
) -> Result<(), Conflict> {
    let address = format!("{}@{post}", invitation.user);
    let directory = directory.read();
    let devices = directory.view().resolve(&address).unwrap_or_default();
    crate::users::check_same_person(&address, &devices, invitation)
}

impl Operator<'_> {
    /// Issues a one-time enrolment code for `invitation`.
    pub fn issue_code(&self, invitation: Invitation) -> Result<String, IssueError> {
        let desk = self.desk.ok_or(IssueError::NoDesk)?;
        same_person(self.directory, desk.post, &invitation)?;
        let mut entropy = [0u8; CODE_ENTROPY_BYTES];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut entropy)
            .map_err(|_| IssueError::Random)?;
        let mut codes = desk.codes.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(codes.issue(invitation, entropy, now_ms())?.code)
    }

    /// The `enroll` command: issues a code ([`Self::issue_code`]) and records the command.
    pub fn enroll(&self, invitation: Invitation) -> Result<String, IssueError> {
        let code = self.issue_code(invitation)?;
        self.recorder.record(
            Record::new(AuditEventKind::AdminCommand, Outcome::Success)
                .by_operator()
                .reason(Reason::Enroll),
        );
        Ok(code)
    }
}
