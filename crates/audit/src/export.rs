//! The export format: a versioned stream a node hands to an auditor, verified with O(log n)
//! memory whatever its size.
//!
//! Format (version 1): a stream of length-delimited protobuf `AuditExportRecord`s (a varint
//! length, then that many bytes). The first is an `AuditExportHeader`; then every entry in
//! index order; each checkpoint note follows the entry that completes its size (a checkpoint of
//! size 0 follows the header).

use std::io::{self, BufRead, BufReader, Read, Write};

use prost::Message;
use valise_proto::v1::{AuditExportHeader, AuditExportRecord, audit_export_record::Record};

use crate::log::{AuditLog, LogError};
use crate::note::Checkpoint;
use crate::verify::{Inconsistency, Report, Verifier, VerifyKeys};

/// The `format` field of every export header.
pub const FORMAT: &str = "valise-audit-export";
/// The export version this build writes and reads.
pub const VERSION: u32 = 1;
/// The largest record accepted; entries and checkpoint notes are far smaller.
const MAX_RECORD: u64 = 16 * 1024 * 1024;

/// Writes the whole log to `out`; returns the number of entries written.
pub fn export(log: &AuditLog, out: impl Write) -> Result<u64, LogError> {
    let size = log.size();
    let io = |e: io::Error| LogError::Store(format!("writing the export failed: {e}"));
    let mut out = io::BufWriter::new(out);
    let header = AuditExportHeader {
        format: FORMAT.into(),
        version: VERSION,
        origin: log.origin().to_owned(),
        size,
        log_key: log.verifier().to_vkey(),
    };
    write_record(&mut out, Record::Header(header)).map_err(io)?;
    let mut checkpoints = log
        .checkpoint_notes()?
        .into_iter()
        .filter(|(s, _)| *s <= size)
        .peekable();
    for index in 0..=size {
        while let Some((_, note)) = checkpoints.next_if(|(s, _)| *s == index) {
            write_record(&mut out, Record::Checkpoint(note)).map_err(io)?;
        }
        if index < size {
            write_record(&mut out, Record::Entry(log.entry(index)?)).map_err(io)?;
        }
    }
    out.flush().map_err(io)?;
    Ok(size)
}

fn write_record(out: &mut impl Write, record: Record) -> io::Result<()> {
    out.write_all(
        &AuditExportRecord {
            record: Some(record),
        }
        .encode_length_delimited_to_vec(),
    )
}

/// Verifies an export against the auditor's keys, and optionally a trusted checkpoint.
pub fn verify_export(
    input: impl Read,
    keys: &VerifyKeys,
    trusted: Option<Checkpoint>,
) -> Result<Report, Inconsistency> {
    let mut input = BufReader::new(input);
    let bad = |what: String| Inconsistency::Unreadable(format!("not a valid audit export: {what}"));
    let header = match read_record(&mut input).map_err(|e| bad(e.to_string()))? {
        Some(Record::Header(h)) => h,
        _ => return Err(bad("it does not start with an export header".into())),
    };
    if header.format != FORMAT {
        return Err(bad(format!("unknown format {:?}", header.format)));
    }
    if header.version != VERSION {
        return Err(bad(format!(
            "export version {} is not supported by this build (reads {VERSION})",
            header.version
        )));
    }
    if header.origin != keys.log.name() {
        return Err(bad(format!(
            "it is log {:?}, not {:?}",
            header.origin,
            keys.log.name()
        )));
    }
    let mut verifier = Verifier::new(keys, trusted);
    while let Some(record) = read_record(&mut input).map_err(|e| bad(e.to_string()))? {
        match record {
            Record::Entry(bytes) => {
                if verifier.size() >= header.size {
                    return Err(Inconsistency::UnrecordedEntry {
                        index: verifier.size(),
                        recorded: header.size,
                    });
                }
                verifier.entry(&bytes)?;
            }
            Record::Checkpoint(note) => {
                let size = checkpoint_size(&note).unwrap_or(u64::MAX);
                if size > verifier.size() && size <= header.size {
                    return Err(bad(format!("checkpoint {size} appears before its entries")));
                }
                verifier.checkpoint(size, &note)?;
            }
            Record::Header(_) => return Err(bad("a second header".into())),
        }
    }
    if verifier.size() < header.size {
        return Err(Inconsistency::MissingEntry {
            index: verifier.size(),
        });
    }
    verifier.finish()
}

/// The size line of a checkpoint note, before its signature is checked.
fn checkpoint_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

/// Reads one length-delimited record; `None` at a clean end of input.
fn read_record(input: &mut impl BufRead) -> Result<Option<Record>, String> {
    let mut len = 0u64;
    for shift in (0..70).step_by(7) {
        let mut byte = [0u8; 1];
        match input.read(&mut byte) {
            Ok(0) if shift == 0 => return Ok(None),
            Ok(0) => return Err("it ends inside a record length".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        len |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        if shift == 63 {
            return Err("a record length is malformed".into());
        }
    }
    if len > MAX_RECORD {
        return Err(format!(
            "a record of {len} bytes exceeds the {MAX_RECORD}-byte limit"
        ));
    }
    let mut buf = vec![0u8; len as usize];
    input
        .read_exact(&mut buf)
        .map_err(|_| "it ends inside a record".to_owned())?;
    let record = AuditExportRecord::decode(buf.as_slice())
        .map_err(|e| format!("a record does not decode: {e}"))?;
    record
        .record
        .map(Some)
        .ok_or_else(|| "an empty record".into())
}

/// Streams the entries of an export, in order, to `each(index, entry bytes)`, without
/// verifying anything (use [`verify_export`] for that).
pub fn for_each_entry(
    input: impl Read,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<u64, Inconsistency> {
    let mut input = BufReader::new(input);
    let bad = |what: String| Inconsistency::Unreadable(format!("not a valid audit export: {what}"));
    let mut index = 0u64;
    while let Some(record) = read_record(&mut input).map_err(bad)? {
        if let Record::Entry(bytes) = record {
            each(index, &bytes);
            index += 1;
        }
    }
    Ok(index)
}
