//! `valise-relay-core`: what a relay node decides, as pure functions and state machines with
//! time as an argument, in the way of quinn-proto. It depends on no async runtime, no network,
//! no storage engine and no clock, so every decision here can be tested, and simulated, on its
//! own; `valise-relay` is the shell that moves bytes and keeps state durable around it.
//!
//! | module | decides |
//! |---|---|
//! | [`admission`] | one path for a device's submission and a neighbour's forward: the reply, the audit records, the durable write and the wake-ups, as data |
//! | [`policy`] | whether a submission or a forward may be taken: envelope checks, sender, clearance, caveats, limits |
//! | [`routing`] | the next hop for each recipient device, from the node's role and the directory |
//! | [`queue`] | delivery order: precedence rank and queue keys |
//! | [`delivery`] | a device's delivery stream: rounds, the window in flight, redelivery, caught up |
//! | [`devices`] | what a device may change about itself: its receive keys, its revocation on wipe |
//! | [`enrolment`] | one-time enrolment codes: single use, expiry, bound, per-source rate limit |
//! | [`outbound`] | the forwarding window to a neighbour, urgent traffic first, and retry delays |
//! | [`attachment`] | an attachment's id, and the list a cable carries |
//! | [`record`] | an audit event as a decision describes it; the shell stamps the time |
//! | [`reason`] | why something was refused or done, as the audit log and metrics name it |
//! | [`gate`] | connection admission: totals and per-source caps |
//! | [`limits`] | the node's limits, as configured |

#![forbid(unsafe_code)]
// Decisions never unwrap, expect or panic: a bad input is an answer, not a crash.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    missing_docs
)]

pub mod admission;
pub mod attachment;
pub mod delivery;
pub mod devices;
pub mod enrolment;
pub mod gate;
pub mod limits;
pub mod outbound;
pub mod policy;
pub mod queue;
pub mod reason;
pub mod record;
pub mod routing;
