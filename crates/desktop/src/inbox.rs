//! The inbox list: cables in the library's reading order (precedence first), precedence and
//! NIACT at a glance, unread and ACK REQUIRED marked, a local filter, and a list that draws
//! only the rows in view, so ten thousand cables scroll as smoothly as ten.

use eframe::egui::{self, Color32, RichText, text::LayoutJob};
use valise_client::present;
use valise_client::views::InboxRow;

use crate::bridge::Bridge;
use crate::session::Session;
use crate::theme;

/// A row's height, fixed so the list can skip what is out of view.
pub(crate) const ROW_HEIGHT: f32 = 22.0;

/// What a screen reader (and a test) hears for a row.
pub(crate) fn row_label(row: &InboxRow) -> String {
    let mut label = format!(
        "{} {} from {}: {}",
        present::precedence_label(row.routing.precedence, row.routing.niact),
        row.routing.marking,
        row.from,
        row.subject
    );
    if !row.read {
        label.push_str(", unread");
    }
    if row.ack_required {
        label.push_str(", ACK REQUIRED");
    }
    if row.info_only {
        label.push_str(", for information");
    }
    label
}

/// The row as drawn: precedence in its colour, the marking, the sender, the subject, flags.
fn row_text(ui: &egui::Ui, row: &InboxRow, selected: bool) -> LayoutJob {
    let mut job = LayoutJob::default();
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    // Unread rows in the strong text colour, read ones in the ordinary one.
    let plain = if row.read {
        ui.visuals().text_color()
    } else {
        ui.visuals().strong_text_color()
    };
    // On the selection's fill every part takes the selection's text colour: FLASH red or
    // CONFIDENTIAL blue would not read on it.
    let on_selection = ui.visuals().selection.stroke.color;
    let mut push = |text: &str, colour: Color32, _width: f32| {
        let colour = if selected { on_selection } else { colour };
        job.append(text, 0.0, egui::TextFormat::simple(font.clone(), colour));
    };
    push(
        &format!(
            "{:<13}",
            present::precedence_label(row.routing.precedence, row.routing.niact)
        ),
        theme::precedence(row.routing.precedence),
        0.0,
    );
    let (background, _) = theme::banner(row.routing.classification);
    push(&format!("{:<20}", row.routing.marking), background, 0.0);
    push(
        &format!("{} {:<15}", if row.read { " " } else { "●" }, row.from),
        plain,
        0.0,
    );
    if row.ack_required {
        push("ACK REQUIRED  ", theme::WARNING, 0.0);
    }
    push(&row.subject, plain, 0.0);
    push(
        &format!("   {}", present::dtg(row.routing.created_at_ms)),
        Color32::GRAY,
        0.0,
    );
    job
}

/// The inbox list: rows in the library's order, the filter, and the selection. Only the rows
/// in view are laid out, so its frame costs the same for ten cables as for ten thousand.
#[derive(Default)]
pub struct InboxList {
    /// Every row, in reading order.
    pub(crate) rows: Vec<InboxRow>,
    /// The filter typed.
    pub(crate) filter: String,
    /// Indexes into `rows` that pass the filter.
    pub(crate) shown: Vec<usize>,
    /// The selected cable's id.
    pub(crate) selected: Option<String>,
    /// A FLASH that arrived and has not been opened: its row is drawn to attention.
    pub(crate) new_flash: Option<String>,
    /// The keyboard moved the selection: the list scrolls to it.
    pub(crate) scroll_to_selection: bool,
}

impl InboxList {
    /// A list of `rows` (in the library's reading order), unfiltered.
    pub fn new(rows: Vec<InboxRow>) -> Self {
        let mut list = InboxList {
            rows,
            ..InboxList::default()
        };
        list.refilter();
        list
    }

    /// Sets the filter typed, and applies it.
    pub fn set_filter(&mut self, filter: &str) {
        filter.clone_into(&mut self.filter);
        self.refilter();
    }

    /// How many rows pass the filter.
    pub fn shown(&self) -> usize {
        self.shown.len()
    }

    /// Recomputes which rows pass the filter (over subject, sender, TAGS and text).
    pub fn refilter(&mut self) {
        let needle = self.filter.trim().to_lowercase();
        self.shown = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| needle.is_empty() || r.search_text.contains(&needle))
            .map(|(i, _)| i)
            .collect();
    }

    /// The position of the selection among the shown rows.
    pub(crate) fn selected_position(&self) -> Option<usize> {
        let id = self.selected.as_ref()?;
        self.shown.iter().position(|i| &self.rows[*i].id == id)
    }

    /// Draws the rows in view; returns the id of a row clicked.
    pub fn show_list(&mut self, ui: &mut egui::Ui) -> Option<String> {
        let mut open = None;
        let flash = self.new_flash.clone();
        let selected = self.selected.clone();
        let pulse = (ui.input(|i| i.time) * 3.0).sin().abs() as f32;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show_rows(ui, ROW_HEIGHT, self.shown.len(), |ui, range| {
                for position in range {
                    let row = &self.rows[self.shown[position]];
                    let is_selected = selected.as_deref() == Some(row.id.as_str());
                    let button =
                        egui::Button::selectable(is_selected, row_text(ui, row, is_selected))
                            .truncate()
                            .min_size(egui::vec2(ui.available_width(), ROW_HEIGHT - 2.0));
                    let button = if flash.as_deref() == Some(row.id.as_str()) {
                        // A FLASH not yet opened pulses red until it is.
                        ui.ctx().request_repaint();
                        button.fill(Color32::from_rgba_unmultiplied(
                            0xd0,
                            0x10,
                            0x10,
                            (40.0 + 80.0 * pulse) as u8,
                        ))
                    } else {
                        button
                    };
                    let response = ui.add(button);
                    let label = row_label(row);
                    response.widget_info(|| {
                        egui::WidgetInfo::selected(egui::Role::Button, true, is_selected, &label)
                    });
                    if is_selected && self.scroll_to_selection {
                        response.scroll_to_me(None);
                    }
                    if response.clicked() {
                        open = Some(row.id.clone());
                    }
                }
            });
        self.scroll_to_selection = false;
        open
    }
}

/// Shows the filter and the list.
pub(crate) fn show(ui: &mut egui::Ui, session: &mut Session, bridge: &Bridge) {
    ui.horizontal(|ui| {
        let name = ui.label("Filter");
        let filter = ui
            .add(
                egui::TextEdit::singleline(&mut session.inbox.filter)
                    .hint_text("subject, sender, TAGS or text (Ctrl+F)")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(name.id);
        if crate::shortcut::pressed(ui, crate::shortcut::CTRL, egui::Key::F) {
            filter.request_focus();
        }
        if filter.changed() {
            session.inbox.refilter();
        }
    });
    let unread = session.inbox.rows.iter().filter(|r| !r.read).count();
    ui.label(format!(
        "{} cable(s), {} unread{}",
        session.inbox.rows.len(),
        unread,
        if session.inbox.filter.trim().is_empty() {
            String::new()
        } else {
            format!(", {} shown", session.inbox.shown.len())
        }
    ));
    ui.separator();

    keyboard(ui, session, bridge);

    let open = session.inbox.show_list(ui);
    if let Some(id) = open {
        session.open(&id, bridge);
    }
    if session.inbox.shown.is_empty() {
        ui.label(if session.inbox.rows.is_empty() {
            "No cables yet."
        } else {
            "No cable matches the filter."
        });
    }
}

/// Up and Down (or K and J) move through the list, Home and End to its ends, when no text
/// field has the keyboard.
fn keyboard(ui: &mut egui::Ui, session: &mut Session, bridge: &Bridge) {
    if ui.ctx().text_edit_focused() || session.inbox.shown.is_empty() {
        return;
    }
    let last = session.inbox.shown.len() - 1;
    let current = session.inbox.selected_position();
    let next = ui.input(|i| {
        if i.key_pressed(egui::Key::ArrowDown) || i.key_pressed(egui::Key::J) {
            Some(current.map_or(0, |c| (c + 1).min(last)))
        } else if i.key_pressed(egui::Key::ArrowUp)
            || i.key_pressed(egui::Key::K) && i.modifiers.is_none()
        {
            Some(current.map_or(0, |c| c.saturating_sub(1)))
        } else if i.key_pressed(egui::Key::Home) {
            Some(0)
        } else if i.key_pressed(egui::Key::End) {
            Some(last)
        } else {
            None
        }
    });
    if let Some(position) = next
        && Some(position) != current
    {
        let id = session.inbox.rows[session.inbox.shown[position]].id.clone();
        session.inbox.scroll_to_selection = true;
        session.open(&id, bridge);
    }
}

/// A quiet line saying how many cables need attention, for the window title.
pub(crate) fn unread_summary(session: &Session) -> String {
    let unread = session.inbox.rows.iter().filter(|r| !r.read).count();
    if unread == 0 {
        String::new()
    } else {
        format!(" ({unread} unread)")
    }
}

/// Text the reading pane shows when nothing is open.
pub(crate) fn nothing_open(ui: &mut egui::Ui) {
    ui.centered_and_justified(|ui| {
        ui.label(
            RichText::new("Select a cable to read it (Up and Down move through the list).").weak(),
        );
    });
}
