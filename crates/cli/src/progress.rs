//! Progress bars for attachment transfers: indicatif on a terminal, nothing otherwise (so
//! scripts and `--json` output stay clean).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use valise_client::sync::Progress;

/// A progress bar on stderr, when stderr is a terminal.
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl Bars {
    /// Bars shown only if stderr is a terminal and output is not JSON.
    pub fn new(json: bool) -> Self {
        Bars {
            bar: Mutex::new(None),
            enabled: !json && std::io::stderr().is_terminal(),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        if let Ok(mut bar) = self.bar.lock() {
            f(&mut bar);
        }
    }
}

impl Progress for Bars {
    fn start(&self, label: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        self.with(|b| *b = Some(bar));
    }

    fn advance(&self, done: u64) {
        self.with(|b| {
            if let Some(bar) = b {
                bar.set_position(done);
            }
        });
    }

    fn finish(&self) {
        self.with(|b| {
            if let Some(bar) = b.take() {
                bar.finish_and_clear();
            }
        });
    }
}
