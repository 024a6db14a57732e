//! One-time enrolment codes kept durably, so a code issued while the node is stopped, or
//! before a restart, can still be redeemed, and a spent code stays spent. The rules (single
//! use, expiry, bound, rate limit) are the core's ([`valise_relay_core::enrolment`]); this
//! module keeps what they decide.

use valise_proto::v1::Classification;

pub use valise_relay_core::enrolment::{
    CODE_ENTROPY_BYTES, CodeError, Codes, Invitation, Issued, code_digest,
};

/// Codes kept durably, so a code issued while the node is stopped, or before a restart, can
/// still be redeemed, and a spent code stays spent.
///
/// Records: `p` ‖ SHA-256(code) → `PendingEnrolment`.
pub struct DurableCodes {
    codes: Codes,
    store: std::sync::Arc<valise_store::DiskStore>,
    commit: valise_store::GroupCommit,
}

/// Why a durable code operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurableCodeError {
    /// The code rules refused it.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// The code store failed; nothing was issued, or the enrolment was not completed.
    #[error("the enrolment code store failed: {0}; try again, and check the node's disk")]
    Store(String),
}

impl From<valise_store::StoreError> for DurableCodeError {
    fn from(e: valise_store::StoreError) -> Self {
        DurableCodeError::Store(e.to_string())
    }
}

fn pending_key(digest: &[u8; 32]) -> Vec<u8> {
    [&b"p"[..], digest].concat()
}

impl DurableCodes {
    /// Opens the store in `dir` with the rules of `codes`, restoring unexpired codes and
    /// forgetting expired ones.
    pub fn open(
        dir: &std::path::Path,
        mut codes: Codes,
        now_ms: u64,
    ) -> Result<Self, DurableCodeError> {
        use prost::Message;
        use valise_store::{Store, Write};
        let store = std::sync::Arc::new(valise_store::DiskStore::open(dir)?);
        let mut expired = Vec::new();
        for item in store.scan(b"p") {
            let (key, value) = item?;
            let record =
                valise_proto::v1::PendingEnrolment::decode(value.as_slice()).map_err(|_| {
                    DurableCodeError::Store("a stored enrolment code is damaged".into())
                })?;
            let digest: [u8; 32] = key[1..]
                .try_into()
                .map_err(|_| DurableCodeError::Store("a stored enrolment key is damaged".into()))?;
            if record.expires_ms < now_ms {
                expired.push(Write::Delete(key));
                continue;
            }
            let clearance =
                Classification::try_from(record.clearance).unwrap_or(Classification::Unspecified);
            let invitation = Invitation {
                user: record.user,
                display_name: record.display_name,
                clearance,
                offices: record.offices,
                foreign_national: record.foreign_national,
            };
            codes.restore(digest, invitation, record.expires_ms);
        }
        let commit = valise_store::GroupCommit::start(std::sync::Arc::clone(&store))?;
        if !expired.is_empty() {
            commit.commit(expired)?;
        }
        Ok(DurableCodes {
            codes,
            store,
            commit,
        })
    }

    /// Issues a code; it is durable before it is returned.
    pub fn issue(
        &mut self,
        invitation: Invitation,
        entropy: [u8; CODE_ENTROPY_BYTES],
        now_ms: u64,
    ) -> Result<Issued, DurableCodeError> {
        use prost::Message;
        let record = valise_proto::v1::PendingEnrolment {
            user: invitation.user.clone(),
            display_name: invitation.display_name.clone(),
            clearance: invitation.clearance as i32,
            offices: invitation.offices.clone(),
            expires_ms: 0,
            foreign_national: invitation.foreign_national,
        };
        let issued = self.codes.issue(invitation, entropy, now_ms)?;
        let record = valise_proto::v1::PendingEnrolment {
            expires_ms: issued.expires_ms,
            ..record
        };
        let stored = self.commit.commit(vec![valise_store::Write::Put(
            pending_key(&issued.digest),
            record.encode_to_vec(),
        )]);
        if let Err(e) = stored {
            // Not durable, so not handed out: forget it.
            self.codes.withdraw(&issued.digest);
            return Err(e.into());
        }
        Ok(issued)
    }

    /// Redeems a code; its record is deleted durably before the invitation is returned.
    pub fn redeem(
        &mut self,
        code: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<Invitation, DurableCodeError> {
        let redeemed = self.codes.redeem(code, source, now_ms);
        let key = match &redeemed {
            Ok((_, key)) => Some(*key),
            Err(CodeError::Expired) => code_digest(code),
            Err(_) => None,
        };
        if let Some(key) = key {
            self.commit
                .commit(vec![valise_store::Write::Delete(pending_key(&key))])?;
        }
        Ok(redeemed?.0)
    }

    /// How many codes are outstanding.
    pub fn outstanding(&self) -> usize {
        self.codes.outstanding()
    }

    /// Makes everything durable (e.g. at shutdown).
    pub fn sync(&self) -> Result<(), DurableCodeError> {
        use valise_store::Store;
        Ok(self.store.sync()?)
    }
}
