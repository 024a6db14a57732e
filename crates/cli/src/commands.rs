//! Each command: unlock, sync, call the client library, print. No cable logic lives here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use valise_client::client::{Client, Event};
use valise_client::compose::CableDraft;
use valise_client::enrol::{Invitation, enrol};
use valise_client::handle::ClientHandle;
use valise_client::status::DeliveryState;
use valise_client::sync::{SyncReport, wipe_files};
use valise_client::views::{CableView, DirectoryView, InboxRow, SentView};
use valise_client::{evidence, present, text};
use valise_crypto::at_rest::KdfParams;
use valise_proto::v1::{Caveat, Classification, Precedence};

use crate::args::{
    CaveatArg, ClassificationArg, Cli, Command, EvidenceAction, KeysAction, PrecedenceArg,
};
use crate::progress::Bars;
use crate::render;
use crate::unlock;

/// What `valise demo` says in a build without the demonstration network, such as the client
/// ministry IT ships (built with `--no-default-features`).
pub const NO_DEMO: &str = "this build of valise has no demonstration network (it was built \
    without the `demo` feature); build valise with `--features demo` to get one, e.g. \
    `cargo run --release -p valise-cli --features demo -- demo`";

/// `valise demo`: a throwaway network in this process ([`crate::demo`]).
#[cfg(feature = "demo")]
async fn demo(keep: Option<&Path>) -> Result<()> {
    crate::demo::run(keep).await
}

/// `valise demo` in a build without the `demo` feature: says so, and how to get one.
#[cfg(not(feature = "demo"))]
async fn demo(_keep: Option<&Path>) -> Result<()> {
    Err(anyhow::anyhow!(NO_DEMO))
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let dir = unlock::data_dir(cli.data_dir.as_deref())?;
    let pass_file = cli.passphrase_file.as_deref();
    let json = cli.json;
    match cli.command {
        Command::Enroll {
            node,
            code,
            ca_fingerprint,
        } => {
            let pass = unlock::passphrase(pass_file, true)?;
            let invitation = Invitation {
                node_addr: node,
                code,
                ca_fingerprint,
            };
            let client = enrol(&dir, pass.as_bytes(), KdfParams::default(), &invitation).await?;
            if json {
                print_json(&json!({
                    "address": client.address(),
                    "device": client.device_id().to_string(),
                    "node": client.profile().node_addr,
                    "node_name": client.profile().node,
                }));
            } else {
                println!(
                    "Enrolled {} (device {}) at node {}.",
                    client.address(),
                    client.device_id(),
                    client.profile().node
                );
                println!("Compare safety numbers with your correspondents: valise verify ADDRESS");
            }
            Ok(())
        }
        Command::Wipe { emergency } => wipe(&dir, pass_file, emergency, json).await,
        Command::Demo { keep } => demo(keep.as_deref()).await,
        // Needs no store and no node: only the bundle and the fingerprint.
        Command::Evidence {
            action:
                EvidenceAction::Verify {
                    file,
                    ca_fingerprint,
                },
        } => evidence_verify(&file, &ca_fingerprint, json),
        command => {
            let pass = unlock::passphrase(pass_file, false)?;
            let mut client = Client::unlock(&dir, pass.as_bytes())?;
            drop(pass);
            if matches!(command, Command::Watch) {
                return watch(client, json).await;
            }
            let bars = Bars::new(json);
            // Cancelling must not send what it would cancel.
            let syncs_first = !matches!(command, Command::Cancel { .. });
            if command.is_local() {
                client.set_connect_timeout(LOCAL_CONNECT_TIMEOUT);
            }
            let online = if cli.offline || !syncs_first {
                false
            } else {
                let report = client.sync(&bars).await?;
                warn_report(&report);
                report.offline.is_none()
            };
            with_client(&mut client, command, json, &bars, online).await
        }
    }
}

/// How long a command that only reads the store waits for the node before answering from
/// the store: a node that cannot be reached costs it no more than this.
const LOCAL_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

fn evidence_verify(file: &Path, ca_fingerprint: &str, json: bool) -> Result<()> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read the bundle {}", file.display()))?;
    let bundle = evidence::decode(&bytes).map_err(anyhow::Error::msg)?;
    let report = evidence::verify(&bundle, ca_fingerprint);
    if json {
        print_json(&json!({
            "verified": report.verified(),
            "cable": report.cable,
            "sender": report.sender,
            "exported_by": bundle.exported_by,
            "content": report.content.as_ref().map(|(s, t)| json!({"subject": s, "text": t})),
            "checks": report.checks.iter().map(|c| match &c.outcome {
                Ok(detail) => json!({"check": c.what, "ok": true, "detail": detail}),
                Err(why) => json!({"check": c.what, "ok": false, "detail": why}),
            }).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "Evidence for cable {}, exported by {}:",
            report.cable,
            safe(&bundle.exported_by)
        );
        for check in &report.checks {
            match &check.outcome {
                Ok(detail) => println!("  ok      {}: {}", check.what, safe(detail)),
                Err(why) => println!("  FAILED  {}: {}", check.what, safe(why)),
            }
        }
        if let Some((subject, text)) = &report.content {
            println!();
            println!("SUBJECT: {}", safe(subject));
            println!("{}", text::multi_line(text.trim_end()));
        }
    }
    if !report.verified() {
        bail!("the bundle does not verify: see the FAILED checks above");
    }
    Ok(())
}

async fn with_client(
    client: &mut Client,
    command: Command,
    json: bool,
    bars: &Bars,
    online: bool,
) -> Result<()> {
    match command {
        Command::Send {
            to,
            info,
            classification,
            precedence,
            niact,
            caveat,
            tags,
            subject,
            body,
            body_file,
            attach,
        } => {
            let text = match (body, body_file) {
                (Some(text), _) => text,
                (None, Some(file)) => std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read the body file {}", file.display()))?,
                (None, None) => bail!("give --body TEXT or --body-file FILE"),
            };
            let draft = CableDraft {
                action: to,
                info,
                classification: classification_of(classification),
                precedence: precedence_of(precedence),
                niact,
                caveats: caveat.into_iter().map(caveat_of).collect(),
                tags,
                subject,
                text,
                attachments: attach,
                references: Vec::new(),
            };
            send_draft(client, &draft, json, bars, online).await
        }
        Command::Forward {
            id,
            to,
            info,
            comment,
        } => {
            let mut draft = client.forward_draft(&id, to, info)?;
            if let Some(comment) = comment {
                draft.text = format!("{comment}\n\n{}", draft.text);
            }
            send_draft(client, &draft, json, bars, online).await
        }
        other => with_client_rest(client, other, json, bars, online).await,
    }
}

/// Seals and queues a draft, sends it if the node is there, and says what became of it.
async fn send_draft(
    client: &mut Client,
    draft: &CableDraft,
    json: bool,
    bars: &Bars,
    online: bool,
) -> Result<()> {
    {
        {
            let id = client.compose(draft)?;
            // Offline a moment ago: the cable waits in the outbox for the next sync.
            let report = if online {
                client.send_pending(bars).await?
            } else {
                SyncReport::default()
            };
            if let Some((_, reason)) = report.refused.iter().find(|(r, _)| *r == id) {
                bail!("the node refused cable {id}: {}", safe(reason));
            }
            let sent = report.sent.contains(&id);
            if json {
                print_json(&json!({ "id": id, "state": if sent { "custody" } else { "queued" } }));
            } else if sent {
                println!("Cable {id} sent: the node holds it in custody.");
            } else {
                println!(
                    "Cable {id} is queued on this device; it goes out when the node can be reached."
                );
            }
            Ok(())
        }
    }
}

/// Every command but those that compose a cable.
async fn with_client_rest(
    client: &mut Client,
    command: Command,
    json: bool,
    bars: &Bars,
    online: bool,
) -> Result<()> {
    match command {
        Command::Inbox { unread } => {
            let rows: Vec<InboxRow> = client
                .inbox_rows()?
                .into_iter()
                .filter(|r| !unread || !r.read)
                .collect();
            if json {
                let list: Vec<Value> = rows.iter().map(inbox_json).collect();
                print_json(&Value::Array(list));
            } else if rows.is_empty() {
                println!("No cables.");
            } else {
                println!(
                    "  {:10} {:16} {:14} {:18} {:32} RECEIVED",
                    "ID", "PRECEDENCE", "CLASS", "FROM", "SUBJECT"
                );
                for row in &rows {
                    let flag = if row.ack_required {
                        "  ACK REQUIRED"
                    } else {
                        ""
                    };
                    println!(
                        "{} {:10} {:16} {:14} {:18} {} {}{flag}",
                        if row.read { " " } else { "*" },
                        short(&row.id, 10),
                        render::precedence(&row.routing),
                        render::fit(&row.routing.marking, 14),
                        render::fit(&safe(&row.from), 18),
                        render::fit(&safe(&row.subject), 32),
                        render::dtg(row.received_at_ms),
                    );
                }
                println!("(* unread)  Read one with: valise read ID");
            }
            Ok(())
        }
        Command::Read {
            id,
            save_attachments,
        } => {
            let (id, entry, note) = client.mark_read(&id)?;
            let cable = client.view_of(id, &entry);
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            // The read receipt goes out now if the node is there; otherwise at the next sync.
            if online {
                client.send_pending(bars).await?;
            }
            let saved = match &save_attachments {
                Some(dir) => client.save_attachments(&cable.id, dir, bars).await?,
                None => Vec::new(),
            };
            if json {
                let mut value = read_json(&cable);
                value["saved"] = json!(
                    saved
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                );
                print_json(&value);
            } else {
                print_cable(&cable, &saved);
            }
            Ok(())
        }
        Command::Ack { id } => {
            let (id, entry, note) = client.acknowledge(&id)?;
            let cable = client.view_of(id, &entry);
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            let report = if online {
                client.send_pending(bars).await?
            } else {
                SyncReport::default()
            };
            let (id, from) = (&cable.id, safe(&cable.sender.address));
            let state = if online && report.offline.is_none() {
                "sent"
            } else {
                "queued"
            };
            if json {
                print_json(&json!({ "id": id, "acknowledged": true, "receipt": state }));
            } else {
                println!("Acknowledged cable {id}; the acknowledgement to {from} is {state}.");
            }
            Ok(())
        }
        Command::Status { id } => {
            // One cable: an object. Every cable: an array, however many there are.
            let (cables, one) = match id {
                Some(id) => (vec![client.status_view(&id)?], true),
                None => (client.sent_views()?, false),
            };
            if json {
                let list: Vec<Value> = cables.iter().map(status_json).collect();
                match (one, list.first()) {
                    (true, Some(cable)) => print_json(cable),
                    _ => print_json(&Value::Array(list)),
                }
            } else {
                for cable in &cables {
                    print_status(cable);
                }
                if cables.is_empty() {
                    println!("No sent cables.");
                }
            }
            Ok(())
        }
        Command::Directory { query } => {
            let found = client.directory_views(query.as_deref().unwrap_or(""));
            if json {
                let list: Vec<Value> = found.iter().map(directory_json).collect();
                print_json(&Value::Array(list));
            } else if found.is_empty() {
                println!("Nobody in the directory matches.");
            } else {
                for person in &found {
                    print_person(person);
                }
            }
            Ok(())
        }
        Command::Verify { address } => {
            let numbers = client.safety_numbers(&address)?;
            if json {
                let list: Vec<Value> = numbers
                    .iter()
                    .map(|(d, n)| {
                        json!({ "address": d.address(), "device": d.id.to_string(), "safety_number": n.to_string() })
                    })
                    .collect();
                print_json(&Value::Array(list));
            } else {
                for (device, number) in &numbers {
                    println!(
                        "Safety number between you ({}) and {} (device {}):\n",
                        client.address(),
                        device.address(),
                        short(&device.id.to_string(), 8)
                    );
                    for line in number.lines() {
                        println!("    {line}");
                    }
                    println!();
                }
                println!(
                    "Read it to them over a trusted channel (in person, or a call you know is theirs).\nIf the numbers differ, do not send them anything and tell ministry IT."
                );
            }
            Ok(())
        }
        Command::Keys { action } => {
            if let KeysAction::Rotate = action {
                client.rotate_keys().await?;
            }
            let keys = client.receive_keys();
            if json {
                let list: Vec<Value> = keys
                    .iter()
                    .map(|(id, from, until)| {
                        json!({ "id": id, "valid_from": render::rfc3339(*from), "valid_until": render::rfc3339(*until) })
                    })
                    .collect();
                print_json(&Value::Array(list));
            } else {
                if let KeysAction::Rotate = action {
                    println!(
                        "A new receive key is published; older ones are kept 30 days more for cables on their way."
                    );
                }
                for (id, from, until) in &keys {
                    println!(
                        "receive key {}  valid {} to {}",
                        short(id, 16),
                        render::dtg(*from),
                        render::dtg(*until)
                    );
                }
            }
            Ok(())
        }
        Command::Watch => bail!("watch runs on the live client (a bug: please report it)"),
        Command::Cancel { id } => {
            let id = client.cancel(&id)?;
            if json {
                print_json(&json!({ "id": id, "cancelled": true }));
            } else {
                println!("Cable {id} cancelled: it was taken out of the outbox and not sent.");
            }
            Ok(())
        }
        Command::Evidence {
            action:
                EvidenceAction::Export {
                    id,
                    out,
                    disclose_content,
                },
        } => {
            if out.exists() {
                bail!("{} already exists; choose a new file", out.display());
            }
            let bundle = client.evidence(&id, disclose_content)?;
            std::fs::write(&out, prost::Message::encode_to_vec(&bundle))
                .with_context(|| format!("cannot write {}", out.display()))?;
            if json {
                print_json(
                    &json!({ "file": out.display().to_string(), "receipts": bundle.receipts.len(), "custody": bundle.custody.len(), "content_disclosed": !bundle.content_key.is_empty() }),
                );
            } else {
                println!(
                    "Evidence written to {}: the envelope, {} device record(s), {} custody and {} \
                     other receipt(s){}.",
                    out.display(),
                    bundle.devices.len(),
                    bundle.custody.len(),
                    bundle.receipts.len(),
                    if bundle.content_key.is_empty() {
                        ""
                    } else {
                        ", and the content key: whoever holds the file can read the cable"
                    }
                );
            }
            Ok(())
        }
        Command::Evidence {
            action: EvidenceAction::Verify { .. },
        } => bail!("evidence verify needs no device; it reached the wrong handler (a bug)"),
        // Composing commands are served by `with_client`; the others are dispatched in `run`
        // before any store is unlocked.
        Command::Send { .. } | Command::Forward { .. } => {
            bail!("a composing command reached the wrong handler (a bug: please report it)")
        }
        Command::Enroll { .. } | Command::Wipe { .. } | Command::Demo { .. } => {
            bail!("this command does not run on an unlocked device")
        }
    }
}

/// Prints events as they happen while the client syncs in the background of this command.
/// Stays connected through the library's live client until Ctrl-C, printing each event: the
/// node pushes cables and receipts as it takes custody of them.
async fn watch(client: Client, json: bool) -> Result<()> {
    let (handle, mut events) = ClientHandle::spawn(client);
    if !json {
        println!("Watching for cables; Ctrl-C to stop.");
    }
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            _ = &mut stop => break,
            event = events.next() => match event {
                Some(event) => event,
                None => break,
            },
        };
        let (kind, detail, id, precedence) = match &event {
            Event::Online { node } => ("online", format!("connected to node {node}"), None, None),
            Event::Offline { reason } => ("offline", reason.clone(), None, None),
            Event::Retrying { in_ms, .. } => (
                "retrying",
                format!("trying the node again in {} s", in_ms.div_ceil(1000)),
                None,
                None,
            ),
            Event::Received { id, precedence } => (
                "received",
                format!("new {} cable {id}", precedence.cable_name()),
                Some(id.clone()),
                Some(precedence.cable_name()),
            ),
            Event::StatusChanged { id } => (
                "status",
                format!("cable {id} changed state"),
                Some(id.clone()),
                None,
            ),
            Event::Refused { id, reason } => (
                "refused",
                format!("the node refused cable {id}: {reason}"),
                Some(id.clone()),
                None,
            ),
            Event::DeliveryRefused { reason } => (
                "rejected",
                format!("refused a delivery: {reason}"),
                None,
                None,
            ),
            Event::Reload { missed } => (
                "reload",
                format!("{missed} events were missed; run `valise inbox` and `valise status`"),
                None,
                None,
            ),
            _ => continue,
        };
        if json {
            let mut line = json!({ "event": kind, "detail": detail });
            if let Some(id) = id {
                line["id"] = json!(id);
            }
            if let Some(precedence) = precedence {
                line["precedence"] = json!(precedence);
            }
            println!("{line}");
        } else {
            println!("{kind:9} {}", safe(&detail));
        }
    }
    handle.lock().await;
    Ok(())
}

async fn wipe(dir: &Path, pass_file: Option<&Path>, emergency: bool, json: bool) -> Result<()> {
    if !emergency {
        bail!("wipe destroys every key and cable on this device; add --emergency to confirm");
    }
    // Under duress there may be no passphrase: then erase without telling the node.
    let unlocked = match unlock::given(pass_file)? {
        Some(pass) => Client::unlock(dir, pass.as_bytes()).ok(),
        None => None,
    };
    let (erased, notified) = match unlocked {
        Some(client) => (true, client.wipe_emergency().await?),
        None => (
            wipe_files(dir)?,
            Err("not unlocked, so the node could not be told; ask ministry IT to revoke this device".into()),
        ),
    };
    if json {
        print_json(&json!({
            "erased": erased,
            "node_notified": notified.is_ok(),
            "note": notified.as_ref().err(),
        }));
    } else {
        println!(
            "{}",
            if erased {
                "Erased: the storage key first, then every key and cable on this device."
            } else {
                "There was no Valise store here; any leftover files were removed."
            }
        );
        match notified {
            Ok(()) => println!("The node was told and has revoked this device."),
            Err(why) => println!("The node was not told: {why}"),
        }
    }
    Ok(())
}

fn warn_report(report: &SyncReport) {
    if let Some(reason) = &report.offline {
        eprintln!("warning: {reason}; showing what is stored on this device");
    }
    for (id, reason) in &report.refused {
        eprintln!("warning: the node refused cable {id}: {}", safe(reason));
    }
    for rejected in &report.rejected {
        eprintln!("warning: refused a delivery: {}", safe(rejected));
    }
}

fn print_json(value: &Value) {
    println!("{value}");
}

fn classification_of(c: ClassificationArg) -> Classification {
    match c {
        ClassificationArg::Unclassified => Classification::Unclassified,
        ClassificationArg::Confidential => Classification::Confidential,
        ClassificationArg::Secret => Classification::Secret,
        ClassificationArg::TopSecret => Classification::TopSecret,
    }
}

fn precedence_of(p: PrecedenceArg) -> Precedence {
    match p {
        PrecedenceArg::Routine => Precedence::Routine,
        PrecedenceArg::Priority => Precedence::Priority,
        PrecedenceArg::Immediate => Precedence::Immediate,
        PrecedenceArg::Flash => Precedence::Flash,
    }
}

fn caveat_of(c: CaveatArg) -> Caveat {
    match c {
        CaveatArg::Nodis => Caveat::Nodis,
        CaveatArg::Exdis => Caveat::Exdis,
        CaveatArg::Noforn => Caveat::Noforn,
    }
}

/// Untrusted text on one line, with any escape sequence shown instead of obeyed.
fn safe(text: &str) -> String {
    text::single_line(text)
}

/// The first `n` characters of an id (ids are hex), or all of it when shorter.
fn short(id: &str, n: usize) -> &str {
    id.get(..n).unwrap_or(id)
}

fn inbox_json(row: &InboxRow) -> Value {
    json!({
        "id": row.id,
        "from": row.from,
        "subject": row.subject,
        "precedence": row.routing.precedence.cable_name(),
        "niact": row.routing.niact,
        "classification": row.routing.classification.cable_name(),
        "marking": row.routing.marking,
        "received_at": render::rfc3339(row.received_at_ms),
        "read": row.read,
        "ack_required": row.ack_required,
        "acknowledged": row.acknowledged,
    })
}

fn read_json(cable: &CableView) -> Value {
    let routing = &cable.routing;
    json!({
        "id": cable.id,
        "from": cable.sender.address,
        "to": routing.to,
        "info": routing.info,
        "subject": cable.subject,
        "body": cable.text,
        "tags": cable.tags,
        "verified": cable.sender.device.is_some(),
        "sender_device": cable.sender.device.map(|d| d.to_string()),
        "sender_revoked": cable.sender.revoked,
        "classification": routing.classification.cable_name(),
        "marking": routing.marking,
        "precedence": routing.precedence.cable_name(),
        "niact": routing.niact,
        "created_at": render::rfc3339(routing.created_at_ms),
        "received_at": render::rfc3339(cable.received_at_ms),
        "ack_required": cable.ack_required,
        "acknowledged": cable.acknowledged,
        "attachments": cable.attachments.iter().map(|a| json!({
            "name": a.name, "media_type": a.media_type, "size": a.size,
        })).collect::<Vec<_>>(),
    })
}

fn print_cable(cable: &CableView, saved: &[PathBuf]) {
    let routing = &cable.routing;
    let id = cable.id.as_str();
    println!("{}", render::banner(&routing.marking));
    println!("{}", render::precedence(routing));
    println!("DTG:     {}", render::dtg(routing.created_at_ms));
    let verified = match (&cable.sender.device, cable.sender.revoked) {
        (Some(d), false) => format!("signature verified, device {}", short(&d.to_string(), 8)),
        (Some(d), true) => format!(
            "signature verified, device {} (since REVOKED)",
            short(&d.to_string(), 8)
        ),
        (None, _) => "sender not in the directory".into(),
    };
    println!("FROM:    {}  ({verified})", safe(&cable.sender.address));
    println!("TO:      {}", safe(&routing.to.join(", ")));
    if !routing.info.is_empty() {
        println!("INFO:    {}", safe(&routing.info.join(", ")));
    }
    if !cable.tags.is_empty() {
        println!("TAGS:    {}", safe(&cable.tags.join(", ")));
    }
    println!("SUBJECT: {}", safe(&cable.subject));
    println!("ID:      {id}");
    println!();
    println!("{}", text::multi_line(cable.text.trim_end()));
    if !cable.attachments.is_empty() {
        println!();
        println!("ATTACHMENTS:");
        for a in &cable.attachments {
            println!(
                "  {}. {} ({}, {})",
                a.index + 1,
                safe(&a.name),
                safe(&a.media_type),
                render::size(a.size)
            );
        }
        for path in saved {
            println!("  saved: {}", path.display());
        }
        if saved.is_empty() {
            println!(
                "  (save them with: valise read {} --save-attachments DIR)",
                short(id, 10)
            );
        }
    }
    if cable.ack_required {
        println!();
        println!(">>> ACKNOWLEDGEMENT REQUIRED: valise ack {}", short(id, 10));
    }
    println!("{}", render::banner(&routing.marking));
}

fn status_json(cable: &SentView) -> Value {
    json!({
        "id": cable.id,
        "subject": cable.subject,
        "precedence": cable.routing.precedence.cable_name(),
        "classification": cable.routing.classification.cable_name(),
        "created_at": render::rfc3339(cable.created_at_ms),
        "refused": cable.refused,
        "cancelled": cable.cancelled,
        "ack_overdue": cable.ack_overdue,
        "recipients": cable.recipients.iter().map(|r| json!({
            "address": r.address,
            "device": r.device,
            "state": r.state.as_str(),
            "updated_at": render::rfc3339(r.updated_at_ms),
            "action": r.action,
            "objective": r.timeliness.as_str(),
        })).collect::<Vec<_>>(),
    })
}

fn print_status(cable: &SentView) {
    println!(
        "{}  {}  {}  {}",
        cable.id,
        render::precedence(&cable.routing),
        cable.routing.marking,
        safe(&cable.subject)
    );
    if let Some(why) = &cable.refused {
        println!("  REFUSED by the node, not sent to anyone: {}", safe(why));
    }
    if cable.cancelled {
        println!("  CANCELLED on this device before the node took it: not sent to anyone");
    }
    for r in &cable.recipients {
        let marks: Vec<&str> = [
            DeliveryState::Custody,
            DeliveryState::Delivered,
            DeliveryState::Read,
            DeliveryState::Acknowledged,
        ]
        .iter()
        .map(|s| if r.state >= *s { s.as_str() } else { "-" })
        .collect();
        let objective = if cable.refused.is_none() && !cable.cancelled {
            present::timeliness(r.timeliness)
        } else {
            String::new()
        };
        println!(
            "  {:20} device {}  {:13} [{}]  {}  {objective}",
            safe(&r.address),
            short(&r.device, 8),
            r.state.as_str().to_uppercase(),
            marks.join(" > "),
            render::dtg(r.updated_at_ms)
        );
    }
    if !cable.ack_overdue.is_empty() {
        println!(
            "  ACK OVERDUE: not acknowledged within the objective by {}",
            safe(&cable.ack_overdue.join(", "))
        );
    }
}

fn directory_json(person: &DirectoryView) -> Value {
    json!({
        "address": person.address,
        "name": person.name,
        "offices": person.offices,
        "clearance": person.clearance.cable_name(),
        "device": person.device.to_string(),
        "revoked": person.revoked_at_ms.is_some(),
        "revoked_at": person.revoked_at_ms.map(render::rfc3339),
    })
}

fn print_person(person: &DirectoryView) {
    println!(
        "{:20} {:24} {:13} {:16} device {}{}",
        person.address,
        render::fit(&person.name, 24),
        person.clearance.cable_name(),
        person.offices.join(","),
        short(&person.device.to_string(), 8),
        match person.revoked_at_ms {
            Some(at) => format!("  REVOKED on {}", render::dtg(at)),
            None => String::new(),
        }
    );
}

#[cfg(test)]
mod tests {
    use super::NO_DEMO;

    #[test]
    fn a_build_without_the_demo_says_so_and_how_to_get_one() {
        assert!(
            NO_DEMO.contains("has no demonstration network"),
            "{NO_DEMO}"
        );
        assert!(NO_DEMO.contains("--features demo"), "{NO_DEMO}");
    }
}
