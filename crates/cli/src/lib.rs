//! `valise`, the command-line client (to be built by the client issue).
//!
//! It will hold the `valise` binary, a thin front end over `valise-client`, including
//! `valise demo`, which runs a complete local network. Nothing is implemented yet.
