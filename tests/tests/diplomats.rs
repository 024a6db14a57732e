//! Diplomats at one post, using the `valise` binary against a `valise-relay` node: the main
//! path, an offline node, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use valise_devnet::process::{Diplomat, PASSPHRASE, Post, text, write_attachment};

/// A running Paris node with Alice and Bob enrolled (both SECRET), Alice's directory current.
fn alice_and_bob() -> (Post, Diplomat, Diplomat) {
    let mut post = Post::new();
    post.start();
    let alice = post.enrol("alice", "SECRET", &[]);
    let bob = post.enrol("bob", "SECRET", &[]);
    // Alice's device learns of Bob while the node is up.
    let directory = alice.json(&["directory", "bob"]);
    assert_eq!(directory[0]["address"], "bob@paris", "{directory}");
    (post, alice, bob)
}

fn state_of(status: &serde_json::Value, address: &str) -> String {
    status["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("{address} is not a recipient: {status}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_flash_with_an_attachment_is_read_intact_and_acknowledged() {
    let mut post = Post::new();
    post.start();
    let alice = post.enrol("alice", "SECRET", &["POL"]);
    let bob = post.enrol("bob", "TOP SECRET", &["ECON"]);

    let routine = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "CONFIDENTIAL",
        "--precedence",
        "ROUTINE",
        "--tags",
        "ADMN",
        "--subject",
        "Visa backlog",
        "--body",
        "Routine numbers.",
    ]);
    let report = alice.dir.path().join("report.bin");
    let data = write_attachment(&report, 300_000);
    let flash = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "FLASH",
        "--tags",
        "PREL,PGOV",
        "--subject",
        "Evacuation of the consulate",
        "--body",
        "Leave by 0600 local.",
        "--attach",
        report.to_str().unwrap(),
    ]);

    // FLASH first, though it arrived last.
    let inbox = bob.json(&["inbox"]);
    let ids: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [flash.as_str(), routine.as_str()], "{inbox}");
    let first = &inbox[0];
    for field in [
        "id",
        "from",
        "subject",
        "precedence",
        "classification",
        "received_at",
        "read",
    ] {
        assert!(!first[field].is_null(), "inbox lacks {field}: {first}");
    }
    assert_eq!(first["from"], "alice@paris");
    assert_eq!(first["precedence"], "FLASH");
    assert_eq!(first["read"], false);
    // Bob's device stored both, so both are delivered.
    assert_eq!(
        state_of(&alice.json(&["status", &routine]), "bob@paris"),
        "delivered"
    );

    let saved = bob.dir.path().join("saved");
    let read = bob.json(&[
        "read",
        &flash[..8],
        "--save-attachments",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(read["body"], "Leave by 0600 local.");
    assert_eq!(read["subject"], "Evacuation of the consulate");
    assert_eq!(read["verified"], true);
    assert_eq!(read["classification"], "SECRET");
    assert_eq!(read["precedence"], "FLASH");
    assert_eq!(read["attachments"][0]["name"], "report.bin");
    assert_eq!(std::fs::read(saved.join("report.bin")).unwrap(), data);
    assert_eq!(
        state_of(&alice.json(&["status", &flash]), "bob@paris"),
        "read"
    );

    let ack = bob.valise(&["ack", &flash]);
    assert!(ack.status.success(), "{}", text(&ack));
    let status = alice.json(&["status", &flash]);
    assert_eq!(state_of(&status, "bob@paris"), "acknowledged", "{status}");
    // The routine cable was never opened: delivered, not read.
    assert_eq!(
        state_of(&alice.json(&["status", &routine]), "bob@paris"),
        "delivered"
    );

    // People read banners: the human form shows classification and precedence.
    let human = bob.valise(&["read", &routine]);
    let shown = text(&human);
    assert!(
        shown.contains("CONFIDENTIAL") && shown.contains("ROUTINE"),
        "{shown}"
    );
    post.stop();
}

#[test]
fn a_cable_sent_while_the_node_is_down_goes_out_once_when_it_returns() {
    let (mut post, alice, bob) = alice_and_bob();
    post.stop();

    let out = alice.valise(&[
        "send",
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "IMMEDIATE",
        "--subject",
        "Written offline",
        "--body",
        "Sent while the link was down.",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sent["state"], "queued");
    let id = sent["id"].as_str().unwrap().to_owned();
    let offline = alice.valise(&["status", &id, "--json"]);
    assert!(
        text(&offline).contains("cannot reach the node"),
        "{}",
        text(&offline)
    );
    let status: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    assert_eq!(state_of(&status, "bob@paris"), "queued");

    post.start();
    // Any command syncs: the outbox goes out.
    assert_eq!(
        state_of(&alice.json(&["status", &id]), "bob@paris"),
        "custody"
    );
    // More syncs send nothing again.
    alice.json(&["inbox"]);
    alice.json(&["inbox"]);
    let inbox = bob.json(&["inbox"]);
    let copies = inbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id.as_str())
        .count();
    assert_eq!(copies, 1, "{inbox}");
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    post.stop();
}

fn refused(d: &Diplomat, args: &[&str], passphrase: &str, expected: &[&str]) {
    let out = d.valise_with(args, passphrase);
    assert!(
        !out.status.success(),
        "valise {args:?} succeeded: {}",
        text(&out)
    );
    let message = String::from_utf8_lossy(&out.stderr);
    for part in expected {
        assert!(
            message.contains(part),
            "valise {args:?}: {message:?} lacks {part:?}"
        );
    }
    assert!(!message.contains("panicked"), "{message}");
}

fn send_args<'a>(to: &'a str, classification: &'a str) -> Vec<&'a str> {
    vec![
        "send",
        "--to",
        to,
        "--classification",
        classification,
        "--precedence",
        "PRIORITY",
        "--subject",
        "Test",
        "--body",
        "Text",
    ]
}

#[test]
fn bad_input_gets_a_clear_refusal_and_loses_nothing() {
    let mut post = Post::new();
    post.start();
    let alice = post.enrol("alice", "TOP SECRET", &[]);
    let bob = post.enrol("bob", "SECRET", &[]);
    let _carol = post.enrol("carol", "CONFIDENTIAL", &[]);
    let _dave = post.enrol("dave", "SECRET", &[]);
    let kept = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "ROUTINE",
        "--subject",
        "Kept",
        "--body",
        "This must survive every refusal.",
    ]);
    assert_eq!(bob.json(&["inbox"]).as_array().unwrap().len(), 1);

    refused(
        &bob,
        &["inbox"],
        "not the passphrase",
        &["wrong passphrase"],
    );
    refused(
        &alice,
        &send_args("nobody@paris", "SECRET"),
        PASSPHRASE,
        &["nobody@paris"],
    );
    refused(
        &alice,
        &send_args("carol@paris", "TOP_SECRET"),
        PASSPHRASE,
        &["carol@paris", "CONFIDENTIAL", "TOP SECRET"],
    );
    post.revoke("dave");
    refused(
        &alice,
        &send_args("dave@paris", "SECRET"),
        PASSPHRASE,
        &["dave@paris", "revoked"],
    );
    let missing = [
        &send_args("bob@paris", "SECRET")[..],
        &["--attach", "/nonexistent/brief.pdf"],
    ]
    .concat();
    refused(
        &alice,
        &missing,
        PASSPHRASE,
        &["/nonexistent/brief.pdf", "Nothing was sent"],
    );

    // None of the refusals queued or sent anything; the kept cable is still there.
    let sent = alice.json(&["status"]);
    assert_eq!(sent.as_array().unwrap().len(), 1, "{sent}");
    let inbox = bob.json(&["inbox"]);
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    assert_eq!(inbox[0]["id"], kept.as_str());
    post.stop();

    // Someone with the disk alters a stored cable: it is detected and named.
    {
        let db = sled::open(bob.dir.path().join("store")).unwrap();
        let tree = db.open_tree("client/inbox").unwrap();
        let (key, value) = tree.iter().next().unwrap().unwrap();
        let mut bytes = value.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        tree.insert(key, bytes).unwrap();
        db.flush().unwrap();
    }
    refused(
        &bob,
        &["inbox"],
        PASSPHRASE,
        &["client/inbox", "tampered", &kept],
    );
}

#[test]
fn keys_rotate_safety_numbers_match_and_a_wiped_device_is_gone_and_revoked() {
    let (mut post, alice, bob) = alice_and_bob();

    // Both sides compute the same number to read aloud.
    let a = alice.json(&["verify", "bob@paris"]);
    let b = bob.json(&["verify", "alice@paris"]);
    assert_eq!(a[0]["safety_number"], b[0]["safety_number"]);
    assert_eq!(a[0]["safety_number"].as_str().unwrap().len(), 71);

    let keys = bob.json(&["keys", "rotate"]);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    // Alice seals to Bob's new key, which Bob holds.
    let id = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "ROUTINE",
        "--subject",
        "After rotation",
        "--body",
        "Still readable.",
    ]);
    assert_eq!(bob.json(&["read", &id])["body"], "Still readable.");
    // Rotating more often than a node publishes keys for still works; every key stays held.
    for _ in 0..8 {
        bob.json(&["keys", "rotate"]);
    }
    assert_eq!(bob.json(&["keys", "list"]).as_array().unwrap().len(), 10);

    let wiped = bob.json(&["wipe", "--emergency"]);
    assert_eq!(wiped["erased"], true, "{wiped}");
    assert_eq!(wiped["node_notified"], true, "{wiped}");
    assert!(!bob.dir.path().join("storage.key").exists());
    assert!(!bob.dir.path().join("store").exists());
    refused(&bob, &["inbox"], PASSPHRASE, &["no Valise store"]);
    // The node revoked Bob's device: nobody can send to it any more.
    refused(
        &alice,
        &send_args("bob@paris", "SECRET"),
        PASSPHRASE,
        &["bob@paris", "revoked"],
    );
    post.stop();
}

#[test]
fn a_watching_device_reports_a_cable_as_it_arrives_and_stops_on_ctrl_c() {
    use std::io::BufRead;
    let (mut post, alice, bob) = alice_and_bob();
    // Sent before Bob watches: his watch's first sync brings it, and reports it.
    let early = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "ROUTINE",
        "--subject",
        "Before watching",
        "--body",
        "Earlier.",
    ]);

    let mut watch = std::process::Command::new(valise_devnet::process::bin("valise"))
        .args(["watch", "--json"])
        .env("VALISE_DATA_DIR", bob.dir.path())
        .env("VALISE_PASSPHRASE", PASSPHRASE)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_event = |kind: &str| loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {kind} event"));
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["event"] == kind {
            return event;
        }
    };
    next_event("online");
    let first = next_event("received");
    assert_eq!(first["id"], early, "what the first sync brought: {first}");
    let id = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "FLASH",
        "--subject",
        "While watching",
        "--body",
        "Now.",
    ]);
    let received = next_event("received");
    assert_eq!(received["id"], id, "{received}");
    assert_eq!(received["precedence"], "FLASH", "{received}");
    assert!(
        received["detail"].as_str().unwrap().contains("FLASH"),
        "{received}"
    );

    std::process::Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(watch.wait().unwrap().success());
    post.stop();
}

/// Alice's data folder is copied (a cloned device): both copies hold her keys. The node sees
/// the copy connect with a number it has seen before and says so to the device, raises an
/// alarm for its operator and audits it.
#[test]
fn a_cloned_device_folder_is_noticed_and_named() {
    let (post, alice, _bob) = alice_and_bob();
    let clone = Diplomat {
        dir: tempfile::tempdir().unwrap(),
    };
    copy_dir(alice.dir.path(), clone.dir.path());
    let out = alice.valise(&["inbox"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = clone.valise(&["inbox"]);
    let said = text(&out);
    assert!(
        said.contains("in use from another copy of its data folder"),
        "the copy is told: {said}"
    );
    let status = post.relay(&["status", "--config", &post.config()]);
    assert!(
        text(&status).contains("ALARM: CLONED DEVICE? device"),
        "{}",
        text(&status)
    );
    let audit = post.relay(&["audit", "show", "--config", &post.config(), "--last", "30"]);
    assert!(text(&audit).contains("cloned_device"), "{}", text(&audit));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Who may send what, as diplomats meet it: nobody writes above their own clearance, TAGS must
/// be real tags, NODIS and EXDIS cables are not forwarded (others are, with a reference and
/// their classification), NOFORN never reaches a locally employed colleague, and only action
/// addressees are asked to acknowledge a FLASH.
#[test]
fn who_may_send_what_is_checked_before_sealing() {
    let mut post = Post::new();
    post.start();
    let alice = post.enrol("alice", "SECRET", &["POL"]);
    let bob = post.enrol("bob", "TOP SECRET", &[]);
    let lucie = post.enrol_with("lucie", "SECRET", &[], &["--foreign-national"]);
    let directory = alice.json(&["directory"]);
    assert_eq!(directory.as_array().unwrap().len(), 3, "{directory}");

    let mut above = send_args("bob@paris", "TOP SECRET");
    above.extend(["--tags", "PREL"]);
    refused(
        &alice,
        &above,
        PASSPHRASE,
        &["you are cleared SECRET and may not write a TOP SECRET cable"],
    );
    let mut bad_tags = send_args("bob@paris", "SECRET");
    bad_tags.extend(["--tags", "not a tag,;;"]);
    refused(
        &alice,
        &bad_tags,
        PASSPHRASE,
        &["\"not a tag\" is not a tag"],
    );
    let mut unknown_tag = send_args("bob@paris", "SECRET");
    unknown_tag.extend(["--tags", "ZZZZ"]);
    refused(
        &alice,
        &unknown_tag,
        PASSPHRASE,
        &["ZZZZ is not a known tag", "extra_tags"],
    );
    let mut noforn = send_args("lucie@paris", "SECRET");
    noforn.extend(["--caveat", "NOFORN"]);
    refused(
        &alice,
        &noforn,
        PASSPHRASE,
        &["lucie@paris is recorded as a foreign national and this cable is NOFORN"],
    );
    assert!(
        alice.json(&["status"]).as_array().unwrap().is_empty(),
        "nothing was queued"
    );

    // A FLASH to bob (action) and lucie (info), tagged in lower case.
    let flash = alice.send(&[
        "--to",
        "bob@paris",
        "--info",
        "lucie@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "FLASH",
        "--tags",
        "prel,ke",
        "--subject",
        "Evacuation",
        "--body",
        "Assemble at the residence.",
    ]);
    let bob_inbox = bob.json(&["inbox"]);
    assert_eq!(bob_inbox[0]["ack_required"], true, "{bob_inbox}");
    let lucie_inbox = lucie.json(&["inbox"]);
    assert_eq!(
        lucie_inbox[0]["ack_required"], false,
        "info only: {lucie_inbox}"
    );
    let read = bob.json(&["read", &flash]);
    assert_eq!(read["tags"], serde_json::json!(["PREL", "KE"]), "{read}");

    // Bob forwards it to POL (alice's office): classification kept, the original referenced.
    let out = bob.valise(&[
        "--json",
        "forward",
        &flash,
        "--to",
        "POL@paris",
        "--comment",
        "FYI",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let forwarded = alice
        .json(&["inbox"])
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == "FWD: Evacuation")
        .cloned()
        .expect("the forward reached POL");
    assert_eq!(forwarded["classification"], "SECRET");
    let read = alice.json(&["read", forwarded["id"].as_str().unwrap()]);
    assert!(read["body"].as_str().unwrap().starts_with("FYI"), "{read}");
    assert!(
        read["body"]
            .as_str()
            .unwrap()
            .contains("Assemble at the residence.")
    );

    // NODIS and EXDIS are not forwarded.
    for caveat in ["NODIS", "EXDIS"] {
        let id = alice.send(&[
            "--to",
            "bob@paris",
            "--classification",
            "SECRET",
            "--precedence",
            "ROUTINE",
            "--caveat",
            caveat,
            "--subject",
            "Restricted",
            "--body",
            "For you only.",
        ]);
        let _ = bob.json(&["inbox"]);
        let out = bob.valise(&["forward", &id, "--to", "POL@paris"]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains(&format!("this cable is {caveat}: it may not be forwarded")),
            "{}",
            text(&out)
        );
    }
}

/// One person, one identity: a second device of alice must carry alice's details; a change
/// is made deliberately, for all her devices, and she can then write at her new clearance.
#[test]
fn a_user_keeps_one_identity_and_is_changed_deliberately() {
    let mut post = Post::new();
    post.start();
    let alice = post.enrol("alice", "SECRET", &["POL"]);
    let bob = post.enrol("bob", "TOP SECRET", &[]);
    let out = post.relay(&[
        "enroll",
        "--config",
        &post.config(),
        "--user",
        "alice",
        "--name",
        "Alice Martin",
        "--clearance",
        "TOP SECRET",
        "--office",
        "CONS",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("alice@paris is already enrolled as")
            && text(&out).contains("valise-relay user update"),
        "{}",
        text(&out)
    );
    let out = post.relay(&[
        "user",
        "update",
        "--config",
        &post.config(),
        "--user",
        "alice",
        "--clearance",
        "TOP SECRET",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("updated alice@paris on device"),
        "{}",
        text(&out)
    );
    let mut top = send_args("bob@paris", "TOP SECRET");
    top.extend(["--tags", "PREL"]);
    let out = alice.valise(&top);
    assert!(
        out.status.success(),
        "now cleared TOP SECRET: {}",
        text(&out)
    );
    assert_eq!(bob.json(&["inbox"]).as_array().unwrap().len(), 1);
    let audit = post.relay(&["audit", "show", "--config", &post.config(), "--last", "30"]);
    assert!(
        text(&audit).contains("clearance=TOP_SECRET"),
        "{}",
        text(&audit)
    );
}

/// A cable the node refuses for good (over a limit lowered since the device learnt it, or to
/// a recipient revoked since it was sealed) leaves the outbox with the reason, and the cables
/// behind it go; a queued cable can be cancelled.
#[test]
fn a_refused_cable_holds_nothing_back_and_a_queued_one_can_be_cancelled() {
    let (mut post, alice, bob) = alice_and_bob();
    post.stop();
    post.configure("[limits]\nmax_envelope_bytes = 20000\n");
    // Written while the node is away: the device still knows the old limit.
    let long_text = "word ".repeat(10_000);
    let big = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "FLASH",
        "--tags",
        "ADMN",
        "--subject",
        "Too long",
        "--body",
        &long_text,
    ]);
    let small = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "ROUTINE",
        "--tags",
        "ADMN",
        "--subject",
        "Short",
        "--body",
        "Short.",
    ]);
    let regret = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "ROUTINE",
        "--tags",
        "ADMN",
        "--subject",
        "Sent in error",
        "--body",
        "Oops.",
    ]);
    let out = alice.valise(&["cancel", &regret]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cancelled"), "{}", text(&out));
    post.start();
    let out = alice.valise(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = alice.json(&["status", &big]);
    let refused = status["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("over this node's") && refused.contains("limit"),
        "the limit is named: {status}"
    );
    let inbox = bob.json(&["inbox"]);
    let subjects: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["subject"].as_str())
        .collect();
    assert_eq!(
        subjects,
        ["Short"],
        "the short one went past the refused one: {inbox}"
    );
    assert_eq!(alice.json(&["status", &regret])["cancelled"], true);
    assert_eq!(
        state_of(&alice.json(&["status", &small]), "bob@paris"),
        "delivered"
    );
    // Nothing waits in the outbox any more: a further sync sends nothing again.
    let out = alice.valise(&["inbox"]);
    assert!(
        !text(&out).contains("refused"),
        "reported once: {}",
        text(&out)
    );
    let out = alice.valise(&["cancel", &small]);
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot be recalled"), "{}", text(&out));
}

/// Evidence that survives reading: Bob exports what proves Alice's cable (with its content
/// key), Alice what proves its custody and receipts; a third party checks each with the root
/// fingerprint only. A flipped byte, or another root, fails and is named.
#[test]
fn an_evidence_bundle_verifies_offline_and_a_flipped_byte_fails() {
    let (post, alice, bob) = alice_and_bob();
    let id = alice.send(&[
        "--to",
        "bob@paris",
        "--classification",
        "SECRET",
        "--precedence",
        "FLASH",
        "--tags",
        "PREL",
        "--subject",
        "Demarche",
        "--body",
        "Deliver the note verbal today.",
    ]);
    let _ = bob.json(&["inbox"]);
    assert!(bob.valise(&["ack", &id]).status.success());
    let _ = alice.json(&["inbox"]);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bob.evidence");
    let out = bob.valise(&[
        "evidence",
        "export",
        &id,
        "--out",
        bundle.to_str().unwrap(),
        "--disclose-content",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // Checked by someone with no device at all: a fresh, empty data folder.
    let auditor = Diplomat {
        dir: tempfile::tempdir().unwrap(),
    };
    let verify = |file: &std::path::Path, fp: &str| {
        auditor.valise(&[
            "--json",
            "evidence",
            "verify",
            file.to_str().unwrap(),
            "--ca-fingerprint",
            fp,
        ])
    };
    let out = verify(&bundle, &post.fingerprint);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["sender"], "alice@paris");
    assert_eq!(report["content"]["subject"], "Demarche");
    assert_eq!(report["content"]["text"], "Deliver the note verbal today.");
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(checks.contains(&"the sender's signature"), "{checks:?}");
    assert!(
        checks
            .iter()
            .any(|c| c.starts_with("the acknowledged receipt of bob@paris"))
    );

    // Alice's side: custody by Paris, and Bob's receipts.
    let sent = dir.path().join("alice.evidence");
    let out = alice.valise(&["evidence", "export", &id, "--out", sent.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = verify(&sent, &post.fingerprint);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].to_string();
    assert!(checks.contains("custody by node paris"), "{checks}");
    assert!(
        checks.contains("the delivered receipt of bob@paris"),
        "{checks}"
    );

    // Another root: refused at once.
    let out = verify(&bundle, "0000 0000");
    assert!(!out.status.success());
    // Flip one byte of the body ciphertext inside the bundle: the checks that fail are named.
    let mut decoded = <valise_proto::v1::EvidenceBundle as prost::Message>::decode(
        std::fs::read(&bundle).unwrap().as_slice(),
    )
    .unwrap();
    let mut envelope =
        <valise_proto::v1::Envelope as prost::Message>::decode(decoded.envelope.as_slice())
            .unwrap();
    envelope.body_ciphertext[10] ^= 0x01;
    decoded.envelope = prost::Message::encode_to_vec(&envelope);
    let flipped = dir.path().join("flipped.evidence");
    std::fs::write(&flipped, prost::Message::encode_to_vec(&decoded)).unwrap();
    let out = verify(&flipped, &post.fingerprint);
    assert!(
        !out.status.success(),
        "a flipped byte must not verify: {}",
        text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"the sender's signature"), "{report}");
    assert!(failed.contains(&"the content"), "{report}");
}

/// The words people meet when something is off: each says what happened and what to do.
#[test]
fn errors_people_meet_say_what_happened_and_what_to_do() {
    let (post, alice, bob) = alice_and_bob();
    // Too short a cable id.
    let out = alice.valise(&["ack", "46"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("\"46\" is not a cable id: give at least 4 of its hex digits"),
        "{}",
        text(&out)
    );
    // Addresses typed in another case mean the one the directory spells.
    let id = alice.send(&[
        "--to",
        "Bob@PARIS",
        "--classification",
        "SECRET",
        "--precedence",
        "ROUTINE",
        "--subject",
        "Case",
        "--body",
        "Any case will do.",
    ]);
    let inbox = bob.json(&["inbox"]);
    assert_eq!(inbox[0]["id"], id, "{inbox}");
    // A new device's passphrase must be a real one.
    let newcomer = Diplomat {
        dir: tempfile::tempdir().unwrap(),
    };
    let code = post.invite("carol", "SECRET", &[]);
    let out = newcomer.valise_with(
        &[
            "enroll",
            "--node",
            &post.addr,
            "--code",
            &code,
            "--ca-fingerprint",
            &post.fingerprint,
        ],
        "short",
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("use at least 15"), "{}", text(&out));
    // Enrolled with --json: the node's address, to dial it again.
    let out = newcomer.valise(&[
        "--json",
        "enroll",
        "--node",
        &post.addr,
        "--code",
        &code,
        "--ca-fingerprint",
        &post.fingerprint,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let enrolled: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enrolled["node"], post.addr.as_str(), "{enrolled}");
    assert_eq!(enrolled["node_name"], "paris", "{enrolled}");
    // A revoked device is told so, and when, and whom to ask.
    post.revoke("bob");
    let out = bob.valise(&["inbox"]);
    assert!(
        text(&out).contains("this device was revoked on 20")
            && text(&out).contains("contact ministry IT"),
        "{}",
        text(&out)
    );
    let out = alice.valise(&["directory", "bob"]);
    assert!(text(&out).contains("REVOKED on"), "{}", text(&out));
    assert!(!text(&out).contains("Nobody"), "{}", text(&out));
}
