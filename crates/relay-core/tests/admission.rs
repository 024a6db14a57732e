//! The one admission path, as a sender observes it: what is answered, what the audit log
//! records, what is stored and whom the node wakes, for a device's submission and for a
//! neighbour's forward of the same cable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::cell::Cell;
use std::sync::LazyLock;

use common::*;
use prost::Message as _;
use valise_crypto::identity::IdentityKeyPair;
use valise_proto::v1::{ActorKind, AuditEventKind, ErrorCode, Outcome, Precedence};
use valise_relay_core::admission::{
    Admission, CustodyPlan, Here, Holdings, Offer, Refused, Reply, Sender, Settled, Stored, admit,
};
use valise_relay_core::attachment::AttachmentId;
use valise_relay_core::limits::Limits;
use valise_relay_core::routing::{NextHop, NodeKind, Routes};

const NOW: u64 = 1_800_000_000_000;

/// Alice's first device, the sender.
static ALICE: LazyLock<valise_crypto::identity::DeviceId> = LazyLock::new(|| id(1));

fn paris_routes(has_hub: bool) -> Routes {
    Routes {
        node: "paris".into(),
        kind: NodeKind::Post,
        has_hub,
        peers: vec![],
    }
}

/// What the node holds: attachments by id, cables already taken; and whether it was asked.
#[derive(Default)]
struct Held {
    attachments: Vec<AttachmentId>,
    seen: bool,
    broken: bool,
    asked_missing: Cell<bool>,
}

impl Holdings for Held {
    fn missing(&self, ids: &[AttachmentId], _now_ms: u64) -> Result<Vec<AttachmentId>, String> {
        self.asked_missing.set(true);
        if self.broken {
            return Err("disk error".into());
        }
        Ok(ids
            .iter()
            .filter(|id| !self.attachments.contains(id))
            .copied()
            .collect())
    }

    fn seen(&self, _cable: &[u8; 16]) -> Result<bool, String> {
        Ok(self.seen)
    }
}

/// Alice's signed cable to bob at Paris and dario at Rome, for bob's and dario's devices.
fn cable_to_bob_and_dario() -> Vec<u8> {
    cable(&["bob@paris", "dario@rome"], &[id(3), id(6)]).encode_to_vec()
}

fn from_alice<'a>(envelope: &'a [u8], attachments: &'a [Vec<u8>]) -> Offer<'a> {
    Offer {
        sender: Sender::Device(&ALICE),
        envelope,
        attachments,
    }
}

fn from_hub<'a>(
    envelope: &'a [u8],
    devices: &'a [Vec<u8>],
    attachments: &'a [Vec<u8>],
) -> Offer<'a> {
    Offer {
        sender: Sender::Neighbour {
            name: "hub",
            devices,
            accepted_at_ms: 42,
        },
        envelope,
        attachments,
    }
}

fn run<'a>(offer: Offer<'a>, directory: &Paris, routes: &Routes, held: &Held) -> Admission<'a> {
    let limits = Limits::default();
    let here = Here {
        name: "paris",
        limits: &limits,
        routes,
        directory,
    };
    admit(&here, offer, held, NOW)
}

fn planned(admission: Admission<'_>) -> CustodyPlan<'_> {
    match admission {
        Admission::Custody(plan) => plan,
        other => panic!("expected custody, got {other:?}"),
    }
}

fn refused(admission: Admission<'_>) -> Refused {
    match admission {
        Admission::Refused(refused) => refused,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn node_key() -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&[77; 32]).unwrap()
}

fn settle(plan: CustodyPlan<'_>, stored: Stored) -> Settled {
    plan.settle(stored, &node_key(), "paris")
}

#[test]
fn a_devices_cable_is_planned_for_every_hop_and_its_receipt_signed_once_durable() {
    let envelope = cable_to_bob_and_dario();
    let directory = Paris::with_rome();
    let plan = planned(run(
        from_alice(&envelope, &[]),
        &directory,
        &paris_routes(true),
        &Held::default(),
    ));
    assert_eq!(plan.cable, [9; 16]);
    assert_eq!(plan.precedence, Precedence::Immediate);
    assert_eq!(plan.routed.local, vec![id(3)], "bob is served here");
    assert_eq!(
        plan.routed.onward,
        vec![(NextHop::Hub, vec![id(6)])],
        "dario via the hub"
    );
    assert_eq!(plan.accepted_at_ms, NOW, "custody starts here");
    let event = plan.record.clone().event("paris", NOW);
    assert_eq!(event.kind, AuditEventKind::CustodyTaken as i32);
    assert_eq!(event.outcome, Outcome::Success as i32);
    assert_eq!(event.actor_kind, ActorKind::Device as i32);
    assert_eq!(event.actor_id, id(1).to_string());
    assert_eq!(event.objects[0].sha256, valise_crypto::sha256(&envelope));

    let precedence = plan.precedence;
    let settled = settle(plan, Stored::New { seq: 41 });
    let Reply::Receipt(receipt) = &settled.reply else {
        panic!("{:?}", settled.reply)
    };
    valise_crypto::custody::verify(receipt, "paris", node_key().public(), &[9; 16], &envelope)
        .unwrap();
    assert_eq!(receipt.accepted_at_ms, NOW);
    assert!(settled.records.is_empty() && settled.refused.is_none());
    assert_eq!(settled.wake_devices, vec![id(3)]);
    assert_eq!(
        settled.queued,
        Some(valise_relay_core::queue::QueueKey::new(precedence, 41)),
        "bob's stream is told where the cable sits in his queue"
    );
    assert_eq!(settled.wake_hops, vec![NextHop::Hub]);
}

#[test]
fn a_tampered_byte_is_refused_and_recorded_against_its_sender() {
    let mut envelope = cable_to_bob_and_dario();
    let last = envelope.len() - 1;
    envelope[last] ^= 1;
    let directory = Paris::with_rome();
    let from_device = refused(run(
        from_alice(&envelope, &[]),
        &directory,
        &paris_routes(true),
        &Held::default(),
    ));
    assert_eq!(from_device.error.code, ErrorCode::BadSignature as i32);
    assert_eq!(from_device.reason.as_str(), "bad_signature");
    let event = from_device.record.event("paris", NOW);
    assert_eq!(event.kind, AuditEventKind::CableSubmitted as i32);
    assert_eq!(event.outcome, Outcome::Refused as i32);
    assert_eq!(event.reason, "bad_signature");

    // The same bytes forwarded by the hub: the same refusal, recorded as refused custody.
    let claimed = vec![id(3).as_bytes().to_vec()];
    let from_node = refused(run(
        from_hub(&envelope, &claimed, &[]),
        &directory,
        &paris_routes(true),
        &Held::default(),
    ));
    assert_eq!(from_node.error.code, ErrorCode::BadSignature as i32);
    let event = from_node.record.event("paris", NOW);
    assert_eq!(event.kind, AuditEventKind::CustodyTaken as i32);
    assert_eq!(event.actor_kind, ActorKind::Node as i32);
    assert_eq!(event.actor_id, "hub");
}

#[test]
fn bytes_that_are_no_envelope_are_refused_as_malformed() {
    let directory = Paris::new();
    let refusal = refused(run(
        from_alice(b"\xff\xff\xff not protobuf", &[]),
        &directory,
        &paris_routes(true),
        &Held::default(),
    ));
    assert_eq!(refusal.error.code, ErrorCode::Malformed as i32);
    assert_eq!(refusal.reason.as_str(), "malformed");
    assert!(!refusal.error.message.is_empty());
    let event = refusal.record.event("paris", NOW);
    assert!(event.objects[0].id.is_empty(), "no cable id could be read");
}

#[test]
fn an_unroutable_recipient_refuses_the_whole_cable_before_custody() {
    let envelope = cable_to_bob_and_dario();
    let directory = Paris::with_rome();
    let refusal = refused(run(
        from_alice(&envelope, &[]),
        &directory,
        &paris_routes(false),
        &Held::default(),
    ));
    assert_eq!(refusal.reason.as_str(), "no_route");
    assert!(
        refusal.error.message.contains("rome"),
        "{}",
        refusal.error.message
    );
}

#[test]
fn attachments_a_device_has_not_uploaded_are_refused_but_a_neighbour_is_asked_for_them() {
    let envelope = cable(&["bob@paris"], &[id(3)]).encode_to_vec();
    let directory = Paris::new();
    let held_one = AttachmentId::of(b"held");
    let absent = AttachmentId::of(b"absent");
    let listed = vec![held_one.as_bytes().to_vec(), absent.as_bytes().to_vec()];
    let held = Held {
        attachments: vec![held_one],
        ..Held::default()
    };

    let refusal = refused(run(
        from_alice(&envelope, &listed),
        &directory,
        &paris_routes(true),
        &held,
    ));
    assert_eq!(refusal.error.code, ErrorCode::NotFound as i32);
    assert_eq!(refusal.reason.as_str(), "attachment_missing");
    assert!(refusal.error.message.contains(&absent.to_string()));

    let claimed = vec![id(3).as_bytes().to_vec()];
    match run(
        from_hub(&envelope, &claimed, &listed),
        &directory,
        &paris_routes(true),
        &held,
    ) {
        Admission::Wanted(wanted) => assert_eq!(wanted, vec![absent]),
        other => panic!("expected the attachments to be asked for, got {other:?}"),
    }

    // A cable already taken came with its attachments: answered again without asking.
    let seen = Held {
        seen: true,
        ..Held::default()
    };
    let plan = planned(run(
        from_hub(&envelope, &claimed, &listed),
        &directory,
        &paris_routes(true),
        &seen,
    ));
    assert!(!seen.asked_missing.get(), "nothing learnt of what is held");
    assert_eq!(plan.attachments, vec![held_one, absent]);
    assert_eq!(
        plan.accepted_at_ms, 42,
        "custody time carried from the first hop"
    );

    let broken = Held {
        broken: true,
        ..Held::default()
    };
    let refusal = refused(run(
        from_alice(&envelope, &listed),
        &directory,
        &paris_routes(true),
        &broken,
    ));
    assert_eq!(refusal.error.code, ErrorCode::Internal as i32);
    assert!(refusal.error.message.contains("retry later"));
}

#[test]
fn a_forward_for_a_device_revoked_since_is_taken_and_the_drop_recorded() {
    let envelope = cable(&["bob@paris"], &[id(3), id(5)]).encode_to_vec();
    let directory = Paris::new();
    let claimed = vec![id(3).as_bytes().to_vec(), id(5).as_bytes().to_vec()];
    let plan = planned(run(
        from_hub(&envelope, &claimed, &[]),
        &directory,
        &paris_routes(true),
        &Held::default(),
    ));
    assert_eq!(plan.routed.local, vec![id(3)], "not mallory, revoked");
    let settled = settle(plan, Stored::New { seq: 1 });
    assert!(settled.reply.is_receipt());
    assert_eq!(settled.records.len(), 1);
    let event = settled.records[0].clone().event("paris", NOW);
    assert_eq!(event.reason, "recipient_revoked");
    assert_eq!(event.outcome, Outcome::Refused as i32);
}

#[test]
fn what_the_store_says_decides_the_answer() {
    let envelope = cable(&["bob@paris"], &[id(3)]).encode_to_vec();
    let directory = Paris::new();
    let plan = || {
        planned(run(
            from_alice(&envelope, &[]),
            &directory,
            &paris_routes(true),
            &Held::default(),
        ))
    };
    let error = |settled: &Settled| match &settled.reply {
        Reply::Error(e) => (ErrorCode::try_from(e.code).unwrap(), e.retry_after_ms),
        Reply::Receipt(r) => panic!("no receipt may be signed: {r:?}"),
    };

    // A resend after a lost receipt: custody was taken, the receipt is signed again.
    let again = settle(plan(), Stored::Duplicate);
    assert!(again.reply.is_receipt());
    assert_eq!(again.wake_devices, vec![id(3)]);

    let conflict = settle(plan(), Stored::Conflict);
    assert_eq!(error(&conflict), (ErrorCode::Conflict, 0));
    assert_eq!(
        conflict.records[0].clone().event("paris", NOW).reason,
        "id_conflict"
    );
    assert!(conflict.wake_devices.is_empty());

    let busy = settle(plan(), Stored::InProgress);
    assert_eq!(error(&busy), (ErrorCode::Busy, 200));
    assert!(busy.refused.is_none(), "the other request answers for it");

    let full = settle(plan(), Stored::Unavailable("disk full".into()));
    assert_eq!(error(&full), (ErrorCode::Unavailable, 5_000));
    assert_eq!(
        full.refused.as_ref().map(|r| r.as_str()),
        Some("unavailable")
    );
    let Reply::Error(e) = &full.reply else {
        unreachable!()
    };
    assert!(e.message.contains("disk full") && e.message.contains("keep it and retry"));

    let failed = settle(plan(), Stored::Failed("io".into()));
    assert_eq!(error(&failed), (ErrorCode::Internal, 1_000));
    assert!(failed.wake_hops.is_empty() && failed.wake_devices.is_empty());
}

#[test]
fn a_device_this_directory_lacks_is_refused_to_a_device_but_retried_by_a_neighbour() {
    // Alice's cable names a device this directory does not hold (yet).
    let unknown = IdentityKeyPair::from_seed(&[99; 32]).unwrap().device_id();
    let envelope = cable(&["bob@paris"], &[id(3), unknown]).encode_to_vec();
    let directory = Paris::new();

    // The sender's own post knows its directory: the cable is wrong, and stays refused.
    let refusal = refused(run(
        from_alice(&envelope, &[]),
        &directory,
        &paris_routes(true),
        &Held::default(),
    ));
    assert_eq!(refusal.reason.as_str(), "unknown_recipient");
    assert_eq!(refusal.error.retry_after_ms, 0);

    // A neighbour's directory may be ahead of this one: it offers again in a second.
    let claimed = vec![unknown.as_bytes().to_vec()];
    let refusal = refused(run(
        from_hub(&envelope, &claimed, &[]),
        &directory,
        &paris_routes(true),
        &Held::default(),
    ));
    assert_eq!(refusal.error.code, ErrorCode::DirectoryBehind as i32);
    assert_eq!(refusal.reason.as_str(), "directory_behind");
    assert_eq!(refusal.error.retry_after_ms, 1_000);
}
