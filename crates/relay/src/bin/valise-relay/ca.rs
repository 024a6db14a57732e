//! `ca init` and `ca issue-node`: the ministry root's offline commands. The keys and
//! certificates are made by `valise_pki`; here the passphrase is asked for and the result
//! written and told.

use std::path::Path;

use anyhow::{Context, Result, bail};
use time::OffsetDateTime;
use valise_crypto::at_rest::KdfParams;
use valise_pki::{IssuedNode, MinistryCa, NodeRequest, Role, RootFolder, Validity};
use valise_relay::config::Config;
use valise_relay::files;
use zeroize::Zeroizing;

use crate::Kind;

/// The passphrase, from VALISE_PASSPHRASE, a file, or a prompt (twice when creating).
fn passphrase(file: Option<&Path>, creating: bool) -> Result<Zeroizing<String>> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the passphrase file {}", file.display()))?;
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ));
    }
    if let Ok(p) = std::env::var("VALISE_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let first = Zeroizing::new(rpassword::prompt_password("CA passphrase: ").context("cannot read the passphrase from the terminal; set VALISE_PASSPHRASE or use --passphrase-file")?);
    if creating {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ")
                .context("cannot read the passphrase")?,
        );
        if *first != *again {
            bail!("the two passphrases differ; nothing was written");
        }
    }
    Ok(first)
}

/// How long the ministry root is valid.
const ROOT_YEARS: u32 = 20;

/// `ca init`: creates the ministry root, its key sealed under a passphrase.
pub(crate) fn init(ministry: &str, out: &Path, passphrase_file: Option<&Path>) -> Result<()> {
    if ministry.is_empty() || ministry.contains(char::is_whitespace) {
        bail!("--ministry must be a name without spaces, e.g. mfa.example");
    }
    RootFolder::check_free(out)?;
    let pass = passphrase(passphrase_file, true)?;
    if pass.chars().count() < 12 {
        bail!("the CA passphrase must be at least 12 characters");
    }
    let ca = RootFolder::create(
        out,
        ministry,
        Validity::years_from(OffsetDateTime::now_utc(), ROOT_YEARS),
        pass.as_bytes(),
        KdfParams::default(),
    )?;
    println!("Ministry root created for {ministry}.");
    println!("Root fingerprint: {}", ca.fingerprint());
    println!(
        "Pin {} on every node and device. Keep {} offline.",
        out.join(valise_pki::folder::CA_CERT).display(),
        out.join(valise_pki::folder::CA_KEY).display()
    );
    Ok(())
}

fn load_ca(dir: &Path, passphrase_file: Option<&Path>) -> Result<MinistryCa> {
    let folder = RootFolder::read(dir)?;
    let pass = passphrase(passphrase_file, false)?;
    folder
        .open(pass.as_bytes())
        .context("cannot open the CA key")
}

/// `ca issue-node`: issues a node's certificates and keys, and a ready-to-run `node.toml`.
pub(crate) fn issue_node(
    ca_dir: &Path,
    name: &str,
    kind: Kind,
    addr: &str,
    hub: Option<&str>,
    out: &Path,
    passphrase_file: Option<&Path>,
) -> Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .context("--addr must be host:port, e.g. paris.mfa.example:4433")?;
    if kind == Kind::Hub && hub.is_some() {
        bail!("a hub does not connect to another hub; drop --hub");
    }
    if out.join(files::NODE_PEM).exists() {
        bail!(
            "{} already holds a node; refusing to overwrite it",
            out.display()
        );
    }
    let ca = load_ca(ca_dir, passphrase_file)?;
    let ministry = ca.ministry().to_owned();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let issued = IssuedNode::issue(
        &ca,
        NodeRequest {
            name,
            role: match kind {
                Kind::Hub => Role::Hub,
                Kind::Post => Role::Post,
            },
            hosts: &[host.to_owned()],
        },
        OffsetDateTime::now_utc(),
    )?;
    files::write_issued(out, &issued)?;
    let kind_name = if kind == Kind::Hub { "hub" } else { "post" };
    let hub_line = hub.map(|h| format!("hub = \"{h}\"\n")).unwrap_or_default();
    let toml = format!(
        "# Written by `valise-relay ca issue-node`; see deploy/node.example.toml for every setting.\n\
         [node]\nname = \"{name}\"\nkind = \"{kind_name}\"\nministry = \"{ministry}\"\nlisten = \"0.0.0.0:{port}\"\n{hub_line}data_dir = \"data\"\n"
    );
    let config_path = out.join("node.toml");
    files::write_public(&config_path, toml.as_bytes())?;
    Config::load(&config_path)
        .context("the written configuration does not load (a bug: please report it)")?;
    println!("Node {name} ({kind_name}) issued in {}.", out.display());
    println!(
        "Run it with: valise-relay run --config {}",
        config_path.display()
    );
    Ok(())
}
