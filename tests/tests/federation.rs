//! The federated network: a hub and two posts, each a `valise-relay` child process, with
//! diplomats at each post using the `valise` binary. Cables cross the hub with custody at every
//! hop, enrolments and revocations replicate, and a killed hub loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use valise_devnet::process::{Diplomat, Network, Node, text, write_attachment};

/// Hub `hq`, posts `paris` and `nairobi` dialling it, all running.
fn three_nodes() -> (Network, Node, Node, Node) {
    three_nodes_configured("", "")
}

/// As [`three_nodes`], with `hub_toml` and `paris_toml` added to those nodes' configurations.
fn three_nodes_configured(hub_toml: &str, paris_toml: &str) -> (Network, Node, Node, Node) {
    let network = Network::new();
    let mut hub = network.hub("hq");
    let mut paris = network.post("paris", Some(&hub));
    let mut nairobi = network.post("nairobi", Some(&hub));
    hub.configure(hub_toml);
    paris.configure(paris_toml);
    hub.start();
    paris.start();
    nairobi.start();
    (network, hub, paris, nairobi)
}

/// Retries `check` until it returns `Some`, for up to a minute: replication and forwarding
/// take a moment, and this waits for them without asserting how long they take.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until `diplomat`'s directory lists `address`.
fn knows(diplomat: &Diplomat, address: &str) {
    let user = address.split('@').next().unwrap();
    eventually(&format!("{address} to replicate"), || {
        let out = diplomat.valise(&["--json", "directory", user]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        list.as_array()?
            .iter()
            .any(|e| e["address"] == address)
            .then_some(())
    });
}

/// `diplomat`'s inbox, synced, once it holds at least `n` cables.
fn inbox_of(diplomat: &Diplomat, n: usize) -> Vec<serde_json::Value> {
    eventually(&format!("{n} cables to arrive"), || {
        let inbox = diplomat.json(&["inbox"]);
        let list = inbox.as_array()?.clone();
        (list.len() >= n).then_some(list)
    })
}

/// Alice at Paris and Bob at Nairobi, once Bob's enrolment has reached Alice's directory.
fn alice_and_bob(paris: &Node, nairobi: &Node) -> (Diplomat, Diplomat) {
    let alice = paris.enrol("alice", "SECRET", &[]);
    let bob = nairobi.enrol("bob", "SECRET", &[]);
    knows(&alice, "bob@nairobi");
    (alice, bob)
}

fn send(from: &Diplomat, to: &str, precedence: &str, subject: &str) -> String {
    send_body(from, to, precedence, subject, "Text.")
}

fn send_body(from: &Diplomat, to: &str, precedence: &str, subject: &str, body: &str) -> String {
    from.send(&[
        "--to",
        to,
        "--classification",
        "CONFIDENTIAL",
        "--precedence",
        precedence,
        "--tags",
        "ADMN",
        "--subject",
        subject,
        "--body",
        body,
    ])
}

#[test]
fn paris_reaches_nairobi_through_the_hub_at_every_precedence() {
    let (_network, mut hub, paris, nairobi) = three_nodes();
    // Bob's enrolment at Nairobi reaches Paris through the hub, and Alice's reaches Nairobi.
    let (alice, bob) = alice_and_bob(&paris, &nairobi);
    knows(&bob, "alice@paris");

    let precedences = ["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"];
    let mut sent = Vec::new();
    for p in precedences {
        sent.push(send(&alice, "bob@nairobi", p, &format!("{p} from Paris")));
    }
    let inbox = inbox_of(&bob, 4);
    assert_eq!(inbox.len(), 4, "each cable once: {inbox:?}");
    // Bob's inbox lists the most urgent first.
    let got: Vec<&str> = inbox
        .iter()
        .map(|c| c["precedence"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]);
    for cable in &inbox {
        let id = cable["id"].as_str().unwrap();
        assert!(sent.iter().any(|s| s == id), "{id} was not sent: {sent:?}");
        let read = bob.json(&["read", id]);
        assert_eq!(read["from"], "alice@paris", "{read}");
        assert_eq!(
            read["subject"],
            format!("{} from Paris", cable["precedence"].as_str().unwrap())
        );
    }
    // The reply crosses back the other way.
    send(&bob, "alice@paris", "IMMEDIATE", "Reply from Nairobi");
    let alice_inbox = inbox_of(&alice, 1);
    assert_eq!(alice_inbox[0]["from"], "bob@nairobi");

    // Each post's audit log is cosigned by the hub, and the hub's by each post; `audit
    // verify` checks those cosignatures and says so.
    for (node, witness) in [(&paris, "hq"), (&hub, "paris"), (&hub, "nairobi")] {
        let wanted = format!("cosignatures by valise/mfa.example/{witness}/witness: ");
        eventually(&format!("{witness} to cosign {}", node.name), || {
            let out = node.relay(&["audit", "verify", "--config", &node.config()]);
            assert!(out.status.success(), "{}", text(&out));
            let report = text(&out);
            let count: u64 = report
                .lines()
                .find_map(|l| l.split(&wanted).nth(1))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            (count > 0).then_some(())
        });
    }

    // With no traffic, witnessing goes quiet: cosigning adds nothing to the logs, so the
    // nodes do not keep witnessing each other's witnessing.
    eventually("the hub's audit log to stop growing", || {
        let before = status(&hub)["audit_entries"].as_u64()?;
        std::thread::sleep(Duration::from_secs(3));
        (status(&hub)["audit_entries"].as_u64()? == before).then_some(())
    });

    // Paris's status shows the hub link up and what the hub last witnessed; once the hub
    // stops, the link shows down, with the reason.
    let up = status(&paris);
    assert_eq!(hub_link(&up)["connected"], true, "{up}");
    assert_eq!(hub_link(&up)["neighbour"], "hq", "{up}");
    assert!(
        hub_link(&up)["witnessed_size"].as_u64().unwrap() > 0,
        "{up}"
    );
    hub.stop();
    let down = eventually("Paris to see the hub link down", || {
        let now = status(&paris);
        (hub_link(&now)["connected"] == false).then_some(now)
    });
    assert!(
        hub_link(&down)["last_error"]
            .as_str()
            .unwrap()
            .contains("link down"),
        "{down}"
    );
    let out = paris.relay(&["status", "--config", &paris.config()]);
    assert!(text(&out).contains("link hub hq at "), "{}", text(&out));
    assert!(text(&out).contains(": DOWN since "), "{}", text(&out));
}

#[test]
fn a_device_revoked_at_nairobi_is_refused_at_paris_once_replicated() {
    let (_network, _hub, paris, nairobi) = three_nodes();
    let alice = paris.enrol("alice", "SECRET", &[]);
    let _bob = nairobi.enrol("bob", "SECRET", &[]);
    let carol = nairobi.enrol("carol", "SECRET", &[]);
    knows(&alice, "bob@nairobi");
    knows(&alice, "carol@nairobi");

    nairobi.revoke("bob");
    // Alice's next sync brings the revocation: Bob no longer resolves, and sending to him is
    // refused with the reason, while Carol is still reachable.
    eventually("the revocation to reach Paris", || {
        let out = alice.valise(&["--json", "directory", "bob"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        // Still listed, but marked revoked, with when.
        let revoked = list.as_array()?.iter().any(|e| {
            e["address"] == "bob@nairobi" && e["revoked"] == true && e["revoked_at"].is_string()
        });
        let active = list
            .as_array()?
            .iter()
            .any(|e| e["address"] == "bob@nairobi" && e["revoked"] == false);
        (revoked && !active).then_some(())
    });
    let refused = alice.valise(&[
        "send",
        "--to",
        "bob@nairobi",
        "--classification",
        "CONFIDENTIAL",
        "--precedence",
        "ROUTINE",
        "--tags",
        "ADMN",
        "--subject",
        "To a revoked device",
        "--body",
        "Text.",
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("revoked"), "{}", text(&refused));
    send(&alice, "carol@nairobi", "PRIORITY", "Still reachable");
    assert_eq!(inbox_of(&carol, 1)[0]["from"], "alice@paris");
}

/// `valise-relay status --json` of `node`.
fn status(node: &Node) -> serde_json::Value {
    let out = node.relay(&["status", "--config", &node.config(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `hub` link in a post's status.
fn hub_link(status: &serde_json::Value) -> &serde_json::Value {
    status["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["hop"] == "hub")
        .unwrap_or_else(|| panic!("no hub link: {status}"))
}

/// The cable ids whose custody `node` took, in the order its audit log recorded them.
fn custody_order(node: &Node) -> Vec<String> {
    audit_lines(node, &["CustodyTaken", "Success"])
        .iter()
        .filter_map(|l| l.split("envelope:").nth(1))
        .map(|id| id.trim().to_owned())
        .collect()
}

#[test]
fn a_hub_killed_mid_traffic_loses_nothing_and_flash_overtakes_the_queued_routine() {
    // A narrow window, so the cables queued during the partition leave in several rounds.
    let (_network, mut hub, paris, nairobi) =
        three_nodes_configured("", "[links]\nforward_window = 2\n");
    let (alice, bob) = alice_and_bob(&paris, &nairobi);

    // Alice keeps sending while the hub is SIGKILLed under her traffic: whatever the hub had
    // not made durable, Paris still holds, because Paris drops a cable only on a verified
    // custody receipt. Some of these cross before the kill, some are on the link when it
    // comes, and the rest wait at Paris.
    let (sent, sending) = std::sync::mpsc::channel();
    let mut routine = std::thread::scope(|scope| {
        let alice = &alice;
        let sender = scope.spawn(move || {
            (0..6)
                .map(|i| {
                    let id = send(alice, "bob@nairobi", "ROUTINE", &format!("Before {i}"));
                    let _ = sent.send(i);
                    id
                })
                .collect::<Vec<_>>()
        });
        // The kill lands once two have been submitted, while the others are still going. (The
        // sender owns `sent`: if a send fails, the channel closes and this fails too.)
        while sending.recv().expect("the sender failed") < 1 {}
        hub.kill();
        sender.join().unwrap()
    });
    for i in 0..8 {
        routine.push(send(
            &alice,
            "bob@nairobi",
            "ROUTINE",
            &format!("During {i}"),
        ));
    }
    let flash = send(&alice, "bob@nairobi", "FLASH", "Evacuate now");
    // The operator at Paris sees what waits for the hub. (Whether the link already shows down
    // depends on QUIC noticing the silence: a killed hub says no goodbye.)
    let during = status(&paris);
    let link = hub_link(&during);
    assert_eq!(link["queued"]["FLASH"], 1, "{during}");
    assert!(link["queued"]["ROUTINE"].as_u64().unwrap() >= 8, "{during}");
    hub.start();

    let inbox = inbox_of(&bob, 15);
    let mut ids: Vec<&str> = inbox.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(inbox.len(), 15, "each cable exactly once: {inbox:?}");
    assert_eq!(ids.len(), 15, "each cable exactly once: {inbox:?}");
    for id in routine.iter().chain([&flash]) {
        assert!(ids.contains(&id.as_str()), "{id} was lost");
    }
    assert_eq!(inbox[0]["precedence"], "FLASH");
    // Once healed, the link is up and its queue is empty.
    eventually("the hub link to drain", || {
        let after = status(&paris);
        let link = hub_link(&after);
        let drained = ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"]
            .iter()
            .all(|p| link["queued"][p] == 0);
        (link["connected"] == true && drained).then_some(())
    });

    // After the partition, the hub took custody of the FLASH before most of the ROUTINE
    // cables queued ahead of it at Paris: with two in flight at a time, at most one
    // ROUTINE cable may precede it.
    let order = custody_order(&hub);
    let queued_during: Vec<&String> = routine[6..].iter().collect();
    let flash_at = order
        .iter()
        .position(|id| *id == flash)
        .expect("the hub took custody of the FLASH");
    let routine_before = order[..flash_at]
        .iter()
        .filter(|id| queued_during.contains(id))
        .count();
    assert!(
        routine_before <= 1,
        "{routine_before} ROUTINE cables queued before the FLASH went first: {order:?}"
    );
}

#[test]
fn posts_linked_as_peers_reach_each_other_directly_while_the_hub_is_down() {
    let network = Network::new();
    let mut hub = network.hub("hq");
    let mut paris = network.post("paris", Some(&hub));
    let mut brussels = network.post("brussels", Some(&hub));
    // Each lists the other; brussels, whose name sorts first, dials.
    paris.configure(&format!(
        "[[peers]]\nname = \"brussels\"\naddr = \"{}\"\n",
        brussels.addr
    ));
    brussels.configure(&format!(
        "[[peers]]\nname = \"paris\"\naddr = \"{}\"\n",
        paris.addr
    ));
    hub.start();
    paris.start();
    brussels.start();
    let alice = paris.enrol("alice", "SECRET", &[]);
    let carol = brussels.enrol("carol", "SECRET", &[]);
    knows(&alice, "carol@brussels");
    knows(&carol, "alice@paris");
    let peer_up = |node: &Node, peer: &str| {
        eventually(&format!("{} to link with {peer}", node.name), || {
            let now = status(node);
            let up = now["links"]
                .as_array()?
                .iter()
                .any(|l| l["hop"] == format!("post:{peer}") && l["connected"] == true);
            up.then_some(())
        })
    };
    peer_up(&paris, "brussels");
    peer_up(&brussels, "paris");

    // Headquarters goes dark; the two posts still reach each other, both ways.
    hub.stop();
    let to_carol = send(&alice, "carol@brussels", "IMMEDIATE", "Direct line");
    let to_alice = send(&carol, "alice@paris", "IMMEDIATE", "Received direct");
    assert_eq!(inbox_of(&carol, 1)[0]["id"], to_carol.as_str());
    assert_eq!(inbox_of(&alice, 1)[0]["id"], to_alice.as_str());

    // Paris handed the cable straight to Brussels, which took custody of it.
    let forwarded = eventually("Paris to audit the forward", || {
        let lines = audit_lines(&paris, &["CableForwarded", "Success", &to_carol]);
        (!lines.is_empty()).then_some(lines)
    });
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert!(forwarded[0].contains("via brussels"), "{forwarded:?}");
    let taken = audit_lines(&brussels, &["CustodyTaken", "Success", &to_carol]);
    assert_eq!(taken.len(), 1, "{taken:?}");
}

/// Copies a folder tree (a stopped node's sled store).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The size of the newest checkpoint of `node`'s that `witness` cosigned, as kept by `node`.
fn witnessed_size(node: &Node, witness: &str) -> Option<u64> {
    let path = node
        .dir
        .path()
        .join(&node.name)
        .join(format!("data/links/witnessed/{witness}.note"));
    let note = std::fs::read_to_string(path).ok()?;
    // A checkpoint note: origin, size, root, blank line, signatures.
    note.lines().nth(1)?.parse().ok()
}

/// The audit entries of `node` that `audit show` lists with all of `words`.
fn audit_lines(node: &Node, words: &[&str]) -> Vec<String> {
    let out = node.relay(&[
        "audit",
        "show",
        "--config",
        &node.config(),
        "--last",
        "100000",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_post_whose_audit_store_was_rolled_back_is_refused_by_the_hub() {
    let network = Network::new();
    let mut hub = network.hub("hq");
    let mut paris = network.post("paris", Some(&hub));
    hub.start();
    paris.start();
    let _alice = paris.enrol("alice", "SECRET", &[]);
    let first = eventually("the hub to cosign a Paris checkpoint", || {
        witnessed_size(&paris, "hq")
    });

    // An older copy of the audit store and its anchor, as an intruder might keep one.
    paris.stop();
    let node_dir = network.dir.path().join("paris");
    let backup = network.dir.path().join("paris-audit-backup");
    copy_tree(&node_dir.join("data/audit"), &backup.join("audit"));
    std::fs::copy(node_dir.join("audit.anchor"), backup.join("audit.anchor")).unwrap();

    // More history, witnessed by the hub.
    paris.start();
    for user in ["bob", "carol", "dave"] {
        paris.enrol(user, "SECRET", &[]);
    }
    eventually("the hub to cosign the newer history", || {
        witnessed_size(&paris, "hq").filter(|s| *s > first + 6)
    });

    // The rollback: the old store and anchor put back, the post restarted. Locally nothing
    // looks wrong, since the store extends its anchor.
    paris.stop();
    let later = witnessed_size(&paris, "hq").unwrap();
    // A stopped node's status is read from its files: the hub's last cosignature is there.
    let stopped = status(&paris);
    assert_eq!(stopped["running"], false, "{stopped}");
    assert_eq!(hub_link(&stopped)["witnessed_size"], later, "{stopped}");
    let out = paris.relay(&["status", "--config", &paris.config()]);
    assert!(text(&out).contains("NOT RUNNING"), "{}", text(&out));
    std::fs::remove_dir_all(node_dir.join("data/audit")).unwrap();
    copy_tree(&backup.join("audit"), &node_dir.join("data/audit"));
    std::fs::copy(backup.join("audit.anchor"), node_dir.join("audit.anchor")).unwrap();
    paris.start();

    // The hub refuses the rolled-back checkpoint and records why; Paris records the refusal.
    let refused = eventually("the hub to refuse the rolled-back log", || {
        let lines = audit_lines(&hub, &["CheckpointWitnessed", "Refused", "paris"]);
        (!lines.is_empty()).then_some(lines)
    });
    assert!(
        refused.iter().any(|l| l.contains("rollback")),
        "the hub names a rollback: {refused:?}"
    );
    eventually("Paris to record the refusal", || {
        let lines = audit_lines(
            &paris,
            &["CheckpointWitnessed", "Refused", "refused_by_witness"],
        );
        (!lines.is_empty()).then_some(())
    });
    // The hub's operator sees the refusal on the link to Paris.
    let hub_status = status(&hub);
    let to_paris = hub_status["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["hop"] == "post:paris")
        .unwrap();
    assert!(
        to_paris["last_error"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{hub_status}"
    );
    assert!(
        to_paris["cosigned_size"].as_u64().unwrap() >= later,
        "{hub_status}"
    );
    // Paris still holds the newer size the hub cosigned: the refusal overwrote nothing.
    assert_eq!(witnessed_size(&paris, "hq"), Some(later));

    // Paris's own verify checks the log against what the hub cosigned and names the break.
    let out = paris.relay(&["audit", "verify", "--config", &paris.config()]);
    assert!(
        !out.status.success(),
        "a rolled-back log must not verify: {}",
        text(&out)
    );
    let report = text(&out);
    assert!(report.contains("rolled back"), "{report}");
    assert!(report.contains(&format!("covers {later}")), "{report}");
    assert!(report.contains("hq cosigned"), "{report}");
}

/// The hub link in Paris's status, once it reports the hub refusing a cable Paris holds.
fn held_by_hub_refusal(paris: &Node) -> serde_json::Value {
    eventually("Paris to report the refusal", || {
        let now = status(paris);
        let link = hub_link(&now).clone();
        link["last_error"]
            .as_str()?
            .contains("refuses cable")
            .then_some(link)
    })
}

/// Stops `node`, removes `setting` from its configuration, and starts it again.
fn restart_without(node: &mut Node, setting: &str) {
    node.stop();
    let config = node.dir.path().join(node.config());
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(
        toml.contains(setting),
        "{setting} is not in {}",
        config.display()
    );
    std::fs::write(&config, toml.replace(setting, "")).unwrap();
    node.start();
}

#[test]
fn a_cable_the_hub_refuses_as_too_large_is_held_at_paris_not_lost() {
    // The hub takes smaller envelopes than Paris does: a misconfiguration Paris must survive.
    let (_network, mut hub, paris, nairobi) =
        three_nodes_configured("[limits]\nmax_envelope_bytes = 32768\n", "");
    let (alice, bob) = alice_and_bob(&paris, &nairobi);

    let long = "Paragraph. ".repeat(6_000);
    let id = send_body(&alice, "bob@nairobi", "PRIORITY", "Long report", &long);
    // Paris acknowledged it, the hub refuses it: Paris keeps it and says why.
    let held = held_by_hub_refusal(&paris);
    assert_eq!(held["queued"]["PRIORITY"], 1, "{held}");
    assert!(
        held["last_error"].as_str().unwrap().contains("[limits]"),
        "{held}"
    );

    // Once the hub's limits are aligned, the held cable crosses on its next offer, which a
    // restarted link brings forward at once.
    restart_without(&mut hub, "max_envelope_bytes = 32768");
    let inbox = inbox_of(&bob, 1);
    assert_eq!(inbox[0]["id"], id.as_str());
}

/// Alice attaches `len` bytes as `name` to a cable for Bob at Nairobi: the cable's id and
/// the bytes.
fn send_attached(alice: &Diplomat, precedence: &str, name: &str, len: u32) -> (String, Vec<u8>) {
    let file = alice.dir.path().join(name);
    let data = write_attachment(&file, len);
    let id = alice.send(&[
        "--to",
        "bob@nairobi",
        "--classification",
        "SECRET",
        "--precedence",
        precedence,
        "--tags",
        "PREL",
        "--subject",
        "Annex",
        "--body",
        "See the attachment.",
        "--attach",
        file.to_str().unwrap(),
    ]);
    (id, data)
}

/// `valise read <id> --save-attachments <folder>` as Bob, with `--json` if `json`: the
/// command's output and the folder.
fn read_saving(bob: &Diplomat, id: &str, json: bool) -> (std::process::Output, PathBuf) {
    let saved = bob.dir.path().join("saved");
    let mut args = vec![
        "read",
        &id[..8],
        "--save-attachments",
        saved.to_str().unwrap(),
    ];
    if json {
        args.insert(0, "--json");
    }
    (bob.valise(&args), saved)
}

/// Bob reads cable `id` and saves its attachments: the bytes saved as `name`.
fn save_attached(bob: &Diplomat, id: &str, name: &str) -> Vec<u8> {
    let (out, saved) = read_saving(bob, id, true);
    assert!(out.status.success(), "{}", text(&out));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["attachments"][0]["name"], name, "{read}");
    std::fs::read(saved.join(name)).unwrap()
}

#[test]
fn an_attachment_crosses_with_its_cable_and_opens_at_nairobi_while_paris_is_down() {
    let (_network, _hub, mut paris, nairobi) = three_nodes();
    let (alice, bob) = alice_and_bob(&paris, &nairobi);
    let (id, data) = send_attached(&alice, "IMMEDIATE", "border-brief.bin", 700_000);
    assert_eq!(inbox_of(&bob, 1)[0]["id"], id.as_str());

    // The sender's post goes dark: the attachment is already at Nairobi, with the cable.
    paris.stop();
    assert!(
        save_attached(&bob, &id, "border-brief.bin") == data,
        "Bob saves exactly what Alice attached"
    );
}

#[test]
fn an_attachment_expired_at_paris_before_forwarding_lets_its_cable_go_on_and_says_so() {
    let (_network, mut hub, paris, nairobi) = three_nodes();
    let (alice, bob) = alice_and_bob(&paris, &nairobi);
    // The hub is down for longer than Paris keeps attachments (`retention_days`, 30 by
    // default): the attachment files at Paris are aged past it while the cable waits.
    hub.stop();
    let (id, _) = send_attached(&alice, "PRIORITY", "old-brief.bin", 50_000);
    let month_ago = std::time::SystemTime::now() - Duration::from_secs(31 * 86_400);
    let held = paris.dir.path().join("paris/data/attachments");
    let mut aged = 0;
    for entry in std::fs::read_dir(&held).unwrap() {
        let path = entry.unwrap().path();
        // Attachments are named by their SHA-256 (the store's id file sits beside them).
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && name.len() == 64 {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_modified(month_ago).unwrap();
            aged += 1;
        }
    }
    assert_eq!(
        aged,
        1,
        "Paris held the one attachment in {}",
        held.display()
    );
    hub.start();

    // The cable still reaches Bob and reads; the attachment is gone, and Bob is told so.
    assert_eq!(inbox_of(&bob, 1)[0]["id"], id.as_str());
    let opened = bob.json(&["read", &id[..8]]);
    assert_eq!(
        opened["attachments"][0]["name"], "old-brief.bin",
        "{opened}"
    );
    let (read, saved) = read_saving(&bob, &id, false);
    let said = text(&read);
    assert!(!read.status.success(), "{said}");
    assert!(said.contains("old-brief.bin"), "{said}");
    assert!(!saved.join("old-brief.bin").exists());
    // Paris's audit log records that the cable left without its attachment, and which.
    let lost = audit_lines(&paris, &["CableForwarded", "Failure", "attachment_expired"]);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].contains("attachment:sha256:"), "{lost:?}");
}

#[test]
fn an_attachment_larger_than_the_hub_accepts_holds_its_cable_at_paris_until_aligned() {
    let (_network, mut hub, paris, nairobi) =
        three_nodes_configured("[limits]\nmax_attachment_bytes = 100000\n", "");
    let (alice, bob) = alice_and_bob(&paris, &nairobi);
    let (id, data) = send_attached(&alice, "PRIORITY", "annex.bin", 3_000_000);
    // Paris took custody; the hub refuses the attachment as too large, so Paris holds the
    // cable and says why, rather than sending it again and again.
    let held = held_by_hub_refusal(&paris);
    assert_eq!(held["queued"]["PRIORITY"], 1, "{held}");
    let why = held["last_error"].as_str().unwrap();
    assert!(
        why.contains("TOO_LARGE") && why.contains("[limits]"),
        "{held}"
    );

    // Aligned, the cable crosses with its attachment, which Bob opens.
    restart_without(&mut hub, "max_attachment_bytes = 100000");
    assert_eq!(inbox_of(&bob, 1)[0]["id"], id.as_str());
    assert!(save_attached(&bob, &id, "annex.bin") == data);
}

/// Rome, issued by the root as a post, is where Paris's configuration says the hub is. Paris
/// refuses it: the hub is the node the root certified as the hub, not whoever answers at that
/// address (a compromised Rome could say anything in its hello). Paris's status names the
/// reason. An honest Rome configured to call itself the hub does not even start.
#[test]
fn a_post_in_place_of_the_hub_is_refused() {
    let network = Network::new();
    let mut rome = network.post("rome", None);
    let config = network.dir.path().join(rome.config());
    let post_toml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        post_toml.replace("kind = \"post\"", "kind = \"hub\""),
    )
    .unwrap();
    let out = rome.relay(&["run", "--config", &rome.config()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the root issued it for a post, but node.kind is hub"),
        "{}",
        text(&out)
    );
    std::fs::write(&config, post_toml).unwrap();
    rome.start();
    let mut paris = network.post("paris", Some(&rome));
    paris.start();
    let refusal = eventually("Paris to refuse Rome as its hub", || {
        let status = status(&paris);
        let link = hub_link(&status).clone();
        let error = link["last_error"].as_str()?.to_owned();
        (!error.is_empty()).then_some((link, error))
    });
    assert_eq!(refusal.0["connected"], false, "{}", refusal.0);
    assert!(
        refusal
            .1
            .contains("is node rome, whose certificate the root did not issue for the hub"),
        "{}",
        refusal.1
    );
}

/// The whole data folder and the anchor are restored from an older copy: every file agrees
/// with every other, so only the hub, which kept what it cosigned, can tell. Paris learns it
/// from the hub on the next link, raises an alarm in its status, and its own `audit verify`
/// fails, naming the hub and the sizes.
#[test]
fn a_post_restored_whole_from_an_older_copy_learns_it_from_the_hub() {
    let network = Network::new();
    let mut hub = network.hub("hq");
    let mut paris = network.post("paris", Some(&hub));
    hub.start();
    paris.start();
    let _alice = paris.enrol("alice", "SECRET", &[]);
    let first = eventually("the hub to cosign a Paris checkpoint", || {
        witnessed_size(&paris, "hq")
    });
    paris.stop();
    let node_dir = network.dir.path().join("paris");
    let backup = network.dir.path().join("paris-backup");
    copy_tree(&node_dir.join("data"), &backup.join("data"));
    std::fs::copy(node_dir.join("audit.anchor"), backup.join("audit.anchor")).unwrap();

    paris.start();
    for user in ["bob", "carol", "dave"] {
        paris.enrol(user, "SECRET", &[]);
    }
    eventually("the hub to cosign the newer history", || {
        witnessed_size(&paris, "hq").filter(|s| *s > first + 6)
    });
    paris.stop();
    std::fs::remove_dir_all(node_dir.join("data")).unwrap();
    copy_tree(&backup.join("data"), &node_dir.join("data"));
    std::fs::copy(backup.join("audit.anchor"), node_dir.join("audit.anchor")).unwrap();
    // Stopped, the files agree with each other: nothing local can tell.
    let out = paris.relay(&["audit", "verify", "--config", &paris.config()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("A data folder restored whole with its anchor is caught only by"),
        "{}",
        text(&out)
    );

    paris.start();
    let alarm = eventually("Paris to learn it was rolled back", || {
        let now = status(&paris);
        now["alarms"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| a.starts_with("ROLLED BACK"))
            .map(str::to_owned)
    });
    assert!(alarm.contains("witness hq cosigned"), "{alarm}");
    let out = paris.relay(&["status", "--config", &paris.config()]);
    assert!(text(&out).contains("ALARM: ROLLED BACK"), "{}", text(&out));
    let out = paris.relay(&["audit", "verify", "--config", &paris.config()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("its neighbours say otherwise: ROLLED BACK"),
        "{}",
        text(&out)
    );
    assert!(
        !audit_lines(&paris, &["CheckpointWitnessed", "this_log_rolled_back"]).is_empty(),
        "Paris records what it learnt"
    );
}

/// The checkpoint the node signs as it stops, read from a stopped node's audit store: its
/// size, and whether `witness` has cosigned it.
fn checkpoint_cosigned(node: &Node, size: u64, witness: &str) -> bool {
    use valise_store::Store;
    let db = valise_store::DiskStore::open(&node.dir.path().join(&node.name).join("data/audit"))
        .unwrap();
    let key = [&b"c"[..], &size.to_be_bytes()].concat();
    let note = db
        .get(&key)
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap());
    drop(db);
    note.is_some_and(|n| n.contains(&format!("— valise/mfa.example/{witness}/witness ")))
}

fn anchor_size(node: &Node) -> u64 {
    let anchor =
        std::fs::read_to_string(node.dir.path().join(&node.name).join("audit.anchor")).unwrap();
    anchor.lines().nth(1).unwrap().parse().unwrap()
}

/// The checkpoint Paris signs as it stops covers its last entries (the stop itself); the hub
/// cosigns exactly that checkpoint once Paris links again, even when Paris has signed newer
/// ones meanwhile (the hub was down when Paris came back), not only a later one.
#[test]
fn the_checkpoint_signed_at_shutdown_is_witnessed_at_the_next_link() {
    let (_network, mut hub, mut paris, _nairobi) = three_nodes();
    let _alice = paris.enrol("alice", "SECRET", &[]);
    eventually("the hub to cosign a Paris checkpoint", || {
        witnessed_size(&paris, "hq")
    });
    paris.stop();
    let at_stop = anchor_size(&paris);
    assert!(
        !checkpoint_cosigned(&paris, at_stop, "hq"),
        "signed as Paris stopped, so no witness could have seen it yet"
    );
    hub.stop();
    paris.start();
    // Newer history while the hub is away: newer checkpoints are signed.
    let _bob = paris.enrol("bob", "SECRET", &[]);
    std::thread::sleep(Duration::from_millis(2500));
    hub.start();
    eventually("the hub to witness Paris again", || {
        witnessed_size(&paris, "hq").filter(|s| *s > at_stop)
    });
    paris.stop();
    assert!(
        checkpoint_cosigned(&paris, at_stop, "hq"),
        "the shutdown checkpoint of size {at_stop} has the hub's cosignature"
    );
}

#[test]
fn posts_link_again_to_a_restarted_hub_without_waiting_for_their_idle_timeout() {
    // A hub restarted in place (killed, then started on its own files) answers the posts'
    // pings on their old connections with a stateless reset, and they dial it at once: the
    // links are back long before the 30 s a dead connection takes to be noticed. (How long it
    // takes is measured by `valise-loadgen --relink`; here, that it happens and what it
    // brings back.)
    let (_network, mut hub, paris, nairobi) = three_nodes();
    let (alice, bob) = alice_and_bob(&paris, &nairobi);
    for node in [&paris, &nairobi] {
        eventually("the posts to link", || {
            (hub_link(&status(node))["connected"] == true).then_some(())
        });
    }
    hub.kill();
    hub.start();
    let restarted = Instant::now();
    for node in [&paris, &nairobi] {
        eventually("the posts to link to the restarted hub", || {
            let link = status(node);
            let link = hub_link(&link);
            // A link that came up after the restart, not the old one still believed alive.
            let since = link["since_ms"].as_u64()?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis() as u64;
            let up_for = Duration::from_millis(now_ms.saturating_sub(since));
            (link["connected"] == true && up_for <= restarted.elapsed()).then_some(())
        });
    }
    assert!(
        restarted.elapsed() < Duration::from_secs(30),
        "the posts waited out their idle timeout: {:?}",
        restarted.elapsed()
    );
    let id = send(&alice, "bob@nairobi", "IMMEDIATE", "After the restart");
    let inbox = inbox_of(&bob, 1);
    assert_eq!(inbox[0]["id"], id.as_str());
}
