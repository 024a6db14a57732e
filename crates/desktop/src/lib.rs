//! `valise-desktop`: the diplomat's desktop client, in egui.
//!
//! A front end only: every decision (what may be sent, to whom, what a cable says, who signed
//! it) is the client library's, reached through its [`ClientHandle`](valise_client::ClientHandle)
//! without ever blocking the window. The relay is reached only by [`demo`].
//!
//! | module | concern |
//! |---|---|
//! | [`app`] | the screens (enrolment, unlock, main), the idle lock, shortcuts, the layout |
//! | `bridge` | requests out to the client's task, outcomes and events back to the frame loop |
//! | `session` | what the unlocked window shows, updated by events |
//! | `banner` | the classification banners, top and bottom |
//! | [`inbox`] | the inbox list, virtualised, with its filter |
//! | `reading` | the reading pane: header, signature, acknowledge, reply, forward, attachments |
//! | `compose` | the compose form, checked by the client as the diplomat types |
//! | `sent` | sent cables and each recipient's state |
//! | `directory` | people with safety numbers, verification, offices and posts |
//! | `keys` | rotate keys, lock, emergency wipe |
//! | `status` | the status bar |
//! | `shortcut` | keyboard shortcuts, matched exactly |
//! | `enrol`, `unlock` | first run and the passphrase screen |
//! | [`demo`] | `--demo`: a throwaway post with cables waiting |

#![forbid(unsafe_code)]

pub mod app;
mod banner;
mod bridge;
mod compose;
pub mod demo;
mod directory;
mod enrol;
pub mod inbox;
mod keys;
mod reading;
mod sent;
mod session;
mod shortcut;
mod status;
mod theme;
mod unlock;

pub use app::{App, Options};
