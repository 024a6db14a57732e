//! Helpers shared by the relay's integration tests: driving the `valise-relay` binary, and
//! reading a node's frames.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const PASSPHRASE: &str = "correct horse battery staple";

pub fn relay(args: &[&str], dir: &Path, passphrase: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_valise-relay"))
        .args(args)
        .current_dir(dir)
        .env("VALISE_PASSPHRASE", passphrase)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A ministry CA and a Paris post issued in a fresh folder.
/// `ca issue-node` for the Paris post node, from a CA in `ca`, into `paris`.
pub const ISSUE_PARIS: &[&str] = &[
    "ca",
    "issue-node",
    "--ca",
    "ca",
    "--name",
    "paris",
    "--kind",
    "post",
    "--addr",
    "localhost:0",
    "--out",
    "paris",
];

pub fn paris() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        relay(
            &["ca", "init", "--ministry", "mfa.example", "--out", "ca"],
            dir.path(),
            PASSPHRASE
        )
        .status
        .success()
    );
    let out = relay(ISSUE_PARIS, dir.path(), PASSPHRASE);
    assert!(out.status.success(), "{}", text(&out));
    // Tests run side by side: give each node its own metrics port.
    let config = dir.path().join("paris/node.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&config, toml).unwrap();
    dir
}

/// Starts `valise-relay run` and returns it with the address it listens on.
pub fn start_node(dir: &Path) -> (std::process::Child, std::net::SocketAddr) {
    let mut node = Command::new(env!("CARGO_BIN_EXE_valise-relay"))
        .args(["run", "--config", "paris/node.toml"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(node.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    (node, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

pub fn stop_node(mut node: std::process::Child) {
    Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(node.wait().unwrap().success());
}

/// An enrolled device, as a test client holds it.
pub struct Device {
    pub identity: valise_crypto::identity::IdentityKeyPair,
    pub keys: Vec<valise_crypto::receive_key::ReceiveKeyPair>,
    pub published: valise_crypto::receive_key::VerifiedReceiveKey,
    pub tls: valise_pki::CertifiedKey,
}

/// Connects to the Paris node at `addr` (pinning `paris/ca.pem`), as `who` or anonymously.
pub async fn connect(
    dir: &Path,
    addr: std::net::SocketAddr,
    who: Option<&valise_pki::CertifiedKey>,
) -> Option<quinn::Connection> {
    let ca_pem = std::fs::read_to_string(dir.join("paris/ca.pem")).unwrap();
    let config = valise_crypto::tls::client_config(&ca_pem, who).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    endpoint.connect(addr, "paris.mfa.example").ok()?.await.ok()
}

/// Sends one frame on a new stream and reads the one reply.
pub async fn exchange(
    conn: &quinn::Connection,
    frame: &valise_proto::v1::ClientFrame,
) -> Option<valise_proto::v1::NodeFrame> {
    let (mut send, mut recv) = conn.open_bi().await.ok()?;
    send.write_all(&valise_proto::framing::encode(frame))
        .await
        .ok()?;
    let _ = send.finish();
    let bytes = recv.read_to_end(1 << 20).await.ok()?;
    let mut decoder = valise_proto::framing::FrameDecoder::new(1 << 20);
    decoder.push(&bytes);
    decoder.next_frame().ok()?
}

/// What a new device does with a code: make its keys, enrol on `valise-enroll/1`.
pub async fn enrol_device(dir: &Path, addr: std::net::SocketAddr, code: &str) -> Option<Device> {
    use valise_proto::v1::{ClientFrame, EnrolRequest, node_frame};
    let identity = valise_crypto::identity::IdentityKeyPair::generate().unwrap();
    let key = valise_crypto::receive_key::ReceiveKeyPair::generate(0, u64::MAX).unwrap();
    let signed = key.to_signed_record(&identity).unwrap();
    let published =
        valise_crypto::receive_key::VerifiedReceiveKey::verify(&signed, identity.public()).unwrap();
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&tls_key)
        .unwrap();
    let request = ClientFrame {
        frame: Some(valise_proto::v1::client_frame::Frame::Enrol(EnrolRequest {
            code: code.into(),
            identity_key: identity.public().as_bytes().to_vec(),
            receive_keys: vec![signed],
            csr: csr.der().to_vec(),
        })),
    };
    let conn = connect(dir, addr, None).await?;
    let Some(node_frame::Frame::Enrolled(enrolled)) = exchange(&conn, &request).await?.frame else {
        return None;
    };
    let tls = valise_pki::CertifiedKey {
        chain_pem: enrolled.certificate_chain,
        key_pem: zeroize::Zeroizing::new(tls_key.serialize_pem()),
    };
    Some(Device {
        identity,
        keys: vec![key],
        published,
        tls,
    })
}

/// A cable from `from` (at `from_address`) to `to` (at `to_address`), sealed to `to`'s
/// device; returns its id and the envelope's bytes.
pub fn sealed_cable(
    from: &Device,
    from_address: &str,
    to: &Device,
    to_address: &str,
    classification: valise_proto::v1::Classification,
) -> (Vec<u8>, Vec<u8>) {
    use prost::Message;
    let header = valise_proto::v1::RoutingHeader {
        cable_id: valise_crypto::envelope::new_cable_id().unwrap().to_vec(),
        from: from_address.into(),
        action_addressees: vec![to_address.into()],
        classification: classification as i32,
        precedence: valise_proto::v1::Precedence::Routine as i32,
        created_at_ms: 1,
        ..Default::default()
    };
    let id = header.cable_id.clone();
    let body = valise_proto::v1::CableBody {
        text: "queued".into(),
        ..Default::default()
    };
    let envelope = valise_crypto::envelope::seal(
        &from.identity,
        header,
        &body,
        std::slice::from_ref(&to.published),
    )
    .unwrap();
    (id, envelope.encode_to_vec())
}

/// Submits `envelope` on `conn` and checks that the node took custody of it.
pub async fn submit(conn: &quinn::Connection, envelope: Vec<u8>) {
    let frame = ClientFrame {
        frame: Some(client_frame::Frame::Submit(valise_proto::v1::Submit {
            envelope,
            attachments: vec![],
        })),
    };
    let reply = exchange(conn, &frame).await.unwrap();
    assert!(
        matches!(reply.frame, Some(node_frame::Frame::CustodyReceipt(_))),
        "{reply:?}"
    );
}

/// Issues an enrolment code with the `enroll` command (online or offline).
pub fn enroll_code(dir: &Path, user: &str, clearance: &str) -> String {
    let out = relay(
        &[
            "enroll",
            "--config",
            "paris/node.toml",
            "--user",
            user,
            "--name",
            user,
            "--clearance",
            clearance,
        ],
        dir,
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    code_in(&out)
}

/// The enrolment code `enroll` printed: the last word of its first line.
pub fn code_in(out: &std::process::Output) -> String {
    text(out)
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// The next frame on a node's stream, or `None` once the node has finished it. Waits at most
/// 30 s for the node to say something.
pub async fn next_node_frame(
    recv: &mut quinn::RecvStream,
    decoder: &mut valise_proto::framing::FrameDecoder,
) -> Option<valise_proto::v1::NodeFrame> {
    loop {
        if let Some(frame) = decoder.next_frame::<valise_proto::v1::NodeFrame>().unwrap() {
            return Some(frame);
        }
        let chunk = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            recv.read_chunk(1 << 16, true),
        )
        .await
        .expect("the node neither sent a frame nor finished the stream")
        .unwrap();
        match chunk {
            Some(chunk) => decoder.push(&chunk.bytes),
            None => {
                decoder.finish().unwrap();
                return None;
            }
        }
    }
}

// Attachments over a device connection.

use std::time::Duration;

use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{ClientFrame, ErrorCode, NodeFrame, client_frame, node_frame};

/// The code and message of an error frame, or `None` for any other frame.
pub fn refusal(frame: &NodeFrame) -> Option<(ErrorCode, String)> {
    match &frame.frame {
        Some(node_frame::Frame::Error(e)) => {
            Some((ErrorCode::try_from(e.code).unwrap(), e.message.clone()))
        }
        _ => None,
    }
}

/// Deterministic bytes that are not a repeating pattern.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn upload_frame(sha256: &[u8], size: u64) -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::AttachmentUpload(
            valise_proto::v1::AttachmentUpload {
                ciphertext_sha256: sha256.to_vec(),
                size,
            },
        )),
    }
}

/// Uploads `body` announced as `size` bytes hashing to `sha256`, in uneven pieces, and returns
/// the node's answer. Writing may fail once the node has refused and stopped reading.
pub async fn upload(conn: &quinn::Connection, sha256: &[u8], size: u64, body: &[u8]) -> NodeFrame {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut bytes = encode(&upload_frame(sha256, size));
    // Some raw bytes travel with the frame, as a client writing both at once would send them.
    let head = body.len().min(1000);
    bytes.extend_from_slice(&body[..head]);
    let writing = async {
        send.write_all(&bytes).await?;
        for piece in body[head..].chunks(77_777) {
            send.write_all(piece).await?;
        }
        send.finish().map_err(|_| quinn::WriteError::ClosedStream)
    };
    let _ = writing.await;
    let reply = tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(1 << 20))
        .await
        .unwrap()
        .unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&reply);
    decoder.next_frame::<NodeFrame>().unwrap().unwrap()
}

/// Fetches an attachment: its announced size and bytes, or the refusal.
pub async fn fetch(
    conn: &quinn::Connection,
    sha256: &[u8],
) -> Result<(u64, Vec<u8>), (ErrorCode, String)> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let frame = ClientFrame {
        frame: Some(client_frame::Frame::AttachmentFetch(
            valise_proto::v1::AttachmentFetch {
                ciphertext_sha256: sha256.to_vec(),
            },
        )),
    };
    send.write_all(&encode(&frame)).await.unwrap();
    send.finish().unwrap();
    let all = tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(64 << 20))
        .await
        .unwrap()
        .unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&all);
    let first = decoder.next_frame::<NodeFrame>().unwrap().unwrap();
    match first.frame {
        Some(node_frame::Frame::AttachmentFollows(follows)) => {
            Ok((follows.size, decoder.take_rest()))
        }
        _ => Err(refusal(&first).unwrap()),
    }
}
