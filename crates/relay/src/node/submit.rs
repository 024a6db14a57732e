//! A device's submission: bounded by the overload cap, then the one custody path
//! ([`super::intake`]), answered with a custody receipt or why not.

use std::sync::Arc;
use std::time::Instant;

use valise_crypto::identity::DeviceId;
use valise_proto::v1::{ErrorCode, ErrorFrame, NodeFrame, Submit, node_frame};

use super::{Shared, intake};
use crate::admission::{Offer, Reply, Sender};
use crate::reason::Reason;

pub(super) async fn submit_cable(
    shared: &Arc<Shared>,
    device: &DeviceId,
    submit: Submit,
) -> NodeFrame {
    let arrived = Instant::now();
    // Bounded work: past the cap the sender keeps its cable and retries, memory stays flat.
    let Ok(_permit) = Arc::clone(&shared.submission_permits).try_acquire_owned() else {
        shared.metrics.refused(&Reason::Busy);
        return NodeFrame {
            frame: Some(node_frame::Frame::Error(ErrorFrame {
                code: ErrorCode::Busy as i32,
                message: "the node is busy; keep the cable and retry after the delay given".into(),
                retry_after_ms: 500,
            })),
        };
    };
    let offer = Offer {
        sender: Sender::Device(device),
        envelope: &submit.envelope,
        attachments: &submit.attachments,
    };
    let taken = intake::take(shared, offer).await;
    let frame = match taken {
        intake::Taken::Reply(Reply::Receipt(receipt)) => {
            shared.metrics.custody(arrived.elapsed());
            node_frame::Frame::CustodyReceipt(receipt)
        }
        intake::Taken::Reply(Reply::Error(error)) => node_frame::Frame::Error(error),
        // A device's cable names only attachments it uploaded: never asked for more.
        intake::Taken::Wanted(_) => node_frame::Frame::Error(ErrorFrame {
            code: ErrorCode::Internal as i32,
            message: "the node failed while taking the cable; it was not accepted: keep it and \
                      retry later"
                .into(),
            retry_after_ms: 1_000,
        }),
    };
    NodeFrame { frame: Some(frame) }
}
