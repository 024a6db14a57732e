//! `valise-desktop`: the diplomat's desktop client, in egui.
//!
//! A front end only: every decision (what may be sent, to whom, what a cable says, who signed
//! it) is the client library's, reached through its [`ClientHandle`](valise_client::ClientHandle)
//! without ever blocking the window. The relay is reached only by `demo`, which only builds
//! with the `demo` feature (a default one; the client ministry IT ships is built without it).
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
//! | `demo` | `--demo`: a throwaway post with cables waiting (only with the `demo` feature) |

#![forbid(unsafe_code)]

pub mod app;
mod banner;
mod bridge;
mod compose;
#[cfg(feature = "demo")]
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

/// What `--demo` says in a build without the demonstration network, such as the client
/// ministry IT ships (built with `--no-default-features`).
pub const NO_DEMO: &str = "this build of valise-desktop has no demonstration network (it was \
    built without the `demo` feature); build valise-desktop with `--features demo` to get one, \
    e.g. `cargo run --release -p valise-desktop --features demo -- --demo`";

#[cfg(test)]
mod tests {
    use super::NO_DEMO;

    #[test]
    fn a_build_without_the_demo_says_so_and_how_to_get_one() {
        assert!(
            NO_DEMO.contains("has no demonstration network"),
            "{NO_DEMO}"
        );
        assert!(NO_DEMO.contains("--features demo"), "{NO_DEMO}");
    }
}
