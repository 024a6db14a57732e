//! `valise demo`: a complete federated network on loopback (a throwaway ministry root, the hub
//! at headquarters, the Paris and Nairobi posts, and diplomats enrolled at each post with
//! one-time codes) that sends cables of every precedence and classification within Paris and
//! across the network to Nairobi and back, shows delivery, receipts and acknowledgements, and
//! verifies every node's audit log with its neighbours' cosignatures. Everything runs through
//! the same code as production: the client library, the relay nodes and their links, the
//! audit verifier.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use valise_audit::note::NoteVerifier;
use valise_audit::verify::{VerifyKeys, verify_dir};
use valise_client::client::Client;
use valise_client::compose::CableDraft;
use valise_client::enrol::{Invitation, enrol};
use valise_client::status::DeliveryState;
use valise_client::sync::NoProgress;
use valise_client::text;
use valise_client::views::SentView;
use valise_crypto::at_rest::KdfParams;
use valise_devnet::local::{LocalFederation, start_network};
use valise_proto::v1::{Caveat, Classification, Precedence};
use valise_relay::enrolment::Invitation as Code;
use valise_relay::limits::Limits;

use crate::render;

const MINISTRY: &str = "mfa.example";
const HUB: &str = "hq";
const POSTS: [&str; 2] = ["paris", "nairobi"];
const PASSPHRASE: &[u8] = b"demo passphrase, never for real use";
/// Longest the demo waits for the network (links, replication, a cable crossing it).
const WAIT: Duration = Duration::from_secs(30);
/// How long it pauses between rounds of syncs while it waits.
const ROUND: Duration = Duration::from_millis(100);

/// The demo's diplomats: post, user, full name, clearance, office.
const STAFF: [(&str, &str, &str, Classification, &str); 6] = [
    (
        "paris",
        "ambassador",
        "Hélène Durand",
        Classification::TopSecret,
        "FRONT",
    ),
    (
        "paris",
        "alice",
        "Alice Martin",
        Classification::Secret,
        "POL",
    ),
    ("paris", "bob", "Bob Okafor", Classification::Secret, "ECON"),
    (
        "paris",
        "carol",
        "Carol Nguyen",
        Classification::Confidential,
        "CONS",
    ),
    (
        "nairobi",
        "ambassador",
        "Wanjiru Kamau",
        Classification::TopSecret,
        "FRONT",
    ),
    (
        "nairobi",
        "david",
        "David Otieno",
        Classification::Secret,
        "POL",
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
    println!("VALISE DEMO: headquarters and two embassies, on this machine only (loopback).");
    println!(
        "This demo runs three relay nodes, the hub at headquarters (hq) and the posts Paris and\n\
         Nairobi, with diplomats at each post. Everything here is the real system: end-to-end\n\
         encryption, custody receipts at every hop, signed delivery receipts, and audit logs\n\
         that the nodes witness for one another."
    );

    step(
        1,
        "Ministry IT sets up a throwaway root, the hub and two posts",
    );
    let network = start_network(
        &root.join("nodes"),
        MINISTRY,
        HUB,
        &POSTS,
        Limits::default(),
    )?;
    println!(
        "   root CA for {MINISTRY}, fingerprint {}",
        network.fingerprint
    );
    for node in network.nodes() {
        let kind = if node.name == HUB { "hub" } else { "post" };
        println!(
            "   node {:8} {kind:4} listening on {} (QUIC, mutual TLS 1.3)",
            node.name, node.addr
        );
    }
    network.wait_linked(WAIT).await?;
    println!("   paris and nairobi dial hq: links up, each end's node key pinned");

    step(
        2,
        "Each diplomat's device makes its own keys and redeems a one-time code at its post",
    );
    let mut staff = Staff(Vec::new());
    for (post, user, name, clearance, office) in STAFF {
        let node = network.post(post)?;
        let code = node.node.issue_code(Code {
            user: user.into(),
            display_name: name.into(),
            clearance,
            offices: vec![office.into()],
            foreign_national: false,
        })?;
        let invitation = Invitation {
            node_addr: node.addr.clone(),
            code,
            ca_fingerprint: network.fingerprint.clone(),
        };
        let client = enrol(
            &root.join("devices").join(format!("{user}@{post}")),
            PASSPHRASE,
            KdfParams::default(),
            &invitation,
        )
        .await
        .with_context(|| format!("enrolling {user}@{post}"))?;
        println!(
            "   {:20} {:14} {:5}  device {}",
            client.address(),
            clearance.cable_name(),
            office,
            &client.device_id().to_string()[..8]
        );
        staff.0.push(client);
    }
    network.wait_replicated(WAIT).await?;
    let versions: Vec<String> = network
        .nodes()
        .map(|n| {
            let version = n.node.update_directory(|d| d.view().version());
            format!("{} {version}", n.name)
        })
        .collect();
    println!(
        "   each post's enrolments reach every node over the links (directory version: {})",
        versions.join(", ")
    );
    staff.sync_all().await?;
    let numbers = staff.get("alice@paris")?.safety_numbers("david@nairobi")?;
    if let Some((_, number)) = numbers.first() {
        println!(
            "   safety number alice@paris <-> david@nairobi, to compare out of band: {number}"
        );
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
        staff.get("carol@paris")?,
        draft(
            &["nairobi"],
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
        staff.get("bob@paris")?,
        draft(
            &["david@nairobi"],
            &[],
            Classification::Confidential,
            Precedence::Priority,
            "ETRD",
            "Programme of the trade delegation",
            vec![],
        ),
    )
    .await?;
    let border = send(
        staff.get("alice@paris")?,
        draft(
            &["david@nairobi"],
            &["ambassador@nairobi"],
            Classification::Secret,
            Precedence::Immediate,
            "PREL,PBTS",
            "Border crossings: request for a joint assessment",
            vec![brief.clone()],
        ),
    )
    .await?;
    let demarche = send(
        staff.get("alice@paris")?,
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
    match staff.get("ambassador@paris")?.compose(&too_high) {
        Err(e) => println!("     {e}"),
        Ok(_) => bail!("a TOP SECRET cable to a SECRET reader was accepted"),
    }
    println!("   so the ambassador sends it to the one reader cleared for it:");
    too_high.action = vec!["ambassador@nairobi".into()];
    let top_secret = send(staff.get("ambassador@paris")?, too_high).await?;
    let mut flash = draft(
        &["ambassador@nairobi", "alice@paris"],
        &[],
        Classification::Secret,
        Precedence::Flash,
        "PREL,ASEC",
        "Evacuation of nationals: convoy leaves at 0600",
        vec![],
    );
    flash.niact = true;
    let flash = send(staff.get("ambassador@paris")?, flash).await?;

    step(
        4,
        "Recipients sync: cables for Nairobi cross the hub, custody at every hop",
    );
    let expected = [
        (
            "ambassador@nairobi",
            vec![&routine, &border, &top_secret, &flash],
        ),
        ("david@nairobi", vec![&priority, &border]),
        ("ambassador@paris", vec![&demarche]),
        ("alice@paris", vec![&flash]),
        ("bob@paris", vec![&demarche]),
    ];
    staff
        .sync_until("every cable to reach its recipients", |staff| {
            for (address, ids) in &expected {
                if !staff.holds(address, ids)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
    for (address, _) in &expected {
        println!(
            "   {:20} holds {} cable(s)",
            address,
            staff.find(address)?.inbox_rows()?.len()
        );
    }
    println!("   ambassador@nairobi's inbox, most urgent first:");
    let ambassador = staff.find("ambassador@nairobi")?;
    for row in ambassador.inbox_rows()? {
        println!(
            "     {}  {:12} {:17} from {:18} {}",
            row.id.get(..8).unwrap_or(&row.id),
            render::precedence(&row.routing),
            row.routing.marking,
            row.from,
            text::single_line(&row.subject)
        );
    }

    step(5, "Reading, acknowledging and replying");
    let nairobi = staff.get("ambassador@nairobi")?;
    let (id, entry, _) = nairobi.acknowledge(&flash)?;
    let cable = nairobi.view_of(id, &entry);
    println!(
        "   the ambassador in Nairobi acknowledges the FLASH NIACT cable \"{}\"",
        cable.subject
    );
    staff.get("alice@paris")?.mark_read(&flash)?;
    println!("   alice reads it in Paris");
    staff.get("ambassador@paris")?.mark_read(&demarche)?;
    let paris_copy = root.join("saved-in-paris");
    let saved = staff
        .get("ambassador@paris")?
        .save_attachments(&demarche, &paris_copy, &NoProgress)
        .await?;
    check_saved(
        &saved,
        &brief_text,
        "the ambassador in Paris reads \"Demarche…\" and saves",
    )?;
    let david = staff.get("david@nairobi")?;
    david.mark_read(&priority)?;
    david.mark_read(&border)?;
    let saved = david
        .save_attachments(&border, &root.join("saved-in-nairobi"), &NoProgress)
        .await?;
    check_saved(
        &saved,
        &brief_text,
        "david in Nairobi saves the brief that crossed the hub with alice's request:",
    )?;
    println!("   david reads bob's PRIORITY cable and alice's request, and replies:");
    let reply = send(
        david,
        draft(
            &["alice@paris"],
            &["ambassador@paris"],
            Classification::Secret,
            Precedence::Immediate,
            "PREL,PBTS",
            "RE: Border crossings: Nairobi's assessment",
            vec![],
        ),
    )
    .await?;
    staff
        .sync_until("the reply to reach Paris", |staff| {
            staff.holds("alice@paris", &[&reply])
        })
        .await?;
    staff.get("alice@paris")?.mark_read(&reply)?;
    println!("   alice reads the reply; nobody has opened carol's ROUTINE cable yet");

    step(
        6,
        "Senders see each recipient's state, from signed receipts that cross the network back",
    );
    use DeliveryState::{Acknowledged, Delivered, Read};
    let receipts = [
        (
            "carol@paris",
            &routine,
            vec![("ambassador@nairobi", Delivered)],
        ),
        ("bob@paris", &priority, vec![("david@nairobi", Read)]),
        (
            "alice@paris",
            &border,
            vec![("david@nairobi", Read), ("ambassador@nairobi", Delivered)],
        ),
        (
            "alice@paris",
            &demarche,
            vec![("ambassador@paris", Read), ("bob@paris", Delivered)],
        ),
        (
            "ambassador@paris",
            &top_secret,
            vec![("ambassador@nairobi", Delivered)],
        ),
        (
            "ambassador@paris",
            &flash,
            vec![("ambassador@nairobi", Acknowledged), ("alice@paris", Read)],
        ),
        (
            "david@nairobi",
            &reply,
            vec![("alice@paris", Read), ("ambassador@paris", Delivered)],
        ),
    ];
    staff
        .sync_until("the receipts to reach their senders", |staff| {
            for (sender, id, states) in &receipts {
                if !staff.reached(sender, id, states)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
    for (sender, id, _) in &receipts {
        print_status(sender, &staff.find(sender)?.status_view(id)?);
    }

    step(7, "Each node's audit log is witnessed by its neighbours");
    network.wait_witnessed(WAIT).await?;
    for node in network.nodes() {
        for link in node.node.links().values() {
            if let (Some(neighbour), Some((size, _))) = (&link.neighbour, link.witnessed) {
                println!(
                    "   {:8} checkpoint of {size} entries cosigned by {neighbour}",
                    node.name
                );
            }
        }
    }

    step(
        8,
        "Every node's audit log is verified offline, with its witnesses' cosignatures",
    );
    verify_logs(network).await?;

    println!();
    match keep {
        Some(dir) => println!("Done. The network's files are kept in {}.", dir.display()),
        None => println!("Done. Everything ran in a temporary folder, now removed."),
    }
    Ok(())
}

/// Stops every node, then verifies each one's audit log against its key and its neighbours'
/// witness keys.
async fn verify_logs(network: LocalFederation) -> Result<()> {
    let mut logs = Vec::new();
    for node in network.nodes() {
        let keys = VerifyKeys {
            log: NoteVerifier::ed25519(&node.origin, node.node_key)?,
            witnesses: network.witnesses_of(&node.name)?,
        };
        logs.push((node.name.clone(), node.audit_dir.clone(), keys));
    }
    network.shutdown().await.context("stopping the nodes")?;
    for (name, dir, keys) in logs {
        let report = verify_dir(&dir, &keys, None)
            .map_err(|e| anyhow::anyhow!("node {name}'s audit log does not verify: {e}"))?;
        println!(
            "   {name:8} {} entries, {} signed checkpoints, every root recomputed and every signature checked",
            report.entries, report.checkpoints
        );
        let cosigned: Vec<String> = report
            .cosignatures
            .iter()
            .map(|(witness, n)| format!("{n} by {}", witness_node(witness)))
            .collect();
        println!(
            "            cosignatures verified: {}",
            if cosigned.is_empty() {
                "none".to_owned()
            } else {
                cosigned.join(", ")
            }
        );
        if let Some(latest) = &report.latest {
            println!(
                "            latest checkpoint: size {}, root {}",
                latest.size,
                hex::encode(latest.root)
            );
        }
    }
    Ok(())
}

/// The node of a witness key name, `valise/<ministry>/<node>/witness`.
fn witness_node(name: &str) -> &str {
    name.strip_suffix("/witness")
        .and_then(|n| n.rsplit('/').next())
        .unwrap_or(name)
}

/// The demo's diplomats' devices, found by address.
struct Staff(Vec<Client>);

impl Staff {
    fn find(&self, address: &str) -> Result<&Client> {
        self.0
            .iter()
            .find(|c| c.address() == address)
            .with_context(|| format!("the demo has no diplomat {address}"))
    }

    fn get(&mut self, address: &str) -> Result<&mut Client> {
        self.0
            .iter_mut()
            .find(|c| c.address() == address)
            .with_context(|| format!("the demo has no diplomat {address}"))
    }

    async fn sync_all(&mut self) -> Result<()> {
        for client in &mut self.0 {
            client.sync(&NoProgress).await?;
        }
        Ok(())
    }

    /// Syncs every device, round after round, until `done` holds: cables and receipts take a
    /// moment to cross the network.
    async fn sync_until(
        &mut self,
        what: &str,
        done: impl Fn(&Staff) -> Result<bool>,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            self.sync_all().await?;
            if done(self)? {
                return Ok(());
            }
            if start.elapsed() > WAIT {
                bail!("waited {WAIT:?} for {what}, in vain");
            }
            tokio::time::sleep(ROUND).await;
        }
    }

    /// Whether `address` has received every cable of `ids`.
    fn holds(&self, address: &str, ids: &[&String]) -> Result<bool> {
        let inbox = self.find(address)?.inbox_rows()?;
        Ok(ids.iter().all(|id| inbox.iter().any(|row| row.id == **id)))
    }

    /// Whether `sender` knows that each recipient of cable `id` reached at least its state.
    fn reached(&self, sender: &str, id: &str, states: &[(&str, DeliveryState)]) -> Result<bool> {
        let status = self.find(sender)?.status_view(id)?;
        Ok(states.iter().all(|(address, state)| {
            status
                .recipients
                .iter()
                .any(|r| r.address == *address && r.state >= *state)
        }))
    }
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
        references: Vec::new(),
    }
}

/// Prints each saved attachment after `what`, and fails unless it holds `expected`.
fn check_saved(saved: &[PathBuf], expected: &str, what: &str) -> Result<()> {
    if saved.is_empty() {
        bail!("no attachment was saved");
    }
    for path in saved {
        let intact = std::fs::read_to_string(path)? == expected;
        println!(
            "   {what} {} ({}, {})",
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
    Ok(())
}

async fn send(client: &mut Client, draft: CableDraft) -> Result<String> {
    let id = client.compose(&draft)?;
    let report = client.sync(&NoProgress).await?;
    let address = client.address();
    let post = address.rsplit('@').next().unwrap_or_default();
    let state = if report.sent.contains(&id) {
        format!("in {post}'s custody")
    } else {
        "queued".to_owned()
    };
    let routing = client.status_view(&id)?.routing;
    println!(
        "   {:16} {:17} {:18} -> {:37} {state}",
        render::precedence(&routing),
        routing.marking,
        address,
        draft.action.join(","),
    );
    Ok(id)
}

fn print_status(sender: &str, cable: &SentView) {
    println!(
        "   {} {} \"{}\", from {sender}",
        render::precedence(&cable.routing),
        cable.routing.marking,
        cable.subject
    );
    for r in &cable.recipients {
        println!("     {:20} {}", r.address, r.state.as_str());
    }
}
