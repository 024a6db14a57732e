//! Health and Prometheus metrics, served on a loopback HTTP port for the node's operators.
//!
//! `GET /healthz` answers `200 ok` while the node is healthy, and `503` with the reason when
//! its audit log has failed. `GET /metrics` answers in the Prometheus text format. The
//! counters are plain atomics updated on the request path; nothing here blocks it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds of the custody latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0];
/// The longest request line and headers accepted.
const MAX_REQUEST: usize = 4096;

/// The node's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicU64,
    submitted: AtomicU64,
    delivered: AtomicU64,
    attachments_stored: AtomicU64,
    attachment_bytes_stored: AtomicU64,
    attachments_fetched: AtomicU64,
    attachment_bytes_fetched: AtomicU64,
    attachments_carried: AtomicU64,
    attachment_bytes_carried: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// A device connected.
    pub fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A device disconnected.
    pub fn disconnected(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// A cable was taken into custody, `latency` after it arrived.
    pub fn custody(&self, latency: Duration) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BOUNDS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A cable was delivered and acknowledged.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// An uploaded attachment of `bytes` was stored (or was already held).
    pub fn attachment_stored(&self, bytes: u64) {
        self.attachments_stored.fetch_add(1, Ordering::Relaxed);
        self.attachment_bytes_stored
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// An attachment of `bytes` was served whole.
    pub fn attachment_fetched(&self, bytes: u64) {
        self.attachments_fetched.fetch_add(1, Ordering::Relaxed);
        self.attachment_bytes_fetched
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// An attachment of `bytes` was carried to a next hop with its cable.
    pub fn attachment_carried(&self, bytes: u64) {
        self.attachments_carried.fetch_add(1, Ordering::Relaxed);
        self.attachment_bytes_carried
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// A request was refused for `reason` (an audit reason such as `clearance`).
    pub fn refused(&self, reason: &crate::reason::Reason) {
        let reason = reason.label();
        *self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }

    /// The Prometheus text exposition, with the queue depth given.
    pub fn render(&self, queue_depth: [u64; 4]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP valise_queue_depth Cables waiting for delivery, by precedence."
        );
        let _ = writeln!(out, "# TYPE valise_queue_depth gauge");
        for (name, depth) in ["flash", "immediate", "priority", "routine"]
            .iter()
            .zip(queue_depth)
        {
            let _ = writeln!(out, "valise_queue_depth{{precedence=\"{name}\"}} {depth}");
        }
        let _ = writeln!(out, "# HELP valise_connections Devices connected now.");
        let _ = writeln!(out, "# TYPE valise_connections gauge");
        let _ = writeln!(
            out,
            "valise_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP valise_submissions_total Cables taken into custody."
        );
        let _ = writeln!(out, "# TYPE valise_submissions_total counter");
        let _ = writeln!(
            out,
            "valise_submissions_total {}",
            self.submitted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP valise_deliveries_total Cables delivered and acknowledged."
        );
        let _ = writeln!(out, "# TYPE valise_deliveries_total counter");
        let _ = writeln!(
            out,
            "valise_deliveries_total {}",
            self.delivered.load(Ordering::Relaxed)
        );
        for (name, help, counter) in [
            (
                "valise_attachments_stored_total",
                "Attachment uploads stored (or already held).",
                &self.attachments_stored,
            ),
            (
                "valise_attachment_bytes_stored_total",
                "Bytes of the attachment uploads stored.",
                &self.attachment_bytes_stored,
            ),
            (
                "valise_attachments_fetched_total",
                "Attachments served whole.",
                &self.attachments_fetched,
            ),
            (
                "valise_attachment_bytes_fetched_total",
                "Bytes of the attachments served.",
                &self.attachment_bytes_fetched,
            ),
            (
                "valise_attachments_carried_total",
                "Attachments uploaded to a next hop with their cable.",
                &self.attachments_carried,
            ),
            (
                "valise_attachment_bytes_carried_total",
                "Bytes of the attachments carried to next hops.",
                &self.attachment_bytes_carried,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP valise_refusals_total Requests refused, by reason."
        );
        let _ = writeln!(out, "# TYPE valise_refusals_total counter");
        for (reason, count) in self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(out, "valise_refusals_total{{reason=\"{reason}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP valise_custody_latency_seconds From a cable's arrival to its signed custody receipt."
        );
        let _ = writeln!(out, "# TYPE valise_custody_latency_seconds histogram");
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BOUNDS) {
            let _ = writeln!(
                out,
                "valise_custody_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "valise_custody_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "valise_custody_latency_seconds_sum {sum}");
        let _ = writeln!(out, "valise_custody_latency_seconds_count {count}");
        out
    }
}

/// What the HTTP endpoint asks of the node.
pub trait Observed: Send + Sync + 'static {
    /// The metrics text.
    fn metrics(&self) -> String;
    /// `Ok` when healthy, else why not.
    fn health(&self) -> Result<(), String>;
}

/// Serves `/healthz` and `/metrics` on `listen` (a loopback address) until aborted. Returns
/// the task and the address bound.
pub async fn serve(
    listen: SocketAddr,
    node: std::sync::Arc<dyn Observed>,
) -> std::io::Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let node = std::sync::Arc::clone(&node);
            tokio::spawn(async move {
                let mut request = Vec::with_capacity(512);
                let mut buf = [0u8; 512];
                let read = async {
                    while !request.windows(4).any(|w| w == b"\r\n\r\n")
                        && request.len() < MAX_REQUEST
                    {
                        let n = stream.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    Ok::<_, std::io::Error>(())
                };
                if tokio::time::timeout(Duration::from_secs(5), read)
                    .await
                    .is_err()
                {
                    return;
                }
                let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
                let (status, body) = match line {
                    b"GET /metrics HTTP/1.1" | b"GET /metrics HTTP/1.0" => {
                        ("200 OK", node.metrics())
                    }
                    b"GET /healthz HTTP/1.1" | b"GET /healthz HTTP/1.0" => match node.health() {
                        Ok(()) => ("200 OK", "ok\n".to_owned()),
                        Err(reason) => {
                            ("503 Service Unavailable", format!("unhealthy: {reason}\n"))
                        }
                    },
                    _ => ("404 Not Found", "try /healthz or /metrics\n".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((task, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_what_happened() {
        let m = Metrics::default();
        m.connected();
        m.connected();
        m.disconnected();
        m.custody(Duration::from_millis(3));
        m.custody(Duration::from_millis(30));
        m.delivered();
        m.refused(&crate::reason::Reason::Clearance);
        m.refused(&crate::reason::Reason::Clearance);
        m.attachment_stored(1000);
        m.attachment_fetched(1000);
        m.attachment_fetched(24);
        m.attachment_carried(4096);
        let text = m.render([1, 0, 2, 5]);
        for line in [
            "valise_queue_depth{precedence=\"flash\"} 1",
            "valise_queue_depth{precedence=\"routine\"} 5",
            "valise_connections 1",
            "valise_submissions_total 2",
            "valise_deliveries_total 1",
            "valise_attachments_stored_total 1",
            "valise_attachments_carried_total 1",
            "valise_attachment_bytes_carried_total 4096",
            "valise_attachment_bytes_stored_total 1000",
            "valise_attachments_fetched_total 2",
            "valise_attachment_bytes_fetched_total 1024",
            "valise_refusals_total{reason=\"clearance\"} 2",
            "valise_custody_latency_seconds_bucket{le=\"0.005\"} 1",
            "valise_custody_latency_seconds_bucket{le=\"0.05\"} 2",
            "valise_custody_latency_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
