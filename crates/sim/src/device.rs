//! A diplomat's device, as the client library behaves towards its post: it keeps each cable
//! until it holds the post's custody receipt, resending it now and then; it subscribes when
//! it connects, stores each delivery once by cable id, and acknowledges every delivery.

use std::collections::BTreeMap;

use valise_crypto::envelope::decode_envelope;
use valise_crypto::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use valise_proto::v1::ErrorCode;
use valise_relay_core::admission::Reply;

use crate::check::Checker;
use crate::net::{Addr, Msg};

/// How long a device waits for an answer before it submits a cable again.
pub const RESUBMIT_MS: u64 = 1_000;

/// A cable the device sent.
#[derive(Debug)]
pub struct Outgoing {
    /// The envelope.
    pub envelope: Vec<u8>,
    /// The devices it is sealed for.
    pub recipients: Vec<DeviceId>,
    /// When it was last submitted.
    pub sent_at: Option<u64>,
    /// Whether the post's receipt is held.
    pub receipted: bool,
}

/// One device.
#[derive(Debug)]
pub struct Device {
    /// Its index.
    pub index: usize,
    /// Its key.
    pub key: IdentityKeyPair,
    /// Its user's address.
    pub address: String,
    /// Its post's node index and name, and the key that signs the post's receipts.
    pub post: (usize, String, IdentityPublicKey),
    /// Whether it has a connection to its post.
    pub connected: bool,
    subscribed: bool,
    /// Cables stored, by id, with how many times each was delivered.
    pub inbox: BTreeMap<[u8; 16], u32>,
    /// Cables sent, by id.
    pub outbox: BTreeMap<[u8; 16], Outgoing>,
}

impl Device {
    /// A device of `address` at `post`, not yet connected.
    pub fn new(
        index: usize,
        key: IdentityKeyPair,
        address: String,
        post: (usize, String, IdentityPublicKey),
    ) -> Self {
        Device {
            index,
            key,
            address,
            post,
            connected: false,
            subscribed: false,
            inbox: BTreeMap::new(),
            outbox: BTreeMap::new(),
        }
    }

    /// Its device id.
    pub fn id(&self) -> DeviceId {
        self.key.device_id()
    }

    /// The connection to the post dropped.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.subscribed = false;
    }

    /// What the device sends at `now`.
    pub fn tick(&mut self, now: u64, out: &mut Vec<(Addr, Msg)>) {
        if !self.connected {
            return;
        }
        let post = Addr::Node(self.post.0);
        if !self.subscribed {
            self.subscribed = true;
            out.push((post, Msg::Subscribe));
        }
        for outgoing in self.outbox.values_mut() {
            let due = outgoing
                .sent_at
                .is_none_or(|at| now.saturating_sub(at) >= RESUBMIT_MS);
            if !outgoing.receipted && due {
                outgoing.sent_at = Some(now);
                out.push((
                    post,
                    Msg::Submit {
                        envelope: outgoing.envelope.clone(),
                    },
                ));
            }
        }
    }

    /// Takes a message from the post.
    pub fn handle(&mut self, msg: Msg, checker: &mut Checker, out: &mut Vec<(Addr, Msg)>) {
        match msg {
            Msg::Submitted { cable, reply } => {
                let Some(outgoing) = self.outbox.get_mut(&cable) else {
                    return;
                };
                match reply {
                    Reply::Receipt(receipt) => {
                        match valise_crypto::custody::verify(
                            &receipt,
                            &self.post.1,
                            &self.post.2,
                            &cable,
                            &outgoing.envelope,
                        ) {
                            Ok(()) => outgoing.receipted = true,
                            Err(e) => checker.violation(format!(
                                "device {} got a receipt that does not verify: {e}",
                                self.index
                            )),
                        }
                    }
                    Reply::Error(e) => {
                        let code = ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified);
                        // A transient refusal: the device keeps the cable and tries again.
                        if !matches!(
                            code,
                            ErrorCode::Busy | ErrorCode::Unavailable | ErrorCode::Internal
                        ) {
                            checker.violation(format!(
                                "device {}'s valid cable was refused: {} {}",
                                self.index,
                                code.as_str_name(),
                                e.message
                            ));
                        }
                    }
                }
            }
            Msg::Delivery { key, envelope } => {
                let me = self.id();
                let cable = decode_envelope(&envelope).ok().and_then(|e| {
                    let sealed_for_me = e
                        .key_wraps
                        .iter()
                        .any(|w| w.device_id == me.as_bytes().as_slice());
                    let id: Option<[u8; 16]> = e
                        .header
                        .as_ref()
                        .and_then(|h| h.cable_id.as_slice().try_into().ok());
                    id.filter(|_| sealed_for_me)
                });
                match cable {
                    Some(cable) => *self.inbox.entry(cable).or_default() += 1,
                    None => checker.violation(format!(
                        "device {} was delivered a cable not sealed for it",
                        self.index
                    )),
                }
                out.push((Addr::Node(self.post.0), Msg::Ack { key }));
            }
            _ => {}
        }
    }
}
