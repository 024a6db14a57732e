//! Directory sync for devices: a page of the signed updates after a version.

use valise_proto::v1::{DirectoryPage, ErrorCode, NodeFrame, node_frame};

use super::{Shared, error};

/// Updates per sync page, and their rough byte budget: a page stays well inside any frame cap.
pub(super) const SYNC_PAGE_UPDATES: usize = 64;

pub(super) const SYNC_PAGE_BYTES: usize = 256 * 1024;

pub(super) fn directory_page(shared: &Shared, after_version: u64) -> NodeFrame {
    let directory = shared.directory.read();
    let version = directory.view().version();
    if after_version > version {
        return error(
            ErrorCode::Malformed,
            format!(
                "the directory is at version {version}, not {after_version}; sync again from 0"
            ),
        );
    }
    match directory.updates_after(after_version, SYNC_PAGE_UPDATES, SYNC_PAGE_BYTES) {
        Ok(updates) => NodeFrame {
            frame: Some(node_frame::Frame::DirectoryPage(DirectoryPage {
                updates,
                version,
            })),
        },
        Err(e) => error(
            ErrorCode::Internal,
            format!("the node could not read its directory ({e}); report this to ministry IT"),
        ),
    }
}
