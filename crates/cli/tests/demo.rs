//! `valise demo`, the README's first command, as a newcomer runs it: a hub and two posts, cables
//! within Paris and across the network to Nairobi and back, receipts, and every node's audit
//! log verified with its neighbours' cosignatures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The lines that follow the first line containing every one of `heading`, up to the next line
/// indented as little as the heading (the recipients of a sent cable, say).
fn block<'a>(story: &'a str, heading: &[&str]) -> Vec<&'a str> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut lines = story.lines();
    let Some(head) = lines.find(|l| heading.iter().all(|h| l.contains(h))) else {
        panic!("the demo never shows a line with {heading:?}:\n{story}");
    };
    lines.take_while(|l| indent(l) > indent(head)).collect()
}

/// Whether some line of `lines` contains every one of `parts`.
fn says(lines: &[&str], parts: &[&str]) -> bool {
    lines.iter().any(|l| parts.iter().all(|p| l.contains(p)))
}

#[test]
fn the_demo_sends_cables_across_posts_exits_zero_and_can_keep_its_files() {
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().join("network");
    let out = Command::new(env!("CARGO_BIN_EXE_valise"))
        .args(["demo", "--keep", dir.to_str().unwrap()])
        .env_remove("VALISE_DATA_DIR")
        .output()
        .unwrap();
    let story = text(&out);
    assert!(out.status.success(), "{story}");
    let lines: Vec<&str> = story.lines().collect();
    for phrase in [
        "two embassies",
        "FLASH NIACT",
        "TOP SECRET",
        "ROUTINE",
        "PRIORITY",
        "IMMEDIATE",
        "is cleared SECRET only",
        "identical to what alice attached",
    ] {
        assert!(
            story.contains(phrase),
            "the demo never says {phrase:?}:\n{story}"
        );
    }
    assert!(!story.contains("CORRUPTED"), "{story}");

    // Three nodes, and the posts' links to the hub.
    for node in ["hq", "paris", "nairobi"] {
        assert!(
            says(&lines, &["node ", node, "listening on 127.0.0.1:"]),
            "{story}"
        );
    }
    assert!(says(&lines, &["links up"]), "{story}");

    // Paris hands cables for Nairobi to its node, at every precedence.
    for (precedence, to) in [
        ("ROUTINE", "-> nairobi "),
        ("PRIORITY", "-> david@nairobi"),
        ("IMMEDIATE", "-> david@nairobi"),
        ("FLASH NIACT", "-> ambassador@nairobi"),
    ] {
        assert!(
            says(&lines, &[precedence, "@paris", to, "in paris's custody"]),
            "no {precedence} cable from Paris to Nairobi:\n{story}"
        );
    }
    // They arrive at Nairobi, most urgent first, from their Paris senders.
    let inbox = block(&story, &["ambassador@nairobi's inbox"]);
    let senders: Vec<&str> = inbox
        .iter()
        .filter_map(|l| l.split(" from ").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(
        senders,
        [
            "ambassador@paris",
            "ambassador@paris",
            "alice@paris",
            "carol@paris"
        ],
        "{story}"
    );
    assert!(inbox[0].contains("FLASH NIACT"), "{story}");
    // The TOP SECRET cable refused for a SECRET reader goes to the one reader cleared for it.
    assert!(
        inbox[1].contains("TOP SECRET//NODIS") && inbox[1].contains("Evacuation plan"),
        "{story}"
    );

    // The senders in Paris learn what became of each cable in Nairobi, and the reply makes it
    // back to Paris.
    for (cable, recipient, state) in [
        ("Consular statistics", "ambassador@nairobi", "delivered"),
        ("Programme of the trade delegation", "david@nairobi", "read"),
        ("request for a joint assessment", "david@nairobi", "read"),
        (
            "Evacuation of nationals",
            "ambassador@nairobi",
            "acknowledged",
        ),
        ("Evacuation of nationals", "alice@paris", "read"),
        ("Evacuation plan", "ambassador@nairobi", "delivered"),
        ("RE: Border crossings", "alice@paris", "read"),
    ] {
        let recipients = block(&story, &["\"", cable, "\", from "]);
        assert!(
            says(&recipients, &[recipient, state]),
            "{recipient} is not shown {state} for {cable:?}:\n{story}"
        );
    }
    assert!(
        says(&lines, &["IMMEDIATE", "david@nairobi", "-> alice@paris"]),
        "{story}"
    );

    // Every node's log verifies, with its neighbours' cosignatures.
    for (node, witnesses) in [
        ("hq", &["by paris", "by nairobi"][..]),
        ("paris", &["by hq"][..]),
        ("nairobi", &["by hq"][..]),
    ] {
        let verified = lines
            .iter()
            .position(|l| {
                l.trim_start().starts_with(&format!("{node} "))
                    && l.contains("signed checkpoints, every root recomputed")
            })
            .unwrap_or_else(|| panic!("{node}'s audit log is not shown verified:\n{story}"));
        let cosigned = lines[verified + 1];
        assert!(cosigned.contains("cosignatures verified"), "{story}");
        for witness in witnesses {
            assert!(
                cosigned.contains(witness),
                "{node}'s log shows no cosignature {witness}:\n{story}"
            );
        }
    }

    // Kept for inspection: each node's audit log and each diplomat's sealed store.
    for node in ["hq", "paris", "nairobi"] {
        assert!(
            dir.join("nodes").join(node).join("audit").is_dir(),
            "{node}"
        );
    }
    assert!(dir.join("devices/alice@paris/storage.key").is_file());
    // The brief alice attached was opened at both posts: at Paris by its recipient there, and
    // at Nairobi from Nairobi's own node, where it crossed the hub with its cable.
    assert!(
        says(
            &lines,
            &["david in Nairobi saves", "identical to what alice attached"]
        ),
        "{story}"
    );
    let attached = std::fs::read(dir.join("northern-border-brief.txt")).unwrap();
    for copy in ["saved-in-paris", "saved-in-nairobi"] {
        let saved = std::fs::read(dir.join(copy).join("northern-border-brief.txt")).unwrap();
        assert!(saved == attached, "{copy} differs from what alice attached");
    }
    assert!(
        dir.join("nodes/nairobi/attachments")
            .read_dir()
            .unwrap()
            .any(|f| !f.unwrap().file_name().to_string_lossy().starts_with('.')),
        "Nairobi's node holds the attachment"
    );
    assert!(dir.join("devices/david@nairobi/storage.key").is_file());

    // A folder that is not empty is refused, not overwritten.
    let again = Command::new(env!("CARGO_BIN_EXE_valise"))
        .args(["demo", "--keep", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));
}
