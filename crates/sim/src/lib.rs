//! `valise-sim`: the relay network run on its sans-I/O core in virtual time, in the way of
//! quinn-proto's test pairs and of the simulation testing FoundationDB and TigerBeetle are
//! known for.
//!
//! A run ([`world::run`]) is a hub and two or three posts, each with its diplomats' devices,
//! on simulated links with latency, loss and reordering; for a while partitions cut links and
//! nodes crash, losing what they had not made durable; then the network heals. Everything in
//! a run, faults included, is drawn from one seed ([`world::Scenario::from_seed`]), so a
//! failure names the seed that reproduces it. The nodes are the core
//! ([`valise_relay_core`]): its admission, delivery window and outbound window decide; this
//! crate only moves messages and keeps the durable state a real node keeps on disk.
//!
//! A settled run must show ([`check`]):
//! - every cable whose custody receipt was signed is stored once by each of its recipients;
//! - no FLASH waits behind a cable of lower precedence sent to its device after it was
//!   queued, and none is held back from a link with room in its window;
//! - no node signed a checkpoint its log does not extend, and no witness cosigned a tree the
//!   log does not hold, two trees of one size, or a smaller size after a larger.

#![forbid(unsafe_code)]

pub mod check;
pub mod device;
pub mod directory;
pub mod memstore;
pub mod net;
pub mod node;
pub mod world;
