//! `valise`, the command-line client: a thin front end over `valise-client`. Every decision
//! about cables lives in the library; this crate parses, prompts, prints and runs the demo.
//!
//! | module | concept |
//! |---|---|
//! | [`args`] | the command line |
//! | [`commands`] | each command: unlock, sync, call the library, print |
//! | [`render`] | classification banners, precedence, date-time groups |
//! | [`progress`] | progress bars for attachments, on a terminal only |
//! | [`unlock`] | the data folder and the passphrase |
//! | `demo` | `valise demo`: a local network showing Valise at work (only with the `demo` feature) |

#![forbid(unsafe_code)]

pub mod args;
pub mod commands;
#[cfg(feature = "demo")]
pub mod demo;
pub mod progress;
pub mod render;
pub mod unlock;
