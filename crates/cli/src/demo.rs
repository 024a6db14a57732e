//! `valise demo`: a complete local network on loopback (a throwaway ministry CA, the Paris
//! post's node, and diplomats enrolled with one-time codes) that sends cables of every
//! precedence and classification, shows delivery, receipts and acknowledgements, and verifies
//! the node's audit log. Everything runs through the same code as production: the client
//! library, the relay node, the audit verifier.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use valise_audit::note::NoteVerifier;
use valise_audit::verify::{VerifyKeys, verify_dir};
use valise_client::client::Client;
use valise_client::compose::{CableDraft, classification_name};
use valise_client::enrol::{Invitation, enrol};
use valise_client::status::SentCable;
use valise_client::sync::NoProgress;
use valise_crypto::at_rest::KdfParams;
use valise_proto::v1::{Caveat, Classification, Precedence};
use valise_relay::enrolment::Invitation as Code;
use valise_relay::limits::Limits;
use valise_relay::local::{LocalPost, start_post};

use crate::render;

const MINISTRY: &str = "mfa.example";
const POST: &str = "paris";
const PASSPHRASE: &[u8] = b"demo passphrase, never for real use";

/// The demo's diplomats: user, full name, clearance, office.
const STAFF: [(&str, &str, Classification, &str); 4] = [
    (
        "ambassador",
        "Hélène Durand",
        Classification::TopSecret,
        "FRONT",
    ),
    ("alice", "Alice Martin", Classification::Secret, "POL"),
    ("bob", "Bob Okafor", Classification::Secret, "ECON"),
    (
        "carol",
        "Carol Nguyen",
        Classification::Confidential,
        "CONS",
    ),
];

fn step(n: u32, title: &str) {
    println!();
    println!("{n}. {title}");
}

/// Runs the demo in `keep` (kept afterwards) or in a temporary folder.
pub async fn run(keep: Option<&Path>) -> Result<()> {
    let temp;
    let root: PathBuf = match keep {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
                bail!(
                    "{} is not empty; give --keep a new or empty folder",
                    dir.display()
                );
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.to_owned()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary folder")?;
            temp.path().to_owned()
        }
    };
    println!("VALISE DEMO: a post and its diplomats, on this machine only (loopback).");
    println!(
        "This demo runs one post node (Paris) with four diplomats; a hub with several posts is\n\
         set up with valise-relay (docs/operations.md). Everything here is the real system:\n\
         end-to-end encryption, custody receipts, signed delivery receipts, a signed audit log."
    );

    step(1, "Ministry IT sets up a throwaway root and the Paris node");
    let post = start_post(&root.join("node"), MINISTRY, POST, Limits::default())?;
    println!(
        "   root CA for {MINISTRY}, fingerprint {}",
        post.fingerprint
    );
    println!(
        "   node {POST} listening on {} (QUIC, mutual TLS 1.3)",
        post.addr
    );

    step(
        2,
        "Each diplomat's device makes its own keys and redeems a one-time code",
    );
    let mut staff = Vec::new();
    for (user, name, clearance, office) in STAFF {
        let code = post.node.issue_code(Code {
            user: user.into(),
            display_name: name.into(),
            clearance,
            offices: vec![office.into()],
        })?;
        let invitation = Invitation {
            node_addr: post.addr.clone(),
            code,
            ca_fingerprint: post.fingerprint.clone(),
        };
        let client = enrol(
            &root.join("devices").join(user),
            PASSPHRASE,
            KdfParams::default(),
            &invitation,
        )
        .await
        .with_context(|| format!("enrolling {user}"))?;
        println!(
            "   {:18} {:14} {:5}  device {}",
            client.address(),
            classification_name(clearance),
            office,
            &client.device_id().to_string()[..8]
        );
        staff.push(client);
    }
    let [ambassador, alice, bob, carol] = &mut staff[..] else {
        bail!("the demo staff is incomplete");
    };
    for client in [&mut *ambassador, &mut *alice, &mut *bob, &mut *carol] {
        client.sync(&NoProgress).await?;
    }
    let numbers = alice.safety_numbers("bob@paris")?;
    if let Some((_, number)) = numbers.first() {
        println!("   safety number alice <-> bob, to compare out of band: {number}");
    }

    step(
        3,
        "Cables go out: sealed on the sender's device for each recipient device",
    );
    let brief = root.join("northern-border-brief.txt");
    let brief_text: String = (1..=4000)
        .map(|i| format!("Paragraph {i}: assessment of crossings, patrols and supply routes.\n"))
        .collect();
    std::fs::write(&brief, &brief_text)?;
    let routine = send(
        carol,
        draft(
            &["paris"],
            &[],
            Classification::Unclassified,
            Precedence::Routine,
            "CVIS",
            "Consular statistics, week 47",
            vec![],
        ),
    )
    .await?;
    let priority = send(
        bob,
        draft(
            &["alice@paris"],
            &[],
            Classification::Confidential,
            Precedence::Priority,
            "ETRD",
            "Programme of the trade delegation",
            vec![],
        ),
    )
    .await?;
    let immediate = send(
        alice,
        draft(
            &["ambassador@paris"],
            &["bob@paris"],
            Classification::Secret,
            Precedence::Immediate,
            "PREL,PGOV",
            "Demarche on the northern border",
            vec![brief.clone()],
        ),
    )
    .await?;
    println!("   refused before sealing, so nothing leaks:");
    let mut too_high = draft(
        &["alice@paris"],
        &[],
        Classification::TopSecret,
        Precedence::Flash,
        "PREL",
        "Evacuation plan",
        vec![],
    );
    too_high.caveats = vec![Caveat::Nodis];
    match ambassador.compose(&too_high) {
        Err(e) => println!("     {e}"),
        Ok(_) => bail!("a TOP SECRET cable to a SECRET reader was accepted"),
    }
    let mut flash = draft(
        &["alice@paris", "bob@paris"],
        &[],
        Classification::Secret,
        Precedence::Flash,
        "PREL,ASEC",
        "Evacuation: staff assemble at 0600",
        vec![],
    );
    flash.niact = true;
    let flash = send(ambassador, flash).await?;

    step(
        4,
        "Recipients sync: each device stores its cables, then the node drops its copy",
    );
    for client in [&mut *ambassador, &mut *alice, &mut *bob] {
        client.sync(&NoProgress).await?;
        println!(
            "   {:18} holds {} cable(s)",
            client.address(),
            client.inbox()?.len()
        );
    }
    println!("   alice's inbox, most urgent first:");
    for (id, entry) in alice.inbox()? {
        let header = entry.header.clone().unwrap_or_default();
        println!(
            "     {}  {:12} {:14} from {:18} {}",
            &id[..8],
            render::precedence(&header),
            render::marking(&header),
            header.from,
            entry.body.map(|b| b.subject).unwrap_or_default()
        );
    }

    step(5, "Reading and acknowledging");
    let (_, cable, _) = alice.acknowledge(&flash)?;
    println!(
        "   alice acknowledges the FLASH NIACT cable \"{}\"",
        cable.body.map(|b| b.subject).unwrap_or_default()
    );
    bob.mark_read(&flash)?;
    println!("   bob reads it");
    ambassador.mark_read(&immediate)?;
    let saved = ambassador
        .save_attachments(&immediate, &root.join("saved"), &NoProgress)
        .await?;
    for path in &saved {
        let intact = std::fs::read_to_string(path)? == brief_text;
        println!(
            "   the ambassador reads \"Demarche…\" and saves {} ({}, {})",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            render::size(std::fs::metadata(path)?.len()),
            if intact {
                "identical to what alice attached"
            } else {
                "CORRUPTED"
            }
        );
        if !intact {
            bail!("the attachment did not arrive intact");
        }
    }
    alice.mark_read(&priority)?;
    println!("   alice reads bob's PRIORITY cable; nobody has opened carol's ROUTINE one yet");
    // Twice round: the readers' receipts go out, then the senders take them in.
    for _ in 0..2 {
        for client in [&mut *ambassador, &mut *alice, &mut *bob, &mut *carol] {
            client.sync(&NoProgress).await?;
        }
    }

    step(
        6,
        "Senders see each recipient's state, from signed receipts",
    );
    for (client, id) in [
        (&*carol, &routine),
        (&*bob, &priority),
        (&*alice, &immediate),
        (&*ambassador, &flash),
    ] {
        print_status(&client.status(id)?);
    }

    step(7, "The node's audit log is verified offline");
    let LocalPost {
        node,
        audit_dir,
        origin,
        node_key,
        ..
    } = post;
    node.shutdown().await.context("stopping the node")?;
    let keys = VerifyKeys {
        log: NoteVerifier::ed25519(&origin, node_key)?,
        witnesses: Vec::new(),
    };
    let report = verify_dir(&audit_dir, &keys, None)
        .map_err(|e| anyhow::anyhow!("the audit log does not verify: {e}"))?;
    println!(
        "   {} entries, {} signed checkpoints, every root recomputed and every signature checked",
        report.entries, report.checkpoints
    );
    if let Some(latest) = &report.latest {
        println!(
            "   latest checkpoint: size {}, root {}",
            latest.size,
            hex::encode(latest.root)
        );
    }

    println!();
    match keep {
        Some(dir) => println!("Done. The network's files are kept in {}.", dir.display()),
        None => println!("Done. Everything ran in a temporary folder, now removed."),
    }
    Ok(())
}

fn draft(
    to: &[&str],
    info: &[&str],
    classification: Classification,
    precedence: Precedence,
    tags: &str,
    subject: &str,
    attachments: Vec<PathBuf>,
) -> CableDraft {
    CableDraft {
        action: to.iter().map(|s| (*s).to_owned()).collect(),
        info: info.iter().map(|s| (*s).to_owned()).collect(),
        classification,
        precedence,
        niact: false,
        caveats: Vec::new(),
        tags: tags.split(',').map(str::to_owned).collect(),
        subject: subject.into(),
        text: format!("{subject}.\n\nText of the cable."),
        attachments,
    }
}

async fn send(client: &mut Client, draft: CableDraft) -> Result<String> {
    let id = client.compose(&draft)?;
    let report = client.sync(&NoProgress).await?;
    let state = if report.sent.contains(&id) {
        "in the node's custody"
    } else {
        "queued"
    };
    let header = client.status(&id)?.header.unwrap_or_default();
    println!(
        "   {:16} {:14} {:18} -> {:28} {}",
        render::precedence(&header),
        render::marking(&header),
        client.address(),
        draft.action.join(","),
        state
    );
    Ok(id)
}

fn print_status(cable: &SentCable) {
    let header = cable.header.clone().unwrap_or_default();
    println!(
        "   {} {} \"{}\"",
        render::precedence(&header),
        render::marking(&header),
        cable
            .body
            .as_ref()
            .map(|b| b.subject.as_str())
            .unwrap_or("")
    );
    for r in &cable.recipients {
        println!("     {:20} {}", r.address, r.state().as_str());
    }
}
