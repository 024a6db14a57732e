//! The device's copy of the directory: every signed update it has received, kept in the store
//! by version and replayed through the verified [`Directory`] on unlock. Each update is checked
//! along its chain to the pinned root before it is applied or stored, so a node that serves
//! the directory cannot forge or reorder it.

use prost::Message;
use valise_crypto::directory::Directory;
use valise_crypto::identity::IdentityPublicKey;
use valise_proto::v1::DirectoryUpdate;

use crate::error::ClientError;
use crate::store::{LocalStore, Table};

/// Loads the stored updates into a directory trusting `root` for `ministry`.
pub fn load(
    store: &LocalStore,
    ministry: &str,
    root: IdentityPublicKey,
) -> Result<Directory, ClientError> {
    let mut directory = Directory::new(ministry, root);
    // sled returns keys in order, and versions are stored big-endian: replay is in order.
    for (_, update) in store.scan_messages::<DirectoryUpdate>(Table::Directory)? {
        directory
            .apply_received(update)
            .map_err(|e| ClientError::Directory(format!("stored update refused: {e}")))?;
    }
    Ok(directory)
}

/// Checks, applies and stores updates received from the node. Returns how many were new.
pub fn apply(
    store: &LocalStore,
    directory: &mut Directory,
    updates: Vec<DirectoryUpdate>,
) -> Result<usize, ClientError> {
    let mut applied = 0;
    for update in updates {
        if update.version <= directory.version() {
            continue;
        }
        let bytes = update.encode_to_vec();
        let version = update.version;
        directory.apply_received(update).map_err(|e| {
            ClientError::Directory(format!(
                "the node served an update that does not verify ({e}); nothing after version {} \
                 was accepted; report this to ministry IT",
                directory.version()
            ))
        })?;
        store.put(Table::Directory, &version.to_be_bytes(), &bytes)?;
        applied += 1;
    }
    Ok(applied)
}
