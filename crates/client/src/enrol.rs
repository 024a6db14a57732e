//! Enrolling a new device: it makes every key itself, redeems the one-time code at its post's
//! node (reached over TLS pinned to the root whose fingerprint the diplomat was given), and only
//! then creates its store. No key leaves the device.

use std::path::Path;

use valise_crypto::at_rest::KdfParams;
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_crypto::tls::{CertifiedKey, certificate_pem_in, enrolment_config};
use valise_proto::v1::{EnrolRequest, client_frame, directory_update::Update, node_frame};
use zeroize::Zeroizing;

use crate::client::{Client, now_ms};
use crate::connection::{self, NetError, host_of};
use crate::error::ClientError;
use crate::keys::{DeviceKeys, RECEIVE_KEY_VALIDITY_MS};
use crate::profile::Profile;
use crate::store::{LocalStore, StoreError};
use crate::sync::{NoProgress, Scope};

/// What the diplomat was handed: where the node is, the code, and the root's fingerprint.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// The node, `host:port`.
    pub node_addr: String,
    /// The one-time code.
    pub code: String,
    /// The ministry root's fingerprint.
    pub ca_fingerprint: String,
}

/// Enrols this device and creates its store in `dir`, sealed under `passphrase`.
pub async fn enrol(
    dir: &Path,
    passphrase: &[u8],
    kdf: KdfParams,
    invitation: &Invitation,
) -> Result<Client, ClientError> {
    if LocalStore::exists(dir) {
        return Err(StoreError::AlreadyExists(dir.to_owned()).into());
    }
    let text = std::str::from_utf8(passphrase)
        .map_err(|_| ClientError::Enrolment("the passphrase is not valid text".into()))?;
    crate::passphrase::check(text).map_err(|e| ClientError::Enrolment(e.to_string()))?;
    let failed = |e: &dyn std::fmt::Display| ClientError::Enrolment(e.to_string());
    let identity = IdentityKeyPair::generate().map_err(|e| failed(&e))?;
    let now = now_ms();
    let receive = ReceiveKeyPair::generate(now, now.saturating_add(RECEIVE_KEY_VALIDITY_MS))
        .map_err(|e| failed(&e))?;
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| failed(&e))?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&tls_key)
        .map_err(|e| failed(&e))?;

    let (tls, captured) = enrolment_config(&invitation.ca_fingerprint).map_err(|e| failed(&e))?;
    let host = host_of(&invitation.node_addr).to_owned();
    let (_endpoint, conn) = connection::open(&invitation.node_addr, &host, tls)
        .await
        .map_err(|e| {
            if captured.get().is_none() {
                // No root was found and checked: a wrong fingerprint looks like this too.
                ClientError::Enrolment(format!(
                    "{e}. If the node is up, check the --ca-fingerprint you were given"
                ))
            } else {
                ClientError::Net(e)
            }
        })?;
    let request = client_frame::Frame::Enrol(EnrolRequest {
        code: invitation.code.clone(),
        identity_key: identity.public().as_bytes().to_vec(),
        receive_keys: vec![
            receive
                .to_signed_record(&identity)
                .map_err(|e| failed(&e))?,
        ],
        csr: csr.der().to_vec(),
    });
    let answer = connection::request(&conn, request).await;
    conn.close(0u32.into(), b"enrolled");
    let response = match answer
        .map_err(|e| match e {
            NetError::Refused { message, .. } => ClientError::Enrolment(message),
            e => ClientError::Net(e),
        })?
        .frame
    {
        Some(node_frame::Frame::Enrolled(r)) => r,
        _ => return Err(failed(&"the node did not answer with an enrolment")),
    };
    let root = captured
        .get()
        .ok_or_else(|| failed(&"the node's root was not checked"))?;
    let ca_pem = certificate_pem_in(&response.certificate_chain, &root).ok_or_else(|| {
        failed(&"the certificate the node issued does not chain to the pinned root")
    })?;
    let record = response
        .record
        .ok_or_else(|| failed(&"the node sent no device record"))?;
    if record.identity_key != identity.public().as_bytes() {
        return Err(failed(&"the node's record is for another device"));
    }

    let keys = DeviceKeys {
        identity,
        receive: vec![receive],
        tls: CertifiedKey {
            chain_pem: response.certificate_chain,
            key_pem: Zeroizing::new(tls_key.serialize_pem()),
        },
    };
    // The store is created only once the new certificate works and the ministry is known, so
    // a failure here leaves no half-made store that every command would refuse.
    let connected = async {
        let tls = valise_crypto::tls::client_config(&ca_pem, Some(&keys.tls))
            .map_err(|e| ClientError::Enrolment(e.to_string()))?;
        let link = connection::NodeLink::connect(
            &invitation.node_addr,
            &host,
            tls,
            0,
            connection::CONNECT_TIMEOUT,
        )
        .await?;
        let (ministry, first_page) = ministry_of(&link).await?;
        Ok::<_, ClientError>((link, ministry, first_page))
    };
    let (link, ministry, first_page) = connected.await.map_err(|e| {
        ClientError::Enrolment(format!(
            "the node enrolled this device ({}), but connecting with its new certificate \
             failed: {e}. Nothing was saved here; ask your post for a new code, and to revoke \
             that device",
            keys.identity.device_id()
        ))
    })?;
    let store = LocalStore::create(dir, passphrase, kdf)?;
    keys.save(&store)?;
    let profile = Profile {
        node_addr: invitation.node_addr.clone(),
        node_name: host,
        ca_pem,
        ministry,
        record: Some(record),
        node_key: Vec::new(),
        node: String::new(),
        extra_tags: Vec::new(),
        limits: None,
        node_key_certificate: None,
    };
    profile.save(&store)?;
    let mut client = Client::assemble(store, keys, profile)?;
    // The page already fetched is applied (each update verified), and the first sync on the
    // same connection takes the node's custody key and the rest of the directory.
    crate::directory::apply(&client.store, &mut client.directory, first_page)?;
    let report = client.sync_over(link, Scope::Full, &NoProgress).await?;
    if let Some(reason) = report.offline {
        return Err(ClientError::Enrolment(format!(
            "enrolled, but the first sync failed: {reason}; run any command to sync again"
        )));
    }
    if !client.directory().is_active(&client.device_id()) {
        return Err(ClientError::Enrolment(
            "the node's directory does not list this device; report this to ministry IT".into(),
        ));
    }
    Ok(client)
}

/// The ministry's name, as the root signed it in the post enrolment certificates the node
/// serves (a device is told only the root's fingerprint), and the first directory page.
async fn ministry_of(
    link: &connection::NodeLink,
) -> Result<(String, Vec<valise_proto::v1::DirectoryUpdate>), ClientError> {
    let page = link
        .request(client_frame::Frame::DirectorySync(
            valise_proto::v1::DirectorySync {
                after_version: 0,
                wait_ms: 0,
            },
        ))
        .await?;
    let updates = match page.frame {
        Some(node_frame::Frame::DirectoryPage(p)) => p.updates,
        _ => Vec::new(),
    };
    let ministry = updates
        .iter()
        .find_map(|u| match &u.update {
            Some(Update::Enroller(cert)) => Some(cert.ministry.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            ClientError::Enrolment(
                "the node's directory holds no enrolment certificate; report this to ministry IT"
                    .into(),
            )
        })?;
    Ok((ministry, updates))
}
