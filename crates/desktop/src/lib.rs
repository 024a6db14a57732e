//! `valise-desktop`, the egui desktop client (to be built by the desktop issue).
//!
//! It will hold the desktop front end over `valise-client`: inbox in precedence order,
//! classification banners, compose, acknowledgement and attachment progress. Nothing is
//! implemented yet.
