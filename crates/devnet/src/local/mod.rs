//! Throwaway networks on loopback, all in one process: a ministry CA and one post node
//! ([`start_post`], [`build`]), or a hub and several posts linked to it ([`start_network`]),
//! with devices enrolled at their posts. For the load generator, demonstrations and tests;
//! their keys are generated on the spot and never meant for production.
//!
//! | file | concern |
//! |---|---|
//! | `root.rs` | the network's throwaway ministry root and the validity of its certificates |
//! | `node.rs` | one node put together on loopback ([`LocalNode`]), a lone post ([`start_post`], [`build`]) and the devices enrolled at a post ([`LocalDevice`]) |
//! | `federation.rs` | a hub and posts linked to it ([`LocalFederation`]), and the waits for links, directory replication and witnessing |

mod federation;
mod node;
mod root;

pub use federation::{LocalFederation, start_network};
pub use node::{LocalDevice, LocalNetwork, LocalNode, LocalPost, build, start_post};

/// The ministry of a local network.
pub const MINISTRY: &str = "local.example";
/// Its one post.
pub const POST: &str = "post";

/// Why a local network could not be built or used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LocalError(String);

fn fail(e: impl std::fmt::Display) -> LocalError {
    LocalError(format!("cannot build the local network: {e}"))
}
