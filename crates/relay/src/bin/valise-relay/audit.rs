//! `audit verify|export|prove|show|key`: the node's audit log for its operators and auditors,
//! through the running node or from a stopped node's store; `verify --export` and
//! `verify --proof` on an auditor's machine with only the files and the keys.

use std::path::Path;

use anyhow::{Context, Result, bail};
use prost::Message;
use time::OffsetDateTime;
use valise_audit::VerifyKeys;
use valise_audit::export::verify_export;
use valise_audit::note::{Checkpoint, NoteVerifier, SignedCheckpoint};
use valise_audit::verify::verify_dir;
use valise_proto::v1::{
    AdminAuditExport, AdminAuditProve, AdminRequest, AdminStatus, AuditEvent, AuditEventKind,
    admin_request, admin_response,
};
use valise_relay::config::Config;
use valise_relay::files::{self, LINKS_DIR, NODE_SIGNING_KEY};

use crate::admin_client::{ask_is_running, ask_running_node_for};
use crate::clock::now_ms;
use crate::stopped::open_stopped_log;

/// `audit verify --config`: the whole log, its anchor and what the neighbours cosigned.
pub(crate) fn verify(config_path: &Path, witnesses: &[String]) -> Result<()> {
    let config = Config::load(config_path)?;
    let keys = audit_keys(&config, witnesses)?;
    let trusted = trusted_checkpoint(&config, &keys)?;
    let against = trusted.as_ref().map(|(_, source)| source.clone());
    let trusted = trusted.map(|(checkpoint, _)| checkpoint);
    let export_file = std::env::temp_dir().join(format!(
        "valise-audit-{}-{}.export",
        std::process::id(),
        now_ms()
    ));
    let report = if config.admin_socket().exists() && ask_is_running(&config) {
        audit_export(&config, &export_file)?;
        let result = std::fs::File::open(&export_file)
            .map_err(anyhow::Error::from)
            .and_then(|f| Ok(verify_export(f, &keys, trusted)?));
        let _ = std::fs::remove_file(&export_file);
        result
    } else {
        verify_dir(&config.node.data_dir.join("audit"), &keys, trusted).map_err(Into::into)
    };
    let report = match (report, against) {
        (Ok(report), _) => report,
        (Err(e), Some(against)) => {
            return Err(e.context(format!(
                "the audit log of {} does not verify against {against}",
                config.node.name
            )));
        }
        (Err(e), None) => return Err(e),
    };
    println!(
        "audit log of {} verifies: {} entries, {} checkpoints",
        config.node.name, report.entries, report.checkpoints
    );
    if let Some(latest) = &report.latest {
        println!(
            "latest checkpoint: size {}, root {}",
            latest.size,
            hex::encode(latest.root)
        );
    }
    for (witness, count) in &report.cosignatures {
        println!("cosignatures by {witness}: {count} checked");
    }
    // What the files cannot show: a data folder restored whole, with its anchor and the
    // witnessed notes, extends them all. Only the neighbours, which keep what they cosigned,
    // can tell; a running node hears it from them on every link.
    let request = AdminRequest {
        request: Some(admin_request::Request::Status(AdminStatus {})),
    };
    match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::Status(s) => Some(s),
        _ => None,
    })? {
        Some(status) => {
            let rolled_back: Vec<&String> = status
                .alarms
                .iter()
                .filter(|a| a.starts_with("ROLLED BACK"))
                .collect();
            if let Some(alarm) = rolled_back.first() {
                bail!("the log verifies on its own, but its neighbours say otherwise: {alarm}");
            }
            println!(
                "neighbours: none reports a larger or different log ({} link(s) up)",
                status.links.iter().filter(|l| l.connected).count()
            );
        }
        None => println!(
            "note: the node is stopped, so its neighbours were not asked. A data folder \
             restored whole with its anchor is caught only by them: start the node and run \
             `valise-relay status`, or ask the hub's operator for the size it last cosigned"
        ),
    }
    Ok(())
}

fn auditor_keys(key: &str, witnesses: &[String]) -> Result<VerifyKeys> {
    let log = NoteVerifier::from_vkey(key.trim()).with_context(|| {
        format!("--key {key:?} is not a verifier key; copy it from `valise-relay audit key`")
    })?;
    let witnesses = witnesses
        .iter()
        .map(|w| {
            NoteVerifier::from_vkey(w.trim())
                .with_context(|| format!("--witness {w:?} is not a verifier key"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(VerifyKeys { log, witnesses })
}

/// An export checked on a machine without the node: only the file and the keys.
pub(crate) fn verify_export_file(path: &Path, key: &str, witnesses: &[String]) -> Result<()> {
    let keys = auditor_keys(key, witnesses)?;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the export {}", path.display()))?;
    let report = verify_export(file, &keys, None)
        .with_context(|| format!("the export {} does not verify", path.display()))?;
    println!(
        "export of {} verifies: {} entries, {} checkpoints",
        keys.log.name(),
        report.entries,
        report.checkpoints
    );
    if let Some(latest) = &report.latest {
        println!(
            "latest checkpoint: size {}, root {}",
            latest.size,
            hex::encode(latest.root)
        );
    }
    for (witness, count) in &report.cosignatures {
        println!("cosignatures by {witness}: {count} checked");
    }
    for witness in &keys.witnesses {
        if !report.cosignatures.iter().any(|(w, _)| w == witness.name()) {
            bail!(
                "no checkpoint in the export carries a cosignature by {}; ask for an export \
                 made after that witness linked",
                witness.name()
            );
        }
    }
    Ok(())
}

/// A proof bundle checked on a machine without the node.
pub(crate) fn verify_proof_file(path: &Path, key: &str, witnesses: &[String]) -> Result<()> {
    let keys = auditor_keys(key, witnesses)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the proof bundle {}", path.display()))?;
    let verified = valise_audit::bundle::verify_bundle(&text, &keys)
        .with_context(|| format!("the proof bundle {} does not verify", path.display()))?;
    println!(
        "entry {} is in the log of {} at checkpoint size {}, signed{}",
        verified.index,
        keys.log.name(),
        verified.checkpoint.size,
        if keys.witnesses.is_empty() {
            String::new()
        } else {
            format!(
                " and cosigned by {}",
                keys.witnesses
                    .iter()
                    .map(NoteVerifier::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    println!("{}", describe_event(verified.index, &verified.event));
    if !verified.cosigners.is_empty() {
        println!("cosigned by: {}", verified.cosigners.join(", "));
    }
    Ok(())
}

/// `audit key`: the log's verifier key and the node's witness key.
pub(crate) fn key(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let log = NoteVerifier::ed25519(&config.audit_origin(), *signing.public())?;
    let witness = NoteVerifier::cosigner(
        &valise_audit::log::witness_name(&config.node.ministry, &config.node.name),
        *signing.public(),
    )?;
    println!("log key:     {}", log.to_vkey());
    println!("witness key: {}", witness.to_vkey());
    Ok(())
}

/// The checkpoint the log must extend, and where it came from: the largest of the node's
/// anchor and the checkpoints its neighbours cosigned (kept outside the audit store, so that
/// an audit store and anchor restored from an older copy are still caught).
fn trusted_checkpoint(config: &Config, keys: &VerifyKeys) -> Result<Option<(Checkpoint, String)>> {
    let mut candidates = Vec::new();
    let anchor = config.audit_anchor();
    match std::fs::read_to_string(&anchor) {
        Ok(text) => {
            let signed = SignedCheckpoint::verify(&text, &keys.log).with_context(|| {
                format!("the audit anchor {} does not verify", anchor.display())
            })?;
            candidates.push((
                signed.checkpoint,
                format!("the anchor {}", anchor.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read the audit anchor {}: {e}", anchor.display()),
    }
    let links = config.node.data_dir.join(LINKS_DIR);
    let kept = valise_relay::witnessed::read_all(&links).with_context(|| {
        format!(
            "cannot read the witnessed checkpoints in {}",
            links.join(valise_relay::witnessed::WITNESSED_DIR).display()
        )
    })?;
    for witnessed in kept {
        let path = witnessed.path.display();
        let signed = SignedCheckpoint::verify(&witnessed.note, &keys.log).with_context(|| {
            format!("the checkpoint kept in {path} is not signed by this node's log key")
        })?;
        let witness = valise_audit::log::witness_name(&config.node.ministry, &witnessed.neighbour);
        if let Some(verifier) = keys.witnesses.iter().find(|w| w.name() == witness) {
            verifier.verify(&signed.note).with_context(|| {
                format!(
                    "the cosignature of {} in {path} does not verify",
                    witnessed.neighbour
                )
            })?;
        }
        candidates.push((
            signed.checkpoint,
            format!("the checkpoint {} cosigned ({path})", witnessed.neighbour),
        ));
    }
    // The largest is the strongest claim; on a tie, a neighbour's cosignature beats the anchor.
    Ok(candidates
        .into_iter()
        .max_by_key(|(checkpoint, _)| checkpoint.size))
}

/// `audit prove`: the self-contained inclusion proof of one entry.
pub(crate) fn prove(config_path: &Path, index: u64) -> Result<()> {
    let config = Config::load(config_path)?;
    let request = AdminRequest {
        request: Some(admin_request::Request::AuditProve(AdminAuditProve {
            index,
        })),
    };
    let bundle = match ask_running_node_for(&config, request, |r| match r {
        admin_response::Response::ProofBundle(b) => Some(b),
        _ => None,
    })? {
        Some(answer) => answer,
        None => {
            let log = open_stopped_log(&config)?;
            let bundle = valise_audit::bundle::prove(&log, index)?;
            log.close()?;
            bundle
        }
    };
    print!("{bundle}");
    Ok(())
}

/// `audit show`: the latest entries, one line each.
pub(crate) fn show(config_path: &Path, last: usize) -> Result<()> {
    let config = Config::load(config_path)?;
    let export_file = std::env::temp_dir().join(format!(
        "valise-audit-{}-{}.export",
        std::process::id(),
        now_ms()
    ));
    audit_export(&config, &export_file)?;
    let mut tail = std::collections::VecDeque::with_capacity(last);
    let file = std::fs::File::open(&export_file)?;
    let result = valise_audit::export::for_each_entry(file, |index, bytes| {
        if tail.len() == last {
            tail.pop_front();
        }
        tail.push_back((index, AuditEvent::decode(bytes).ok()));
    });
    let _ = std::fs::remove_file(&export_file);
    result?;
    for (index, event) in tail {
        match event {
            Some(e) => println!("{}", describe_event(index, &e)),
            None => println!("{index:>8}  (not an audit event: run `audit verify`)"),
        }
    }
    Ok(())
}

/// One audit entry as an operator reads it: index, UTC time, what, outcome, who, from where,
/// why, and the objects it names.
fn describe_event(index: u64, e: &AuditEvent) -> String {
    let when = OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.time_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{} ms", e.time_ms));
    let kind = AuditEventKind::try_from(e.kind).unwrap_or(AuditEventKind::Unspecified);
    let outcome = valise_proto::v1::Outcome::try_from(e.outcome)
        .unwrap_or(valise_proto::v1::Outcome::Unspecified);
    let actor = valise_proto::v1::ActorKind::try_from(e.actor_kind)
        .map_or("?", |k| k.as_str_name())
        .trim_start_matches("ACTOR_KIND_");
    let objects = e
        .objects
        .iter()
        // An attachment is known by its hash alone.
        .map(|o| match o.id.is_empty() {
            false => format!("{}:{}", o.kind, hex::encode(&o.id)),
            true => format!("{}:sha256:{}", o.kind, hex::encode(&o.sha256)),
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{index:>8}  {when}  {kind:?}  {outcome:?}  {} {}{}  {}  {objects}",
        words(actor),
        e.actor_id,
        // The address or neighbour the request came from, or the cable went to.
        if e.source.is_empty() {
            String::new()
        } else {
            format!(" via {}", e.source)
        },
        e.reason,
    )
}

/// `CUSTODY_TAKEN` as `custody taken`.
fn words(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', " ")
}

/// The key that verifies this node's audit checkpoints.
fn audit_keys(config: &Config, witnesses: &[String]) -> Result<VerifyKeys> {
    let signing = files::read_key(&config.key_file(NODE_SIGNING_KEY))?;
    let log = NoteVerifier::ed25519(&config.audit_origin(), *signing.public())?;
    // The neighbours this node has linked to witness it; their keys were recorded at first
    // contact. Keys given on the command line are added.
    let keys_file = config
        .node
        .data_dir
        .join(LINKS_DIR)
        .join(valise_relay::node::WITNESS_KEYS);
    let recorded = match std::fs::read_to_string(&keys_file) {
        Ok(text) => text,
        // A node that never linked to another has no witnesses.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!(
            "cannot read the witness keys {}: {e}; check its permissions",
            keys_file.display()
        ),
    };
    let mut witnesses = witnesses
        .iter()
        .map(|w| NoteVerifier::from_vkey(w).with_context(|| format!("bad witness key {w:?}")))
        .collect::<Result<Vec<_>>>()?;
    for line in recorded.lines().filter(|l| !l.trim().is_empty()) {
        let verifier = NoteVerifier::from_vkey(line.trim()).with_context(|| {
            format!("the recorded witness key {line:?} is malformed; remove that line")
        })?;
        if !witnesses.iter().any(|w| w.to_vkey() == verifier.to_vkey()) {
            witnesses.push(verifier);
        }
    }
    Ok(VerifyKeys { log, witnesses })
}

/// `audit export`: the log in the versioned export format, for an auditor.
pub(crate) fn export(config_path: &Path, out: &Path) -> Result<()> {
    let entries = audit_export(&Config::load(config_path)?, out)?;
    println!("exported {entries} entries to {}", out.display());
    Ok(())
}

/// Writes the audit export to `out`: through the running node, or from the stopped node's log.
fn audit_export(config: &Config, out: &Path) -> Result<u64> {
    if out.exists() {
        bail!("{} already exists; choose a new file", out.display());
    }
    let absolute = std::path::absolute(out)?;
    let request = AdminRequest {
        request: Some(admin_request::Request::AuditExport(AdminAuditExport {
            path: absolute.to_string_lossy().into_owned(),
        })),
    };
    match ask_running_node_for(config, request, |r| match r {
        admin_response::Response::ExportedEntries(n) => Some(n),
        _ => None,
    })? {
        Some(n) => Ok(n),
        None => {
            let log = open_stopped_log(config)?;
            let file = std::fs::File::create_new(out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let n = valise_audit::export::export(&log, file)?;
            log.close()?;
            Ok(n)
        }
    }
}
