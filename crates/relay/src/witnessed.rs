//! The latest of this node's checkpoints each neighbour cosigned, kept as plain notes in
//! `data/links/witnessed/<neighbour>.note`.
//!
//! Why outside the audit store: `audit verify` checks the log against them, so a log replaced
//! with an older copy (and its anchor with it) is caught by the node's own verify, not only by
//! the neighbours that refuse its next checkpoint. They are files rather than sled entries
//! because verify must read them while the running node holds the link state's lock.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The folder, inside the link state folder.
pub const WITNESSED_DIR: &str = "witnessed";

/// One kept note: which neighbour cosigned it, and the note with its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The neighbour's node name.
    pub neighbour: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The checkpoint note, signed by this node and cosigned by the neighbour.
    pub note: String,
    /// When it was kept, milliseconds since the Unix epoch (0 if the system cannot say).
    pub kept_at_ms: u64,
}

impl Witnessed {
    /// The checkpoint's size, read without verifying (for display; `audit verify` verifies).
    pub fn size(&self) -> Option<u64> {
        self.note.lines().nth(1)?.parse().ok()
    }
}

/// Replaces the note kept for `neighbour`: written beside, synced, then renamed, so a crash
/// leaves the old note or the new one, never half of either.
pub fn keep(links_dir: &Path, neighbour: &str, note: &str) -> std::io::Result<()> {
    let dir = links_dir.join(WITNESSED_DIR);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{neighbour}.note"));
    let temp = dir.join(format!(".{neighbour}.note.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(note.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    std::fs::File::open(&dir)?.sync_all()
}

/// Every kept note, by neighbour name. A node that never had a checkpoint cosigned has none.
pub fn read_all(links_dir: &Path) -> std::io::Result<Vec<Witnessed>> {
    let dir = links_dir.join(WITNESSED_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut kept = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(neighbour) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".note"))
            .filter(|n| !n.starts_with('.'))
        else {
            continue;
        };
        let note = std::fs::read_to_string(&path)?;
        let kept_at_ms = std::fs::metadata(&path)?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        kept.push(Witnessed {
            neighbour: neighbour.to_owned(),
            path: path.clone(),
            note,
            kept_at_ms,
        });
    }
    kept.sort_by(|a, b| a.neighbour.cmp(&b.neighbour));
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_note_per_neighbour() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(read_all(dir.path())?.is_empty());
        keep(dir.path(), "hub", "o\n7\nr\n")?;
        keep(dir.path(), "hub", "o\n9\nr\n")?;
        keep(dir.path(), "brussels", "o\n3\nr\n")?;
        let kept = read_all(dir.path())?;
        let names: Vec<(&str, &str)> = kept
            .iter()
            .map(|w| (w.neighbour.as_str(), w.note.as_str()))
            .collect();
        assert_eq!(names, [("brussels", "o\n3\nr\n"), ("hub", "o\n9\nr\n")]);
        assert_eq!(kept[1].size(), Some(9));
        assert!(kept[1].kept_at_ms > 0);
        // No temporary file is left to be mistaken for a note.
        assert_eq!(
            std::fs::read_dir(dir.path().join(WITNESSED_DIR))?.count(),
            2
        );
        Ok(())
    }
}
