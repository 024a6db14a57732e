//! The network's throwaway ministry root.

use time::OffsetDateTime;
use valise_pki::{MinistryCa, Validity};

use super::{LocalError, fail};

/// A network's ministry root and the validity every certificate of it gets.
pub(super) struct Root {
    pub(super) ministry: String,
    pub(super) ca: MinistryCa,
    pub(super) validity: Validity,
}

impl Root {
    /// A fresh root for `ministry`, valid from an hour ago for 30 days.
    pub(super) fn generate(ministry: &str) -> Result<Self, LocalError> {
        let now = OffsetDateTime::now_utc();
        let validity = Validity {
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(30),
        };
        Ok(Root {
            ministry: ministry.to_owned(),
            ca: MinistryCa::generate(ministry, validity).map_err(fail)?,
            validity,
        })
    }
}
