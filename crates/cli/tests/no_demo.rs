//! `valise demo` in the client ministry IT ships, built without the `demo` feature: a clear
//! error that says how to get the demonstration, a failing exit status, no panic. Runs with
//! `cargo test -p valise-cli --no-default-features --test no_demo`; with the feature (the
//! default) there is nothing here to test, and `tests/demo.rs` runs the demo itself.

#![cfg(not(feature = "demo"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn valise_demo_without_the_feature_says_how_to_get_one_and_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_valise"))
        .args(["demo"])
        .env_remove("VALISE_DATA_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    assert!(
        stderr.starts_with("error: this build of valise has no demonstration network"),
        "{stderr}"
    );
    assert!(stderr.contains("--features demo"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
