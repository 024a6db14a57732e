//! A hub and posts linked to it, and the waits for links, directory replication and
//! witnessing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use valise_audit::note::NoteVerifier;
use valise_proto::v1::Classification;
use valise_relay::limits::Limits;
use valise_relay::node::LinkStatus;
use valise_relay::routing::NextHop;

use super::LocalError;
use super::node::{LocalDevice, LocalNode, Role, start_node};
use super::root::Root;

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);

/// Done if nothing is `missing`, else what is.
fn done_unless(missing: Vec<String>) -> Result<(), String> {
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// A running federated network on loopback: a hub and posts that dial it, every node certified
/// by one throwaway ministry root. Cables between posts go through the hub, with custody at
/// every hop; directory updates replicate over the links and each node witnesses its
/// neighbours' audit logs.
pub struct LocalFederation {
    /// The ministry, e.g. `mfa.example`.
    pub ministry: String,
    /// The pinned ministry root (PEM).
    pub ca_pem: String,
    /// The root's fingerprint, as handed to diplomats with their codes.
    pub fingerprint: String,
    /// The hub (it enrols nobody).
    pub hub: LocalNode,
    /// The posts, in the order given, each its own enrolment desk.
    pub posts: Vec<LocalNode>,
}

/// Starts a hub named `hub` and the posts `posts` of `ministry`, each in its own folder of
/// `dir` (which must be empty), with a fresh root. Returns once every node listens; the posts
/// dial the hub in the background ([`LocalFederation::wait_linked`]).
pub fn start_network(
    dir: &Path,
    ministry: &str,
    hub: &str,
    posts: &[&str],
    limits: Limits,
) -> Result<LocalFederation, LocalError> {
    let mut names = BTreeSet::from([hub]);
    if let Some(twice) = posts.iter().find(|p| !names.insert(p)) {
        return Err(LocalError(format!(
            "cannot build the local network: node name {twice} is given twice"
        )));
    }
    let root = Root::generate(ministry)?;
    let hub = start_node(&root, &dir.join(hub), hub, Role::Hub, limits)?;
    let posts = posts
        .iter()
        .map(|post| {
            let role = Role::Post { hub: &hub.addr };
            start_node(&root, &dir.join(post), post, role, limits)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LocalFederation {
        ministry: ministry.into(),
        ca_pem: root.ca.cert_pem().to_owned(),
        fingerprint: root.ca.fingerprint(),
        hub,
        posts,
    })
}

impl LocalFederation {
    /// Every node: the hub, then the posts.
    pub fn nodes(&self) -> impl Iterator<Item = &LocalNode> {
        std::iter::once(&self.hub).chain(&self.posts)
    }

    /// Post `name`.
    pub fn post(&self, name: &str) -> Result<&LocalNode, LocalError> {
        self.posts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| LocalError(format!("the local network has no post {name}")))
    }

    /// Enrols a device for `user` at post `post` directly ([`LocalNode::enrol_device`]). Other
    /// nodes learn of it by replication: see [`LocalFederation::wait_replicated`].
    pub fn enrol(
        &self,
        post: &str,
        user: &str,
        clearance: Classification,
    ) -> Result<LocalDevice, LocalError> {
        self.post(post)?.enrol_device(user, clearance)
    }

    /// The keys that cosign `node`'s audit checkpoints: its neighbours' witness keys (for the
    /// hub every post, for a post the hub).
    pub fn witnesses_of(&self, node: &str) -> Result<Vec<NoteVerifier>, LocalError> {
        if node == self.hub.name {
            self.posts.iter().map(LocalNode::witness_verifier).collect()
        } else {
            self.post(node)?;
            Ok(vec![self.hub.witness_verifier()?])
        }
    }

    /// Each node's links as they should be: the hub's to every post, each post's to the hub.
    fn expected_links(&self) -> Vec<(&LocalNode, String, Option<LinkStatus>)> {
        let mut links = Vec::new();
        let hub = self.hub.node.links();
        for post in &self.posts {
            let hop = NextHop::Post(post.name.clone());
            links.push((&self.hub, post.name.clone(), hub.get(&hop).cloned()));
            let status = post.node.links().get(&NextHop::Hub).cloned();
            links.push((post, self.hub.name.clone(), status));
        }
        links
    }

    /// Waits until every post's link to the hub is up, at both ends.
    pub async fn wait_linked(&self, timeout: Duration) -> Result<(), LocalError> {
        self.wait(timeout, "every post to link to the hub", || {
            let down: Vec<String> = self
                .expected_links()
                .into_iter()
                .filter(|(_, _, status)| !status.as_ref().is_some_and(|s| s.connected))
                .map(|(node, other, _)| format!("{} to {other}", node.name))
                .collect();
            Ok(done_unless(down))
        })
        .await
    }

    /// Waits until every node holds every directory update any node holds (enrolments,
    /// revocations, new receive keys), so that each node can route to every device.
    pub async fn wait_replicated(&self, timeout: Duration) -> Result<(), LocalError> {
        self.wait(timeout, "the directory to reach every node", || {
            let held = self
                .nodes()
                .map(|n| (n.name.as_str(), n.directory_digests()))
                .collect::<Vec<_>>();
            let all: BTreeSet<&[u8; 32]> = held.iter().flat_map(|(_, d)| d).collect();
            let behind: Vec<String> = held
                .iter()
                .filter(|(_, d)| d.len() < all.len())
                .map(|(name, d)| format!("{name} holds {} of {} updates", d.len(), all.len()))
                .collect();
            Ok(done_unless(behind))
        })
        .await
    }

    /// Waits until every link has carried a cosignature both ways: each node has had one of its
    /// audit checkpoints cosigned by each neighbour, and has cosigned one of theirs.
    pub async fn wait_witnessed(&self, timeout: Duration) -> Result<(), LocalError> {
        self.wait(timeout, "every node's audit log to be witnessed", || {
            let mut missing = Vec::new();
            for (node, other, status) in self.expected_links() {
                let status = status.unwrap_or_default();
                if status.witnessed.is_none() {
                    missing.push(format!("{} not yet witnessed by {other}", node.name));
                }
                if status.cosigned.is_none() {
                    missing.push(format!("{} has not yet cosigned {other}", node.name));
                }
            }
            Ok(done_unless(missing))
        })
        .await
    }

    /// Polls `done` until it says so, or fails after `timeout` with what it last reported.
    async fn wait(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn() -> Result<Result<(), String>, LocalError>,
    ) -> Result<(), LocalError> {
        let start = Instant::now();
        loop {
            let why = match done()? {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if start.elapsed() >= timeout {
                return Err(LocalError(format!(
                    "waited {timeout:?} for {what}, in vain ({why})"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the hub and starts it again on its own files, keys and address, as a hub process
    /// restarted in place: returns once it listens again. The posts find out by themselves.
    pub async fn restart_hub(self) -> Result<LocalFederation, LocalError> {
        let LocalFederation {
            ministry,
            ca_pem,
            fingerprint,
            hub,
            posts,
        } = self;
        let hub = hub.restart().await?;
        Ok(LocalFederation {
            ministry,
            ca_pem,
            fingerprint,
            hub,
            posts,
        })
    }

    /// Stops every node, posts first, and makes everything durable.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        for node in self.posts.into_iter().chain([self.hub]) {
            let name = node.name;
            node.node
                .shutdown()
                .await
                .map_err(|e| LocalError(format!("node {name} did not stop cleanly: {e}")))?;
        }
        Ok(())
    }
}
