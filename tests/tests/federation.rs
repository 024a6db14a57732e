//! The federated network: a hub and two posts, each a `valise-relay` child process, with
//! diplomats at each post using the `valise` binary. Cables cross the hub with custody at every
//! hop, enrolments and revocations replicate, and a killed hub loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use valise_tests::{Diplomat, Network, Node, text};

/// Hub `hq`, posts `paris` and `nairobi` dialling it, all running.
fn three_nodes() -> (Network, Node, Node, Node) {
    let network = Network::new();
    let mut hub = network.hub("hq");
    let mut paris = network.post("paris", Some(&hub));
    let mut nairobi = network.post("nairobi", Some(&hub));
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

fn send(from: &Diplomat, to: &str, precedence: &str, subject: &str) -> String {
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
        "Text.",
    ])
}

#[test]
fn paris_reaches_nairobi_through_the_hub_at_every_precedence() {
    let (_network, _hub, paris, nairobi) = three_nodes();
    let alice = paris.enrol("alice", "SECRET", &[]);
    let bob = nairobi.enrol("bob", "SECRET", &[]);
    // Bob's enrolment at Nairobi reaches Paris through the hub, and Alice's reaches Nairobi.
    knows(&alice, "bob@nairobi");
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
        let gone = list
            .as_array()
            .is_none_or(|l| !l.iter().any(|e| e["address"] == "bob@nairobi"));
        gone.then_some(())
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
