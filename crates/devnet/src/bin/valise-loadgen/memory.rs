//! What a node holds in memory with many devices connected, apart from the load generator's
//! own: the node is the `valise-relay` binary in a process of its own, set up as ministry IT
//! would (`ca init`, `ca issue-node`, `run`), its devices enrolled over the wire with one-time
//! codes from its admin socket. It is restarted once they are enrolled, so its idle figure is
//! that of a node that starts with them in its directory; then every device connects, says
//! hello and keeps a live subscription per lane, as an idle desktop client does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::ReceiveKeyPair;
use valise_pki::CertifiedKey;
use valise_proto::framing::{FrameDecoder, encode};
use valise_proto::v1::{
    AdminEnroll, AdminRequest, ClientFrame, DeliveryLane, EnrolRequest, Hello, NodeFrame,
    Subscribe, admin_request, admin_response, client_frame, node_frame,
};
use zeroize::Zeroizing;

/// The passphrase of the throwaway CA and node.
const PASSPHRASE: &str = "load generator passphrase";
/// Devices connecting at once.
const CONNECTING_AT_ONCE: usize = 64;
/// Devices enrolled from one loopback address: within the highest per-address rate a node
/// can be configured with (1,000 attempts a minute).
const ENROLMENTS_PER_ADDRESS: usize = 900;

/// The figures, in bytes.
pub(crate) struct Memory {
    pub(crate) devices: usize,
    pub(crate) node_idle: u64,
    pub(crate) node_connected: u64,
    pub(crate) generator: u64,
}

/// A node process, killed if the measurement ends early.
struct NodeProcess(Option<Child>);

impl NodeProcess {
    fn pid(&self) -> Result<u32> {
        self.0
            .as_ref()
            .map(Child::id)
            .context("the node is not running")
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.0.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a node with `devices` devices enrolled, and measures it idle and with all of them
/// connected.
pub(crate) async fn measure(dir: &Path, devices: usize) -> Result<Memory> {
    let relay = relay_binary()?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    run(
        &relay,
        dir,
        &["ca", "init", "--ministry", "mfa.example", "--out", "ca"],
    )?;
    run(
        &relay,
        dir,
        &[
            "ca",
            "issue-node",
            "--ca",
            "ca",
            "--name",
            "paris",
            "--kind",
            "post",
            "--addr",
            &addr,
            "--out",
            "paris",
        ],
    )?;
    let config = dir.join("paris/node.toml");
    let mut toml = std::fs::read_to_string(&config)?;
    let room = devices + 100;
    // Enrolments come from a few loopback addresses, each within the highest rate a post may
    // allow one address (ENROLMENTS_PER_ADDRESS a minute).
    toml.push_str(&format!(
        "\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[limits]\nmax_connections = {room}\n\
         max_connections_per_source = {room}\nmax_unauthenticated_connections = {room}\n\n\
         [enrolment]\nattempts_per_minute = 1000\n"
    ));
    std::fs::write(&config, toml)?;
    let ca_pem = std::fs::read_to_string(dir.join("ca/ca.pem"))?;
    let target: SocketAddr = addr.parse()?;

    let mut node = start(&relay, dir)?;
    eprintln!("enrolling {devices} devices over the wire…");
    let socket = dir.join("paris/data/admin.sock");
    let mut enrolled = Vec::with_capacity(devices);
    for i in 0..devices {
        enrolled.push(enrol(&socket, &ca_pem, target, i).await?);
    }
    // A node that starts with them all in its directory.
    node.stop()?;
    let node = start(&relay, dir)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let node_idle = rss(node.pid()?)?;

    eprintln!("connecting {devices} devices…");
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    endpoint.set_default_client_config(client(&ca_pem, None)?);
    let enrolled = Arc::new(enrolled);
    let mut held = Vec::with_capacity(devices);
    let started = Instant::now();
    for chunk in enrolled.chunks(CONNECTING_AT_ONCE) {
        let mut connecting = tokio::task::JoinSet::new();
        for device in chunk {
            let (endpoint, config) = (endpoint.clone(), client(&ca_pem, Some(device))?);
            connecting.spawn(async move { connect(&endpoint, config, target).await });
        }
        while let Some(connected) = connecting.join_next().await {
            held.push(connected??);
        }
    }
    eprintln!(
        "{} devices connected and subscribed in {:.1?}",
        held.len(),
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node_connected = rss(node.pid()?)?;
    let generator = rss(std::process::id())?;
    drop(held);
    Ok(Memory {
        devices,
        node_idle,
        node_connected,
        generator,
    })
}

/// `valise-relay`, built beside this binary.
fn relay_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("the load generator's folder")?
        .join("valise-relay");
    if !path.exists() {
        bail!(
            "{} is missing: build it beside the load generator first (cargo build --release -p valise-relay)",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run(relay: &Path, dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(relay)
        .args(args)
        .current_dir(dir)
        .env("VALISE_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "valise-relay {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn start(relay: &Path, dir: &Path) -> Result<NodeProcess> {
    use std::io::BufRead as _;
    let mut child = Command::new(relay)
        .args(["run", "--config", "paris/node.toml"])
        .current_dir(dir)
        .env("VALISE_PASSPHRASE", PASSPHRASE)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.as_mut().context("the node's output")?;
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let node = NodeProcess(Some(child));
    if !line.contains("listening on") {
        bail!("the node did not start: {line}");
    }
    Ok(node)
}

/// The resident set of process `pid`, in bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the memory of process {pid}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("process {pid} reports no VmRSS"))?;
    Ok(kib * 1024)
}

/// A client configuration on the root, with a device's certificate or for enrolment.
fn client(ca_pem: &str, device: Option<&CertifiedKey>) -> Result<quinn::ClientConfig> {
    let tls = valise_crypto::tls::client_config(ca_pem, device)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// Issues a code on the admin socket and redeems it over the wire as a device would.
async fn enrol(socket: &Path, ca_pem: &str, node: SocketAddr, i: usize) -> Result<CertifiedKey> {
    let user = format!("u{i:05}");
    let reply = valise_relay::admin::request(
        socket,
        AdminRequest {
            request: Some(admin_request::Request::Enroll(AdminEnroll {
                user: user.clone(),
                display_name: user.clone(),
                clearance: valise_proto::v1::Classification::Secret as i32,
                ..Default::default()
            })),
        },
    )
    .await?;
    let code = match reply.response {
        Some(admin_response::Response::Enrolled(e)) => e.code,
        other => bail!("the node issued no code for {user}: {other:?}"),
    };
    let identity = IdentityKeyPair::generate()?;
    let receive = ReceiveKeyPair::generate(0, u64::MAX / 2)?;
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let csr = rcgen::CertificateParams::default().serialize_request(&tls_key)?;
    let request = ClientFrame {
        frame: Some(client_frame::Frame::Enrol(EnrolRequest {
            code,
            identity_key: identity.public().as_bytes().to_vec(),
            receive_keys: vec![receive.to_signed_record(&identity)?],
            csr: csr.der().to_vec(),
        })),
    };
    let source = u8::try_from(1 + i / ENROLMENTS_PER_ADDRESS).context("too many devices")?;
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 1, source, 1], 0)))?;
    endpoint.set_default_client_config(client(ca_pem, None)?);
    let conn = endpoint.connect(node, "127.0.0.1")?.await?;
    let reply = ask(&conn, &request).await?;
    conn.close(0u32.into(), b"enrolled");
    match reply.frame {
        Some(node_frame::Frame::Enrolled(enrolled)) => Ok(CertifiedKey {
            chain_pem: enrolled.certificate_chain,
            key_pem: Zeroizing::new(tls_key.serialize_pem()),
        }),
        other => bail!("enrolling {user} was refused: {other:?}"),
    }
}

/// One request on its own stream, and its one answer.
async fn ask(conn: &quinn::Connection, request: &ClientFrame) -> Result<NodeFrame> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&encode(request)).await?;
    send.finish()?;
    let bytes = recv.read_to_end(1 << 20).await?;
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&bytes);
    decoder
        .next_frame::<NodeFrame>()?
        .context("the node answered nothing")
}

/// A connected device as an idle client keeps it: hello said, a live subscription per lane,
/// each caught up.
struct Connected {
    _connection: quinn::Connection,
    _lanes: Vec<(quinn::SendStream, quinn::RecvStream)>,
}

async fn connect(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    node: SocketAddr,
) -> Result<Connected> {
    let connection = endpoint.connect_with(config, node, "127.0.0.1")?.await?;
    let hello = ClientFrame {
        frame: Some(client_frame::Frame::Hello(Hello {
            protocol_version: valise_proto::PROTOCOL_VERSION,
            software: "valise-loadgen".into(),
            session: 0,
        })),
    };
    match ask(&connection, &hello).await?.frame {
        Some(node_frame::Frame::Welcome(_)) => {}
        other => bail!("no welcome: {other:?}"),
    }
    let mut lanes = Vec::new();
    for lane in [DeliveryLane::Urgent, DeliveryLane::Other] {
        let (mut send, mut recv) = connection.open_bi().await?;
        send.write_all(&encode(&ClientFrame {
            frame: Some(client_frame::Frame::Subscribe(Subscribe {
                lane: lane as i32,
            })),
        }))
        .await?;
        let mut decoder = FrameDecoder::new(1 << 20);
        loop {
            if let Some(frame) = decoder.next_frame::<NodeFrame>()? {
                match frame.frame {
                    Some(node_frame::Frame::CaughtUp(_)) => break,
                    other => bail!("expected the caught-up marker, got {other:?}"),
                }
            }
            let chunk = recv
                .read_chunk(1 << 16, true)
                .await?
                .context("the node closed a subscription")?;
            decoder.push(&chunk.bytes);
        }
        lanes.push((send, recv));
    }
    Ok(Connected {
        _connection: connection,
        _lanes: lanes,
    })
}
