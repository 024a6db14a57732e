//! `valise demo`, the README's first command, as a newcomer runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use valise_tests::{bin, text};

#[test]
fn the_demo_tells_its_story_exits_zero_and_can_keep_its_files() {
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().join("network");
    let out = Command::new(bin("valise"))
        .args(["demo", "--keep", dir.to_str().unwrap()])
        .env_remove("VALISE_DATA_DIR")
        .output()
        .unwrap();
    let story = text(&out);
    assert!(out.status.success(), "{story}");
    for line in [
        "headquarters and two embassies",
        "cables for Nairobi cross the hub",
        "FLASH NIACT",
        "TOP SECRET",
        "ROUTINE",
        "PRIORITY",
        "IMMEDIATE",
        "is cleared SECRET only",
        "identical to what alice attached",
        "acknowledged",
        "signed checkpoints, every root recomputed",
        "cosignatures verified: 1 by hq",
    ] {
        assert!(
            story.contains(line),
            "the demo never says {line:?}:\n{story}"
        );
    }
    assert!(!story.contains("CORRUPTED"), "{story}");
    // A cable from Paris reached Nairobi and was acknowledged there.
    assert!(
        story
            .lines()
            .any(|l| l.contains("ambassador@nairobi") && l.contains("acknowledged")),
        "{story}"
    );
    // Kept for inspection: each node's audit log and each diplomat's sealed store.
    for node in ["hq", "paris", "nairobi"] {
        assert!(dir.join(format!("nodes/{node}/audit")).is_dir(), "{node}");
    }
    assert!(dir.join("devices/alice@paris/storage.key").is_file());
    assert!(dir.join("devices/david@nairobi/storage.key").is_file());

    // A folder that is not empty is refused, not overwritten.
    let again = Command::new(bin("valise"))
        .args(["demo", "--keep", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));
}
