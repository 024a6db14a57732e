//! Who this device is and which node serves it: written at enrolment, read at every unlock.

use prost::Message;

use crate::store::{LocalStore, StoreError, Table};

const PROFILE: &[u8] = b"profile";

/// The device's enrolment, as its post's node confirmed it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    /// The node, `host:port`.
    #[prost(string, tag = "1")]
    pub node_addr: String,
    /// The name the node's certificate carries, e.g. `paris.mfa.example`.
    #[prost(string, tag = "2")]
    pub node_name: String,
    /// The pinned ministry root (PEM), checked against the fingerprint the user was given.
    #[prost(string, tag = "3")]
    pub ca_pem: String,
    /// The ministry, e.g. `mfa.example`.
    #[prost(string, tag = "4")]
    pub ministry: String,
    /// This device's signed record, as the post enrolled it.
    #[prost(message, optional, tag = "5")]
    pub record: Option<valise_proto::v1::DeviceRecord>,
    /// The node's custody-receipt key (Ed25519), learned over the authenticated channel.
    #[prost(bytes = "vec", tag = "6")]
    pub node_key: Vec<u8>,
    /// The node's own name, e.g. `paris`, as its custody receipts carry it.
    #[prost(string, tag = "7")]
    pub node: String,
    /// TAGS ministry IT added for this network, as the node's welcome last gave them.
    #[prost(string, repeated, tag = "8")]
    pub extra_tags: Vec<String>,
    /// The node's limits, as its welcome last gave them: drafts over them are refused at once.
    #[prost(message, optional, tag = "9")]
    pub limits: Option<valise_proto::v1::Limits>,
    /// The root's certificate of the node's custody key, as its welcome gave it (checked).
    #[prost(message, optional, tag = "10")]
    pub node_key_certificate: Option<valise_proto::v1::NodeKeyCertificate>,
}

impl Profile {
    /// The user's address, e.g. `alice@paris`.
    pub fn address(&self) -> String {
        self.record
            .as_ref()
            .map(|r| format!("{}@{}", r.user, r.post))
            .unwrap_or_default()
    }

    /// Stores the profile.
    pub fn save(&self, store: &LocalStore) -> Result<(), StoreError> {
        store.put(Table::Profile, PROFILE, &self.encode_to_vec())
    }

    /// Loads the profile.
    pub fn load(store: &LocalStore) -> Result<Self, StoreError> {
        store
            .get_message(Table::Profile, PROFILE)?
            .ok_or_else(|| StoreError::NotEnrolled(store.dir().to_owned()))
    }
}
