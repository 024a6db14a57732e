//! The node configuration as an operator writes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use valise_relay::config::{Config, ConfigError, LogFormat, NodeKind};
use valise_relay::limits::Limits;

const MINIMAL: &str = r#"
[node]
name = "nairobi"
kind = "post"
ministry = "mfa.example"
"#;

#[test]
fn a_minimal_file_gets_every_documented_default() {
    let c = Config::parse(MINIMAL, Path::new("/etc/valise")).unwrap();
    assert_eq!(c.node.kind, NodeKind::Post);
    assert_eq!(c.node.listen.to_string(), "0.0.0.0:4433");
    assert_eq!(c.node.data_dir, Path::new("/etc/valise/data"));
    assert_eq!(c.tls.node_key, Path::new("/etc/valise/node.key"));
    assert_eq!(c.limits, Limits::default());
    assert_eq!(
        (
            c.enrolment.code_ttl_hours,
            c.audit.checkpoint_every_entries,
            c.audit.checkpoint_interval_ms
        ),
        (72, 256, 1000)
    );
    assert_eq!(c.metrics.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.admin_socket(), Path::new("/etc/valise/data/admin.sock"));
    assert_eq!(
        (c.log.format, c.log.level.as_str()),
        (LogFormat::Text, "info")
    );
    assert_eq!(c.audit_origin(), "valise/mfa.example/nairobi/audit");
    assert_eq!(c.limits.max_attachment_bytes, 1 << 30);
    assert_eq!(c.attachments.retention_days, 30);
    assert_eq!(
        c.attachment_retention(),
        std::time::Duration::from_secs(30 * 86_400)
    );
}

/// The annotated example in deploy/ states the defaults: it must stay true.
#[test]
fn the_annotated_example_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/node.example.toml");
    let example = Config::load(&path).unwrap();
    let mut minimal =
        Config::parse(&MINIMAL.replace("nairobi", "paris"), path.parent().unwrap()).unwrap();
    minimal.node.hub = Some("hq.mfa.example:4433".into());
    assert_eq!(example, minimal);
}

#[test]
fn a_typo_is_an_error_not_a_silent_default() {
    let text = format!("{MINIMAL}\n[limits]\nmax_recipient = 10\n");
    let err = Config::parse(&text, Path::new(".")).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `max_recipient`"),
        "{err}"
    );
    assert!(err.to_string().contains("line"), "says where: {err}");
}

#[test]
fn unusable_values_name_the_setting_and_the_fix() {
    let cases = [
        (MINIMAL.replace("nairobi", "Nairobi"), "node.name"),
        (
            MINIMAL.replace("\"post\"", "\"embassy\""),
            "unknown variant",
        ),
        (format!("{MINIMAL}hub = \"hq\"\n"), "node.hub"),
        (
            MINIMAL.replace("\"post\"", "\"hub\"") + "hub = \"hq:4433\"\n",
            "a hub does not connect",
        ),
        (
            format!("{MINIMAL}[limits]\nmax_recipients = 0\n"),
            "limits.max_recipients",
        ),
        (
            format!("{MINIMAL}[metrics]\nlisten = \"0.0.0.0:9464\"\n"),
            "loopback",
        ),
        (
            format!("{MINIMAL}[log]\nformat = \"xml\"\n"),
            "unknown variant",
        ),
        (
            format!("{MINIMAL}[log]\nlevel = \"valise_relay=loudest\"\n"),
            "log.level",
        ),
        ("[node]\nname = \"x\"\n".into(), "missing field"),
        (
            format!("{MINIMAL}[limits]\nmax_attachment_bytes = 0\n"),
            "`limits.max_attachment_bytes` is invalid: must be between 1 and 68719476736",
        ),
        (
            format!("{MINIMAL}[limits]\nmax_envelope_bytes = 18446744073709551615\n"),
            "`limits.max_envelope_bytes` is invalid: must be between 1 and 67108864; \
             18446744073709551615 is outside that",
        ),
        (
            format!("{MINIMAL}[limits]\nmax_connections_per_source = 0\n"),
            "`limits.max_connections_per_source` is invalid: must be between 1 and 100000",
        ),
        (
            format!("{MINIMAL}[audit]\ncheckpoint_interval_ms = 99999999999\n"),
            "`audit.checkpoint_interval_ms` is invalid: must be between 1 and 3600000",
        ),
        (
            format!("{MINIMAL}[queue]\ndedup_days = 0\n"),
            "`queue.dedup_days` is invalid",
        ),
        (
            format!("{MINIMAL}[attachments]\nretention_days = 0\n"),
            "`attachments.retention_days` is invalid: must be between 1 and 3650 days",
        ),
        (
            format!("{MINIMAL}[attachments]\nretention_days = 100000\n"),
            "`attachments.retention_days` is invalid",
        ),
        (
            format!("{MINIMAL}[attachments]\nretention_days = -1\n"),
            "retention_days",
        ),
        (
            format!("{MINIMAL}[attachments]\nretention = 30\n"),
            "unknown field `retention`",
        ),
    ];
    for (text, expected) in cases {
        let err = Config::parse(&text, Path::new(".")).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?} in: {err}"
        );
    }
}

#[test]
fn a_missing_file_says_which() {
    let err = Config::load(Path::new("/nonexistent/node.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/node.toml"));
}

#[test]
fn peer_posts_are_read_and_mistakes_in_them_are_named() {
    let with_peer = format!(
        "{MINIMAL}\n[links]\nforward_window = 8\n[[peers]]\nname = \"kampala\"\naddr = \"kampala.mfa.example:4433\"\n"
    );
    let c = Config::parse(&with_peer, Path::new(".")).unwrap();
    assert_eq!(c.peers.len(), 1);
    assert_eq!(c.peers[0].name, "kampala");
    assert_eq!(c.links.forward_window, 8);

    let peer = "[[peers]]\nname = \"kampala\"\naddr = \"kampala.mfa.example:4433\"\n";
    for (text, setting) in [
        (
            format!("{}\n{peer}", MINIMAL.replace("\"post\"", "\"hub\"")),
            "peers",
        ),
        (
            format!("{MINIMAL}\n[[peers]]\nname = \"kampala\"\naddr = \"kampala\"\n"),
            "peers.addr",
        ),
        (format!("{MINIMAL}\n{peer}{peer}"), "peers.name"),
        (
            format!("{MINIMAL}\n[[peers]]\nname = \"nairobi\"\naddr = \"x:1\"\n"),
            "peers.name",
        ),
        (
            format!("{MINIMAL}\n[links]\nforward_window = 0\n"),
            "links.forward_window",
        ),
    ] {
        match Config::parse(&text, Path::new(".")).unwrap_err() {
            ConfigError::Invalid { setting: s, reason } => {
                assert_eq!(s, setting, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{setting}: {other}"),
        }
    }
}
