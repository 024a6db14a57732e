//! Asking a running node over its admin socket. Sled locks a running node's stores, so while
//! it runs, commands go through it; when no node answers, they work on its files directly.

use anyhow::{Context, Result, bail};
use valise_proto::v1::{AdminRequest, AdminResponse, admin_response};
use valise_relay::admin;
use valise_relay::config::Config;

/// Sends an admin request to the running node, or returns `None` if no node is listening.
pub(crate) fn ask_running_node(
    config: &Config,
    request: AdminRequest,
) -> Result<Option<AdminResponse>> {
    let socket = config.admin_socket();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(admin::request(&socket, request)) {
        Ok(response) => Ok(Some(response)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot talk to the node on {}", socket.display()))
        }
    }
}

/// Asks a running node and takes the answer `expect` picks out; `None` when no node runs.
/// A refusal from the node, or an answer of another kind, is an error.
pub(crate) fn ask_running_node_for<T>(
    config: &Config,
    request: AdminRequest,
    expect: impl FnOnce(admin_response::Response) -> Option<T>,
) -> Result<Option<T>> {
    let Some(answer) = ask_running_node(config, request)? else {
        return Ok(None);
    };
    match answer.response {
        Some(admin_response::Response::Error(e)) => bail!("{e}"),
        Some(response) => expect(response)
            .map(Some)
            .context("the node gave an unexpected answer"),
        None => bail!("the node gave an unexpected answer"),
    }
}

/// Whether a node answers on the admin socket.
pub(crate) fn ask_is_running(config: &Config) -> bool {
    std::os::unix::net::UnixStream::connect(config.admin_socket()).is_ok()
}
