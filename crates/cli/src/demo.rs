//! `valise demo` (being written).

use std::path::Path;

/// Runs the demo.
pub async fn run(_keep: Option<&Path>) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
