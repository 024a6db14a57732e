//! The reading pane: the cable as a cable reads, its signature and who signed it, the
//! Acknowledge button when it is asked for, reply, reply-all and forward, and its attachments
//! with a progress bar and a cancel.

use std::path::PathBuf;

use eframe::egui::{self, RichText};
use valise_client::contacts::Verification;
use valise_client::present;
use valise_client::views::CableView;

use crate::bridge::{Bridge, Outcome};
use crate::session::{Saving, Session, Transfer};
use crate::theme;

/// A transfer's bar: "Saving report.pdf: 3.1 MiB of 10 MiB".
pub(crate) fn progress_bar(ui: &mut egui::Ui, transfer: &Transfer, name: &str) {
    let fraction = if transfer.total == 0 {
        1.0
    } else {
        transfer.done as f32 / transfer.total as f32
    };
    let text = format!(
        "{} {name}: {} of {}",
        transfer.stage.verb(),
        present::size(transfer.done),
        present::size(transfer.total)
    );
    let bar = ui.add(
        egui::ProgressBar::new(fraction)
            .text(text.clone())
            .show_percentage(),
    );
    bar.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ProgressIndicator, true, &text));
}

/// Shows the open cable.
pub(crate) fn show(ui: &mut egui::Ui, session: &mut Session, bridge: &Bridge) {
    let Some(cable) = session.reading.clone() else {
        crate::inbox::nothing_open(ui);
        return;
    };
    marking_strip(ui, &cable);
    actions(ui, session, &cable, bridge);
    egui::ScrollArea::vertical()
        .id_salt("reading")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            header(ui, &cable);
            signature(ui, &cable);
            ui.separator();
            ui.add(egui::Label::new(RichText::new(&cable.text).monospace()).selectable(true));
            ui.separator();
            attachments(ui, session, &cable, bridge);
            marking_strip(ui, &cable);
        });
}

/// The cable's marking in its classification's colours, above and below it as on paper.
fn marking_strip(ui: &mut egui::Ui, cable: &CableView) {
    let (background, text) = theme::banner(cable.routing.classification);
    egui::Frame::new()
        .fill(background)
        .inner_margin(4.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(&cable.routing.marking).color(text).strong());
        });
}

/// Acknowledge, reply, reply to all, forward.
fn actions(ui: &mut egui::Ui, session: &mut Session, cable: &CableView, bridge: &Bridge) {
    let handle = session.handle.clone();
    let shortcut = |ui: &egui::Ui, modifiers, key| {
        !ui.ctx().text_edit_focused() && crate::shortcut::pressed(ui, modifiers, key)
    };
    ui.horizontal(|ui| {
        if cable.ack_required {
            let ack = ui.button(RichText::new("Acknowledge").strong().color(theme::WARNING));
            if ack.clicked() || shortcut(ui, crate::shortcut::CTRL, egui::Key::K) {
                let id = cable.id.clone();
                let handle = handle.clone();
                bridge.run(async move { Outcome::Acknowledged(handle.acknowledge(&id).await) });
            }
        } else if cable.acknowledged {
            ui.colored_label(theme::GOOD, "Acknowledged");
        }
        let reply_all = shortcut(ui, crate::shortcut::CTRL_SHIFT, egui::Key::R);
        let reply = shortcut(ui, crate::shortcut::CTRL, egui::Key::R);
        for (label, all, pressed) in [("Reply", false, reply), ("Reply to all", true, reply_all)] {
            if ui.button(label).clicked() || pressed {
                let id = cable.id.clone();
                let handle = handle.clone();
                bridge.run(async move { Outcome::Draft(handle.reply_draft(&id, all).await) });
            }
        }
        // Offered for every cable: the client says why a NODIS or EXDIS cable may not go on.
        let forward = shortcut(ui, crate::shortcut::CTRL_SHIFT, egui::Key::F);
        if ui.button("Forward").clicked() || forward {
            let id = cable.id.clone();
            let handle = handle.clone();
            bridge.run(async move {
                Outcome::Draft(handle.forward_draft(&id, Vec::new(), Vec::new()).await)
            });
        }
    });
}

/// The cable's header, as a cable prints it.
fn header(ui: &mut egui::Ui, cable: &CableView) {
    egui::Grid::new("cable_header")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            let line = |ui: &mut egui::Ui, name: &str, value: String| {
                ui.label(RichText::new(name).strong());
                ui.add(egui::Label::new(value).selectable(true));
                ui.end_row();
            };
            line(
                ui,
                "PRECEDENCE",
                present::precedence_label(cable.routing.precedence, cable.routing.niact),
            );
            line(ui, "DTG", present::dtg(cable.routing.created_at_ms));
            line(ui, "FROM", cable.sender.address.clone());
            line(ui, "TO", cable.routing.to.join(", "));
            if !cable.routing.info.is_empty() {
                line(ui, "INFO", cable.routing.info.join(", "));
            }
            line(ui, "CLASSIFICATION", cable.routing.marking.clone());
            line(ui, "TAGS", cable.tags.join(" "));
            line(ui, "SUBJECT", cable.subject.clone());
            for r in &cable.references {
                line(ui, &format!("REF {}", r.label), r.citation.clone());
            }
        });
}

/// Who signed it, as verified, and whether that person was verified in person.
fn signature(ui: &mut egui::Ui, cable: &CableView) {
    match (&cable.sender.device, &cable.sender.safety_number) {
        (Some(device), Some(number)) => {
            ui.colored_label(
                theme::GOOD,
                format!(
                    "Signature verified: signed by {} on device {device}",
                    cable.sender.address
                ),
            );
            ui.label(format!("Safety number: {number}"));
        }
        _ => {
            ui.colored_label(
                theme::WARNING,
                "The signing device is not in this device's directory: sync, then compare the \
                 sender's safety number in person",
            );
        }
    }
    if cable.sender.revoked {
        ui.colored_label(
            theme::WARNING,
            "The sending device has since been revoked by its post: treat later cables from \
             it with suspicion",
        );
    }
    match cable.sender.verification {
        Verification::Verified { .. } => {
            ui.colored_label(theme::GOOD, "Sender verified in person");
        }
        Verification::KeysChanged { .. } => {
            ui.colored_label(
                theme::WARNING,
                "KEYS CHANGED: the sender's keys changed since you verified them in person; \
                 compare the safety number again before relying on this cable",
            );
        }
        Verification::Unverified => {
            ui.label(
                RichText::new(
                    "Sender not verified in person (Directory: compare the safety number)",
                )
                .weak(),
            );
        }
    }
}

/// The attachments, and saving them with a progress bar and a cancel.
fn attachments(ui: &mut egui::Ui, session: &mut Session, cable: &CableView, bridge: &Bridge) {
    if cable.attachments.is_empty() {
        return;
    }
    ui.label(RichText::new("ATTACHMENTS").strong());
    for a in &cable.attachments {
        ui.label(format!(
            "{}. {} ({}, {})",
            a.index + 1,
            a.name,
            a.media_type,
            present::size(a.size)
        ));
    }
    let saving_this = session.saving.as_ref().is_some_and(|s| s.cable == cable.id);
    ui.horizontal(|ui| {
        let name = ui.label("Save to folder");
        ui.add(egui::TextEdit::singleline(&mut session.downloads).desired_width(320.0))
            .labelled_by(name.id);
        if ui
            .add_enabled(!saving_this, egui::Button::new("Save attachments"))
            .clicked()
        {
            let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
            session.saving = Some(Saving {
                cable: cable.id.clone(),
                cancel: Some(cancel),
            });
            let handle = session.handle.clone();
            let id = cable.id.clone();
            let dest = PathBuf::from(session.downloads.trim());
            bridge.run(async move {
                if let Err(e) = std::fs::create_dir_all(&dest) {
                    return Outcome::Saved(
                        id,
                        Err(valise_client::ClientError::Attachment {
                            name: dest.display().to_string(),
                            reason: format!("the folder cannot be made ({e}); choose another"),
                        }),
                    );
                }
                let (stop, done) = handle.save_attachments(&id, dest).await;
                tokio::pin!(done);
                let saved = tokio::select! {
                    saved = &mut done => saved,
                    _ = cancelled => {
                        drop(stop);
                        done.await
                    }
                };
                Outcome::Saved(id, saved)
            });
        }
        if saving_this
            && ui.button("Cancel saving").clicked()
            && let Some(saving) = session.saving.as_mut()
        {
            saving.cancel.take();
        }
    });
    for ((c, index), t) in &session.transfers {
        if *c == cable.id {
            let name = cable
                .attachments
                .get(*index)
                .map_or("attachment", |a| a.name.as_str());
            progress_bar(ui, t, name);
        }
    }
}
