//! Limits on what a peer may send. Every length, count and size read from the network has one;
//! going over it gets a clear error frame and closes only that stream.

/// The node's limits. Defaults suit one embassy post; the hub raises them in its config
/// (`[limits]` in `node.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest encoded envelope accepted, in bytes (attachments travel separately).
    pub max_envelope_bytes: usize,
    /// Most recipient devices (key wraps) per cable.
    pub max_recipients: usize,
    /// Most frames on one stream.
    pub max_frames_per_stream: u32,
    /// Most concurrent streams a device's connection may have open. Every stream allowed
    /// costs the node memory for each connected device (QUIC keeps a slot for it), so the
    /// default (64) is what a client uses with room to spare; links between nodes get more.
    pub max_streams_per_connection: u32,
    /// Most enrolment codes outstanding at once.
    pub max_pending_enrolments: u32,
    /// Most connections served at once; more are turned away as busy.
    pub max_connections: u32,
    /// Most connections without a certificate at once (enrolling devices, and whatever else
    /// knocks), counted apart from enrolled devices' connections, which they cannot crowd out.
    pub max_unauthenticated_connections: u32,
    /// Most handshakes in progress, and most connections without a certificate, from one
    /// source address (IP). Enrolled devices behind one address (a post's NAT) are not
    /// limited by it once their certificate is checked.
    pub max_connections_per_source: u32,
    /// Most submissions being made durable at once; more are answered "busy, retry after".
    pub max_concurrent_submissions: u32,
    /// Largest attachment ciphertext accepted, in bytes. Attachments stream to disk, so this
    /// bounds disk use per upload, not memory.
    pub max_attachment_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A 1,000-recipient cable is about 1.2 MB of key wraps plus its body.
            max_envelope_bytes: 8 * 1024 * 1024,
            max_recipients: 2000,
            max_frames_per_stream: 64,
            max_streams_per_connection: 64,
            max_pending_enrolments: 1000,
            max_connections: 10_000,
            max_unauthenticated_connections: 256,
            max_connections_per_source: 64,
            max_concurrent_submissions: 1024,
            max_attachment_bytes: 1 << 30,
        }
    }
}
