//! Valise development networks: everything that runs Valise for development and never in
//! production: throwaway networks, the load generator and the fixtures tests share. No
//! production binary links this crate: `valise demo` and `valise-desktop --demo` reach it only
//! through the `demo` feature of `valise-cli` and `valise-desktop` (a default feature; the
//! clients ministry IT ships are built without it).
//!
//! | module | concept |
//! |---|---|
//! | [`local`] | throwaway in-process networks on one ministry root: one post, or a hub and posts linked to it, with devices enrolled at their posts and waits for links, directory replication and witnessing |
//! | [`process`] | test fixtures: a ministry's network of `valise-relay` processes (`Network`, `Node`) and diplomats running `valise` (`Diplomat`), the built binaries found and brought up to date |
//! | [`inproc`] | test fixtures: diplomats holding the client library in-process, enrolled with one-time codes at a [`local`] post, and waiting for their events |
//!
//! Binary: `valise-loadgen` (`src/bin/valise-loadgen.rs`), which measures one node, or a hub
//! and two posts, on such a network.

#![forbid(unsafe_code)]

pub mod inproc;
pub mod local;
pub mod process;
