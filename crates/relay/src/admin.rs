//! The local admin channel: an owner-only Unix socket on which a running node takes `enroll`,
//! `revoke`, `status` and the audit commands from its operator (sled locks the node's stores, so while it runs,
//! commands cannot open them directly). One request and one response per connection, as
//! length-delimited `AdminRequest` / `AdminResponse` frames.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use valise_crypto::identity::DeviceId;
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{
    AdminEnrolled, AdminRequest, AdminResponse, AdminRevoked, AdminUserUpdate, AdminUserUpdated,
    Classification, NodeStatus, admin_request, admin_response,
};

use crate::enrolment::Invitation;

/// A request is a few names; anything larger is not an admin request.
const MAX_REQUEST: usize = 16 * 1024;
/// A response holds at most a proof bundle: a few kilobytes.
const MAX_RESPONSE: usize = 1024 * 1024;

/// What the admin channel can ask of a node.
pub trait AdminTarget: Send + Sync + 'static {
    /// Issues an enrolment code: (code, root fingerprint, node name).
    fn enroll(&self, invitation: Invitation) -> Result<(String, String, String), String>;
    /// Revokes a device, or every device of a user: the devices revoked.
    fn revoke(
        &self,
        device: Option<DeviceId>,
        user: &str,
        reason: &str,
    ) -> Result<Vec<DeviceId>, String>;
    /// Writes the audit export to a new file at `path`: the number of entries.
    fn audit_export(&self, path: &Path) -> Result<u64, String>;
    /// The proof bundle of audit entry `index`.
    fn audit_prove(&self, index: u64) -> Result<String, String>;
    /// Asks the node to stop at once.
    fn stop(&self, reason: &str);
    /// The node's links, queues and witnessing.
    fn status(&self) -> Result<NodeStatus, String>;
    /// Changes a user's details on all of the user's devices: the devices changed.
    fn update_user(
        &self,
        user: &str,
        change: &crate::users::Change,
    ) -> Result<Vec<DeviceId>, String>;
}

/// The change an admin request asks for.
pub fn change_of(request: &AdminUserUpdate) -> Result<crate::users::Change, String> {
    let clearance = match Classification::try_from(request.clearance) {
        Ok(Classification::Unspecified) => None,
        Ok(c) => Some(c),
        Err(_) => return Err("unknown clearance".into()),
    };
    Ok(crate::users::Change {
        display_name: request.display_name.clone(),
        clearance,
        offices: request.set_offices.then(|| request.offices.clone()),
        foreign_national: request.foreign_national,
    })
}

/// Binds the socket at `path`, owner-only, and serves it on the current tokio runtime until
/// the returned task is aborted.
pub fn serve(
    target: Arc<dyn AdminTarget>,
    path: &Path,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // A socket file left by a node that was killed would block the bind.
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let target = Arc::clone(&target);
            tokio::spawn(async move {
                let _ = serve_one(stream, target).await;
            });
        }
    }))
}

async fn serve_one(mut stream: UnixStream, target: Arc<dyn AdminTarget>) -> std::io::Result<()> {
    let request = read_frame::<AdminRequest>(&mut stream, MAX_REQUEST).await?;
    let response = match request.and_then(|r| r.request) {
        Some(request) => tokio::task::spawn_blocking(move || handle(target.as_ref(), request))
            .await
            .unwrap_or_else(|_| error("the node failed while handling the request")),
        None => error("not an admin request"),
    };
    stream.write_all(&encode(&response)).await?;
    stream.shutdown().await
}

fn error(message: impl Into<String>) -> AdminResponse {
    AdminResponse {
        response: Some(admin_response::Response::Error(message.into())),
    }
}

fn handle(target: &dyn AdminTarget, request: admin_request::Request) -> AdminResponse {
    match request {
        admin_request::Request::Enroll(e) => {
            let clearance =
                Classification::try_from(e.clearance).unwrap_or(Classification::Unspecified);
            if clearance == Classification::Unspecified {
                return error("give a clearance: UNCLASSIFIED, CONFIDENTIAL, SECRET or TOP SECRET");
            }
            let invitation = Invitation {
                user: e.user,
                display_name: e.display_name,
                clearance,
                offices: e.offices,
                foreign_national: e.foreign_national,
            };
            match target.enroll(invitation) {
                Ok((code, ca_fingerprint, node)) => AdminResponse {
                    response: Some(admin_response::Response::Enrolled(AdminEnrolled {
                        code,
                        ca_fingerprint,
                        node,
                    })),
                },
                Err(e) => error(e),
            }
        }
        admin_request::Request::AuditExport(e) => match target.audit_export(Path::new(&e.path)) {
            Ok(n) => AdminResponse {
                response: Some(admin_response::Response::ExportedEntries(n)),
            },
            Err(e) => error(e),
        },
        admin_request::Request::AuditProve(p) => match target.audit_prove(p.index) {
            Ok(bundle) => AdminResponse {
                response: Some(admin_response::Response::ProofBundle(bundle)),
            },
            Err(e) => error(e),
        },
        admin_request::Request::Status(_) => match target.status() {
            Ok(status) => AdminResponse {
                response: Some(admin_response::Response::Status(status)),
            },
            Err(e) => error(e),
        },
        admin_request::Request::Stop(stop) => {
            target.stop(&stop.reason);
            AdminResponse {
                response: Some(admin_response::Response::Stopping(true)),
            }
        }
        admin_request::Request::UserUpdate(u) => {
            let change = match change_of(&u) {
                Ok(c) => c,
                Err(e) => return error(e),
            };
            match target.update_user(&u.user, &change) {
                Ok(devices) => AdminResponse {
                    response: Some(admin_response::Response::UserUpdated(AdminUserUpdated {
                        device_ids: devices.iter().map(|d| d.as_bytes().to_vec()).collect(),
                    })),
                },
                Err(e) => error(e),
            }
        }
        admin_request::Request::Revoke(r) => {
            let device = if r.device_id.is_empty() {
                None
            } else {
                match DeviceId::from_slice(&r.device_id) {
                    Ok(d) => Some(d),
                    Err(e) => return error(format!("bad device id: {e}")),
                }
            };
            match target.revoke(device, &r.user, &r.reason) {
                Ok(devices) => AdminResponse {
                    response: Some(admin_response::Response::Revoked(AdminRevoked {
                        device_ids: devices.iter().map(|d| d.as_bytes().to_vec()).collect(),
                    })),
                },
                Err(e) => error(e),
            }
        }
    }
}

async fn read_frame<M: prost::Message + Default>(
    stream: &mut UnixStream,
    max: usize,
) -> std::io::Result<Option<M>> {
    let mut decoder = FrameDecoder::new(max);
    let mut buf = vec![0u8; 4096];
    loop {
        match decoder.next_frame::<M>() {
            Ok(Some(m)) => return Ok(Some(m)),
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        decoder.push(&buf[..n]);
    }
}

/// Sends one request to the node listening on `path` (the client side, for commands).
pub async fn request(path: &Path, request: AdminRequest) -> std::io::Result<AdminResponse> {
    let mut stream = UnixStream::connect(path).await?;
    stream.write_all(&encode(&request)).await?;
    stream.shutdown().await?;
    read_frame::<AdminResponse>(&mut stream, MAX_RESPONSE)
        .await?
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "the node sent no answer")
        })
}
