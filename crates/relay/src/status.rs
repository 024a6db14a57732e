//! `valise-relay status`: a node's links, queues and witnessing, as its operator reads them.
//!
//! A running node answers over the admin socket (`node::RunningNode` assembles the answer with
//! [`assemble`]); a stopped node's status is read from its files ([`from_files`]). Both print
//! the same way ([`render`], [`to_json`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use valise_proto::v1::{LinkState, NodeStatus, QueueDepth};

use crate::config::{Config, NodeKind, PeerSection};
use crate::files::{LINKS_DIR, NODE_STORAGE_KEY, QUEUE_DIR};
use crate::node::LinkStatus;
use crate::routing::NextHop;
use crate::store::RelayStore;
use crate::witnessed;

/// Cables waiting, from `[FLASH, IMMEDIATE, PRIORITY, ROUTINE]`.
pub fn depth(d: [u64; 4]) -> QueueDepth {
    QueueDepth {
        flash: d[0],
        immediate: d[1],
        priority: d[2],
        routine: d[3],
    }
}

/// What a node knows of itself, put together for the operator.
pub struct Parts {
    /// The node's name.
    pub node: String,
    /// Hub or post.
    pub kind: NodeKind,
    /// Whether this is the live node's own answer.
    pub running: bool,
    /// Every link it has or expects.
    pub links: BTreeMap<NextHop, LinkStatus>,
    /// Forwarding queues, by next-hop label.
    pub onward: BTreeMap<String, [u64; 4]>,
    /// Queues for the node's own devices.
    pub delivery: [u64; 4],
    /// Entries in the audit log.
    pub audit_entries: u64,
    /// Problems the operator must act on.
    pub alarms: Vec<String>,
    /// Cables past their delivery objective on this node's queues.
    pub overdue: Vec<crate::store::Overdue>,
}

/// Most overdue cables listed in a status (all are counted).
const MAX_OVERDUE_SHOWN: usize = 100;

/// Joins links with their forwarding queues; a queue whose hop no link reports is listed
/// apart, so that nothing waiting goes unseen.
pub fn assemble(parts: Parts) -> NodeStatus {
    let mut onward = parts.onward;
    let links = parts
        .links
        .into_iter()
        .filter(|(hop, _)| *hop != NextHop::Local)
        .map(|(hop, link)| {
            let queued = onward.remove(&hop.label()).unwrap_or_default();
            link_state(&hop, &link, queued)
        })
        .collect();
    let unlinked = onward
        .into_iter()
        .map(|(label, queued)| LinkState {
            hop: label,
            queued: Some(depth(queued)),
            ..LinkState::default()
        })
        .collect();
    NodeStatus {
        node: parts.node,
        hub: parts.kind == NodeKind::Hub,
        running: parts.running,
        links,
        delivery: Some(depth(parts.delivery)),
        audit_entries: parts.audit_entries,
        unlinked,
        alarms: parts.alarms,
        overdue_total: parts.overdue.len() as u64,
        overdue: parts
            .overdue
            .iter()
            .take(MAX_OVERDUE_SHOWN)
            .map(|o| valise_proto::v1::OverdueCable {
                cable_id: o.cable.to_vec(),
                precedence: o.precedence as i32,
                waiting_for: o.waiting_for.clone(),
                since_ms: o.since_ms,
            })
            .collect(),
    }
}

fn link_state(hop: &NextHop, link: &LinkStatus, queued: [u64; 4]) -> LinkState {
    let (witnessed_size, witnessed_at_ms) = link.witnessed.unwrap_or_default();
    LinkState {
        hop: hop.label(),
        neighbour: link.neighbour.clone().unwrap_or_default(),
        addr: link.addr.clone().unwrap_or_default(),
        connected: link.connected,
        since_ms: link.since_ms,
        last_error: link.last_error.clone().unwrap_or_default(),
        witnessed_size,
        witnessed_at_ms,
        cosigned_size: link.cosigned.unwrap_or_default(),
        queued: Some(depth(queued)),
    }
}

/// The hop a neighbour's kept cosignature belongs to: a configured peer post, else the hub
/// (a post links to nothing else; every neighbour of the hub is a post).
fn hop_of(neighbour: &str, kind: NodeKind, peers: &[PeerSection]) -> NextHop {
    if kind == NodeKind::Hub || peers.iter().any(|p| p.name == neighbour) {
        NextHop::Post(neighbour.to_owned())
    } else {
        NextHop::Hub
    }
}

/// The links a node's configuration expects, each with the newest checkpoint its neighbour
/// cosigned (kept in `links_dir`): what status shows before any link is up, and while the
/// node is stopped.
pub fn configured_links(
    kind: NodeKind,
    hub: Option<&str>,
    peers: &[PeerSection],
    links_dir: &Path,
) -> std::io::Result<BTreeMap<NextHop, LinkStatus>> {
    let mut links = BTreeMap::new();
    if let Some(hub) = hub {
        links.insert(
            NextHop::Hub,
            LinkStatus {
                addr: Some(hub.to_owned()),
                ..LinkStatus::default()
            },
        );
    }
    for peer in peers {
        links.insert(
            NextHop::Post(peer.name.clone()),
            LinkStatus {
                neighbour: Some(peer.name.clone()),
                addr: Some(peer.addr.clone()),
                ..LinkStatus::default()
            },
        );
    }
    for w in witnessed::read_all(links_dir)? {
        let Some(size) = w.size() else { continue };
        let link = links.entry(hop_of(&w.neighbour, kind, peers)).or_default();
        // On a post, a hub since replaced (or a peer since removed) also maps to the hub: the
        // most recent cosignature is the current hub's.
        if link.witnessed.is_some_and(|(_, at)| at > w.kept_at_ms) {
            continue;
        }
        link.neighbour = Some(w.neighbour.clone());
        link.witnessed = Some((size, w.kept_at_ms));
    }
    Ok(links)
}

/// A stopped node's status, from its configuration, its kept cosignatures and its queue store.
pub fn from_files(config: &Config) -> Result<NodeStatus, String> {
    let links_dir = config.node.data_dir.join(LINKS_DIR);
    let links = configured_links(
        config.node.kind,
        config.node.hub.as_deref(),
        &config.peers,
        &links_dir,
    )
    .map_err(|e| {
        format!(
            "cannot read the witnessed checkpoints in {}: {e}",
            links_dir.join(witnessed::WITNESSED_DIR).display()
        )
    })?;
    let (delivery, onward, overdue) = stopped_queues(config)?;
    Ok(assemble(Parts {
        node: config.node.name.clone(),
        kind: config.node.kind,
        running: false,
        links,
        onward,
        delivery,
        audit_entries: 0,
        alarms: Vec::new(),
        overdue,
    }))
}

type Queues = (
    [u64; 4],
    BTreeMap<String, [u64; 4]>,
    Vec<crate::store::Overdue>,
);

/// The queue depths of a stopped node; empty if it never ran.
fn stopped_queues(config: &Config) -> Result<Queues, String> {
    let queue = config.node.data_dir.join(QUEUE_DIR);
    if !queue.exists() {
        return Ok(Default::default());
    }
    let key_file = config.key_file(NODE_STORAGE_KEY);
    let key = crate::files::read(&key_file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            valise_crypto::at_rest::StorageKey::from_bytes(&bytes).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("cannot read the node storage key to count the queues: {e}"))?;
    let store = RelayStore::open(&queue, &key).map_err(|e| {
        format!(
            "cannot open the queue store {} (is the node starting?): {e}",
            queue.display()
        )
    })?;
    let delivery = store.depth().map_err(|e| e.to_string())?;
    let onward = store.onward_depth().map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let overdue = store.past_objective(now).map_err(|e| e.to_string())?;
    Ok((delivery, onward, overdue))
}

fn depth_text(d: Option<&QueueDepth>) -> String {
    let d = d.cloned().unwrap_or_default();
    format!(
        "FLASH {}  IMMEDIATE {}  PRIORITY {}  ROUTINE {}",
        d.flash, d.immediate, d.priority, d.routine
    )
}

/// `2026-11-22 15:04:05 UTC (3m ago)`.
fn when(ms: u64, now_ms: u64) -> String {
    let at = i64::try_from(ms / 1000)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    let Some(at) = at else {
        return format!("{ms} ms after the epoch");
    };
    let ago = now_ms.saturating_sub(ms) / 1000;
    let ago = match ago {
        0..60 => format!("{ago}s"),
        60..3600 => format!("{}m", ago / 60),
        3600..86_400 => format!("{}h{:02}m", ago / 3600, ago % 3600 / 60),
        _ => format!("{}d", ago / 86_400),
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC ({ago} ago)",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The status as text, for a terminal.
pub fn render(status: &NodeStatus, now_ms: u64) -> String {
    let mut out = String::new();
    let kind = if status.hub { "hub" } else { "post" };
    if status.running {
        let _ = writeln!(
            out,
            "node {} ({kind}): running, audit log {} entries",
            status.node, status.audit_entries
        );
    } else {
        let _ = writeln!(
            out,
            "node {} ({kind}): NOT RUNNING (read from its files; link states are unknown)",
            status.node
        );
    }
    for alarm in &status.alarms {
        let _ = writeln!(out, "ALARM: {alarm}");
    }
    if status.overdue_total > 0 {
        let _ = writeln!(
            out,
            "PAST OBJECTIVE: {} cable(s) waiting longer than their precedence allows",
            status.overdue_total
        );
        for o in &status.overdue {
            let precedence = valise_proto::v1::Precedence::try_from(o.precedence)
                .unwrap_or(valise_proto::v1::Precedence::Routine);
            let waited = now_ms.saturating_sub(o.since_ms);
            let _ = writeln!(
                out,
                "  {} cable {} for {}: held {} min, objective {} min",
                precedence.cable_name(),
                hex::encode(&o.cable_id),
                o.waiting_for,
                waited / 60_000,
                precedence.objective_ms() / 60_000
            );
        }
    }
    let _ = writeln!(
        out,
        "delivery queues (this node's devices): {}",
        depth_text(status.delivery.as_ref())
    );
    if status.links.is_empty() {
        let _ = writeln!(out, "links: none configured or connected yet");
    }
    for link in status.links.iter().chain(&status.unlinked) {
        let who = match (link.neighbour.as_str(), link.addr.as_str()) {
            ("", "") => String::new(),
            (n, "") => format!(" {n}"),
            ("", a) => format!(" {a}"),
            (n, a) => format!(" {n} at {a}"),
        };
        let state = if !status.running {
            "unknown (node stopped)".to_owned()
        } else if link.connected {
            format!("UP since {}", when(link.since_ms, now_ms))
        } else if link.since_ms > 0 {
            format!("DOWN since {}", when(link.since_ms, now_ms))
        } else if status.unlinked.contains(link) {
            "NO LINK (this hop is no longer configured)".to_owned()
        } else {
            "DOWN (never connected)".to_owned()
        };
        let _ = writeln!(out, "link {}{who}: {state}", link.hop);
        let _ = writeln!(out, "  queued: {}", depth_text(link.queued.as_ref()));
        if link.witnessed_size > 0 {
            let _ = writeln!(
                out,
                "  last witnessed: checkpoint size {} cosigned by {}, kept {}",
                link.witnessed_size,
                if link.neighbour.is_empty() {
                    "the neighbour"
                } else {
                    &link.neighbour
                },
                when(link.witnessed_at_ms, now_ms)
            );
        } else {
            let _ = writeln!(out, "  last witnessed: none yet");
        }
        if link.cosigned_size > 0 {
            let _ = writeln!(
                out,
                "  cosigned the neighbour's log up to size {}",
                link.cosigned_size
            );
        }
        if !link.last_error.is_empty() {
            let _ = writeln!(out, "  last problem: {}", link.last_error);
        }
    }
    out
}

fn depth_json(d: Option<&QueueDepth>) -> serde_json::Value {
    let d = d.cloned().unwrap_or_default();
    serde_json::json!({
        "FLASH": d.flash,
        "IMMEDIATE": d.immediate,
        "PRIORITY": d.priority,
        "ROUTINE": d.routine,
    })
}

fn link_json(link: &LinkState) -> serde_json::Value {
    serde_json::json!({
        "hop": link.hop,
        "neighbour": link.neighbour,
        "addr": link.addr,
        "connected": link.connected,
        "since_ms": link.since_ms,
        "last_error": link.last_error,
        "witnessed_size": link.witnessed_size,
        "witnessed_at_ms": link.witnessed_at_ms,
        "cosigned_size": link.cosigned_size,
        "queued": depth_json(link.queued.as_ref()),
    })
}

/// The status as JSON, for scripts and monitoring.
pub fn to_json(status: &NodeStatus) -> serde_json::Value {
    serde_json::json!({
        "node": status.node,
        "kind": if status.hub { "hub" } else { "post" },
        "running": status.running,
        "audit_entries": status.audit_entries,
        "delivery": depth_json(status.delivery.as_ref()),
        "links": status.links.iter().map(link_json).collect::<Vec<_>>(),
        "unlinked": status.unlinked.iter().map(link_json).collect::<Vec<_>>(),
        "alarms": status.alarms,
        "overdue_total": status.overdue_total,
        "overdue": status.overdue.iter().map(|o| serde_json::json!({
            "cable": hex::encode(&o.cable_id),
            "precedence": valise_proto::v1::Precedence::try_from(o.precedence)
                .unwrap_or(valise_proto::v1::Precedence::Routine)
                .cable_name(),
            "waiting_for": o.waiting_for,
            "since_ms": o.since_ms,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Parts {
        let mut links = BTreeMap::new();
        links.insert(
            NextHop::Hub,
            LinkStatus {
                neighbour: Some("hq".into()),
                addr: Some("hq.example:4433".into()),
                connected: false,
                since_ms: 1_000,
                last_error: Some("link down: timed out".into()),
                witnessed: Some((42, 900)),
                cosigned: Some(77),
            },
        );
        let mut onward = BTreeMap::new();
        onward.insert("hub".to_owned(), [1, 0, 0, 8]);
        onward.insert("post:brussels".to_owned(), [0, 2, 0, 0]);
        Parts {
            node: "paris".into(),
            kind: NodeKind::Post,
            running: true,
            links,
            onward,
            delivery: [0, 0, 3, 0],
            audit_entries: 120,
            alarms: Vec::new(),
            overdue: Vec::new(),
        }
    }

    #[test]
    fn each_link_carries_its_own_queue_and_orphan_queues_are_listed() {
        let status = assemble(parts());
        assert_eq!(status.links.len(), 1);
        let hub = &status.links[0];
        assert_eq!(hub.hop, "hub");
        assert_eq!(hub.queued, Some(depth([1, 0, 0, 8])));
        assert_eq!((hub.witnessed_size, hub.cosigned_size), (42, 77));
        // A queue for a peer no longer configured is still shown.
        assert_eq!(status.unlinked.len(), 1);
        assert_eq!(status.unlinked[0].hop, "post:brussels");
        assert_eq!(status.unlinked[0].queued, Some(depth([0, 2, 0, 0])));
    }

    #[test]
    fn the_text_names_the_state_queue_witnessing_and_problem_of_each_link() {
        let text = render(&assemble(parts()), 61_000);
        assert!(text.contains("node paris (post): running, audit log 120 entries"));
        assert!(text.contains(
            "link hub hq at hq.example:4433: DOWN since 1970-01-01 00:00:01 UTC (1m ago)"
        ));
        assert!(text.contains("queued: FLASH 1  IMMEDIATE 0  PRIORITY 0  ROUTINE 8"));
        assert!(text.contains("last witnessed: checkpoint size 42 cosigned by hq"));
        assert!(text.contains("last problem: link down: timed out"));
        assert!(text.contains("link post:brussels: NO LINK"));
        let json = to_json(&assemble(parts()));
        assert_eq!(json["links"][0]["queued"]["ROUTINE"], 8);
        assert_eq!(json["links"][0]["connected"], false);
    }

    #[test]
    fn configured_links_carry_what_each_neighbour_last_witnessed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let peers = vec![PeerSection {
            name: "brussels".into(),
            addr: "brussels.example:4433".into(),
        }];
        // Lisbon was a peer once; it is no longer configured.
        witnessed::keep(dir.path(), "lisbon", "o\n3\nr\n")?;
        std::thread::sleep(std::time::Duration::from_millis(20));
        witnessed::keep(dir.path(), "hq", "o\n12\nr\n")?;
        witnessed::keep(dir.path(), "brussels", "o\n7\nr\n")?;
        let links = configured_links(NodeKind::Post, Some("hq.example:4433"), &peers, dir.path())?;
        let hub = &links[&NextHop::Hub];
        assert_eq!(hub.addr.as_deref(), Some("hq.example:4433"));
        assert_eq!(hub.neighbour.as_deref(), Some("hq"));
        assert_eq!(hub.witnessed.map(|w| w.0), Some(12));
        let brussels = &links[&NextHop::Post("brussels".into())];
        assert_eq!(brussels.addr.as_deref(), Some("brussels.example:4433"));
        assert_eq!(brussels.witnessed.map(|w| w.0), Some(7));
        // On a post, a neighbour that is not a configured peer can only have been a hub: the
        // most recent of them is shown.
        assert_eq!(links.len(), 2);
        // On the hub, every neighbour is a post of its own.
        let on_hub = configured_links(NodeKind::Hub, None, &[], dir.path())?;
        let names: Vec<String> = on_hub.keys().map(NextHop::label).collect();
        assert_eq!(names, ["post:brussels", "post:hq", "post:lisbon"]);
        Ok(())
    }
}
