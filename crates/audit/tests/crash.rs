//! A node killed with SIGKILL in the middle of heavy appends loses nothing it acknowledged.
//!
//! The test binary runs itself again as the child: with `VALISE_AUDIT_CRASH_CHILD` set, the
//! test appends from 8 threads and prints `ok <index>` after each append returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use valise_audit::AuditLog;
use valise_audit::verify::verify_dir;

const CHILD_ENV: &str = "VALISE_AUDIT_CRASH_CHILD";
const ACKS_BEFORE_KILL: usize = 2000;

#[test]
fn a_killed_appender_loses_nothing_it_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return append_until_killed(dir.as_ref());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_appender_loses_nothing_it_acknowledged",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(index) = line.strip_prefix("ok ") {
            acked.push(index.parse::<u64>().unwrap());
            if acked.len() == ACKS_BEFORE_KILL {
                child.kill().unwrap(); // SIGKILL on Unix
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child stopped early");

    let log = AuditLog::open(config(&path, 256), node_key()).unwrap();
    let max = *acked.iter().max().unwrap();
    assert!(
        log.size() > max,
        "size {} does not cover acknowledged index {max}",
        log.size()
    );
    for &index in &acked {
        assert_eq!(
            log.event(index).unwrap().index,
            index,
            "acknowledged entry {index} lost"
        );
    }
    let checkpoint = log.checkpoint_now().unwrap();
    assert!(
        checkpoint.checkpoint.size > max,
        "the next checkpoint covers every acknowledged entry"
    );
    log.close().unwrap();
    let report = verify_dir(&path, &keys(), Some(checkpoint.checkpoint)).unwrap();
    assert!(report.entries > max);
}

fn append_until_killed(path: &std::path::Path) {
    let log = Arc::new(AuditLog::open(config(path, 256), node_key()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0.. {
                    let index = log.append(event(t * 1_000_000 + i)).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ok {index}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
