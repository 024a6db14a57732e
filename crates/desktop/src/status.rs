//! The status bar: connected or offline (and retrying in N s), outbox count, last sync.

use std::time::Instant;

use eframe::egui;
use valise_client::present;

use crate::session::{Connection, Session};
use crate::theme;

/// The connection in words.
pub(crate) fn connection_text(connection: &Connection) -> String {
    match connection {
        Connection::Connecting => "Connecting…".into(),
        Connection::Online(node) => format!("Online: node {node}"),
        Connection::Offline { reason, retry_at } => match retry_at {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now()).as_secs();
                format!("Offline, retrying in {left} s: {reason}")
            }
            None => format!("Offline: {reason}"),
        },
    }
}

/// Shows the status bar.
pub(crate) fn show(ui: &mut egui::Ui, session: &Session) {
    ui.horizontal(|ui| {
        let text = connection_text(&session.connection);
        match session.connection {
            Connection::Online(_) => ui.colored_label(theme::GOOD, text),
            Connection::Offline { retry_at, .. } => {
                if retry_at.is_some() {
                    // The countdown moves: draw again each second.
                    ui.ctx()
                        .request_repaint_after(std::time::Duration::from_secs(1));
                }
                ui.colored_label(theme::WARNING, text)
            }
            Connection::Connecting => ui.label(text),
        };
        ui.separator();
        ui.label(format!("Outbox: {}", session.outbox));
        ui.separator();
        ui.label(match session.last_sync_ms {
            Some(ms) => format!("Last sync: {}", present::dtg(ms)),
            None => "Last sync: not yet".into(),
        });
        ui.separator();
        ui.label(session.handle.address());
    });
}
