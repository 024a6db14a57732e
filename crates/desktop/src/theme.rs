//! Colours the window uses, from the library's presentation rules.

use eframe::egui::Color32;
use valise_client::present::{self, Rgb};
use valise_client::{Classification, Precedence};

/// An [`Rgb`] as egui's colour.
pub(crate) fn colour(rgb: Rgb) -> Color32 {
    Color32::from_rgb(rgb.0, rgb.1, rgb.2)
}

/// The banner's background and text colours for a classification.
pub(crate) fn banner(classification: Classification) -> (Color32, Color32) {
    let colours = present::banner_colours(classification);
    (colour(colours.background), colour(colours.text))
}

/// How a precedence stands out in a list: FLASH and IMMEDIATE in strong colours.
pub(crate) fn precedence(precedence: Precedence) -> Color32 {
    match precedence {
        Precedence::Flash => Color32::from_rgb(0xd0, 0x10, 0x10),
        Precedence::Immediate => Color32::from_rgb(0xe0, 0x70, 0x00),
        Precedence::Priority => Color32::from_rgb(0x30, 0x60, 0xc0),
        _ => Color32::GRAY,
    }
}

/// Text that warns (refusals, key changes).
pub(crate) const WARNING: Color32 = Color32::from_rgb(0xd0, 0x30, 0x20);
/// Text that reassures (signature verified, verified contact).
pub(crate) const GOOD: Color32 = Color32::from_rgb(0x20, 0x90, 0x40);
