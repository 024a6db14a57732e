//! Making a link: a post dials its hub and the peers whose names sort after its own, again
//! at once when a link drops; the other end accepts. Both check the other's certificate,
//! role and hello, and pin its node key at first contact.

use std::sync::Arc;

use valise_audit::note::NoteVerifier;
use valise_crypto::identity::IdentityPublicKey;
use valise_proto::framing;
use valise_proto::v1::{ErrorCode, LinkHello, LinkReply, LinkRequest, link_reply, link_request};
use valise_store::{Store, Write};

use super::wire::{ask, link_error, read_one, refusal_text};
use super::{
    CLOSE_REFUSED, DIAL_TIMEOUT, Neighbour, PRIORITY_CONTROL, REQUEST_TIMEOUT, WITNESS_KEYS,
    link_streams, run_link,
};
use crate::config::NodeKind;
use crate::node::{Shared, now_ms};
use crate::outbound::redial_delay;
use crate::routing::NextHop;

/// Starts dialling the hub and the peer posts this node dials; each dialler redials with
/// backoff for as long as the node runs.
pub(in crate::node) fn start_dialling(
    shared: &Arc<Shared>,
    endpoint: &quinn::Endpoint,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(dial) = &shared.links.federation else {
        return Vec::new();
    };
    let mut targets: Vec<(NextHop, String, Option<String>)> = Vec::new();
    if let Some(hub) = &dial.hub {
        targets.push((NextHop::Hub, hub.clone(), None));
    }
    for peer in &dial.peers {
        targets.push((
            NextHop::Post(peer.name.clone()),
            peer.addr.clone(),
            Some(peer.name.clone()),
        ));
    }
    targets
        .into_iter()
        .map(|(hop, addr, expect)| {
            tokio::spawn(keep_dialling(
                Arc::clone(shared),
                endpoint.clone(),
                hop,
                addr,
                expect,
            ))
        })
        .collect()
}

pub(super) fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

pub(super) async fn keep_dialling(
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    hop: NextHop,
    addr: String,
    expect: Option<String>,
) {
    // Dials failed in a row since the link was last up.
    let mut failed: u32 = 0;
    loop {
        match dial(&shared, &endpoint, &hop, &addr, expect.as_deref()).await {
            Ok(neighbour) => {
                run_link(&shared, hop.clone(), neighbour).await;
                failed = 0;
            }
            Err(e) => {
                shared.links.redial_failed(&hop, e);
                failed = failed.saturating_add(1);
            }
        }
        tokio::time::sleep(redial_delay(failed, jitter())).await;
    }
}

pub(super) async fn dial(
    shared: &Arc<Shared>,
    endpoint: &quinn::Endpoint,
    hop: &NextHop,
    addr: &str,
    expect: Option<&str>,
) -> Result<Neighbour, String> {
    let dial = shared
        .links
        .federation
        .as_ref()
        .ok_or("this node does not link to others")?;
    let (host, _) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr} is not host:port"))?;
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("{addr} has no IPv4 address"))?;
    let connecting = endpoint
        .connect_with(dial.client.clone(), target, host)
        .map_err(|e| format!("cannot dial {addr}: {e}"))?;
    let connection = tokio::time::timeout(DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("{addr} did not answer within {DIAL_TIMEOUT:?}"))?
        .map_err(|e| format!("the TLS handshake with {addr} failed: {e}"))?;
    let certified = peer_node(&connection, &shared.links.ministry)
        .ok_or_else(|| format!("{addr} did not present a node certificate"))?;
    // The hub is the node the root certified as the hub, whatever a peer says of itself.
    let role = peer_role(&connection);
    match (hop, role) {
        (NextHop::Hub, Some(NodeKind::Hub)) | (NextHop::Post(_), Some(NodeKind::Post)) => {}
        (NextHop::Hub, _) => {
            return Err(format!(
                "{addr} is node {certified}, whose certificate the root did not issue for the \
                 hub; check [node] hub, or re-issue the hub with `valise-relay ca issue-node \
                 --kind hub`"
            ));
        }
        (_, _) => {
            return Err(format!(
                "{addr} is node {certified}, whose certificate the root did not issue for a \
                 post; check [[peers]]"
            ));
        }
    }
    let hello = LinkRequest {
        request: Some(link_request::Request::Hello(own_hello(shared))),
    };
    let reply = ask(&connection, hello, PRIORITY_CONTROL).await?;
    let Some(link_reply::Reply::Hello(theirs)) = reply.reply else {
        return Err(refusal_text(reply, "a hello"));
    };
    let expected = match (hop, expect) {
        (NextHop::Hub, _) if !theirs.hub => Err(format!(
            "{addr} is node {}, a post, not the hub; check [node] hub",
            theirs.node
        )),
        (NextHop::Post(_), Some(name)) if theirs.node != name => Err(format!(
            "{addr} is node {}, not the peer {name}; check [[peers]]",
            theirs.node
        )),
        _ => Ok(()),
    };
    expected?;
    let neighbour = introduce(shared, connection, &certified, &theirs)?;
    Ok(neighbour)
}

/// Serves a link another node dialled.
pub(in crate::node) async fn accept(connection: quinn::Connection, shared: Arc<Shared>) {
    // A device's connection may open few streams; a neighbour's forwards need many.
    let window = shared.links.federation.as_ref().map_or(1, |d| d.window);
    connection.set_max_concurrent_bi_streams(link_streams(window));
    let Some(certified) = peer_node(&connection, &shared.links.ministry) else {
        return refuse(&connection, "not a node certificate of this ministry");
    };
    // Only posts dial: a node the root did not certify as a post is not taken for one.
    if peer_role(&connection) != Some(NodeKind::Post) {
        return refuse(
            &connection,
            &format!("node {certified} is not certified by the root as a post"),
        );
    }
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(REQUEST_TIMEOUT, connection.accept_bi()).await
    else {
        return;
    };
    let Ok(Some(LinkRequest {
        request: Some(link_request::Request::Hello(theirs)),
    })) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_one::<LinkRequest>(&mut recv, 64 * 1024),
    )
    .await
    else {
        return refuse(&connection, "a link starts with a hello");
    };
    // The hub takes any post; a post only the peers configured. Nobody dials a hub but posts.
    let allowed = !theirs.hub
        && match shared.links.routes.kind {
            NodeKind::Hub => true,
            NodeKind::Post => shared.links.routes.peers.contains(&theirs.node),
        };
    let introduced = if allowed {
        introduce(&shared, connection.clone(), &certified, &theirs)
    } else {
        Err(format!(
            "node {} is not a post this node links to; configure it as a peer",
            theirs.node
        ))
    };
    let (reply, neighbour) = match introduced {
        Ok(n) => (
            LinkReply {
                reply: Some(link_reply::Reply::Hello(own_hello(&shared))),
            },
            Some(n),
        ),
        Err(why) => (link_error(ErrorCode::Malformed, &why), None),
    };
    let sent = send.write_all(&framing::encode(&reply)).await.is_ok();
    let _ = send.finish();
    match neighbour {
        Some(n) if sent => run_link(&shared, NextHop::Post(theirs.node.clone()), n).await,
        Some(_) => {}
        None => refuse(&connection, &refusal_text(reply, "a hello")),
    }
}

pub(super) fn refuse(connection: &quinn::Connection, why: &str) {
    tracing::warn!(peer = %connection.remote_address(), reason = %why, "link refused");
    connection.close(CLOSE_REFUSED.into(), why.as_bytes());
}

pub(super) fn own_hello(shared: &Shared) -> LinkHello {
    LinkHello {
        protocol_version: valise_proto::PROTOCOL_VERSION,
        node: shared.name.clone(),
        hub: shared.links.routes.kind == NodeKind::Hub,
        node_key: shared.node_key.public().as_bytes().to_vec(),
        node_time_ms: now_ms(),
    }
}

/// Checks a neighbour's hello against its certificate and the key pinned for it (pinning it
/// on first contact).
pub(super) fn introduce(
    shared: &Shared,
    connection: quinn::Connection,
    certified: &str,
    theirs: &LinkHello,
) -> Result<Neighbour, String> {
    if theirs.node != certified {
        return Err(format!(
            "the peer says it is node {}, but its certificate names {certified}",
            theirs.node
        ));
    }
    if theirs.protocol_version != valise_proto::PROTOCOL_VERSION {
        return Err(format!(
            "node {} speaks protocol {}, this node {}; upgrade the older one",
            theirs.node,
            theirs.protocol_version,
            valise_proto::PROTOCOL_VERSION
        ));
    }
    let key = IdentityPublicKey::from_slice(&theirs.node_key)
        .map_err(|_| format!("node {} sent a malformed node key", theirs.node))?;
    if let Some(state) = &shared.links.state {
        let pin = [&b"k"[..], theirs.node.as_bytes()].concat();
        match state.get(&pin).map_err(|e| e.to_string())? {
            Some(pinned) if pinned != key.as_bytes() => {
                return Err(format!(
                    "node {} presented a node key other than the one pinned at first contact; \
                     if that node was re-issued, remove its pin with ministry IT (see \
                     docs/operations.md), otherwise treat this as an impersonation attempt",
                    theirs.node
                ));
            }
            Some(_) => {}
            None => {
                state
                    .apply(vec![Write::Put(pin, key.as_bytes().to_vec())])
                    .and_then(|()| state.sync())
                    .map_err(|e| e.to_string())?;
                record_witness_key(shared, &theirs.node, key);
            }
        }
    }
    Ok(Neighbour {
        name: theirs.node.clone(),
        key,
        connection,
    })
}

/// Adds a newly pinned neighbour's witness key to the node's `witness-keys` file, so that
/// `audit verify` checks the cosignatures it made without being told its key.
pub(super) fn record_witness_key(shared: &Shared, node: &str, key: IdentityPublicKey) {
    let (Some(path), Ok(verifier)) = (
        shared
            .links
            .state_dir
            .as_ref()
            .map(|d| d.join(WITNESS_KEYS)),
        NoteVerifier::cosigner(&shared.links.witness_name(node), key),
    ) else {
        return;
    };
    let line = format!("{}\n", verifier.to_vkey());
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = appended {
        tracing::warn!(file = %path.display(), error = %e, "cannot record a witness key");
    }
}

/// The role the root certified the peer for, from its certificate.
pub(super) fn peer_role(connection: &quinn::Connection) -> Option<NodeKind> {
    let certs = connection.peer_identity().and_then(|i| {
        i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .ok()
    })?;
    crate::pki::certified_role(certs.first()?)
}

/// The node named by a peer's certificate: a DNS name `<node>.<ministry>` with a single label
/// before the ministry. Device certificates cannot carry such a name: their post CA is
/// constrained to `devices.<post>.<ministry>`.
pub(in crate::node) fn peer_node(connection: &quinn::Connection, ministry: &str) -> Option<String> {
    let suffix = format!(".{ministry}");
    crate::node::certificate_names(connection)
        .iter()
        .find_map(|dns| {
            let label = dns.strip_suffix(&suffix)?;
            crate::config::is_name(label).then(|| label.to_owned())
        })
}
