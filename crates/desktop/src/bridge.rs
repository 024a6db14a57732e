//! The bridge between the window's frame loop and the client's task: requests go out as
//! futures on the tokio runtime, and what they return comes back as an [`Outcome`] the next
//! frame takes in. The frame loop never waits on the client.

use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use valise_client::client::DraftCheck;
use valise_client::contacts::Verification;
use valise_client::sync::SyncReport;
use valise_client::views::{AddresseeView, CableView, DirectoryView, InboxRow, SentView};
use valise_client::{CableDraft, ClientError, ClientHandle, Event, EventStream};

/// What a request returned, or an event the client's task sent.
pub(crate) enum Outcome {
    /// Enrolment or unlock finished.
    Opened(Result<(ClientHandle, EventStream), ClientError>),
    /// An event from the client.
    Event(Event),
    /// The inbox, reloaded.
    Inbox(Result<Vec<InboxRow>, ClientError>),
    /// A cable opened for reading (and marked read).
    Cable(Result<CableView, ClientError>),
    /// A cable acknowledged.
    Acknowledged(Result<CableView, ClientError>),
    /// The sent cables, reloaded.
    Sent(Result<Vec<SentView>, ClientError>),
    /// Directory entries.
    Directory(Vec<DirectoryView>),
    /// Addressees for the compose picker, for the query typed.
    Addressees(String, Vec<AddresseeView>),
    /// A draft's check, for the draft of that generation.
    Checked(u64, DraftCheck),
    /// A cable was sealed and queued (its id), or refused.
    Composed(Result<String, ClientError>),
    /// A reply or forward draft, or why not.
    Draft(Result<CableDraft, ClientError>),
    /// Attachments of a cable saved, or why not.
    Saved(String, Result<Vec<PathBuf>, ClientError>),
    /// A queued cable cancelled.
    Cancelled(Result<String, ClientError>),
    /// A contact's verification changed.
    Verified(String, Result<Verification, ClientError>),
    /// Keys rotated.
    Rotated(Result<(), ClientError>),
    /// A sync finished.
    Synced(Result<SyncReport, ClientError>),
    /// The wipe finished: whether the node was told.
    WipeFinished(Result<Result<(), String>, ClientError>),
}

/// Runs futures for the window and hands their outcomes back.
pub(crate) struct Bridge {
    runtime: tokio::runtime::Handle,
    sender: mpsc::Sender<Outcome>,
    outcomes: mpsc::Receiver<Outcome>,
    // Set on the first frame, so that a finished future wakes the window.
    context: Arc<OnceLock<eframe::egui::Context>>,
}

impl Bridge {
    /// A bridge onto `runtime`.
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Self {
        let (sender, outcomes) = mpsc::channel();
        Bridge {
            runtime,
            sender,
            outcomes,
            context: Arc::new(OnceLock::new()),
        }
    }

    /// Remembers the window's context, so outcomes can ask for a repaint.
    pub(crate) fn attach(&self, ctx: &eframe::egui::Context) {
        let _ = self.context.set(ctx.clone());
    }

    /// The runtime the client runs on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Runs `work` on the runtime; its outcome arrives at a later frame.
    pub(crate) fn run(&self, work: impl Future<Output = Outcome> + Send + 'static) {
        let sender = self.sender.clone();
        let context = Arc::clone(&self.context);
        self.runtime.spawn(async move {
            let outcome = work.await;
            // The window may be gone (closed, or locked and rebuilt): nothing to tell.
            let _ = sender.send(outcome);
            if let Some(ctx) = context.get() {
                ctx.request_repaint();
            }
        });
    }

    /// Runs `work` on the runtime when nothing needs to come back (locking a client).
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(work);
    }

    /// Forwards every event of `events` to the window until the client's task ends.
    pub(crate) fn forward(&self, mut events: EventStream) {
        let sender = self.sender.clone();
        let context = Arc::clone(&self.context);
        self.runtime.spawn(async move {
            while let Some(event) = events.next().await {
                if sender.send(Outcome::Event(event)).is_err() {
                    return;
                }
                if let Some(ctx) = context.get() {
                    ctx.request_repaint();
                }
            }
        });
    }

    /// Every outcome that has arrived since the last frame.
    pub(crate) fn drain(&self) -> Vec<Outcome> {
        self.outcomes.try_iter().collect()
    }
}
