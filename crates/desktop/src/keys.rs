//! Keys and emergency: rotate the receive keys, sync now, when to lock, lock now, and the
//! emergency wipe behind a deliberate two-step confirmation.

use eframe::egui::{self, RichText};

use crate::bridge::{Bridge, Outcome};
use crate::session::Session;
use crate::theme;

/// The word typed to confirm the wipe.
pub(crate) const CONFIRM_WORD: &str = "WIPE";

/// What the keys view asks of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Nothing.
    Nothing,
    /// Lock now.
    Lock,
}

/// Shows the keys view. `lock_after_minutes` is the idle lock, changed here.
pub(crate) fn show(
    ui: &mut egui::Ui,
    session: &mut Session,
    lock_after_minutes: &mut u32,
    bridge: &Bridge,
) -> Ask {
    let mut ask = Ask::Nothing;
    ui.heading("Keys and emergency");
    ui.label(format!(
        "This device: {} (device {}), served by the node at {}",
        session.handle.address(),
        session.handle.device(),
        session.handle.node()
    ));
    ui.label(format!(
        "Ministry root fingerprint: {}",
        session.handle.root_fingerprint()
    ));
    ui.separator();
    ui.horizontal(|ui| {
        if ui.button("Rotate keys").clicked() {
            let handle = session.handle.clone();
            bridge.run(async move { Outcome::Rotated(handle.rotate_keys().await) });
        }
        ui.label("Publishes a new receive key; older ones are erased 30 days after.");
    });
    ui.horizontal(|ui| {
        if ui.button("Sync now").clicked() {
            let handle = session.handle.clone();
            bridge.run(async move { Outcome::Synced(handle.sync_now().await) });
        }
    });
    ui.horizontal(|ui| {
        let name = ui.label("Lock after idle (minutes)");
        ui.add(egui::DragValue::new(lock_after_minutes).range(1..=240))
            .labelled_by(name.id);
        if ui.button("Lock now").clicked() {
            ask = Ask::Lock;
        }
    });
    ui.separator();
    ui.heading(RichText::new("Emergency wipe").color(theme::WARNING));
    ui.label(
        "Erases this device's keys and every cable on it at once, then tells the node, which \
         revokes the device. Nothing can be recovered. Use it when the device may fall into \
         the wrong hands.",
    );
    if !session.wipe_armed {
        if ui.button("Emergency wipe…").clicked() {
            session.wipe_armed = true;
            session.wipe_confirm.clear();
        }
        return ask;
    }
    ui.horizontal(|ui| {
        let name = ui.label(format!("Type {CONFIRM_WORD} to confirm"));
        ui.add(egui::TextEdit::singleline(&mut session.wipe_confirm).desired_width(120.0))
            .labelled_by(name.id);
    });
    ui.horizontal(|ui| {
        let confirmed = session.wipe_confirm.trim() == CONFIRM_WORD;
        let erase = ui.add_enabled(
            confirmed,
            egui::Button::new(RichText::new("Erase this device now").strong()).fill(theme::WARNING),
        );
        if erase.clicked() {
            let handle = session.handle.clone();
            bridge.run(async move { Outcome::WipeFinished(handle.wipe().await) });
        }
        if ui.button("Do not wipe").clicked() {
            session.wipe_armed = false;
            session.wipe_confirm.clear();
        }
    });
    ask
}
