//! How long a restarted hub waits for its posts to link to it again: the hub is stopped and
//! started in place (its own files, keys and address), and the clock runs from the moment it
//! listens again until every post shows its hub link up on a connection made since.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use valise_devnet::local::{self, LocalFederation};
use valise_relay::limits::Limits;
use valise_relay::routing::NextHop;

/// How long the network may take to link up at all.
const SETTLE: Duration = Duration::from_secs(30);
/// How long a restarted hub may wait for its posts before the run fails.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Restarts the hub `rounds` times; returns how long each took to be re-linked by both posts.
pub(crate) async fn measure(dir: &Path, rounds: usize) -> Result<Vec<Duration>> {
    let mut network = local::start_network(
        dir,
        "mfa.example",
        "hq",
        &["paris", "nairobi"],
        Limits::default(),
    )?;
    network.wait_linked(SETTLE).await?;
    let mut took = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        network = network.restart_hub().await.context("restarting the hub")?;
        let listening = Instant::now();
        let since_ms = now_ms().saturating_sub(1);
        loop {
            if relinked(&network, since_ms) {
                took.push(listening.elapsed());
                break;
            }
            if listening.elapsed() > GIVE_UP {
                bail!("the posts did not link to the restarted hub within {GIVE_UP:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Quiet links again before the next round.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    network.shutdown().await?;
    Ok(took)
}

/// Whether every post's hub link is up on a connection made at or after `since_ms`.
fn relinked(network: &LocalFederation, since_ms: u64) -> bool {
    network.posts.iter().all(|post| {
        post.node
            .links()
            .get(&NextHop::Hub)
            .is_some_and(|link| link.connected && link.since_ms >= since_ms)
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
