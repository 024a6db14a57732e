//! The node's TOML configuration: every setting has a documented default, unknown keys are
//! errors (a typo must not silently fall back to a default), and relative paths are resolved
//! against the configuration file's folder. The annotated example is `deploy/node.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::Limits;

/// The longest attachment retention accepted: ten years is already more than any cable needs.
const MAX_RETENTION_DAYS: u64 = 3650;

/// Why a configuration was refused. Each says which setting and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has unknown or mistyped settings.
    #[error("the configuration {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A setting has a value the node cannot run with.
    #[error("the configuration setting `{setting}` is invalid: {reason}")]
    Invalid {
        /// The setting, as `section.key`.
        setting: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// A node's role in the network (decided in the core, configured here).
pub use valise_relay_core::routing::NodeKind;

/// The whole configuration, with relative paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The node itself.
    pub node: NodeSection,
    /// Certificates and keys.
    pub tls: TlsSection,
    /// Limits on what peers may send.
    pub limits: Limits,
    /// Enrolment codes.
    pub enrolment: EnrolmentSection,
    /// Audit checkpoints.
    pub audit: AuditSection,
    /// The local metrics and health endpoint.
    pub metrics: MetricsSection,
    /// The local admin channel.
    pub admin: AdminSection,
    /// Operator logs.
    pub log: LogSection,
    /// Attachment storage.
    pub attachments: AttachmentsSection,
    /// Peer posts linked directly, besides the hub (`[[peers]]`).
    pub peers: Vec<PeerSection>,
    /// Links to other nodes.
    pub links: LinksSection,
    /// Cables in transit.
    pub queue: QueueSection,
    /// The cable vocabulary this network adds.
    pub cables: CablesSection,
}

/// `[cables]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CablesSection {
    /// TAGS this network files under besides the standard subject, country and organisation
    /// tags (two to eight letters or digits each), e.g. `["KVAL"]`. Devices learn them from
    /// the node. Default none.
    pub extra_tags: Vec<String>,
}

/// `[queue]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSection {
    /// Days a delivered cable's id is remembered, so a late resend is recognised and not
    /// delivered twice. Default 30; keep it longer than any device may stay offline with the
    /// cable in its outbox.
    pub dedup_days: u64,
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection { dedup_days: 30 }
    }
}

/// `[links]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinksSection {
    /// Most cables awaiting the next hop's custody receipt at once, per link, and as many again
    /// for FLASH and IMMEDIATE. Default 128; raise it on links with a long round trip and ample
    /// bandwidth.
    pub forward_window: u32,
}

impl Default for LinksSection {
    fn default() -> Self {
        LinksSection {
            forward_window: 128,
        }
    }
}

/// `[[peers]]`: a post this post links to directly, besides the hub. Of two peers, the one
/// whose name sorts first dials; both list each other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    /// The peer post's node name, e.g. `brussels`.
    pub name: String,
    /// Its `host:port`, a name its node certificate carries.
    pub addr: String,
}

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The node's name: `hq`, `paris`, `un-newyork`. Required.
    pub name: String,
    /// `hub` or `post`. Required.
    pub kind: NodeKind,
    /// The ministry's name, e.g. `mfa.example`. Required.
    pub ministry: String,
    /// QUIC listen address. Default `0.0.0.0:4433`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The hub's `host:port`, for posts. Default none.
    #[serde(default)]
    pub hub: Option<String>,
    /// Data directory. Default `data`, beside this file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

/// `[tls]`: files written by `valise-relay ca issue-node`, beside this file by default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// The ministry root certificate (PEM). Default `ca.pem`.
    pub ca_cert: PathBuf,
    /// This node's certificate chain (PEM). Default `node.pem`.
    pub node_cert: PathBuf,
    /// This node's TLS private key (PEM). Default `node.key`.
    pub node_key: PathBuf,
}

/// `[enrolment]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrolmentSection {
    /// How long a one-time code stays valid, in hours. Default 72.
    pub code_ttl_hours: u64,
    /// Redemption attempts allowed per source address per minute. Default 10.
    pub attempts_per_minute: u32,
}

/// `[audit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSection {
    /// Sign a checkpoint after this many entries. Default 256.
    pub checkpoint_every_entries: u64,
    /// …or after this many milliseconds, whichever comes first. Default 1000.
    pub checkpoint_interval_ms: u64,
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Health and Prometheus metrics address; keep it on loopback. Default `127.0.0.1:9464`.
    pub listen: SocketAddr,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// The admin Unix socket (owner-only), relative to the data directory. Default `admin.sock`.
    pub socket: PathBuf,
}

/// Operator log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `valise_relay=debug`. Default `info`.
    pub level: String,
}

/// `[attachments]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentsSection {
    /// Days an uploaded attachment is kept, counted from its latest upload. Default 30.
    pub retention_days: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    node: NodeSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    enrolment: EnrolmentSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    admin: AdminSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    attachments: AttachmentsSection,
    #[serde(default)]
    peers: Vec<PeerSection>,
    #[serde(default)]
    links: LinksSection,
    #[serde(default)]
    queue: QueueSection,
    #[serde(default)]
    cables: CablesSection,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 4433))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            ca_cert: "ca.pem".into(),
            node_cert: "node.pem".into(),
            node_key: "node.key".into(),
        }
    }
}

impl Default for EnrolmentSection {
    fn default() -> Self {
        EnrolmentSection {
            code_ttl_hours: 72,
            attempts_per_minute: 10,
        }
    }
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            checkpoint_every_entries: 256,
            checkpoint_interval_ms: 1000,
        }
    }
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            socket: "admin.sock".into(),
        }
    }
}

impl Default for AttachmentsSection {
    fn default() -> Self {
        AttachmentsSection { retention_days: 30 }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads, checks and resolves the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses configuration text, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let config = Config {
            node: NodeSection {
                data_dir: base.join(&file.node.data_dir),
                ..file.node
            },
            tls: TlsSection {
                ca_cert: base.join(&file.tls.ca_cert),
                node_cert: base.join(&file.tls.node_cert),
                node_key: base.join(&file.tls.node_key),
            },
            limits: file.limits,
            enrolment: file.enrolment,
            audit: file.audit,
            metrics: file.metrics,
            admin: file.admin,
            log: file.log,
            attachments: file.attachments,
            peers: file.peers,
            links: file.links,
            queue: file.queue,
            cables: file.cables,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| {
            Err(ConfigError::Invalid {
                setting,
                reason: reason.to_owned(),
            })
        };
        if !is_name(&self.node.name) {
            return invalid(
                "node.name",
                "use lowercase letters, digits and '-', e.g. `paris` or `un-newyork`",
            );
        }
        if self.node.ministry.is_empty() || self.node.ministry.contains(char::is_whitespace) {
            return invalid(
                "node.ministry",
                "give the ministry's name without spaces, e.g. `mfa.example`",
            );
        }
        if let Err(crate::logging::LogError::BadLevel { reason, .. }) =
            crate::logging::filter(&self.log)
        {
            return invalid(
                "log.level",
                &format!("{reason}; use e.g. \"info\" or \"valise_relay=debug\""),
            );
        }
        if let Some(hub) = &self.node.hub {
            if self.node.kind == NodeKind::Hub {
                return invalid(
                    "node.hub",
                    "a hub does not connect to another hub; remove this setting",
                );
            }
            if !is_host_port(hub) {
                return invalid(
                    "node.hub",
                    "write the hub as host:port, e.g. `hq.mfa.example:4433`",
                );
            }
        }
        for (i, peer) in self.peers.iter().enumerate() {
            if self.node.kind == NodeKind::Hub {
                return invalid(
                    "peers",
                    "a hub links to every post that dials it; list peers on posts only",
                );
            }
            if !is_name(&peer.name) || peer.name == self.node.name {
                return invalid(
                    "peers.name",
                    &format!(
                        "peer {} is not another post's node name; use lowercase letters, digits \
                         and '-'",
                        i + 1
                    ),
                );
            }
            if !is_host_port(&peer.addr) {
                return invalid(
                    "peers.addr",
                    &format!(
                        "write peer {}'s address as host:port, e.g. `brussels.mfa.example:4433`",
                        peer.name
                    ),
                );
            }
            if self.peers[..i].iter().any(|p| p.name == peer.name) {
                return invalid("peers.name", &format!("peer {} is listed twice", peer.name));
            }
        }
        let l = &self.limits;
        // Every number has a floor and a ceiling: a value past the ceiling would exhaust
        // memory or overflow a computation made from it (a frame limit, a timer).
        for (setting, value, max) in [
            (
                "limits.max_envelope_bytes",
                l.max_envelope_bytes as u64,
                64 << 20,
            ),
            ("limits.max_recipients", l.max_recipients as u64, 10_000),
            (
                "limits.max_frames_per_stream",
                u64::from(l.max_frames_per_stream),
                65_536,
            ),
            (
                "limits.max_streams_per_connection",
                u64::from(l.max_streams_per_connection),
                10_000,
            ),
            (
                "limits.max_pending_enrolments",
                u64::from(l.max_pending_enrolments),
                100_000,
            ),
            (
                "limits.max_connections",
                u64::from(l.max_connections),
                100_000,
            ),
            (
                "limits.max_unauthenticated_connections",
                u64::from(l.max_unauthenticated_connections),
                100_000,
            ),
            (
                "limits.max_connections_per_source",
                u64::from(l.max_connections_per_source),
                100_000,
            ),
            (
                "limits.max_concurrent_submissions",
                u64::from(l.max_concurrent_submissions),
                65_536,
            ),
            (
                "limits.max_attachment_bytes",
                l.max_attachment_bytes,
                64 << 30,
            ),
            (
                "links.forward_window",
                u64::from(self.links.forward_window),
                4096,
            ),
            (
                "enrolment.code_ttl_hours",
                self.enrolment.code_ttl_hours,
                720,
            ),
            (
                "enrolment.attempts_per_minute",
                u64::from(self.enrolment.attempts_per_minute),
                1000,
            ),
            (
                "audit.checkpoint_every_entries",
                self.audit.checkpoint_every_entries,
                1_000_000,
            ),
            (
                "audit.checkpoint_interval_ms",
                self.audit.checkpoint_interval_ms,
                3_600_000,
            ),
            ("queue.dedup_days", self.queue.dedup_days, 3650),
        ] {
            if value == 0 || value > max {
                return invalid(
                    setting,
                    &format!("must be between 1 and {max}; {value} is outside that"),
                );
            }
        }
        if self.cables.extra_tags.len() > 1000 {
            return invalid("cables.extra_tags", "list at most 1000 tags");
        }
        for tag in &self.cables.extra_tags {
            let well_formed =
                (2..=8).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric());
            if !well_formed {
                return invalid(
                    "cables.extra_tags",
                    &format!("{tag:?} is not a tag: two to eight letters or digits, e.g. \"KVAL\""),
                );
            }
        }
        let days = self.attachments.retention_days;
        if days == 0 || days > MAX_RETENTION_DAYS {
            return invalid(
                "attachments.retention_days",
                &format!(
                    "must be between 1 and {MAX_RETENTION_DAYS} days, e.g. 30; a recipient who \
                     fetches an attachment later than that must ask its sender to resend it"
                ),
            );
        }
        if !self.metrics.listen.ip().is_loopback() {
            return invalid(
                "metrics.listen",
                "metrics are served on loopback only, e.g. `127.0.0.1:9464`",
            );
        }
        Ok(())
    }

    /// The audit log's origin: `valise/<ministry>/<node>/audit`.
    pub fn audit_origin(&self) -> String {
        format!("valise/{}/{}/audit", self.node.ministry, self.node.name)
    }

    /// The checkpoint interval.
    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.audit.checkpoint_interval_ms)
    }

    /// How long a delivered cable's id is remembered.
    pub fn dedup_retention(&self) -> Duration {
        Duration::from_secs(self.queue.dedup_days.saturating_mul(86_400))
    }

    /// How long attachments are kept after their latest upload.
    pub fn attachment_retention(&self) -> Duration {
        Duration::from_secs(self.attachments.retention_days.saturating_mul(86_400))
    }

    /// The audit log's anchor: beside the keys, outside the data directory, so a restored
    /// older copy of that cannot roll it back.
    pub fn audit_anchor(&self) -> PathBuf {
        self.key_file("audit.anchor")
    }

    /// The enrolment code rules this configuration sets.
    pub fn code_rules(&self) -> crate::enrolment::Codes {
        crate::enrolment::Codes::new(
            self.enrolment.code_ttl_hours.saturating_mul(3_600_000),
            self.limits.max_pending_enrolments as usize,
            self.enrolment.attempts_per_minute,
        )
    }

    /// The admin socket's path.
    pub fn admin_socket(&self) -> PathBuf {
        self.node.data_dir.join(&self.admin.socket)
    }

    /// A file beside the node's TLS key, where the node keeps its other keys, its audit anchor
    /// and its destruction marker: outside the data directory, so a restored old copy of that
    /// cannot roll them back.
    pub fn key_file(&self, name: &str) -> PathBuf {
        self.tls.node_key.with_file_name(name)
    }
}

fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Whether `name` is a valid node name: lowercase letters, digits and '-', not leading.
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
