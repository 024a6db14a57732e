//! The application: which screen is up (enrolment, unlock, the main window), the idle lock,
//! the keyboard shortcuts, and the main window's layout. It holds no client logic: every
//! request goes to the client through the [`Bridge`].

use std::any::Any;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};
use valise_client::enrol::Invitation;
use valise_client::{Classification, ClientHandle, EventStream, KdfParams};
use zeroize::Zeroizing;

use crate::bridge::{Bridge, Outcome};
use crate::session::{Level, Session, View};
use crate::{
    banner, compose, directory, enrol, inbox, keys, reading, sent, shortcut, status, theme, unlock,
};

/// How the application is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The device's data folder.
    pub data_dir: PathBuf,
    /// Lock after this long without input.
    pub lock_after: Duration,
    /// Argon2id cost for a new store (enrolment).
    pub kdf: KdfParams,
    /// Where attachments are saved unless the diplomat picks another folder.
    pub downloads: PathBuf,
    /// Shown on the unlock screen (the demo says its passphrase there).
    pub unlock_hint: Option<String>,
}

/// The screen up.
enum Screen {
    /// First run: no store yet.
    Enrol(enrol::Form),
    /// Just enrolled: the root's fingerprint, for comparison.
    Enrolled(Box<Session>),
    /// A store that is locked.
    Unlock(unlock::Form),
    /// The main window.
    Main(Box<Session>),
}

/// The desktop application.
pub struct App {
    options: Options,
    bridge: Bridge,
    screen: Screen,
    last_input: Instant,
    lock_after: Duration,
    title: String,
    // Whatever must live as long as the window (the demo's network).
    kept: Vec<Box<dyn Any>>,
}

impl App {
    /// The application for the data folder in `options`: enrolment when it holds no store,
    /// otherwise the unlock screen. Client work runs on `runtime`.
    pub fn new(options: Options, runtime: tokio::runtime::Handle) -> Self {
        let screen = if valise_client::store::LocalStore::exists(&options.data_dir) {
            Screen::Unlock(unlock::Form {
                hint: options.unlock_hint.clone(),
                ..unlock::Form::default()
            })
        } else {
            Screen::Enrol(enrol::Form::default())
        };
        App {
            lock_after: options.lock_after,
            options,
            bridge: Bridge::new(runtime),
            screen,
            last_input: Instant::now(),
            title: String::new(),
            kept: Vec::new(),
        }
    }

    /// The application already unlocked, with `handle` and its events (the demo).
    pub fn unlocked(
        options: Options,
        runtime: tokio::runtime::Handle,
        handle: ClientHandle,
        events: EventStream,
    ) -> Self {
        let mut app = App::new(options, runtime);
        app.bridge.forward(events);
        let session = Session::new(handle, app.downloads(), &app.bridge);
        app.screen = Screen::Main(Box::new(session));
        app
    }

    /// Keeps `thing` alive as long as the application.
    pub fn keep(&mut self, thing: Box<dyn Any>) {
        self.kept.push(thing);
    }

    /// The name of the screen up: "enrol", "enrolled", "unlock" or "main" (for tests).
    pub fn screen_name(&self) -> &'static str {
        match self.screen {
            Screen::Enrol(_) => "enrol",
            Screen::Enrolled(_) => "enrolled",
            Screen::Unlock(_) => "unlock",
            Screen::Main(_) => "main",
        }
    }

    /// The client of the unlocked window, if it is unlocked.
    pub fn client(&self) -> Option<ClientHandle> {
        match &self.screen {
            Screen::Main(s) | Screen::Enrolled(s) => Some(s.handle.clone()),
            _ => None,
        }
    }

    fn downloads(&self) -> String {
        self.options.downloads.display().to_string()
    }

    /// Locks: the client's task ends and drops its keys; every view, every field and egui's
    /// memory of them are dropped.
    fn lock(&mut self, ctx: &egui::Context, why: &str) {
        let session = match std::mem::replace(
            &mut self.screen,
            Screen::Unlock(unlock::Form {
                hint: self.options.unlock_hint.clone(),
                refusal: Some(why.to_owned()),
                ..unlock::Form::default()
            }),
        ) {
            Screen::Main(s) | Screen::Enrolled(s) => Some(s),
            other => {
                self.screen = other;
                None
            }
        };
        if let Some(session) = session {
            let handle = session.handle.clone();
            drop(session);
            self.bridge.spawn(async move { handle.lock().await });
        }
        forget_memory(ctx);
    }

    fn take_outcomes(&mut self, ctx: &egui::Context) {
        for outcome in self.bridge.drain() {
            match outcome {
                Outcome::Opened(opened) => self.opened(opened),
                Outcome::WipeFinished(Err(e)) => {
                    // The client's task has ended, so the window cannot go on as it was; and
                    // the store may be partly erased. Say so, and start again from the disk.
                    let why = format!(
                        "The wipe did not finish: {e}. Try again with `valise wipe`, or ask \
                         ministry IT to revoke this device."
                    );
                    self.screen =
                        if valise_client::store::LocalStore::exists(&self.options.data_dir) {
                            Screen::Unlock(unlock::Form {
                                hint: self.options.unlock_hint.clone(),
                                refusal: Some(why),
                                ..unlock::Form::default()
                            })
                        } else {
                            Screen::Enrol(enrol::Form {
                                notice: Some(why),
                                ..enrol::Form::default()
                            })
                        };
                    forget_memory(ctx);
                }
                Outcome::WipeFinished(Ok(told)) => {
                    let told = match told {
                        Ok(()) => "The node was told and has revoked this device.".to_owned(),
                        Err(why) => format!(
                            "The node could not be told ({why}): ask ministry IT to revoke this \
                             device."
                        ),
                    };
                    if let Screen::Enrol(form) = &mut self.screen {
                        form.notice = Some(format!("This device was wiped. {told}"));
                    }
                }
                other => match &mut self.screen {
                    Screen::Main(session) | Screen::Enrolled(session) => {
                        session.on_outcome(other, &self.bridge)
                    }
                    _ => {}
                },
            }
        }
        let wiped = matches!(&self.screen, Screen::Main(s) | Screen::Enrolled(s) if s.wiped);
        if wiped {
            self.screen = Screen::Enrol(enrol::Form {
                notice: Some("This device was wiped: nothing of it is left on disk.".into()),
                ..enrol::Form::default()
            });
            forget_memory(ctx);
        }
    }

    fn opened(&mut self, opened: Result<(ClientHandle, EventStream), valise_client::ClientError>) {
        match opened {
            Ok((handle, events)) => {
                self.bridge.forward(events);
                let session = Box::new(Session::new(handle, self.downloads(), &self.bridge));
                self.screen = match self.screen {
                    Screen::Enrol(_) => Screen::Enrolled(session),
                    _ => Screen::Main(session),
                };
                self.last_input = Instant::now();
            }
            Err(e) => match &mut self.screen {
                Screen::Enrol(form) => {
                    form.busy = false;
                    form.refusal = Some(format!("Not enrolled: {e}"));
                }
                Screen::Unlock(form) => {
                    form.busy = false;
                    form.passphrase = Zeroizing::default();
                    form.refusal = Some(format!("Not unlocked: {e}"));
                }
                _ => {}
            },
        }
    }

    /// Input of any kind keeps the window unlocked.
    fn idle_lock(&mut self, ctx: &egui::Context) {
        let active = ctx.input(|i| !i.events.is_empty() || i.pointer.is_moving());
        if active {
            self.last_input = Instant::now();
        }
        if !matches!(self.screen, Screen::Main(_)) {
            return;
        }
        let lock_after = self.lock_after;
        let idle = self.last_input.elapsed();
        if idle >= lock_after {
            self.lock(ctx, "Locked after a time without use.");
        } else {
            ctx.request_repaint_after(lock_after - idle);
        }
    }

    fn main_window(&mut self, ui: &mut egui::Ui) {
        let Screen::Main(session) = &mut self.screen else {
            return;
        };
        let session: &mut Session = session;
        let bridge = &self.bridge;
        shortcuts(ui, session, bridge);
        if std::mem::take(&mut session.attention) {
            // Asks for attention (a flashing task bar entry) without taking the focus.
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(
                    egui::UserAttentionType::Critical,
                ));
        }
        let title = format!(
            "Valise: {}{}",
            session.handle.address(),
            inbox::unread_summary(session)
        );
        if title != self.title {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        let (classification, marking) = session.banner();
        banner::show(ui, classification, &marking);
        egui::Panel::bottom("status_bar").show(ui, |ui| status::show(ui, session));
        let mut lock = false;
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                for (i, (view, name)) in View::ALL.iter().enumerate() {
                    let label = format!("{name} (Ctrl+{})", i + 1);
                    let tab = ui.selectable_label(session.view == *view, *name);
                    tab.widget_info(|| {
                        egui::WidgetInfo::selected(
                            egui::Role::Tab,
                            true,
                            session.view == *view,
                            &label,
                        )
                    });
                    if tab.on_hover_text(&label).clicked() {
                        session.view = *view;
                    }
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .button("Lock")
                        .on_hover_text("Lock now (Ctrl+L)")
                        .clicked()
                    {
                        lock = true;
                    }
                });
            });
            notices(ui, session);
        });
        match session.view {
            View::Inbox => {
                egui::Panel::left("inbox_list")
                    .default_size(760.0)
                    .resizable(true)
                    .show(ui, |ui| inbox::show(ui, session, bridge));
                egui::CentralPanel::default().show(ui, |ui| reading::show(ui, session, bridge));
            }
            View::Sent => {
                egui::CentralPanel::default().show(ui, |ui| sent::show(ui, session, bridge));
            }
            View::Compose => {
                egui::CentralPanel::default().show(ui, |ui| compose::show(ui, session, bridge));
            }
            View::Directory => {
                egui::CentralPanel::default().show(ui, |ui| directory::show(ui, session, bridge));
            }
            View::Keys => {
                egui::CentralPanel::default().show(ui, |ui| {
                    let mut minutes_now = minutes(self.lock_after);
                    let before = minutes_now;
                    let ask = keys::show(ui, session, &mut minutes_now, bridge);
                    if minutes_now != before {
                        self.lock_after = Duration::from_secs(u64::from(minutes_now) * 60);
                    }
                    if ask == keys::Ask::Lock {
                        lock = true;
                    }
                });
            }
        }
        if lock || shortcut::pressed(ui, shortcut::CTRL, egui::Key::L) {
            let ctx = ui.ctx().clone();
            self.lock(&ctx, "Locked.");
        }
    }

    fn other_screens(&mut self, ui: &mut egui::Ui) {
        banner::show(
            ui,
            Classification::Unclassified,
            Classification::Unclassified.cable_name(),
        );
        let mut enter_main = false;
        egui::CentralPanel::default().show(ui, |ui| match &mut self.screen {
            Screen::Enrol(form) => {
                if let enrol::Ask::Enrol = enrol::show(ui, form) {
                    match enrol::precheck(form) {
                        Err(why) => form.refusal = Some(why),
                        Ok(()) => {
                            form.busy = true;
                            form.refusal = None;
                            let invitation = Invitation {
                                node_addr: form.node.trim().to_owned(),
                                code: form.code.trim().to_owned(),
                                ca_fingerprint: form.fingerprint.trim().to_owned(),
                            };
                            let passphrase = Zeroizing::new(form.passphrase.as_bytes().to_vec());
                            let dir = self.options.data_dir.clone();
                            let kdf = self.options.kdf;
                            self.bridge.run(async move {
                                Outcome::Opened(
                                    ClientHandle::enrol(dir, passphrase, invitation, kdf).await,
                                )
                            });
                        }
                    }
                }
            }
            Screen::Enrolled(session) => {
                if enrol::show_fingerprint(
                    ui,
                    session.handle.root_fingerprint(),
                    session.handle.address(),
                ) {
                    enter_main = true;
                }
            }
            Screen::Unlock(form) => {
                let note = format!("Data folder: {}", self.options.data_dir.display());
                if unlock::show(ui, form, &note) {
                    form.busy = true;
                    form.refusal = None;
                    let passphrase = Zeroizing::new(form.passphrase.as_bytes().to_vec());
                    form.passphrase = Zeroizing::default();
                    let dir = self.options.data_dir.clone();
                    self.bridge.run(async move {
                        Outcome::Opened(ClientHandle::unlock(dir, passphrase).await)
                    });
                }
            }
            Screen::Main(_) => {}
        });
        if enter_main
            && let Screen::Enrolled(session) =
                std::mem::replace(&mut self.screen, Screen::Enrol(enrol::Form::default()))
        {
            self.screen = Screen::Main(session);
        }
    }

    /// One frame: takes in what arrived, then draws the screen up.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.bridge.attach(&ctx);
        self.take_outcomes(&ctx);
        self.idle_lock(&ctx);
        if matches!(self.screen, Screen::Main(_)) {
            self.main_window(ui);
        } else {
            self.other_screens(ui);
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Screen::Main(session) | Screen::Enrolled(session) = &self.screen {
            let handle = session.handle.clone();
            let _ = self.bridge.runtime().block_on(async move {
                tokio::time::timeout(Duration::from_secs(2), handle.lock()).await
            });
        }
    }
}

/// Drops everything egui remembers of the screens (text being edited, scroll positions).
fn forget_memory(ctx: &egui::Context) {
    ctx.memory_mut(|m| *m = egui::Memory::default());
}

fn minutes(d: Duration) -> u32 {
    u32::try_from(d.as_secs() / 60).unwrap_or(u32::MAX).max(1)
}

/// Ctrl+1…5 switch views, Ctrl+N composes.
fn shortcuts(ui: &mut egui::Ui, session: &mut Session, bridge: &Bridge) {
    let keys = [
        egui::Key::Num1,
        egui::Key::Num2,
        egui::Key::Num3,
        egui::Key::Num4,
        egui::Key::Num5,
    ];
    for (key, (view, _)) in keys.iter().zip(View::ALL) {
        if shortcut::pressed(ui, shortcut::CTRL, *key) {
            session.view = view;
        }
    }
    if shortcut::pressed(ui, shortcut::CTRL, egui::Key::N) {
        session.view = View::Compose;
        session.compose.focus = Some(compose::Field::To);
        session.compose.changed(&session.handle.clone(), bridge);
    }
}

/// The newest notices, each with a way to dismiss it.
fn notices(ui: &mut egui::Ui, session: &mut Session) {
    let mut dismiss = None;
    for (i, notice) in session.notices.iter().enumerate().rev().take(3) {
        ui.horizontal(|ui| {
            let colour = match notice.level {
                Level::Warning => theme::WARNING,
                Level::Info => ui.visuals().text_color(),
            };
            ui.label(RichText::new(&notice.text).color(colour));
            if ui.small_button("Dismiss").clicked() {
                dismiss = Some(i);
            }
        });
    }
    if let Some(i) = dismiss {
        session.notices.remove(i);
    }
}
