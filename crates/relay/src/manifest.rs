//! The data folder's manifest: which stores a node has created, each with a random id also
//! kept inside the store's own folder. A store that goes missing, or is swapped for another
//! (an older node's, another node's, a fresh empty one), would otherwise be opened empty
//! without a word, and everything it held would be lost silently. With the manifest, the node
//! refuses to start and says which store and what to do.
//!
//! `data/stores.json` maps a store's folder name to its id; `data/<store>/valise-store-id`
//! holds the id. A store is adopted the first time the node sees it (created, or found from
//! before the manifest existed); from then on it must be there, with its id.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The manifest's file in the data folder.
pub const MANIFEST: &str = "stores.json";
/// The id file inside each store's folder.
pub const STORE_ID: &str = "valise-store-id";

/// A store the node relies on, and what losing it means.
#[derive(Debug, Clone, Copy)]
pub struct Kept {
    /// Its folder inside the data folder, e.g. `queue`.
    pub dir: &'static str,
    /// What it holds, for the operator: "the cables in custody".
    pub holds: &'static str,
}

/// Why the data folder cannot be used as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A store the node created is gone.
    #[error(
        "{path} is missing, but this node created it and it held {holds}; starting without it \
         would lose them silently. Restore it from backup; if it is lost for good, accept the \
         loss deliberately with `valise-relay recover --config FILE --start-empty {dir}` \
         (audited)"
    )]
    Missing {
        /// The store's folder.
        path: PathBuf,
        /// Its name.
        dir: String,
        /// What it held.
        holds: &'static str,
    },
    /// A store's folder holds another store than the one the node created.
    #[error(
        "{path} is not the store this node created (its id is {found}, the manifest says \
         {expected}): it was replaced, perhaps by another node's or an empty one. Put back this \
         node's store; to adopt this one deliberately, run `valise-relay recover --config FILE \
         --start-empty {dir}` (audited)"
    )]
    Replaced {
        /// The store's folder.
        path: PathBuf,
        /// Its name.
        dir: String,
        /// The id found (`none` when the id file is gone).
        found: String,
        /// The id the manifest records.
        expected: String,
    },
    /// The manifest or an id file cannot be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The manifest of a data folder.
#[derive(Debug)]
pub struct Manifest {
    data: PathBuf,
    stores: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads the manifest of `data` (empty if there is none yet).
    pub fn load(data: &Path) -> Result<Self, ManifestError> {
        let path = data.join(MANIFEST);
        let stores = match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ManifestError::Io {
                path: path.clone(),
                reason: format!("not a store manifest ({e}); restore it from backup"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(&path, &e)),
        };
        Ok(Manifest {
            data: data.to_owned(),
            stores,
        })
    }

    /// Checks every store in `kept`: a store in the manifest must be there with its id; one
    /// not in it yet is adopted (created if absent). Writes the manifest if it changed.
    pub fn check(&mut self, kept: &[Kept]) -> Result<(), ManifestError> {
        let mut changed = false;
        for store in kept {
            let dir = self.data.join(store.dir);
            let found = read_id(&dir)?;
            match (self.stores.get(store.dir), found) {
                (Some(expected), Some(found)) if *expected == found => {}
                (Some(_), None) if !dir.exists() => {
                    return Err(ManifestError::Missing {
                        path: dir,
                        dir: store.dir.to_owned(),
                        holds: store.holds,
                    });
                }
                (Some(expected), found) => {
                    return Err(ManifestError::Replaced {
                        path: dir,
                        dir: store.dir.to_owned(),
                        found: found.unwrap_or_else(|| "none".into()),
                        expected: expected.clone(),
                    });
                }
                (None, Some(found)) => {
                    self.stores.insert(store.dir.to_owned(), found);
                    changed = true;
                }
                (None, None) => {
                    let id = new_id()?;
                    fs::create_dir_all(&dir).map_err(|e| io(&dir, &e))?;
                    write_synced(&dir.join(STORE_ID), id.as_bytes())?;
                    self.stores.insert(store.dir.to_owned(), id);
                    changed = true;
                }
            }
        }
        if changed {
            self.save()?;
        }
        Ok(())
    }

    /// Forgets a store, so that the next start adopts whatever is (or is not) in its folder:
    /// the operator's deliberate acceptance of its loss. Returns whether it was recorded.
    pub fn forget(&mut self, dir: &str) -> Result<bool, ManifestError> {
        let known = self.stores.remove(dir).is_some();
        let id_file = self.data.join(dir).join(STORE_ID);
        if id_file.exists() {
            fs::remove_file(&id_file).map_err(|e| io(&id_file, &e))?;
        }
        self.save()?;
        Ok(known)
    }

    fn save(&self) -> Result<(), ManifestError> {
        let path = self.data.join(MANIFEST);
        let text = serde_json::to_string_pretty(&self.stores).map_err(|e| ManifestError::Io {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        write_synced(&tmp, text.as_bytes())?;
        fs::rename(&tmp, &path).map_err(|e| io(&path, &e))?;
        fs::File::open(&self.data)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&self.data, &e))
    }
}

fn read_id(dir: &Path) -> Result<Option<String>, ManifestError> {
    let path = dir.join(STORE_ID);
    match fs::read_to_string(&path) {
        Ok(id) => Ok(Some(id.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path, &e)),
    }
}

fn new_id() -> Result<String, ManifestError> {
    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).map_err(|_| {
        ManifestError::Io {
            path: PathBuf::from(STORE_ID),
            reason: "the operating system's random number generator failed".into(),
        }
    })?;
    Ok(hex::encode(id))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ManifestError> {
    use std::io::Write as _;
    let mut file = fs::File::create(path).map_err(|e| io(path, &e))?;
    file.write_all(bytes).map_err(|e| io(path, &e))?;
    file.sync_all().map_err(|e| io(path, &e))
}

fn io(path: &Path, e: &std::io::Error) -> ManifestError {
    ManifestError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEPT: &[Kept] = &[
        Kept {
            dir: "queue",
            holds: "the cables in custody",
        },
        Kept {
            dir: "directory",
            holds: "the directory",
        },
    ];

    #[test]
    fn a_deleted_or_swapped_store_is_refused_and_a_deliberate_loss_is_accepted() {
        let data = tempfile::tempdir().unwrap();
        Manifest::load(data.path()).unwrap().check(KEPT).unwrap();
        // A second start with both stores in place is fine.
        Manifest::load(data.path()).unwrap().check(KEPT).unwrap();

        fs::remove_dir_all(data.path().join("queue")).unwrap();
        let err = Manifest::load(data.path())
            .unwrap()
            .check(KEPT)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("queue is missing") && text.contains("the cables in custody"),
            "{text}"
        );
        assert!(
            text.contains("recover --config FILE --start-empty queue"),
            "{text}"
        );
        assert!(!data.path().join("queue").exists(), "nothing was created");

        // Another node's directory store copied in.
        fs::write(data.path().join("directory").join(STORE_ID), "0123").unwrap();
        let mut manifest = Manifest::load(data.path()).unwrap();
        manifest.forget("queue").unwrap();
        let err = manifest.check(KEPT).unwrap_err();
        assert!(matches!(err, ManifestError::Replaced { ref dir, .. } if dir == "directory"));

        // The operator accepts both: the next start adopts a new queue and the copied store.
        manifest.forget("directory").unwrap();
        manifest.check(KEPT).unwrap();
        assert!(data.path().join("queue").join(STORE_ID).exists());
        Manifest::load(data.path()).unwrap().check(KEPT).unwrap();
    }
}
