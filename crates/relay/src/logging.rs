//! Operator logs: `tracing` events as text or JSON lines on stderr, as `[log]` sets.
//!
//! Events carry ids, addresses, counts and reasons. They never carry keys, codes, envelope
//! bytes or anything a cable says; the node never sees the latter in clear anyway.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

/// The `[log]` settings could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// `log.level` is not a tracing filter.
    #[error(
        "log.level {level:?} is not a valid filter ({reason}); use e.g. \"info\" or \"valise_relay=debug\""
    )]
    BadLevel {
        /// The configured value.
        level: String,
        /// Why it was refused.
        reason: String,
    },
}

/// The filter `[log]` asks for.
pub fn filter(section: &LogSection) -> Result<EnvFilter, LogError> {
    EnvFilter::builder()
        .parse(&section.level)
        .map_err(|e| LogError::BadLevel {
            level: section.level.clone(),
            reason: e.to_string(),
        })
}

/// Installs the process-wide subscriber. A second call keeps the first subscriber.
pub fn init(section: &LogSection) -> Result<(), LogError> {
    let filter = filter(section)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    // Another subscriber already installed (tests, embedding) is not an error.
    let _ = match section.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    Ok(())
}
