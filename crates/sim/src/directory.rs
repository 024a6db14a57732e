//! The simulated ministry: posts, their diplomats (one or two devices each), and the
//! directory every node reads, which does not change during a run.

use std::collections::BTreeMap;

use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_proto::v1::{Classification, Envelope, KeyWrap, Precedence, RoutingHeader};
use valise_relay_core::policy::{DeviceView, DirectoryView};

/// One device of a diplomat.
#[derive(Debug)]
pub struct Person {
    /// The diplomat's address, e.g. `u1@post2`.
    pub address: String,
    /// Index of the post node that enrolled them.
    pub post: usize,
}

/// Every device, as all nodes see it.
#[derive(Debug, Default)]
pub struct SimDirectory {
    devices: BTreeMap<DeviceId, DeviceView>,
    addresses: BTreeMap<String, Vec<DeviceId>>,
}

impl SimDirectory {
    /// Adds a device for `address` at the post named `post`.
    pub fn enrol(&mut self, key: &IdentityKeyPair, address: &str, post: &str) {
        let id = key.device_id();
        self.devices.insert(
            id,
            DeviceView {
                id,
                user: address.to_owned(),
                post: post.to_owned(),
                identity: *key.public(),
                clearance: Classification::Secret,
                revoked: false,
                foreign_national: false,
            },
        );
        self.addresses
            .entry(address.to_owned())
            .or_default()
            .push(id);
    }

    /// The devices of `address`.
    pub fn devices_of(&self, address: &str) -> Vec<DeviceId> {
        self.addresses.get(address).cloned().unwrap_or_default()
    }
}

impl DirectoryView for SimDirectory {
    fn device(&self, id: &DeviceId) -> Option<DeviceView> {
        self.devices.get(id).cloned()
    }
    fn devices_for(&self, address: &str) -> Option<Vec<DeviceId>> {
        self.addresses.get(address).cloned()
    }
    fn is_office(&self, _address: &str) -> bool {
        false
    }
}

/// A cable from `sender` (the device of `key`, user `from`) to `to`, sealed for `devices` and
/// signed; the body is left empty, since the relay never reads it.
pub fn cable(
    key: &IdentityKeyPair,
    from: &str,
    to: &[String],
    devices: &[DeviceId],
    cable_id: [u8; 16],
    precedence: Precedence,
) -> Option<Envelope> {
    let mut envelope = Envelope {
        header: Some(RoutingHeader {
            version: valise_proto::ENVELOPE_VERSION,
            cable_id: cable_id.to_vec(),
            sender_device: key.device_id().as_bytes().to_vec(),
            from: from.to_owned(),
            action_addressees: to.to_vec(),
            classification: Classification::Secret as i32,
            precedence: precedence as i32,
            created_at_ms: 1,
            ..Default::default()
        }),
        key_wraps: devices
            .iter()
            .map(|d| KeyWrap {
                device_id: d.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let bytes = valise_crypto::envelope::signed_bytes(&envelope).ok()?;
    envelope.signature = key.sign(&bytes).to_vec();
    Some(envelope)
}
