//! The classification banners, top and bottom of the window, always visible: the highest
//! marking on screen, in the conventional colours.

use eframe::egui::{self, RichText};
use valise_client::Classification;

use crate::theme;

/// Shows the top and bottom banners for `classification` with `marking` (`SECRET//NODIS`).
/// Call before any other panel, so the banners hold the window's very edges.
pub(crate) fn show(ui: &mut egui::Ui, classification: Classification, marking: &str) {
    for (id, top) in [("banner_top", true), ("banner_bottom", false)] {
        let panel = if top {
            egui::Panel::top(id)
        } else {
            egui::Panel::bottom(id)
        };
        let (background, text) = theme::banner(classification);
        panel
            .exact_size(24.0)
            .resizable(false)
            .show_separator_line(false)
            .frame(egui::Frame::new().fill(background))
            .show(ui, |ui| {
                ui.centered_and_justified(|ui| {
                    let label = ui.label(RichText::new(marking).color(text).strong().size(15.0));
                    let place = if top { "top" } else { "bottom" };
                    label.widget_info(|| {
                        egui::WidgetInfo::labeled(
                            egui::Role::Label,
                            true,
                            format!("Classification banner ({place}): {marking}"),
                        )
                    });
                });
            });
    }
}
