//! A certificate's validity window. Time is an argument: nothing here reads the clock.

use time::OffsetDateTime;

/// How far before `now` a new certificate starts: a peer whose clock is a little behind still
/// accepts it.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// Validity window of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before.
    pub not_before: OffsetDateTime,
    /// Not valid after.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour before `now` until `days` days after it.
    pub fn days_from(now: OffsetDateTime, days: u32) -> Self {
        Validity {
            not_before: now - BACKDATE,
            not_after: now + time::Duration::days(i64::from(days)),
        }
    }

    /// From an hour before `now` until `years` years of 365 days after it.
    pub fn years_from(now: OffsetDateTime, years: u32) -> Self {
        Self::days_from(now, years.saturating_mul(365))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_starts_an_hour_early_and_counts_years_of_365_days() {
        let now = time::macros::datetime!(2030-01-01 12:00 UTC);
        let validity = Validity::years_from(now, 2);
        assert_eq!(
            validity.not_before,
            time::macros::datetime!(2030-01-01 11:00 UTC)
        );
        assert_eq!(
            validity.not_after,
            time::macros::datetime!(2032-01-01 12:00 UTC)
        );
    }
}
