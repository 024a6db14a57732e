//! First run: the enrolment screen (node address, one-time code, root fingerprint, passphrase
//! twice), every refusal in plain words; then the ministry root's fingerprint shown for
//! comparison with what ministry IT reads out.

use eframe::egui::{self, RichText};
use zeroize::Zeroizing;

use crate::theme;

/// The enrolment form.
#[derive(Default)]
pub(crate) struct Form {
    /// `host:port` of the post's node.
    pub(crate) node: String,
    /// The one-time code.
    pub(crate) code: Zeroizing<String>,
    /// The ministry root's fingerprint, as ministry IT gave it.
    pub(crate) fingerprint: String,
    /// The new passphrase.
    pub(crate) passphrase: Zeroizing<String>,
    /// The new passphrase again.
    pub(crate) again: Zeroizing<String>,
    /// Enrolment is under way.
    pub(crate) busy: bool,
    /// Why the last try was refused.
    pub(crate) refusal: Option<String>,
    /// Said when the screen was reached (after a wipe, say).
    pub(crate) notice: Option<String>,
}

/// What the diplomat asked for.
pub(crate) enum Ask {
    /// Nothing yet.
    Nothing,
    /// Enrol with what was typed.
    Enrol,
}

/// A labelled field of the enrolment grid.
fn field(ui: &mut egui::Ui, label: &str, value: &mut String, secret: bool, hint: &str) {
    let name = ui.label(label);
    ui.add(
        egui::TextEdit::singleline(value)
            .password(secret)
            .hint_text(hint)
            .desired_width(420.0),
    )
    .labelled_by(name.id);
    ui.end_row();
}

/// Checks made before asking the client: the passphrases agree, nothing is left empty.
pub(crate) fn precheck(form: &Form) -> Result<(), String> {
    for (value, name) in [
        (&form.node, "the node address"),
        (&*form.code, "the one-time code"),
        (&form.fingerprint, "the root fingerprint"),
        (&*form.passphrase, "a passphrase"),
    ] {
        if value.trim().is_empty() {
            return Err(format!(
                "Enter {name}: ministry IT gives the first three with the code"
            ));
        }
    }
    if *form.passphrase != *form.again {
        return Err("The two passphrases differ: type the same passphrase twice".into());
    }
    Ok(())
}

/// Shows the form.
pub(crate) fn show(ui: &mut egui::Ui, form: &mut Form) -> Ask {
    let mut ask = Ask::Nothing;
    ui.vertical_centered(|ui| {
        ui.add_space(24.0);
        ui.heading("Enrolment");
        ui.label(
            "Ministry IT gives you the node's address, a one-time code and the ministry \
             root's fingerprint. The passphrase you choose protects everything on this device: \
             at least 15 characters, not a well-known phrase.",
        );
        ui.add_space(12.0);
        if let Some(notice) = &form.notice {
            ui.colored_label(theme::WARNING, notice);
        }
    });
    egui::Grid::new("enrol")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            field(
                ui,
                "Node address",
                &mut form.node,
                false,
                "paris.valise.example:4433",
            );
            field(ui, "One-time code", &mut form.code, false, "");
            field(
                ui,
                "Root fingerprint",
                &mut form.fingerprint,
                false,
                "SHA256:…",
            );
            field(ui, "New passphrase", &mut form.passphrase, true, "");
            field(ui, "Passphrase again", &mut form.again, true, "");
        });
    ui.horizontal(|ui| {
        let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
        let button = ui.add_enabled(!form.busy, egui::Button::new("Enrol this device"));
        if (button.clicked() || enter) && !form.busy {
            ask = Ask::Enrol;
        }
        if form.busy {
            ui.spinner();
            ui.label("Enrolling: making keys and asking the node…");
        }
    });
    if let Some(refusal) = &form.refusal {
        ui.colored_label(theme::WARNING, refusal);
    }
    ask
}

/// Shows the root's fingerprint after enrolment; returns true when the diplomat continues.
pub(crate) fn show_fingerprint(ui: &mut egui::Ui, fingerprint: &str, address: &str) -> bool {
    let mut go_on = false;
    ui.vertical_centered(|ui| {
        ui.add_space(24.0);
        ui.heading(format!("Enrolled as {address}"));
        ui.label(
            "Compare the ministry root's fingerprint below with the one ministry IT reads to \
             you (by phone or in person). If they differ, do not use this device: call \
             ministry IT.",
        );
        ui.add_space(12.0);
        ui.add(
            egui::Label::new(RichText::new(fingerprint).monospace().size(18.0)).selectable(true),
        );
        ui.add_space(12.0);
        if ui.button("The fingerprint matches: continue").clicked() {
            go_on = true;
        }
    });
    go_on
}
