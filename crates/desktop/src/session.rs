//! What the main window holds while the client is unlocked: the views it shows, the state of
//! the connection, transfers under way and notices. Everything here is display state; every
//! decision comes from the client, through the [`Bridge`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use valise_client::present;
use valise_client::sync::TransferStage;
use valise_client::views::{CableView, DirectoryView, SentView};
use valise_client::{Caveat, Classification, ClientHandle, Event, Precedence};

use crate::bridge::{Bridge, Outcome};
use crate::compose::Form;
use crate::inbox::InboxList;

/// The views of the main window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// Received cables and the reading pane.
    Inbox,
    /// Sent cables and each recipient's state.
    Sent,
    /// A new cable.
    Compose,
    /// People, offices and posts.
    Directory,
    /// Keys, lock and emergency wipe.
    Keys,
}

impl View {
    /// Every view, in tab order, with its name and shortcut number.
    pub(crate) const ALL: [(View, &'static str); 5] = [
        (View::Inbox, "Inbox"),
        (View::Sent, "Sent"),
        (View::Compose, "Compose"),
        (View::Directory, "Directory"),
        (View::Keys, "Keys and emergency"),
    ];
}

/// Whether the node can be reached.
#[derive(Debug, Clone)]
pub(crate) enum Connection {
    /// Not known yet.
    Connecting,
    /// Connected to this node.
    Online(String),
    /// Not reachable, and tried again at `retry_at`.
    Offline {
        /// Why.
        reason: String,
        /// The next try.
        retry_at: Option<Instant>,
    },
}

/// How much a notice matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Something happened.
    Info,
    /// Something was refused or failed: the words say what to do.
    Warning,
}

/// A message in the window's notice area.
#[derive(Debug, Clone)]
pub(crate) struct Notice {
    /// How much it matters.
    pub(crate) level: Level,
    /// The words.
    pub(crate) text: String,
}

/// One attachment's transfer under way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transfer {
    /// Sealing, uploading or saving.
    pub(crate) stage: TransferStage,
    /// Bytes done.
    pub(crate) done: u64,
    /// Bytes in all.
    pub(crate) total: u64,
}

/// A save of a cable's attachments under way, with its cancel.
pub(crate) struct Saving {
    /// The cable.
    pub(crate) cable: String,
    /// Dropping or sending on it cancels the save.
    pub(crate) cancel: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The unlocked window's state.
pub(crate) struct Session {
    /// The client.
    pub(crate) handle: ClientHandle,
    /// The view shown.
    pub(crate) view: View,
    /// The connection.
    pub(crate) connection: Connection,
    /// When the last sync ended (Unix ms).
    pub(crate) last_sync_ms: Option<u64>,
    /// Cables waiting in the outbox.
    pub(crate) outbox: usize,
    /// The inbox.
    pub(crate) inbox: InboxList,
    /// The cable in the reading pane.
    pub(crate) reading: Option<CableView>,
    /// Where attachments are saved.
    pub(crate) downloads: String,
    /// A save under way.
    pub(crate) saving: Option<Saving>,
    /// Sent cables, newest first.
    pub(crate) sent: Vec<SentView>,
    /// The sent cable selected.
    pub(crate) sent_selected: Option<String>,
    /// The directory search.
    pub(crate) directory_query: String,
    /// Directory entries for it.
    pub(crate) directory: Vec<DirectoryView>,
    /// Offices and posts, for the directory view.
    pub(crate) places: Vec<valise_client::views::AddresseeView>,
    /// The compose form.
    pub(crate) compose: Form,
    /// Transfers under way, by cable and attachment.
    pub(crate) transfers: BTreeMap<(String, usize), Transfer>,
    /// Notices, newest last.
    pub(crate) notices: Vec<Notice>,
    /// The first step of the emergency wipe was taken.
    pub(crate) wipe_armed: bool,
    /// What was typed to confirm the wipe.
    pub(crate) wipe_confirm: String,
    /// The wipe ran: the window returns to enrolment.
    pub(crate) wiped: bool,
    /// A FLASH arrived since the last frame: ask the desktop for attention.
    pub(crate) attention: bool,
    /// Reloads already asked for and not yet answered, so events do not pile them up.
    pending: Pending,
}

/// Reloads asked for and not yet answered.
#[derive(Default)]
struct Pending {
    inbox: bool,
    sent: bool,
    directory: bool,
}

impl Session {
    /// A session over an unlocked client; asks for everything it shows.
    pub(crate) fn new(handle: ClientHandle, downloads: String, bridge: &Bridge) -> Self {
        let mut session = Session {
            handle,
            view: View::Inbox,
            connection: Connection::Connecting,
            last_sync_ms: None,
            outbox: 0,
            inbox: InboxList::default(),
            reading: None,
            downloads,
            saving: None,
            sent: Vec::new(),
            sent_selected: None,
            directory_query: String::new(),
            directory: Vec::new(),
            places: Vec::new(),
            compose: Form::default(),
            transfers: BTreeMap::new(),
            notices: Vec::new(),
            wipe_armed: false,
            wipe_confirm: String::new(),
            wiped: false,
            attention: false,
            pending: Pending::default(),
        };
        session.reload_inbox(bridge);
        session.reload_sent(bridge);
        session.reload_directory(bridge);
        session
    }

    /// Adds a notice.
    pub(crate) fn notify(&mut self, level: Level, text: impl Into<String>) {
        self.notices.push(Notice {
            level,
            text: text.into(),
        });
        // The area shows the newest few; older ones are history nobody reads.
        if self.notices.len() > 6 {
            self.notices.remove(0);
        }
    }

    /// Asks for the inbox again.
    pub(crate) fn reload_inbox(&mut self, bridge: &Bridge) {
        if std::mem::replace(&mut self.pending.inbox, true) {
            return;
        }
        let handle = self.handle.clone();
        bridge.run(async move { Outcome::Inbox(handle.inbox().await) });
    }

    /// Asks for the sent cables again.
    pub(crate) fn reload_sent(&mut self, bridge: &Bridge) {
        if std::mem::replace(&mut self.pending.sent, true) {
            return;
        }
        let handle = self.handle.clone();
        bridge.run(async move { Outcome::Sent(handle.sent().await) });
    }

    /// Asks for the directory (for the query typed) and the offices and posts again.
    pub(crate) fn reload_directory(&mut self, bridge: &Bridge) {
        if std::mem::replace(&mut self.pending.directory, true) {
            return;
        }
        let handle = self.handle.clone();
        let query = self.directory_query.clone();
        bridge.run(async move {
            Outcome::Directory(handle.directory(&query).await.unwrap_or_default())
        });
        let handle = self.handle.clone();
        bridge.run(async move {
            Outcome::Addressees(
                String::new(),
                handle.addressees("").await.unwrap_or_default(),
            )
        });
    }

    /// Opens a cable in the reading pane (marking it read).
    pub(crate) fn open(&mut self, id: &str, bridge: &Bridge) {
        self.inbox.selected = Some(id.to_owned());
        if self.inbox.new_flash.as_deref() == Some(id) {
            self.inbox.new_flash = None;
        }
        let handle = self.handle.clone();
        let id = id.to_owned();
        bridge.run(async move { Outcome::Cable(handle.mark_read(&id).await) });
    }

    /// Takes in an event from the client.
    pub(crate) fn on_event(&mut self, event: Event, bridge: &Bridge) {
        match event {
            Event::Online { node } => self.connection = Connection::Online(node),
            Event::Offline { reason } => {
                self.connection = Connection::Offline {
                    reason,
                    retry_at: None,
                }
            }
            Event::Retrying { in_ms, reason } => {
                self.connection = Connection::Offline {
                    reason,
                    retry_at: Some(Instant::now() + Duration::from_millis(in_ms)),
                }
            }
            Event::SyncStarted => {}
            Event::SyncFinished { waiting, .. } => {
                self.last_sync_ms = Some(valise_client::client::now_ms());
                self.outbox = waiting;
                self.reload_inbox(bridge);
                self.reload_sent(bridge);
            }
            Event::Received { id, precedence } => {
                if precedence == Precedence::Flash {
                    self.inbox.new_flash = Some(id);
                    self.attention = true;
                    self.notify(
                        Level::Info,
                        "A FLASH cable arrived: it is at the top of the inbox",
                    );
                }
                self.reload_inbox(bridge);
            }
            Event::StatusChanged { .. } => self.reload_sent(bridge),
            Event::Refused { id, reason } => {
                self.notify(
                    Level::Warning,
                    format!("The node refused cable {}: {reason}", short(&id)),
                );
                self.reload_sent(bridge);
            }
            Event::DeliveryRefused { reason } => self.notify(
                Level::Warning,
                format!("A delivery was refused by this device: {reason}"),
            ),
            Event::OutboxChanged { waiting } => {
                self.outbox = waiting;
                self.reload_sent(bridge);
            }
            Event::DirectoryChanged { .. } => {
                self.reload_directory(bridge);
                if let Some(id) = self.reading.as_ref().map(|c| c.id.clone()) {
                    let handle = self.handle.clone();
                    bridge.run(async move { Outcome::Cable(handle.cable(&id).await) });
                }
            }
            Event::KeysRotated => self.notify(Level::Info, "New receive keys were published"),
            Event::AttachmentProgress {
                stage,
                cable,
                attachment,
                done,
                total,
            } => {
                let key = (cable, attachment);
                if done >= total && stage != TransferStage::Sealing {
                    self.transfers.remove(&key);
                } else {
                    self.transfers.insert(key, Transfer { stage, done, total });
                }
            }
            Event::Wiped => self.wiped = true,
            Event::Reload { .. } => {
                self.reload_inbox(bridge);
                self.reload_sent(bridge);
                self.reload_directory(bridge);
            }
            _ => {}
        }
    }

    /// Takes in what a request returned.
    pub(crate) fn on_outcome(&mut self, outcome: Outcome, bridge: &Bridge) {
        match outcome {
            Outcome::Event(event) => self.on_event(event, bridge),
            Outcome::Inbox(rows) => {
                self.pending.inbox = false;
                match rows {
                    Ok(rows) => {
                        self.inbox.rows = rows;
                        self.inbox.refilter();
                    }
                    Err(e) => {
                        self.notify(Level::Warning, format!("The inbox could not be read: {e}"))
                    }
                }
            }
            Outcome::Cable(cable) | Outcome::Acknowledged(cable) => match cable {
                Ok(cable) => {
                    // Only the cable still selected goes in the pane.
                    if self.inbox.selected.as_deref() == Some(cable.id.as_str()) {
                        self.reading = Some(cable);
                    }
                    self.reload_inbox(bridge);
                }
                Err(e) => self.notify(
                    Level::Warning,
                    format!("The cable could not be opened: {e}"),
                ),
            },
            Outcome::Sent(sent) => {
                self.pending.sent = false;
                match sent {
                    Ok(sent) => {
                        if self.sent_selected.is_none() {
                            self.sent_selected = sent.first().map(|s| s.id.clone());
                        }
                        self.sent = sent;
                    }
                    Err(e) => self.notify(
                        Level::Warning,
                        format!("The sent cables could not be read: {e}"),
                    ),
                }
            }
            Outcome::Directory(entries) => {
                self.pending.directory = false;
                self.directory = entries;
            }
            Outcome::Addressees(query, found) => {
                if query.is_empty() {
                    self.places = found
                        .iter()
                        .filter(|a| a.kind != valise_client::views::AddresseeKind::Person)
                        .cloned()
                        .collect();
                }
                self.compose.suggestions_for(&query, found);
            }
            Outcome::Checked(generation, check) => self.compose.checked(generation, check),
            Outcome::Composed(result) => {
                self.compose.sending = false;
                match result {
                    Ok(id) => {
                        self.notify(
                            Level::Info,
                            format!("Cable {} sealed and queued for the node", short(&id)),
                        );
                        self.compose = Form::default();
                        self.sent_selected = Some(id);
                        self.view = View::Sent;
                        self.reload_sent(bridge);
                    }
                    Err(e) => {
                        self.compose.refusal = Some(e.to_string());
                        self.notify(Level::Warning, format!("Not sent: {e}"));
                    }
                }
                self.transfers
                    .retain(|_, t| t.stage != TransferStage::Sealing);
            }
            Outcome::Draft(draft) => match draft {
                Ok(draft) => {
                    self.compose = Form::from_draft(draft);
                    self.view = View::Compose;
                    self.compose.changed(&self.handle, bridge);
                }
                Err(e) => self.notify(Level::Warning, format!("Refused: {e}")),
            },
            Outcome::Saved(cable, saved) => {
                if self.saving.as_ref().is_some_and(|s| s.cable == cable) {
                    self.saving = None;
                }
                self.transfers.retain(|(c, _), _| *c != cable);
                match saved {
                    Ok(paths) => self.notify(
                        Level::Info,
                        format!(
                            "Saved {} attachment(s): {}",
                            paths.len(),
                            paths
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    Err(e) => self.notify(Level::Warning, format!("Attachments not saved: {e}")),
                }
            }
            Outcome::Cancelled(result) => match result {
                Ok(id) => self.notify(Level::Info, format!("Cable {} cancelled", short(&id))),
                Err(e) => self.notify(Level::Warning, format!("Not cancelled: {e}")),
            },
            Outcome::Verified(address, result) => match result {
                Ok(v) => self.notify(Level::Info, format!("{address}: {}", v.as_str())),
                Err(e) => self.notify(Level::Warning, format!("{address}: {e}")),
            },
            Outcome::Rotated(result) => {
                if let Err(e) = result {
                    self.notify(Level::Warning, format!("Keys not rotated: {e}"));
                }
            }
            Outcome::Synced(result) => match result {
                Ok(report) => match report.offline {
                    Some(reason) => self.notify(
                        Level::Warning,
                        format!("The node cannot be reached: {reason}"),
                    ),
                    None => self.notify(Level::Info, "Synced with the node"),
                },
                Err(e) => self.notify(Level::Warning, format!("Sync failed: {e}")),
            },
            // The window itself takes these: they change the screen.
            Outcome::WipeFinished(_) | Outcome::Opened(_) => {}
        }
    }

    /// The highest marking on screen: every cable listed or open in the view shown.
    pub(crate) fn banner(&self) -> (Classification, String) {
        let mut markings: Vec<(Classification, &[Caveat])> = Vec::new();
        match self.view {
            View::Inbox => {
                for i in &self.inbox.shown {
                    let r = &self.inbox.rows[*i].routing;
                    markings.push((r.classification, &r.caveats));
                }
                if let Some(c) = &self.reading {
                    markings.push((c.routing.classification, &c.routing.caveats));
                }
            }
            View::Sent => {
                for s in &self.sent {
                    markings.push((s.routing.classification, &s.routing.caveats));
                }
            }
            View::Compose => {
                if self.compose.classification != Classification::Unspecified {
                    markings.push((self.compose.classification, &self.compose.caveats));
                }
            }
            View::Directory | View::Keys => {}
        }
        present::highest_of(markings)
    }
}

/// The first characters of a cable id, enough to tell cables apart on screen.
pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
