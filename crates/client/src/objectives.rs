//! Delivery objectives, tracked per recipient: from submission (the cable's creation) to the
//! recipient's delivered receipt, against its precedence's objective (FLASH 10 minutes,
//! IMMEDIATE 30 minutes, PRIORITY 3 hours, ROUTINE 6 hours). A FLASH or NIACT cable also
//! expects its action addressees' acknowledgement within that objective. Pure: time is an
//! argument.

use valise_proto::v1::Precedence;

use crate::status::{RecipientStatus, SentCable};

/// How one recipient stands against the cable's objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    /// Delivered within the objective, after this long.
    OnTime {
        /// From submission to delivery, ms.
        took_ms: u64,
    },
    /// Delivered, but after the objective.
    Late {
        /// By how much, ms.
        by_ms: u64,
    },
    /// Not delivered yet, with time left.
    Pending {
        /// Time left, ms.
        left_ms: u64,
    },
    /// Not delivered, and past the objective.
    Overdue {
        /// By how much, ms.
        by_ms: u64,
    },
}

impl Timeliness {
    /// The stable word used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Timeliness::OnTime { .. } => "on_time",
            Timeliness::Late { .. } => "late",
            Timeliness::Pending { .. } => "pending",
            Timeliness::Overdue { .. } => "overdue",
        }
    }
}

/// The cable's precedence.
fn precedence(cable: &SentCable) -> Precedence {
    cable
        .header
        .as_ref()
        .and_then(|h| Precedence::try_from(h.precedence).ok())
        .unwrap_or(Precedence::Routine)
}

/// How `recipient` of `cable` stands at `now_ms`.
pub fn timeliness(cable: &SentCable, recipient: &RecipientStatus, now_ms: u64) -> Timeliness {
    let objective = precedence(cable).objective_ms();
    let start = cable.created_at_ms;
    match recipient.delivered_at_ms {
        0 => {
            let waited = now_ms.saturating_sub(start);
            if waited <= objective {
                Timeliness::Pending {
                    left_ms: objective - waited,
                }
            } else {
                Timeliness::Overdue {
                    by_ms: waited - objective,
                }
            }
        }
        at => {
            let took = at.saturating_sub(start);
            if took <= objective {
                Timeliness::OnTime { took_ms: took }
            } else {
                Timeliness::Late {
                    by_ms: took - objective,
                }
            }
        }
    }
}

/// The action addressees of a FLASH or NIACT cable who have not acknowledged it within its
/// objective, as of `now_ms` (empty before the objective has passed, or when none is owed).
pub fn ack_overdue(cable: &SentCable, now_ms: u64) -> Vec<String> {
    let niact = cable.header.as_ref().is_some_and(|h| h.niact);
    if precedence(cable) != Precedence::Flash && !niact {
        return Vec::new();
    }
    if !cable.refused.is_empty() || cable.cancelled {
        return Vec::new();
    }
    let deadline = cable
        .created_at_ms
        .saturating_add(precedence(cable).objective_ms());
    if now_ms <= deadline {
        return Vec::new();
    }
    let mut owed: Vec<String> = cable
        .recipients
        .iter()
        .filter(|r| r.action && (r.acknowledged_at_ms == 0 || r.acknowledged_at_ms > deadline))
        .map(|r| r.address.clone())
        .collect();
    owed.sort();
    owed.dedup();
    owed
}

/// "12 min", "3 h 5 min", "40 s": a duration as a diplomat reads it.
pub fn human(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        _ if secs % 3600 / 60 == 0 => format!("{} h", secs / 3600),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valise_proto::v1::RoutingHeader;

    const MIN: u64 = 60_000;

    fn cable(precedence: Precedence, niact: bool) -> SentCable {
        SentCable {
            header: Some(RoutingHeader {
                precedence: precedence as i32,
                niact,
                ..Default::default()
            }),
            created_at_ms: 1_000 * MIN,
            recipients: vec![
                RecipientStatus {
                    address: "bob@nairobi".into(),
                    action: true,
                    ..Default::default()
                },
                RecipientStatus {
                    address: "carol@nairobi".into(),
                    action: false,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn each_recipient_is_on_time_late_pending_or_overdue_against_the_precedence() {
        let mut c = cable(Precedence::Flash, false);
        let start = c.created_at_ms;
        c.recipients[0].delivered_at_ms = start + 4 * MIN;
        assert_eq!(
            timeliness(&c, &c.recipients[0], start + 60 * MIN),
            Timeliness::OnTime { took_ms: 4 * MIN }
        );
        assert_eq!(
            timeliness(&c, &c.recipients[1], start + 7 * MIN),
            Timeliness::Pending { left_ms: 3 * MIN }
        );
        assert_eq!(
            timeliness(&c, &c.recipients[1], start + 25 * MIN),
            Timeliness::Overdue { by_ms: 15 * MIN }
        );
        c.recipients[1].delivered_at_ms = start + 12 * MIN;
        assert_eq!(
            timeliness(&c, &c.recipients[1], start + 25 * MIN),
            Timeliness::Late { by_ms: 2 * MIN }
        );
        // ROUTINE has six hours.
        let r = cable(Precedence::Routine, false);
        assert!(matches!(
            timeliness(&r, &r.recipients[0], start + 300 * MIN),
            Timeliness::Pending { .. }
        ));
    }

    #[test]
    fn a_flash_or_niact_cable_names_the_action_addressees_who_owe_an_acknowledgement() {
        let mut c = cable(Precedence::Flash, false);
        let start = c.created_at_ms;
        assert!(
            ack_overdue(&c, start + 9 * MIN).is_empty(),
            "within the objective"
        );
        assert_eq!(
            ack_overdue(&c, start + 11 * MIN),
            vec!["bob@nairobi"],
            "carol is info only"
        );
        c.recipients[0].acknowledged_at_ms = start + 8 * MIN;
        assert!(ack_overdue(&c, start + 11 * MIN).is_empty());
        // NIACT at PRIORITY: three hours to acknowledge.
        let n = cable(Precedence::Priority, true);
        assert!(ack_overdue(&n, start + 170 * MIN).is_empty());
        assert_eq!(ack_overdue(&n, start + 181 * MIN), vec!["bob@nairobi"]);
        // A ROUTINE cable owes no acknowledgement.
        assert!(ack_overdue(&cable(Precedence::Routine, false), start + 999 * MIN).is_empty());
        assert_eq!(human(12 * MIN), "12 min");
        assert_eq!(human(185 * MIN), "3 h 5 min");
    }
}
