//! Attachments on the device: encrypting a file into a ciphertext file ready for upload, and
//! checking and decrypting a fetched ciphertext into the folder the diplomat chose. Both go
//! file to file in 16 KiB chunks, so memory stays bounded whatever the size.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

use valise_crypto::attachment::{self, AttachmentKey};
use valise_proto::v1::AttachmentMeta;

use crate::error::ClientError;
use crate::sync::Progress;

/// Ciphertexts waiting to be uploaded, named by their SHA-256.
pub const OUTGOING_DIR: &str = "outgoing";
/// Ciphertexts being fetched.
pub const INCOMING_DIR: &str = "incoming";

/// What the stream is bound to: this cable, this position.
fn context(cable_id: &[u8], index: usize) -> Vec<u8> {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    [
        b"valise/attachment/v1/".as_slice(),
        cable_id,
        &index.to_be_bytes(),
    ]
    .concat()
}

fn fail(name: &str, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Attachment {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

/// A media type from the file's extension; the reader decides what to trust.
fn media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Opens every attachment of a draft, so a missing or unreadable file is reported before
/// anything is sealed.
pub fn check_readable(paths: &[PathBuf]) -> Result<(), ClientError> {
    for path in paths {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| {
            fail(
                &name,
                format!("cannot be read ({e}); check the path. Nothing was sent"),
            )
        })?;
        if !meta.is_file() {
            return Err(fail(&name, "is not a file; nothing was sent"));
        }
        File::open(path).map_err(|e| fail(&name, format!("cannot be opened ({e})")))?;
    }
    Ok(())
}

/// Encrypts the file at `path` as attachment `index` of `cable_id` into `outgoing`, and
/// returns its metadata (with its key) and the ciphertext's path.
pub fn seal_file(
    path: &Path,
    cable_id: &[u8],
    index: usize,
    outgoing: &Path,
    progress: &dyn Progress,
) -> Result<(AttachmentMeta, PathBuf), ClientError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into());
    let shown = path.display().to_string();
    let input = File::open(path).map_err(|e| fail(&shown, format!("cannot be read ({e})")))?;
    let total = input.metadata().map(|m| m.len()).unwrap_or(0);
    progress.start(
        &format!("sealing {}", crate::text::single_line(&name)),
        total,
    );
    std::fs::create_dir_all(outgoing).map_err(|e| fail(&shown, e))?;
    let temp = outgoing.join(format!("{}-{index}.part", hex::encode(cable_id)));
    let key = AttachmentKey::generate().map_err(|e| fail(&shown, e))?;
    let encrypted = (|| {
        let mut out = BufWriter::new(File::create(&temp)?);
        let encrypted = attachment::encrypt(
            &key,
            &context(cable_id, index),
            BufReader::new(Counting {
                inner: input,
                done: 0,
                progress,
            }),
            &mut out,
        )?;
        out.into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .sync_all()?;
        Ok::<_, attachment::StreamError>(encrypted)
    })();
    progress.finish();
    let encrypted = match encrypted {
        Ok(e) => e,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(fail(&shown, e));
        }
    };
    let stored = outgoing.join(hex::encode(encrypted.ciphertext_sha256));
    std::fs::rename(&temp, &stored).map_err(|e| fail(&shown, e))?;
    Ok((
        AttachmentMeta {
            name,
            media_type: media_type(path).into(),
            size: encrypted.plaintext_len,
            key: key.as_bytes().to_vec(),
            ciphertext_sha256: encrypted.ciphertext_sha256.to_vec(),
        },
        stored,
    ))
}

/// A reader that reports how much of the file has been read, for a progress bar.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done = self.done.saturating_add(n as u64);
        self.progress.advance(self.done);
        Ok(n)
    }
}

/// A file name safe to create in the chosen folder: the last path component only, without
/// control characters, never `.` or `..`, never hidden.
pub fn safe_name(name: &str, index: usize) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| crate::text::is_single_line_safe(&c.to_string()))
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_owned();
    if cleaned.is_empty() {
        format!("attachment-{}", index + 1)
    } else {
        shorten(&cleaned)
    }
}

/// Longest file name saved, in bytes: file systems allow 255, and a name may gain ` (99)`
/// and the `.…part` of its temporary file.
const MAX_NAME_BYTES: usize = 200;

/// Cuts a long name to [`MAX_NAME_BYTES`] at a character boundary, keeping its extension.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => (stem, Some(ext)),
        _ => (name, None),
    };
    let room = MAX_NAME_BYTES - ext.map_or(0, |e| e.len() + 1) - '…'.len_utf8();
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    match ext {
        Some(ext) => format!("{}….{ext}", &stem[..cut]),
        None => format!("{}…", &stem[..cut]),
    }
}

/// Checks the fetched ciphertext at `ciphertext` against the sender's digest, decrypts it into
/// `dest_dir` under a safe name that does not overwrite anything, and returns that path. On any
/// error nothing is left behind.
pub fn open_file(
    meta: &AttachmentMeta,
    cable_id: &[u8],
    index: usize,
    ciphertext: &Path,
    dest_dir: &Path,
) -> Result<PathBuf, ClientError> {
    let name = safe_name(&meta.name, index);
    let digest = sha256_file(ciphertext).map_err(|e| fail(&name, e))?;
    if digest.as_slice() != meta.ciphertext_sha256.as_slice() {
        return Err(fail(
            &name,
            "the fetched bytes do not match the sender's digest; it was altered in transit or \
             storage. Fetch it again, or ask the sender to resend",
        ));
    }
    let key = AttachmentKey::from_slice(&meta.key)
        .ok_or_else(|| fail(&name, "the cable carries a malformed attachment key"))?;
    std::fs::create_dir_all(dest_dir).map_err(|e| fail(&name, e))?;
    let temp = dest_dir.join(format!(".{name}.part"));
    let result = (|| {
        let input = BufReader::new(File::open(ciphertext)?);
        let mut out = BufWriter::new(File::create(&temp)?);
        let len = attachment::decrypt(&key, &context(cable_id, index), input, &mut out)?;
        out.into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .sync_all()?;
        Ok::<_, attachment::StreamError>(len)
    })();
    match result {
        Ok(len) if len == meta.size => {
            // Saved before (a retry after another attachment failed): the same file, not a
            // second copy named "(2)".
            if let Some(same) = saved_before(dest_dir, &name, &temp) {
                let _ = std::fs::remove_file(&temp);
                return Ok(same);
            }
            let dest = unused_path(dest_dir, &name);
            std::fs::rename(&temp, &dest).map_err(|e| fail(&name, e))?;
            Ok(dest)
        }
        Ok(len) => {
            let _ = std::fs::remove_file(&temp);
            Err(fail(
                &name,
                format!("decrypted to {len} bytes, not the {} announced", meta.size),
            ))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(fail(&name, e))
        }
    }
}

/// An existing `dir/name` or `dir/name (n)` with the same bytes as `fresh`.
fn saved_before(dir: &Path, name: &str, fresh: &Path) -> Option<PathBuf> {
    let len = std::fs::metadata(fresh).ok()?.len();
    let digest = sha256_file(fresh).ok()?;
    std::iter::once(dir.join(name))
        .chain((2..100).map(|n| dir.join(format!("{name} ({n})"))))
        .take_while(|p| p.exists())
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.len() == len)
                && sha256_file(p).is_ok_and(|d| d == digest)
        })
}

/// `dir/name`, or `dir/name (2)` and so on if that exists.
fn unused_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{name} ({n})")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// SHA-256 of a file, read in pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut input = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sync::NoProgress;

    #[test]
    fn a_sealed_file_opens_intact_and_a_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("report.pdf");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let (meta, ct) =
            seal_file(&src, &[1; 16], 0, &dir.path().join("out"), &NoProgress).unwrap();
        assert_eq!((meta.name.as_str(), meta.size), ("report.pdf", 100_000));
        assert_eq!(meta.media_type, "application/pdf");

        let got = open_file(&meta, &[1; 16], 0, &ct, &dir.path().join("save")).unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), data);

        // Another position in the cable, or another cable: refused, nothing left behind.
        let save2 = dir.path().join("save2");
        assert!(open_file(&meta, &[1; 16], 1, &ct, &save2).is_err());
        assert!(open_file(&meta, &[2; 16], 0, &ct, &save2).is_err());
        let mut bytes = std::fs::read(&ct).unwrap();
        bytes[70_000] ^= 1;
        std::fs::write(&ct, &bytes).unwrap();
        let err = open_file(&meta, &[1; 16], 0, &ct, &save2).unwrap_err();
        assert!(err.to_string().contains("digest"), "{err}");
        assert_eq!(std::fs::read_dir(&save2).unwrap().count(), 0);
    }

    #[test]
    fn names_from_the_sender_cannot_escape_the_folder() {
        assert_eq!(safe_name("../../etc/passwd", 0), "passwd");
        assert_eq!(safe_name("..\\..\\boot.ini", 0), "boot.ini");
        assert_eq!(safe_name("..", 2), "attachment-3");
        assert_eq!(safe_name(".bashrc", 0), "bashrc");
        assert_eq!(safe_name("a\u{0}b\nc.txt", 0), "abc.txt");
        assert_eq!(safe_name("report.pdf", 0), "report.pdf");
        assert_eq!(safe_name("report_\u{202E}fdp.exe", 0), "report_fdp.exe");
    }

    #[test]
    fn a_very_long_name_is_saved_shortened_with_its_extension_and_a_resave_adds_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}.pdf", "Compte rendu de la réunion ".repeat(10));
        assert!(long.len() > 250);
        let short = safe_name(&long, 0);
        assert!(short.len() <= MAX_NAME_BYTES, "{}", short.len());
        assert!(short.ends_with("….pdf"), "{short}");
        assert!(short.starts_with("Compte rendu de la réunion"));

        let src = dir.path().join("brief.pdf");
        std::fs::write(&src, b"the brief").unwrap();
        let (mut meta, ct) =
            seal_file(&src, &[1; 16], 0, &dir.path().join("out"), &NoProgress).unwrap();
        meta.name = long;
        let save = dir.path().join("save");
        let first = open_file(&meta, &[1; 16], 0, &ct, &save).unwrap();
        assert_eq!(std::fs::read(&first).unwrap(), b"the brief");
        let again = open_file(&meta, &[1; 16], 0, &ct, &save).unwrap();
        assert_eq!(
            again, first,
            "saved again after a failed retry: the same file"
        );
        assert_eq!(std::fs::read_dir(&save).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_attachment_is_named_before_anything_is_sealed() {
        let err = check_readable(&[PathBuf::from("/nonexistent/brief.pdf")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/brief.pdf") && text.contains("Nothing was sent"),
            "{text}"
        );
    }
}
