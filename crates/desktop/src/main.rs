//! `valise-desktop`: opens the Valise desktop client.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
#[cfg(feature = "demo")]
use valise_desktop::demo;
use valise_desktop::{App, Options};

/// The Valise desktop client.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The device's data folder.
    #[arg(long, env = "VALISE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Open as a diplomat on a throwaway local network with cables waiting.
    #[arg(long)]
    demo: bool,
    /// With --demo: keep the network and devices in this (new or empty) folder.
    #[arg(long, requires = "demo")]
    keep: Option<PathBuf>,
    /// Lock after this many minutes without use.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1440))]
    lock_after: u64,
    /// Where attachments are saved unless another folder is chosen.
    #[arg(long)]
    downloads: Option<PathBuf>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// `--demo`: the app unlocked as the demo's ambassador, on a throwaway post kept in `keep` (or
/// a temporary folder) for as long as the window.
#[cfg(feature = "demo")]
fn demo_app(
    keep: Option<PathBuf>,
    mut options: Options,
    runtime: &tokio::runtime::Runtime,
) -> Result<App> {
    eprintln!("valise-desktop: starting the demo network…");
    let (running, handle, events) = runtime.block_on(demo::start(keep))?;
    options.data_dir = running.network.device_dir(demo::AMBASSADOR.user);
    options.kdf = demo::demo_kdf();
    options.unlock_hint = Some(format!("Demo passphrase: {}", demo::PASSPHRASE));
    if options.downloads.starts_with(home()) {
        options.downloads = options.data_dir.join("saved");
    }
    let mut app = App::unlocked(options, runtime.handle().clone(), handle, events);
    app.keep(Box::new(running));
    Ok(app)
}

/// `--demo` in a build without the `demo` feature: says so, and how to get one, before any
/// window opens.
#[cfg(not(feature = "demo"))]
fn demo_app(
    _keep: Option<PathBuf>,
    _options: Options,
    _runtime: &tokio::runtime::Runtime,
) -> Result<App> {
    Err(anyhow::anyhow!(valise_desktop::NO_DEMO))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let options = Options {
        data_dir: args.data_dir.unwrap_or_else(|| home().join(".valise")),
        lock_after: Duration::from_secs(args.lock_after * 60),
        kdf: valise_client::KdfParams::default(),
        downloads: args
            .downloads
            .unwrap_or_else(|| home().join("Downloads").join("valise")),
        unlock_hint: None,
    };
    let app = if args.demo {
        demo_app(args.keep, options, &runtime)?
    } else {
        App::new(options, runtime.handle().clone())
    };
    let native = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Valise")
            .with_app_id("valise-desktop")
            .with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    eframe::run_native("Valise", native, Box::new(move |_cc| Ok(Box::new(app))))
        .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))?;
    drop(runtime);
    Ok(())
}
