//! Valise development networks: everything that runs Valise for development and never in
//! production. No production binary (`valise-relay`, `valise`, `valise-desktop`) links this
//! crate; the client's and the desktop's demonstrations reach it only through their optional
//! `demo` feature.
//!
//! | module | concept |
//! |---|---|
//! | [`local`] | throwaway in-process networks on one ministry root: one post, or a hub and posts linked to it, with devices enrolled at their posts and waits for links, directory replication and witnessing |
//!
//! Binary: `valise-loadgen` (`src/bin/valise-loadgen.rs`), which measures one node, or a hub
//! and two posts, on such a network.

#![forbid(unsafe_code)]

pub mod local;
