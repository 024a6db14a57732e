//! A post's directory for the core's tests: Paris, and one diplomat at Rome.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use valise_crypto::identity::{DeviceId, IdentityKeyPair};
use valise_proto::v1::{Classification, Envelope, KeyWrap, Precedence, RoutingHeader};
use valise_relay_core::policy::{DeviceView, DirectoryView};

/// Paris: alice (SECRET, 2 devices), bob (TOP SECRET), carol (CONFIDENTIAL, locally employed:
/// a foreign national), mallory (revoked); the POL office is alice and bob.
pub struct Paris {
    pub devices: HashMap<DeviceId, DeviceView>,
    pub addresses: HashMap<String, Vec<DeviceId>>,
}

pub fn key(seed: u8) -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&[seed; 32]).unwrap()
}

pub fn id(seed: u8) -> DeviceId {
    key(seed).device_id()
}

/// Signs `env` as the device of `seed` would (after any change a test made to it).
pub fn signed_by(seed: u8, mut env: Envelope) -> Envelope {
    env.signature = key(seed)
        .sign(&valise_crypto::envelope::signed_bytes(&env).unwrap())
        .to_vec();
    env
}

pub fn resigned(env: Envelope) -> Envelope {
    signed_by(1, env)
}

impl Paris {
    pub fn new() -> Self {
        let mut p = Paris {
            devices: HashMap::new(),
            addresses: HashMap::new(),
        };
        for (seed, user, clearance, revoked) in [
            (1, "alice@paris", Classification::Secret, false),
            (2, "alice@paris", Classification::Secret, false),
            (3, "bob@paris", Classification::TopSecret, false),
            (4, "carol@paris", Classification::Confidential, false),
            (5, "mallory@paris", Classification::TopSecret, true),
        ] {
            p.devices.insert(
                id(seed),
                DeviceView {
                    id: id(seed),
                    user: user.into(),
                    post: "paris".into(),
                    identity: *key(seed).public(),
                    clearance,
                    revoked,
                    foreign_national: seed == 4,
                },
            );
            p.addresses.entry(user.into()).or_default().push(id(seed));
        }
        p.addresses
            .insert("POL@paris".into(), vec![id(1), id(2), id(3)]);
        p
    }
}

impl DirectoryView for Paris {
    fn device(&self, id: &DeviceId) -> Option<DeviceView> {
        self.devices.get(id).cloned()
    }
    fn devices_for(&self, address: &str) -> Option<Vec<DeviceId>> {
        self.addresses.get(address).cloned()
    }
    fn is_office(&self, address: &str) -> bool {
        address.starts_with("POL@")
    }
}

/// A SECRET IMMEDIATE cable from alice's first device to bob, with wraps for `devices`,
/// signed by that device.
pub fn cable(to: &[&str], devices: &[DeviceId]) -> Envelope {
    resigned(unsigned_cable(to, devices))
}

pub fn unsigned_cable(to: &[&str], devices: &[DeviceId]) -> Envelope {
    Envelope {
        header: Some(RoutingHeader {
            version: 1,
            cable_id: vec![9; 16],
            sender_device: id(1).as_bytes().to_vec(),
            from: "alice@paris".into(),
            action_addressees: to.iter().map(|s| (*s).into()).collect(),
            classification: Classification::Secret as i32,
            precedence: Precedence::Immediate as i32,
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
    }
}

impl Paris {
    /// Paris, and dario at Rome (SECRET, seed 6), reached through the hub.
    pub fn with_rome() -> Self {
        let mut p = Paris::new();
        p.devices.insert(
            id(6),
            DeviceView {
                id: id(6),
                user: "dario@rome".into(),
                post: "rome".into(),
                identity: *key(6).public(),
                clearance: Classification::Secret,
                revoked: false,
                foreign_national: false,
            },
        );
        p.addresses.insert("dario@rome".into(), vec![id(6)]);
        p
    }
}
