//! The unlock screen: the passphrase, unlocked off the window's thread (Argon2id is slow on
//! purpose), every refusal in words.

use eframe::egui;
use zeroize::Zeroizing;

use crate::theme;

/// The unlock form.
#[derive(Default)]
pub(crate) struct Form {
    /// What was typed.
    pub(crate) passphrase: Zeroizing<String>,
    /// Unlocking is under way.
    pub(crate) busy: bool,
    /// Why the last try failed.
    pub(crate) refusal: Option<String>,
    /// A hint shown under the field (the demo's passphrase).
    pub(crate) hint: Option<String>,
}

/// Shows the form; true when the diplomat asks to unlock.
pub(crate) fn show(ui: &mut egui::Ui, form: &mut Form, locked_note: &str) -> bool {
    let mut ask = false;
    ui.vertical_centered(|ui| {
        ui.add_space(60.0);
        ui.heading("Valise is locked");
        ui.label(locked_note);
        ui.add_space(12.0);
        let name = ui.label("Passphrase");
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut *form.passphrase)
                    .password(true)
                    .desired_width(320.0),
            )
            .labelled_by(name.id);
        if !form.busy && !field.has_focus() && form.passphrase.is_empty() {
            field.request_focus();
        }
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let button = ui.add_enabled(!form.busy, egui::Button::new("Unlock"));
        if (button.clicked() || entered) && !form.busy {
            ask = true;
        }
        if form.busy {
            ui.spinner();
        }
        if let Some(refusal) = &form.refusal {
            ui.colored_label(theme::WARNING, refusal);
        }
        if let Some(hint) = &form.hint {
            ui.label(egui::RichText::new(hint).weak());
        }
    });
    ask
}
