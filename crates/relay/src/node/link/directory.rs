//! Directory replication over a link: each end long-polls the other's updates and applies
//! those it does not hold yet; the cursor into the neighbour's history is kept durably.

use std::sync::Arc;
use std::time::Duration;

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{
    DirectorySync, ErrorCode, LinkReply, LinkRequest, link_reply, link_request, node_frame,
};
use valise_store::{Store, Write};

use super::wire::{ask, link_error, refusal_text};
use super::{DIRECTORY_RETRY, DIRECTORY_WAIT, Neighbour, PRIORITY_CONTROL};
use crate::node::Shared;
use crate::routing::NextHop;

/// Answers a directory pull, holding it up to the wait asked for while nothing is newer.
pub(super) async fn directory_page(shared: &Arc<Shared>, sync: DirectorySync) -> LinkReply {
    let wait = Duration::from_millis(sync.wait_ms).min(DIRECTORY_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Made before the version is read, so a write in between still wakes it.
        let changed = shared.directory.changed();
        let version = shared.directory.read().view().version();
        if version != sync.after_version
            || tokio::time::timeout_at(deadline, changed).await.is_err()
        {
            break;
        }
    }
    match crate::node::directory_page(shared, sync.after_version).frame {
        Some(node_frame::Frame::DirectoryPage(page)) => LinkReply {
            reply: Some(link_reply::Reply::DirectoryPage(page)),
        },
        Some(node_frame::Frame::Error(e)) => LinkReply {
            reply: Some(link_reply::Reply::Error(e)),
        },
        _ => link_error(ErrorCode::Internal, "the directory could not be read"),
    }
}

/// Pulls the neighbour's directory updates for as long as the link is up, applying each one
/// this node does not hold yet; the cursor into the neighbour's history is kept durably.
pub(super) async fn pull_directory(shared: Arc<Shared>, hop: NextHop, neighbour: Neighbour) {
    let cursor_key = [&b"c"[..], neighbour.name.as_bytes()].concat();
    let read_cursor = || -> u64 {
        shared
            .links
            .state
            .as_ref()
            .and_then(|s| s.get(&cursor_key).ok().flatten())
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    let mut after = read_cursor();
    loop {
        let request = LinkRequest {
            request: Some(link_request::Request::DirectorySync(DirectorySync {
                after_version: after,
                wait_ms: u64::try_from(DIRECTORY_WAIT.as_millis()).unwrap_or(u64::MAX),
            })),
        };
        let reply = match ask(&neighbour.connection, request, PRIORITY_CONTROL).await {
            Ok(reply) => reply,
            Err(_) if neighbour.connection.close_reason().is_some() => return,
            Err(e) => {
                shared.links.failed(&hop, format!("directory pull: {e}"));
                tokio::time::sleep(DIRECTORY_RETRY).await;
                continue;
            }
        };
        let page = match reply.reply {
            Some(link_reply::Reply::DirectoryPage(page)) => page,
            Some(link_reply::Reply::Error(e)) if after > 0 => {
                // The neighbour's history is shorter than the cursor (it was rebuilt): start
                // over; updates already held are recognised and skipped.
                shared.links.failed(
                    &hop,
                    format!(
                        "directory pull from {}: {}; starting over",
                        neighbour.name, e.message
                    ),
                );
                after = 0;
                continue;
            }
            other => {
                shared.links.failed(
                    &hop,
                    refusal_text(LinkReply { reply: other }, "a directory page"),
                );
                tokio::time::sleep(DIRECTORY_RETRY).await;
                continue;
            }
        };
        // Each applied update is made durable (an fsync) under the directory's write lock: off
        // the async workers.
        let applied = {
            let shared = Arc::clone(&shared);
            let from = neighbour.name.clone();
            tokio::task::spawn_blocking(move || apply_page(&shared, &from, after, page.updates))
                .await
                .unwrap_or_else(|_| Err("applying a directory page failed".to_owned()))
        };
        match applied {
            Ok(reached) => {
                if reached != after {
                    after = reached;
                    if let Some(state) = &shared.links.state {
                        let _ = state.apply(vec![Write::Put(
                            cursor_key.clone(),
                            after.to_be_bytes().to_vec(),
                        )]);
                    }
                }
            }
            Err(e) => {
                shared.links.failed(&hop, e);
                tokio::time::sleep(DIRECTORY_RETRY).await;
            }
        }
    }
}

/// Applies one page of a neighbour's history from version `after`; returns the version
/// reached. An update this node refuses stops the page: it is retried, never skipped.
pub(super) fn apply_page(
    shared: &Shared,
    from: &str,
    mut after: u64,
    updates: Vec<valise_proto::v1::DirectoryUpdate>,
) -> Result<u64, String> {
    let mut directory = shared.directory.write();
    for update in updates {
        if update.version != after + 1 {
            return Err(format!(
                "node {from} sent directory update {} after {after}; pulling again",
                update.version
            ));
        }
        let Some(change) = update.update else {
            return Err(format!("node {from} sent an empty directory update"));
        };
        let revoked = match &change {
            valise_proto::v1::directory_update::Update::Revocation(r) => {
                DeviceId::from_slice(&r.device_id).ok()
            }
            _ => None,
        };
        match directory.apply_replicated(change) {
            Ok(crate::directory::Replicated::Applied(_)) => {
                if let Some(device) = revoked {
                    crate::node::close_connections(shared, &[device]);
                }
            }
            Ok(crate::directory::Replicated::AlreadyHeld) => {}
            Err(e) => {
                return Err(format!(
                    "directory update {} from node {from} was refused: {e}",
                    update.version
                ));
            }
        }
        after = update.version;
    }
    Ok(after)
}
