//! The compose view: addressees with directory autocomplete, classification, caveats,
//! precedence, NIACT, TAGS, subject, text and attachments. The draft is checked by the client
//! at every change, so a refusal names the addressee who blocks it before anything is sealed;
//! "Seal and send" is offered only when the check passes.

use std::path::PathBuf;

use eframe::egui::{self, RichText};
use valise_client::client::DraftCheck;
use valise_client::views::{AddresseeKind, AddresseeView};
use valise_client::{CableDraft, Caveat, Classification, ClientHandle, Precedence, Reference};

use crate::bridge::{Bridge, Outcome};
use crate::session::{Session, Transfer};
use crate::theme;

/// Which addressee field is being typed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// To (action).
    To,
    /// Info.
    Info,
    /// The text.
    Text,
}

/// The compose form.
pub(crate) struct Form {
    /// Action addressees, comma separated as typed.
    pub(crate) to: String,
    /// Info addressees.
    pub(crate) info: String,
    /// The classification.
    pub(crate) classification: Classification,
    /// Caveats chosen.
    pub(crate) caveats: Vec<Caveat>,
    /// The precedence.
    pub(crate) precedence: Precedence,
    /// Night action.
    pub(crate) niact: bool,
    /// TAGS, space or comma separated.
    pub(crate) tags: String,
    /// The subject.
    pub(crate) subject: String,
    /// The text.
    pub(crate) text: String,
    /// Files to attach.
    pub(crate) attachments: Vec<PathBuf>,
    /// A path typed to attach.
    pub(crate) attach_path: String,
    /// References carried from a reply or forward.
    pub(crate) references: Vec<Reference>,
    /// Bumped at every change; a check answers for one generation.
    generation: u64,
    /// The newest check that answered for the current generation.
    check: Option<DraftCheck>,
    /// The field autocomplete is for, and its suggestions.
    suggestions: Option<(Field, String, Vec<AddresseeView>)>,
    /// Sealing and queueing is under way.
    pub(crate) sending: bool,
    /// Why the last send was refused.
    pub(crate) refusal: Option<String>,
    /// The field that takes the keyboard when the form next shows.
    pub(crate) focus: Option<Field>,
}

impl Default for Form {
    fn default() -> Self {
        Form {
            to: String::new(),
            info: String::new(),
            classification: Classification::Unspecified,
            caveats: Vec::new(),
            precedence: Precedence::Routine,
            niact: false,
            tags: String::new(),
            subject: String::new(),
            text: String::new(),
            attachments: Vec::new(),
            attach_path: String::new(),
            references: Vec::new(),
            generation: 0,
            check: None,
            suggestions: None,
            sending: false,
            refusal: None,
            focus: Some(Field::To),
        }
    }
}

/// Addressees as typed: comma or semicolon separated, spaces trimmed.
fn split(list: &str) -> Vec<String> {
    list.split([',', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The last, unfinished addressee of a list.
fn last_token(list: &str) -> &str {
    list.rsplit([',', ';']).next().unwrap_or("").trim()
}

impl Form {
    /// A form filled from a draft (a reply or a forward): the keyboard goes to To when it is
    /// empty (a forward), otherwise to the text (a reply).
    pub(crate) fn from_draft(draft: CableDraft) -> Self {
        let focus = Some(if draft.action.is_empty() {
            Field::To
        } else {
            Field::Text
        });
        Form {
            focus,
            to: draft.action.join(", "),
            info: draft.info.join(", "),
            classification: draft.classification,
            caveats: draft.caveats,
            precedence: draft.precedence,
            niact: draft.niact,
            tags: draft.tags.join(" "),
            subject: draft.subject,
            text: draft.text,
            attachments: draft.attachments,
            references: draft.references,
            ..Form::default()
        }
    }

    /// The draft as it stands.
    pub(crate) fn draft(&self) -> CableDraft {
        CableDraft {
            action: split(&self.to),
            info: split(&self.info),
            classification: self.classification,
            precedence: self.precedence,
            niact: self.niact,
            caveats: self.caveats.clone(),
            tags: self
                .tags
                .split([' ', ','])
                .filter(|t| !t.is_empty())
                .map(str::to_uppercase)
                .collect(),
            subject: self.subject.clone(),
            text: self.text.clone(),
            attachments: self.attachments.clone(),
            references: self.references.clone(),
        }
    }

    /// Something changed: the draft is checked again.
    pub(crate) fn changed(&mut self, handle: &ClientHandle, bridge: &Bridge) {
        self.generation = self.generation.wrapping_add(1);
        self.refusal = None;
        let generation = self.generation;
        let handle = handle.clone();
        let draft = self.draft();
        bridge.run(async move {
            match handle.check(draft).await {
                Ok(check) => Outcome::Checked(generation, check),
                Err(e) => Outcome::Checked(
                    generation,
                    DraftCheck {
                        blocking: Some(e.to_string()),
                        ..DraftCheck::default()
                    },
                ),
            }
        });
    }

    /// A check answered; kept only if it is for the draft as it stands.
    pub(crate) fn checked(&mut self, generation: u64, check: DraftCheck) {
        if generation == self.generation {
            self.check = Some(check);
        }
    }

    /// Suggestions arrived for `query`; kept if that is still what is being typed.
    pub(crate) fn suggestions_for(&mut self, query: &str, found: Vec<AddresseeView>) {
        if let Some((_, typed, list)) = &mut self.suggestions
            && typed == query
        {
            *list = found;
        }
    }

    fn ask_suggestions(&mut self, field: Field, handle: &ClientHandle, bridge: &Bridge) {
        let list = match field {
            Field::Info => &self.info,
            _ => &self.to,
        };
        let token = last_token(list).to_owned();
        if token.is_empty() {
            self.suggestions = None;
            return;
        }
        self.suggestions = Some((field, token.clone(), Vec::new()));
        let handle = handle.clone();
        bridge.run(async move {
            let found = handle.addressees(&token).await.unwrap_or_default();
            Outcome::Addressees(token, found)
        });
    }

    /// Whether the check passed for the draft as it stands.
    pub(crate) fn ready(&self) -> bool {
        self.check.as_ref().is_some_and(DraftCheck::is_ready)
    }

    fn accept(&mut self, field: Field, address: &str) {
        let list = match field {
            Field::Info => &mut self.info,
            _ => &mut self.to,
        };
        let mut parts = split(list);
        parts.pop();
        parts.push(address.to_owned());
        *list = parts.join(", ") + ", ";
        self.suggestions = None;
    }
}

/// A labelled single-line text field; its label is its accessible name.
fn field(ui: &mut egui::Ui, label: &str, value: &mut String, hint: &str) -> egui::Response {
    let name = ui.label(label);
    let edit = egui::TextEdit::singleline(value)
        .hint_text(hint)
        .desired_width(f32::INFINITY);
    let response = ui.add(edit).labelled_by(name.id);
    ui.end_row();
    response
}

/// Shows the compose view.
pub(crate) fn show(ui: &mut egui::Ui, session: &mut Session, bridge: &Bridge) {
    let handle = session.handle.clone();
    let sealing: Vec<Transfer> = session_sealing(&session.transfers);
    let form = &mut session.compose;
    let mut changed = false;
    // Files dropped on the window are attached.
    let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
        i.raw
            .dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .filter(|p| !p.as_os_str().is_empty())
            .collect()
    });
    if !dropped.is_empty() {
        form.attachments.extend(dropped);
        changed = true;
    }
    ui.heading("New cable");
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("compose_grid")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                for (which, label, hint) in [
                    (Field::To, "To (action)", "alice@paris, POL@paris, nairobi"),
                    (Field::Info, "Info", "people, offices or posts to inform"),
                ] {
                    let value = match which {
                        Field::Info => &mut form.info,
                        _ => &mut form.to,
                    };
                    let response = field(ui, label, value, hint);
                    if form.focus == Some(which) {
                        response.request_focus();
                        form.focus = None;
                    }
                    if response.changed() {
                        changed = true;
                        form.ask_suggestions(which, &handle, bridge);
                    }
                    // Suggestions sit in a row of fixed height under the field, shown or
                    // not, so nothing else on the form moves while the diplomat types.
                    let mut chosen = None;
                    ui.label("");
                    ui.horizontal(|ui| {
                        ui.set_min_height(26.0);
                        let Some((f, _, list)) = &form.suggestions else {
                            return;
                        };
                        if *f != which {
                            return;
                        }
                        for a in list.iter().take(5) {
                            let kind = match a.kind {
                                AddresseeKind::Person => "person",
                                AddresseeKind::Office => "office",
                                AddresseeKind::Post => "post",
                            };
                            let button = ui
                                .small_button(&a.address)
                                .on_hover_text(format!("{kind}: {}", a.label));
                            if button.clicked() {
                                chosen = Some(a.address.clone());
                            }
                        }
                    });
                    ui.end_row();
                    if let Some(address) = chosen {
                        form.accept(which, &address);
                        changed = true;
                    }
                }

                // Choices side by side rather than in a drop-down: every option is visible,
                // and each is one click or one Tab away.
                ui.label("Classification");
                ui.horizontal(|ui| {
                    for c in [
                        Classification::Unclassified,
                        Classification::Confidential,
                        Classification::Secret,
                        Classification::TopSecret,
                    ] {
                        changed |= ui
                            .selectable_value(&mut form.classification, c, c.cable_name())
                            .changed();
                    }
                });
                ui.end_row();

                ui.label("Caveats");
                ui.horizontal(|ui| {
                    for caveat in [Caveat::Nodis, Caveat::Exdis, Caveat::Noforn] {
                        let mut on = form.caveats.contains(&caveat);
                        if ui.checkbox(&mut on, caveat.cable_name()).changed() {
                            if on {
                                form.caveats.push(caveat);
                                form.caveats.sort_by_key(|c| *c as i32);
                            } else {
                                form.caveats.retain(|c| *c != caveat);
                            }
                            changed = true;
                        }
                    }
                });
                ui.end_row();

                ui.label("Precedence");
                ui.horizontal(|ui| {
                    for p in [
                        Precedence::Flash,
                        Precedence::Immediate,
                        Precedence::Priority,
                        Precedence::Routine,
                    ] {
                        changed |= ui
                            .selectable_value(&mut form.precedence, p, p.cable_name())
                            .changed();
                    }
                    ui.separator();
                    changed |= ui
                        .checkbox(&mut form.niact, "NIACT (wake the addressee)")
                        .changed();
                });
                ui.end_row();

                changed |= field(ui, "TAGS", &mut form.tags, "PREL PGOV").changed();
                changed |= field(ui, "Subject", &mut form.subject, "").changed();

                let name = ui.label("Text");
                let text = ui
                    .add(
                        egui::TextEdit::multiline(&mut form.text)
                            .font(egui::TextStyle::Monospace)
                            .desired_rows(12)
                            .desired_width(f32::INFINITY),
                    )
                    .labelled_by(name.id);
                if form.focus == Some(Field::Text) {
                    text.request_focus();
                    form.focus = None;
                }
                changed |= text.changed();
                ui.end_row();

                ui.label("Attachments");
                ui.vertical(|ui| {
                    let mut remove = None;
                    for (i, path) in form.attachments.iter().enumerate() {
                        ui.horizontal(|ui| {
                            ui.label(path.display().to_string());
                            if ui
                                .button("Remove")
                                .on_hover_text(format!("Remove {}", path.display()))
                                .clicked()
                            {
                                remove = Some(i);
                            }
                        });
                    }
                    if let Some(i) = remove {
                        form.attachments.remove(i);
                        changed = true;
                    }
                    ui.horizontal(|ui| {
                        let name = ui.label("File to attach");
                        let path = ui
                            .add(
                                egui::TextEdit::singleline(&mut form.attach_path)
                                    .hint_text("path of a file, or drop files on the window")
                                    .desired_width(360.0),
                            )
                            .labelled_by(name.id);
                        let attach = ui.button("Attach");
                        let entered =
                            path.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                        if (attach.clicked() || entered) && !form.attach_path.trim().is_empty() {
                            form.attachments
                                .push(PathBuf::from(form.attach_path.trim()));
                            form.attach_path.clear();
                            changed = true;
                        }
                    });
                });
                ui.end_row();

                if !form.references.is_empty() {
                    ui.label("References");
                    ui.vertical(|ui| {
                        for r in &form.references {
                            ui.label(format!("REF {}: {}", r.label, r.citation));
                        }
                    });
                    ui.end_row();
                }
            });

        ui.separator();
        show_check(ui, form);
        for t in &sealing {
            crate::reading::progress_bar(ui, t, "attachment");
        }
        ui.horizontal(|ui| {
            let send = ui.add_enabled(
                form.ready() && !form.sending,
                egui::Button::new(RichText::new("Seal and send").strong()),
            );
            if send.clicked() {
                form.sending = true;
                let handle = handle.clone();
                let draft = form.draft();
                bridge.run(async move { Outcome::Composed(handle.compose(draft).await) });
            }
            if form.sending {
                ui.spinner();
                ui.label("Sealing…");
            }
            if ui.button("Discard draft").clicked() {
                *form = Form::default();
                changed = true;
            }
        });
        if let Some(refusal) = &form.refusal {
            ui.colored_label(theme::WARNING, format!("Not sent: {refusal}"));
        }
    });
    if changed {
        session.compose.changed(&handle, bridge);
    }
}

/// Transfers of attachments being sealed (for the cable being composed).
fn session_sealing(
    transfers: &std::collections::BTreeMap<(String, usize), Transfer>,
) -> Vec<Transfer> {
    transfers
        .values()
        .filter(|t| t.stage == valise_client::sync::TransferStage::Sealing)
        .copied()
        .collect()
}

/// What the client's check says, in words.
fn show_check(ui: &mut egui::Ui, form: &Form) {
    let Some(check) = &form.check else {
        ui.label("Fill in the addressees, the classification and the subject.");
        return;
    };
    if let Some(blocking) = &check.blocking {
        ui.colored_label(theme::WARNING, format!("Cannot be sent: {blocking}"));
    }
    if !check.missing.is_empty() {
        ui.label(format!("Still needed: {}.", check.missing.join(", ")));
    }
    if check.is_ready() {
        ui.colored_label(
            theme::GOOD,
            format!(
                "Ready: it will be sealed for {} device(s): {}",
                check.recipients.len(),
                check.recipients.join(", ")
            ),
        );
    }
}
