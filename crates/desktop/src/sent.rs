//! The sent view: each cable sent, and each recipient's state (queued, custody, delivered,
//! read, acknowledged) and when, updating live as receipts arrive.

use eframe::egui::{self, RichText};
use valise_client::present;
use valise_client::status::DeliveryState;
use valise_client::views::SentView;

use crate::bridge::{Bridge, Outcome};
use crate::session::Session;
use crate::theme;

/// One line summing up a sent cable's recipients.
fn summary(cable: &SentView) -> String {
    if let Some(reason) = &cable.refused {
        return format!("refused: {reason}");
    }
    if cable.cancelled {
        return "cancelled".into();
    }
    let count = |s: DeliveryState| cable.recipients.iter().filter(|r| r.state >= s).count();
    format!(
        "{} recipient(s): {} delivered, {} read, {} acknowledged",
        cable.recipients.len(),
        count(DeliveryState::Delivered),
        count(DeliveryState::Read),
        count(DeliveryState::Acknowledged)
    )
}

/// Shows the list of sent cables on the left and the one selected on the right.
pub(crate) fn show(ui: &mut egui::Ui, session: &mut Session, bridge: &Bridge) {
    egui::Panel::left("sent_list")
        .default_size(420.0)
        .resizable(true)
        .show(ui, |ui| {
            ui.heading("Sent cables");
            if session.sent.is_empty() {
                ui.label("Nothing sent yet.");
            }
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    for cable in &session.sent {
                        let selected = session.sent_selected.as_deref() == Some(cable.id.as_str());
                        let text = format!(
                            "{} {}  {}\n{}",
                            present::precedence_label(
                                cable.routing.precedence,
                                cable.routing.niact
                            ),
                            cable.routing.marking,
                            cable.subject,
                            summary(cable)
                        );
                        if ui.selectable_label(selected, text).clicked() {
                            session.sent_selected = Some(cable.id.clone());
                        }
                    }
                });
        });
    let Some(cable) = session
        .sent
        .iter()
        .find(|c| session.sent_selected.as_deref() == Some(c.id.as_str()))
        .cloned()
    else {
        return;
    };
    ui.heading(&cable.subject);
    ui.label(format!(
        "{}   {}   DTG {}",
        present::precedence_label(cable.routing.precedence, cable.routing.niact),
        cable.routing.marking,
        present::dtg(cable.created_at_ms)
    ));
    ui.label(format!("TO {}", cable.routing.to.join(", ")));
    if !cable.routing.info.is_empty() {
        ui.label(format!("INFO {}", cable.routing.info.join(", ")));
    }
    if let Some(reason) = &cable.refused {
        ui.colored_label(theme::WARNING, format!("Refused by the node: {reason}"));
    }
    if cable.cancelled {
        ui.colored_label(theme::WARNING, "Cancelled before the node took it");
    }
    if !cable.ack_overdue.is_empty() {
        ui.colored_label(
            theme::WARNING,
            format!("ACK OVERDUE: {}", cable.ack_overdue.join(", ")),
        );
    }
    for ((c, index), t) in &session.transfers {
        if *c == cable.id {
            crate::reading::progress_bar(ui, t, &format!("attachment {}", index + 1));
        }
    }
    ui.separator();
    egui::Grid::new("recipients")
        .num_columns(5)
        .striped(true)
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            for name in ["Recipient", "As", "State", "Since", "Objective"] {
                ui.label(RichText::new(name).strong());
            }
            ui.end_row();
            for r in &cable.recipients {
                let state = r.state.as_str();
                let label = ui.label(&r.address);
                label.widget_info(|| {
                    egui::WidgetInfo::labeled(
                        egui::Role::Label,
                        true,
                        format!("{} {state}", r.address),
                    )
                });
                ui.label(if r.action { "action" } else { "info" });
                let colour = if r.state == DeliveryState::Acknowledged {
                    theme::GOOD
                } else {
                    ui.visuals().text_color()
                };
                ui.colored_label(colour, state);
                ui.label(present::dtg(r.updated_at_ms));
                ui.label(if cable.refused.is_none() && !cable.cancelled {
                    present::timeliness(r.timeliness)
                } else {
                    String::new()
                });
                ui.end_row();
            }
        });
    let queued = cable.refused.is_none()
        && !cable.cancelled
        && cable
            .recipients
            .iter()
            .all(|r| r.state == DeliveryState::Queued);
    if queued && ui.button("Cancel this cable").clicked() {
        let handle = session.handle.clone();
        let id = cable.id.clone();
        bridge.run(async move { Outcome::Cancelled(handle.cancel(&id).await) });
    }
}
