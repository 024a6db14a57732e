//! The directory: people with each device's safety number, a way to mark a contact verified
//! in person, a plain warning when a verified contact's keys change, and the offices and posts
//! a cable can be addressed to.

use eframe::egui::{self, RichText};
use valise_client::contacts::Verification;
use valise_client::views::AddresseeKind;

use crate::bridge::{Bridge, Outcome};
use crate::session::Session;
use crate::theme;

/// Shows the directory.
pub(crate) fn show(ui: &mut egui::Ui, session: &mut Session, bridge: &Bridge) {
    ui.heading("Directory");
    ui.horizontal(|ui| {
        let name = ui.label("Search the directory");
        let search = ui
            .add(
                egui::TextEdit::singleline(&mut session.directory_query)
                    .hint_text("name, address or office")
                    .desired_width(320.0),
            )
            .labelled_by(name.id);
        if search.changed() {
            session.reload_directory(bridge);
        }
    });
    ui.label(
        RichText::new(
            "Compare a colleague's safety number with theirs in person (or on a call you trust), \
             then mark them verified. If their keys change later, you will be told here and on \
             every cable they send.",
        )
        .weak(),
    );
    ui.separator();
    let mut action: Option<(String, bool)> = None;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new("people")
                .num_columns(6)
                .striped(true)
                .spacing([14.0, 6.0])
                .show(ui, |ui| {
                    for name in [
                        "Person",
                        "Offices",
                        "Clearance",
                        "Safety number",
                        "Verified",
                        "",
                    ] {
                        ui.label(RichText::new(name).strong());
                    }
                    ui.end_row();
                    for entry in &session.directory {
                        ui.label(format!("{}\n{}", entry.name, entry.address));
                        ui.label(entry.offices.join(", "));
                        ui.label(entry.clearance.cable_name());
                        ui.add(
                            egui::Label::new(RichText::new(&entry.safety_number).monospace())
                                .selectable(true),
                        );
                        if let Some(at) = entry.revoked_at_ms {
                            ui.colored_label(
                                theme::WARNING,
                                format!("revoked {}", valise_client::present::dtg(at)),
                            );
                            ui.label("");
                            ui.end_row();
                            continue;
                        }
                        match entry.verification {
                            Verification::Verified { at_ms } => {
                                ui.colored_label(
                                    theme::GOOD,
                                    format!(
                                        "verified in person {}",
                                        valise_client::present::dtg(at_ms)
                                    ),
                                );
                            }
                            Verification::KeysChanged { .. } => {
                                let warning = ui.colored_label(
                                    theme::WARNING,
                                    "KEYS CHANGED since you verified them: compare again",
                                );
                                warning.widget_info(|| {
                                    egui::WidgetInfo::labeled(
                                        egui::Role::Label,
                                        true,
                                        format!("{}: KEYS CHANGED", entry.address),
                                    )
                                });
                            }
                            Verification::Unverified => {
                                ui.label("not verified");
                            }
                        }
                        ui.horizontal(|ui| {
                            let verified =
                                matches!(entry.verification, Verification::Verified { .. });
                            let mark = ui.button("Mark verified").on_hover_text(format!(
                                "Mark {} verified in person",
                                entry.address
                            ));
                            let mark_label = format!("Mark {} verified", entry.address);
                            mark.widget_info(|| {
                                egui::WidgetInfo::labeled(egui::Role::Button, true, &mark_label)
                            });
                            if mark.clicked() {
                                action = Some((entry.address.clone(), true));
                            }
                            if verified
                                || matches!(entry.verification, Verification::KeysChanged { .. })
                            {
                                let forget = ui.button("Forget");
                                let forget_label =
                                    format!("Forget verification of {}", entry.address);
                                forget.widget_info(|| {
                                    egui::WidgetInfo::labeled(
                                        egui::Role::Button,
                                        true,
                                        &forget_label,
                                    )
                                });
                                if forget.clicked() {
                                    action = Some((entry.address.clone(), false));
                                }
                            }
                        });
                        ui.end_row();
                    }
                });
            ui.separator();
            ui.heading("Offices and posts");
            for place in &session.places {
                let kind = match place.kind {
                    AddresseeKind::Office => "office",
                    AddresseeKind::Post => "post",
                    AddresseeKind::Person => "person",
                };
                ui.label(format!("{}  ({kind}: {})", place.address, place.label));
            }
        });
    if let Some((address, verified)) = action {
        let handle = session.handle.clone();
        bridge.run(async move {
            let result = handle.set_verified(&address, verified).await;
            Outcome::Verified(address, result)
        });
    }
}
