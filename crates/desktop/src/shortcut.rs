//! Keyboard shortcuts matched exactly: Ctrl+R replies and Ctrl+Shift+R replies to all, so a
//! shortcut with Shift never also fires the one without it.

use eframe::egui;

/// Whether `key` was pressed with exactly `modifiers` this frame; the press is consumed.
pub(crate) fn pressed(ui: &egui::Ui, modifiers: egui::Modifiers, key: egui::Key) -> bool {
    ui.input_mut(|i| {
        let hit = i.events.iter().any(|e| {
            matches!(e, egui::Event::Key { key: k, pressed: true, modifiers: m, .. }
                if *k == key && m.matches_exact(modifiers))
        });
        if hit {
            i.consume_key(modifiers, key);
        }
        hit
    })
}

/// Ctrl (Cmd on a Mac).
pub(crate) const CTRL: egui::Modifiers = egui::Modifiers::COMMAND;

/// Ctrl and Shift.
pub(crate) const CTRL_SHIFT: egui::Modifiers = egui::Modifiers {
    shift: true,
    ..egui::Modifiers::COMMAND
};
