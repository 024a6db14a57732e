//! Where a cable goes next (DESIGN §3): each recipient device belongs to a post; a device of
//! this node's own post is delivered here, and any other is forwarded to the next hop, which is
//! a configured peer post if it is the destination, otherwise the hub. The hub forwards to the
//! destination post itself. No I/O: the network shell asks, then queues per next hop.

use std::collections::BTreeMap;

use valise_crypto::identity::DeviceId;

/// A node's role in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Headquarters: every post connects to it.
    Hub,
    /// An embassy, consulate or mission.
    Post,
}

/// Where a recipient device's copy goes from this node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NextHop {
    /// The device is served here: queue it for delivery.
    Local,
    /// Forward to this post's hub.
    Hub,
    /// Forward to this post's node: a configured peer post, or, from the hub, the destination.
    Post(String),
}

impl NextHop {
    /// How the hop is named in the store and in status: `hub`, or `post:<name>`.
    pub fn label(&self) -> String {
        match self {
            NextHop::Local => "local".into(),
            NextHop::Hub => "hub".into(),
            NextHop::Post(post) => format!("post:{post}"),
        }
    }

    /// Reads [`Self::label`] back.
    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "local" => Some(NextHop::Local),
            "hub" => Some(NextHop::Hub),
            _ => label
                .strip_prefix("post:")
                .filter(|p| !p.is_empty())
                .map(|p| NextHop::Post(p.to_owned())),
        }
    }
}

/// Why a recipient cannot be routed. The cable is refused for it before custody is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A post node with no hub configured, and no peer link to the device's post.
    #[error(
        "device {device} is at post {post}, which this node cannot reach: it has no hub and no \
         peer link to {post}; set [node] hub in node.toml"
    )]
    NoRoute {
        /// The device.
        device: DeviceId,
        /// Its post.
        post: String,
    },
}

/// A cable's recipients by where they go from this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    /// Devices served here.
    pub local: Vec<DeviceId>,
    /// Devices to forward, per next hop (never [`NextHop::Local`]).
    pub onward: Vec<(NextHop, Vec<DeviceId>)>,
}

/// This node's place in the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    /// This node's name; for a post, also its post.
    pub node: String,
    /// Hub or post.
    pub kind: NodeKind,
    /// Whether this post has a hub (`[node] hub`).
    pub has_hub: bool,
    /// Posts this node links to directly, besides the hub.
    pub peers: Vec<String>,
}

impl Routes {
    /// The next hop towards a device at `post`.
    pub fn next_hop(&self, device: DeviceId, post: &str) -> Result<NextHop, RouteError> {
        if self.kind == NodeKind::Post && post == self.node {
            return Ok(NextHop::Local);
        }
        if self.kind == NodeKind::Hub || self.peers.iter().any(|p| p == post) {
            return Ok(NextHop::Post(post.to_owned()));
        }
        if self.has_hub {
            return Ok(NextHop::Hub);
        }
        Err(RouteError::NoRoute {
            device,
            post: post.to_owned(),
        })
    }

    /// Splits recipient devices (each with its post) into those served here and those to
    /// forward, per next hop. One unroutable device refuses the whole cable.
    pub fn route(&self, recipients: &[(DeviceId, String)]) -> Result<Routed, RouteError> {
        let mut hops = self.split(recipients)?;
        Ok(Routed {
            local: hops.remove(&NextHop::Local).unwrap_or_default(),
            onward: hops.into_iter().collect(),
        })
    }

    /// Groups recipient devices (each with its post) by next hop, each hop's devices in the
    /// order given. One unroutable device refuses the whole cable: nothing is half-sent.
    pub fn split(
        &self,
        recipients: &[(DeviceId, String)],
    ) -> Result<BTreeMap<NextHop, Vec<DeviceId>>, RouteError> {
        let mut hops: BTreeMap<NextHop, Vec<DeviceId>> = BTreeMap::new();
        for (device, post) in recipients {
            hops.entry(self.next_hop(*device, post)?)
                .or_default()
                .push(*device);
        }
        Ok(hops)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn device(n: u8) -> DeviceId {
        DeviceId::from_slice(&[n; 16]).unwrap()
    }

    fn paris() -> Routes {
        Routes {
            node: "paris".into(),
            kind: NodeKind::Post,
            has_hub: true,
            peers: vec!["brussels".into()],
        }
    }

    #[test]
    fn a_post_delivers_its_own_devices_and_sends_the_rest_to_the_hub_or_a_peer() {
        let routes = paris();
        let split = routes
            .split(&[
                (device(1), "paris".into()),
                (device(2), "nairobi".into()),
                (device(3), "brussels".into()),
                (device(4), "paris".into()),
                (device(5), "tokyo".into()),
            ])
            .unwrap();
        let routed = routes
            .route(&[(device(1), "paris".into()), (device(2), "nairobi".into())])
            .unwrap();
        assert_eq!(routed.local, vec![device(1)]);
        assert_eq!(routed.onward, vec![(NextHop::Hub, vec![device(2)])]);
        let expected: BTreeMap<NextHop, Vec<DeviceId>> = [
            (NextHop::Local, vec![device(1), device(4)]),
            (NextHop::Hub, vec![device(2), device(5)]),
            (NextHop::Post("brussels".into()), vec![device(3)]),
        ]
        .into_iter()
        .collect();
        assert_eq!(split, expected);
    }

    #[test]
    fn the_hub_forwards_to_each_destination_post() {
        let hub = Routes {
            node: "hq".into(),
            kind: NodeKind::Hub,
            has_hub: false,
            peers: vec![],
        };
        assert_eq!(
            hub.next_hop(device(1), "nairobi").unwrap(),
            NextHop::Post("nairobi".into())
        );
        assert_eq!(
            hub.split(&[(device(1), "paris".into()), (device(2), "nairobi".into())])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_post_without_a_hub_refuses_what_it_cannot_reach_and_sends_nothing() {
        let isolated = Routes {
            has_hub: false,
            ..paris()
        };
        assert_eq!(
            isolated.next_hop(device(1), "paris").unwrap(),
            NextHop::Local
        );
        let err = isolated
            .split(&[(device(1), "paris".into()), (device(2), "nairobi".into())])
            .unwrap_err();
        assert_eq!(
            err,
            RouteError::NoRoute {
                device: device(2),
                post: "nairobi".into()
            }
        );
        assert!(err.to_string().contains("[node] hub"), "{err}");
    }

    #[test]
    fn hop_labels_read_back_and_nonsense_is_refused() {
        for hop in [
            NextHop::Local,
            NextHop::Hub,
            NextHop::Post("un-newyork".into()),
        ] {
            assert_eq!(NextHop::from_label(&hop.label()), Some(hop));
        }
        assert_eq!(NextHop::from_label("post:"), None);
        assert_eq!(NextHop::from_label("nairobi"), None);
    }
}
