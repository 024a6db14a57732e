//! Attachment ciphertexts, stored by their SHA-256 in `<data_dir>/attachments/<hex sha256>`.
//!
//! Attachments are encrypted end to end (`valise_crypto::attachment`); their key travels only
//! inside the cable body, so the node holds bytes it cannot read and serves them to any active
//! device that names their hash. The decisions ([`UploadCheck`]: do the bytes match what was
//! announced; [`Retention`]: which files a sweep removes, given the time) do no I/O. The
//! [`AttachmentStore`] does the file work: an upload is written to a temporary file, synced,
//! and renamed into place only once it matched, so a stored name always holds its hash.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use valise_relay_core::attachment::{ATTACHMENT_ID_LEN, AttachmentId, ListError, parse_list};

/// Prefix of the temporary files uploads are written to.
const UPLOAD_PREFIX: &str = ".upload-";
/// An unfinished upload untouched for this long was abandoned: the sweep removes it.
pub const STALE_UPLOAD_MS: u64 = 86_400_000;
const DAY_MS: u64 = 86_400_000;

/// Why uploaded bytes were refused: they are not what the upload announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// The stream ended early.
    #[error(
        "the upload ended after {received} of the {announced} bytes announced; \
         upload the whole attachment again"
    )]
    Short {
        /// The size announced.
        announced: u64,
        /// The bytes received.
        received: u64,
    },
    /// More bytes came than announced.
    #[error(
        "the upload carries more than the {announced} bytes announced; send exactly the \
         announced size after the frame, then finish the stream"
    )]
    Long {
        /// The size announced.
        announced: u64,
    },
    /// The bytes hash to something else.
    #[error(
        "the uploaded bytes do not hash to the announced SHA-256; announce the hash of the \
         ciphertext exactly as uploaded, then upload again"
    )]
    Digest,
}

/// Checks an upload's bytes, as they arrive, against its announced size and SHA-256.
pub struct UploadCheck {
    announced: AttachmentId,
    size: u64,
    received: u64,
    digest: ring::digest::Context,
}

impl UploadCheck {
    /// A check of `size` bytes hashing to `announced`.
    pub fn new(announced: AttachmentId, size: u64) -> Self {
        UploadCheck {
            announced,
            size,
            received: 0,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// Takes the next bytes; refuses them once they go past the announced size.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Mismatch> {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        match self.received.checked_add(len) {
            Some(total) if total <= self.size => {
                self.received = total;
                self.digest.update(bytes);
                Ok(())
            }
            _ => Err(Mismatch::Long {
                announced: self.size,
            }),
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The stream ended: were all bytes there, and do they hash as announced?
    pub fn finish(self) -> Result<(), Mismatch> {
        if self.received < self.size {
            return Err(Mismatch::Short {
                announced: self.size,
                received: self.received,
            });
        }
        if self.digest.finish().as_ref() != self.announced.as_bytes() {
            return Err(Mismatch::Digest);
        }
        Ok(())
    }
}

/// What a file in the attachments directory is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredFile {
    /// A stored attachment.
    Attachment(AttachmentId),
    /// An upload in progress, or abandoned.
    Upload,
    /// Not the node's: left alone.
    Other,
}

impl StoredFile {
    /// Classifies a file name.
    pub fn of(name: &str) -> Self {
        if name.starts_with(UPLOAD_PREFIX) {
            return StoredFile::Upload;
        }
        // Only the exact form the node writes, so a stray file is never taken for one.
        let canonical = name.len() == 2 * ATTACHMENT_ID_LEN
            && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match hex::decode(name)
            .ok()
            .and_then(|b| AttachmentId::from_slice(&b))
        {
            Some(id) if canonical => StoredFile::Attachment(id),
            _ => StoredFile::Other,
        }
    }
}

/// How long attachments are kept: from their latest upload (the file's modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    ms: u64,
}

impl Retention {
    /// A retention of `period`.
    pub fn new(period: Duration) -> Self {
        Retention {
            ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Until when an attachment last uploaded at `modified_ms` is kept (Unix ms).
    pub fn until(&self, modified_ms: u64) -> u64 {
        modified_ms.saturating_add(self.ms)
    }

    /// Whether an attachment last uploaded at `modified_ms` has expired at `now_ms`. An
    /// expired attachment is not served even before a sweep removes it.
    pub fn is_expired(&self, modified_ms: u64, now_ms: u64) -> bool {
        now_ms >= self.until(modified_ms)
    }

    /// Whether a sweep at `now_ms` removes the file `name`, last modified at `modified_ms`:
    /// expired attachments, and uploads untouched for a day. Anything else stays.
    pub fn sweeps(&self, name: &str, modified_ms: u64, now_ms: u64) -> bool {
        match StoredFile::of(name) {
            StoredFile::Attachment(_) => self.is_expired(modified_ms, now_ms),
            StoredFile::Upload => now_ms >= modified_ms.saturating_add(STALE_UPLOAD_MS),
            StoredFile::Other => false,
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ms / DAY_MS {
            0 => write!(f, "{} minutes", self.ms / 60_000),
            1 => f.write_str("1 day"),
            days => write!(f, "{days} days"),
        }
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired attachments.
    pub attachments: usize,
    /// Abandoned uploads.
    pub uploads: usize,
}

/// A held attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Its size in bytes.
    pub size: u64,
    /// Until when it is kept (Unix ms).
    pub retained_until_ms: u64,
}

/// The attachments directory.
#[derive(Debug)]
pub struct AttachmentStore {
    dir: PathBuf,
    retention: Retention,
}

impl AttachmentStore {
    /// Opens (creating, owner-only) the directory `dir`, keeping attachments for `retention`.
    pub fn open(dir: &Path, retention: Duration) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        Ok(AttachmentStore {
            dir: dir.to_owned(),
            retention: Retention::new(retention),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The retention.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    fn path(&self, id: &AttachmentId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// The attachment, if held and not expired at `now_ms`.
    pub fn held(&self, id: &AttachmentId, now_ms: u64) -> io::Result<Option<Held>> {
        match fs::metadata(self.path(id)) {
            Ok(meta) => Ok(self.live(&meta, now_ms)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn live(&self, meta: &fs::Metadata, now_ms: u64) -> Option<Held> {
        let modified = modified_ms(meta);
        (meta.is_file() && !self.retention.is_expired(modified, now_ms)).then(|| Held {
            size: meta.len(),
            retained_until_ms: self.retention.until(modified),
        })
    }

    /// Opens the attachment for reading, if held and not expired at `now_ms`. The open file
    /// stays readable even if a sweep removes it meanwhile.
    pub fn open_for_fetch(
        &self,
        id: &AttachmentId,
        now_ms: u64,
    ) -> io::Result<Option<(File, Held)>> {
        let file = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        Ok(self.live(&meta, now_ms).map(|held| (file, held)))
    }

    /// Restarts the retention of an attachment uploaded again. `None` if it is gone (a sweep
    /// removed it meanwhile).
    pub fn renew(&self, id: &AttachmentId) -> io::Result<Option<Held>> {
        let file = match fs::OpenOptions::new().write(true).open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        file.set_modified(SystemTime::now())?;
        file.sync_all()?;
        let meta = file.metadata()?;
        let modified = modified_ms(&meta);
        Ok(Some(Held {
            size: meta.len(),
            retained_until_ms: self.retention.until(modified),
        }))
    }

    /// Of `ids`, those not held at `now_ms`. With `renew`, the retention of those held starts
    /// again: another cable now needs them.
    pub fn missing(
        &self,
        ids: &[AttachmentId],
        now_ms: u64,
        renew: bool,
    ) -> io::Result<Vec<AttachmentId>> {
        let mut missing = Vec::new();
        for id in ids {
            let held = match self.held(id, now_ms)? {
                Some(_) if renew => self.renew(id)?,
                found => found,
            };
            if held.is_none() {
                missing.push(*id);
            }
        }
        Ok(missing)
    }

    /// Starts an upload into a new temporary file.
    pub fn begin(&self) -> io::Result<PendingUpload> {
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| io::Error::other("the random number generator failed"))?;
        let temp = self
            .dir
            .join(format!("{UPLOAD_PREFIX}{}", hex::encode(nonce)));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        Ok(PendingUpload {
            file,
            temp: Some(temp),
            dir: self.dir.clone(),
            retention: self.retention,
        })
    }

    /// Removes expired attachments and abandoned uploads, as of `now_ms`.
    pub fn sweep(&self, now_ms: u64) -> io::Result<Swept> {
        let mut swept = Swept::default();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if !meta.is_file() || !self.retention.sweeps(name, modified_ms(&meta), now_ms) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => match StoredFile::of(name) {
                    StoredFile::Attachment(_) => swept.attachments += 1,
                    _ => swept.uploads += 1,
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(swept)
    }
}

/// An upload being written. Dropped without [`Self::commit`], its temporary file is removed.
#[derive(Debug)]
pub struct PendingUpload {
    file: File,
    temp: Option<PathBuf>,
    dir: PathBuf,
    retention: Retention,
}

impl PendingUpload {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Makes the checked upload durable under its id: sync the file, rename it into place,
    /// sync the directory. An identical file already there is replaced.
    pub fn commit(mut self, id: &AttachmentId) -> io::Result<Held> {
        let Some(temp) = self.temp.take() else {
            return Err(io::Error::other("the upload was already committed"));
        };
        let path = self.dir.join(id.to_string());
        let result = (|| {
            self.file.sync_all()?;
            fs::rename(&temp, &path)?;
            File::open(&self.dir)?.sync_all()?;
            let meta = fs::metadata(&path)?;
            Ok(Held {
                size: meta.len(),
                retained_until_ms: self.retention.until(modified_ms(&meta)),
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// Reads up to `max` bytes from `file`: one piece of a fetch.
pub fn read_piece(file: &mut File, max: usize) -> io::Result<Vec<u8>> {
    let mut piece = Vec::with_capacity(max);
    io::Read::take(&mut *file, u64::try_from(max).unwrap_or(u64::MAX)).read_to_end(&mut piece)?;
    Ok(piece)
}

fn modified_ms(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id_of(bytes: &[u8]) -> AttachmentId {
        AttachmentId::of(bytes)
    }

    #[test]
    fn bytes_matching_the_announcement_pass_in_any_pieces() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for piece in [1, 7, 4096, 100_000] {
            let mut check = UploadCheck::new(id_of(&data), data.len() as u64);
            for chunk in data.chunks(piece) {
                check.push(chunk).unwrap();
            }
            assert_eq!(check.received(), data.len() as u64);
            check.finish().unwrap();
        }
    }

    #[test]
    fn short_long_and_altered_uploads_are_told_apart() {
        let data = b"ciphertext".to_vec();
        let id = id_of(&data);
        let mut short = UploadCheck::new(id, 10);
        short.push(&data[..4]).unwrap();
        assert_eq!(
            short.finish(),
            Err(Mismatch::Short {
                announced: 10,
                received: 4
            })
        );
        let mut long = UploadCheck::new(id, 10);
        long.push(&data).unwrap();
        assert_eq!(long.push(b"!"), Err(Mismatch::Long { announced: 10 }));
        let mut altered = UploadCheck::new(id, 10);
        altered.push(b"Ciphertext").unwrap();
        assert_eq!(altered.finish(), Err(Mismatch::Digest));
    }

    const HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn only_the_names_the_node_writes_are_recognised() {
        assert!(matches!(StoredFile::of(HASH), StoredFile::Attachment(_)));
        assert_eq!(StoredFile::of(&HASH.to_uppercase()), StoredFile::Other);
        assert_eq!(StoredFile::of(&HASH[1..]), StoredFile::Other);
        assert_eq!(StoredFile::of(".upload-0a1b"), StoredFile::Upload);
        assert_eq!(StoredFile::of("notes.txt"), StoredFile::Other);
    }

    #[test]
    fn retention_counts_from_the_latest_upload() {
        let day = DAY_MS;
        let thirty = Retention::new(Duration::from_secs(30 * 86_400));
        let uploaded = 1_000 * day;
        assert_eq!(thirty.until(uploaded), uploaded + 30 * day);
        assert!(!thirty.is_expired(uploaded, uploaded));
        assert!(!thirty.is_expired(uploaded, uploaded + 30 * day - 1));
        assert!(thirty.is_expired(uploaded, uploaded + 30 * day));
        // A clock that went backwards does not expire anything.
        assert!(!thirty.is_expired(uploaded, uploaded - day));

        assert!(!thirty.sweeps(HASH, uploaded, uploaded + 29 * day));
        assert!(thirty.sweeps(HASH, uploaded, uploaded + 31 * day));
        // Uploads in progress stay a day, whatever the retention.
        assert!(!thirty.sweeps(".upload-ab", uploaded, uploaded + day - 1));
        assert!(thirty.sweeps(".upload-ab", uploaded, uploaded + day));
        // Files that are not the node's are never removed.
        assert!(!thirty.sweeps("README", 0, u64::MAX));
        // Retention that would overflow keeps forever rather than wrapping.
        assert!(!Retention::new(Duration::MAX).is_expired(uploaded, u64::MAX - 1));
        assert_eq!(thirty.to_string(), "30 days");
    }

    #[test]
    fn a_stored_upload_is_found_renewed_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::open(dir.path(), Duration::from_secs(86_400)).unwrap();
        let data = vec![7u8; 5000];
        let id = id_of(&data);
        let mut upload = store.begin().unwrap();
        upload.write(&data).unwrap();
        let held = upload.commit(&id).unwrap();
        assert_eq!(held.size, 5000);
        let now = held.retained_until_ms - 86_400_000;
        assert_eq!(store.held(&id, now).unwrap(), Some(held));
        let (mut file, _) = store.open_for_fetch(&id, now).unwrap().unwrap();
        assert_eq!(read_piece(&mut file, 1 << 20).unwrap(), data);
        assert!(store.renew(&id).unwrap().is_some());

        // An abandoned upload disappears with its temporary file.
        let abandoned = store.begin().unwrap();
        drop(abandoned);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        // Past retention it is no longer served, and the sweep removes it.
        let later = held.retained_until_ms + 2 * 86_400_000;
        assert_eq!(store.held(&id, later).unwrap(), None);
        assert!(store.open_for_fetch(&id, later).unwrap().is_none());
        assert_eq!(
            store.sweep(later).unwrap(),
            Swept {
                attachments: 1,
                uploads: 0
            }
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_names_what_is_not_held_and_renews_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::open(dir.path(), Duration::from_secs(86_400)).unwrap();
        let data = b"held ciphertext".to_vec();
        let held = id_of(&data);
        let absent = id_of(b"never uploaded");
        let mut upload = store.begin().unwrap();
        upload.write(&data).unwrap();
        let first = upload.commit(&held).unwrap();
        // Backdate the file, so that renewing it visibly moves its retention.
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(dir.path().join(held.to_string()))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let now = first.retained_until_ms - 86_400_000;
        let backdated = store.held(&held, now).unwrap().unwrap();
        assert!(backdated.retained_until_ms < first.retained_until_ms);

        assert_eq!(
            store.missing(&[held, absent], now, false).unwrap(),
            vec![absent]
        );
        assert_eq!(store.held(&held, now).unwrap(), Some(backdated));
        assert_eq!(store.missing(&[held], now, true).unwrap(), vec![]);
        let renewed = store.held(&held, now).unwrap().unwrap();
        assert!(renewed.retained_until_ms > backdated.retained_until_ms);
        // Past its retention it counts as missing, however the file lingers.
        let later = renewed.retained_until_ms + 1;
        assert_eq!(store.missing(&[held], later, false).unwrap(), vec![held]);
    }
}
