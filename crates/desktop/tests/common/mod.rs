//! What the interaction tests share: a runtime, a post on loopback, windows driven by their
//! accessible labels, and a way to step them until something shows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use valise_desktop::demo::{self, Network, Person};
use valise_desktop::{App, Options};

/// Only so that a broken screen fails the test instead of hanging it; nothing is timed.
pub const GIVE_UP: Duration = Duration::from_secs(60);

/// A post on loopback with its runtime.
pub struct World {
    pub runtime: tokio::runtime::Runtime,
    pub network: Network,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let network = runtime
            .block_on(async { Network::start(dir.path()) })
            .unwrap();
        World {
            runtime,
            network,
            dir,
        }
    }

    pub fn options(&self, user: &str) -> Options {
        Options {
            data_dir: self.network.device_dir(user),
            lock_after: Duration::from_secs(600),
            kdf: demo::demo_kdf(),
            downloads: self.dir.path().join("downloads").join(user),
            unlock_hint: None,
        }
    }

    /// A window for someone enrolled directly (not through the window).
    pub fn window_for(&self, person: &Person) -> Harness<'static, App> {
        let (handle, events) = self.runtime.block_on(self.network.enrol(person)).unwrap();
        let app = App::unlocked(
            self.options(person.user),
            self.runtime.handle().clone(),
            handle,
            events,
        );
        harness(app)
    }

    /// A window that starts at enrolment or unlock, as on a fresh install.
    pub fn fresh_window(&self, user: &str) -> Harness<'static, App> {
        harness(App::new(self.options(user), self.runtime.handle().clone()))
    }

    pub fn file(&self, name: &str, bytes: usize) -> PathBuf {
        let path = self.dir.path().join(name);
        let content: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, content).unwrap();
        path
    }
}

pub fn harness(app: App) -> Harness<'static, App> {
    Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, app: &mut App| app.frame(ui), app)
}

/// Steps the windows until `done` holds for the first, failing with `what` after a minute.
pub fn until(
    windows: &mut [&mut Harness<'static, App>],
    what: &str,
    mut done: impl FnMut(&Harness<'static, App>) -> bool,
) {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        for w in windows.iter_mut() {
            w.step();
        }
        if done(windows[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Steps until a node whose label contains `text` shows.
pub fn until_shown(window: &mut Harness<'static, App>, text: &str) {
    let deadline = Instant::now() + GIVE_UP;
    while window.query_by_label_contains(text).is_none() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {text:?}; the window shows: {:?}",
            every_label(window)
        );
        window.step();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Syncs a window's client with the node now (so it knows who enrolled since).
pub fn sync(world: &World, window: &Harness<'static, App>) {
    let client = window.state().client().expect("the window is unlocked");
    world.runtime.block_on(client.sync_now()).unwrap();
}

/// Types `text` into the field labelled `label`, replacing what it held.
pub fn type_into(window: &mut Harness<'static, App>, label: &str, text: &str) {
    if window.query_by_label(label).is_none() {
        panic!(
            "no field {label:?}; the window shows: {:?}",
            every_label(window)
        );
    }
    window.get_by_label(label).focus();
    window.step();
    window.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    window.step();
    window.get_by_label(label).type_text(text);
    window.step();
}

/// Clicks the one node labelled exactly `label`.
pub fn click(window: &mut Harness<'static, App>, label: &str) {
    let found: Vec<_> = window.query_all_by_label(label).collect();
    match found.as_slice() {
        [one] => one.click(),
        _ => panic!(
            "{} nodes labelled {label:?}; the window shows: {:?}",
            found.len(),
            every_label(window)
        ),
    }
    window.step();
    window.step();
}

/// Every label in the window, for a failure's message.
pub fn every_label(window: &Harness<'static, App>) -> Vec<String> {
    window
        .root()
        .children_recursive()
        .filter_map(|n| text_of(&n))
        .collect()
}

/// What a node says: its label, or the text it shows.
fn text_of(node: &egui_kittest::Node<'_>) -> Option<String> {
    let n = node.accesskit_node();
    n.label().or_else(|| n.value())
}

/// The labels of every node whose label contains `text`.
pub fn labels(window: &Harness<'static, App>, text: &str) -> Vec<String> {
    window
        .query_all_by_label_contains(text)
        .filter_map(|n| text_of(&n))
        .collect()
}
