//! `valise-desktop --demo`: a throwaway post on loopback (as `valise demo` builds), with the
//! diplomat enrolled as the ambassador at Paris and colleagues who have sent cables of every
//! precedence and classification, so a newcomer sees the app at work with one command. The
//! interaction tests build their networks here too.
//!
//! Everything runs through the production code: the relay node, one-time enrolment codes, the
//! client library. Only the Argon2id cost is lowered, so that the demo starts in seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use valise_client::enrol::Invitation;
use valise_client::views::InboxRow;
use valise_client::{
    CableDraft, Caveat, Classification, ClientHandle, EventStream, KdfParams, Precedence,
};
use valise_devnet::local::{LocalPost, start_post};
use valise_relay::enrolment::Invitation as Code;
use valise_relay::limits::Limits;
use zeroize::Zeroizing;

/// The demo ministry.
pub const MINISTRY: &str = "mfa.example";
/// The demo post.
pub const POST: &str = "paris";
/// Every demo device's passphrase.
pub const PASSPHRASE: &str = "demo passphrase, never for real use";
/// Longest the demo waits for its cables to arrive.
const WAIT: Duration = Duration::from_secs(60);

/// A cheap Argon2id for throwaway stores (never for a real device).
pub fn demo_kdf() -> KdfParams {
    KdfParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    }
}

/// Someone at the demo post.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    /// User name (`alice`).
    pub user: &'static str,
    /// Full name.
    pub name: &'static str,
    /// Clearance.
    pub clearance: Classification,
    /// Office mailbox.
    pub office: &'static str,
    /// Recorded as a foreign national (locally employed staff).
    pub foreign_national: bool,
}

/// The diplomat the demo opens as.
pub const AMBASSADOR: Person = Person {
    user: "ambassador",
    name: "Hélène Durand",
    clearance: Classification::TopSecret,
    office: "FRONT",
    foreign_national: false,
};

/// The ambassador's colleagues.
pub const COLLEAGUES: [Person; 4] = [
    Person {
        user: "alice",
        name: "Alice Martin",
        clearance: Classification::Secret,
        office: "POL",
        foreign_national: false,
    },
    Person {
        user: "carol",
        name: "Carol Nguyen",
        clearance: Classification::Confidential,
        office: "CONS",
        foreign_national: false,
    },
    Person {
        user: "david",
        name: "David Osei",
        clearance: Classification::TopSecret,
        office: "POL",
        foreign_national: false,
    },
    Person {
        user: "erin",
        name: "Erin Moreau",
        clearance: Classification::Unclassified,
        office: "PA",
        foreign_national: true,
    },
];

/// A post on loopback, and a folder for the devices enrolled at it.
pub struct Network {
    /// The running node.
    pub post: LocalPost,
    devices: PathBuf,
}

impl Network {
    /// Starts a post named [`POST`] with a fresh ministry root, in `dir` (made empty).
    pub fn start(dir: &Path) -> Result<Network> {
        let node_dir = dir.join("node");
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("cannot make {}", node_dir.display()))?;
        let post = start_post(&node_dir, MINISTRY, POST, Limits::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Network {
            post,
            devices: dir.join("devices"),
        })
    }

    /// An invitation (node address, one-time code, root fingerprint) for `person`, as ministry
    /// IT would hand it over.
    pub fn invitation(&self, person: &Person) -> Result<Invitation> {
        let code = self
            .post
            .node
            .issue_code(Code {
                user: person.user.into(),
                display_name: person.name.into(),
                clearance: person.clearance,
                offices: vec![person.office.into()],
                foreign_national: person.foreign_national,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Invitation {
            node_addr: self.post.addr.clone(),
            code,
            ca_fingerprint: self.post.fingerprint.clone(),
        })
    }

    /// The data folder a person's device uses.
    pub fn device_dir(&self, user: &str) -> PathBuf {
        self.devices.join(user)
    }

    /// Enrols `person` with a one-time code and starts their client.
    pub async fn enrol(&self, person: &Person) -> Result<(ClientHandle, EventStream)> {
        let invitation = self.invitation(person)?;
        ClientHandle::enrol(
            self.device_dir(person.user),
            Zeroizing::new(PASSPHRASE.as_bytes().to_vec()),
            invitation,
            demo_kdf(),
        )
        .await
        .with_context(|| format!("cannot enrol {}", person.user))
    }
}

/// A draft from the demo's script.
fn draft(
    to: &str,
    classification: Classification,
    caveats: &[Caveat],
    precedence: Precedence,
    niact: bool,
    subject: &str,
    text: &str,
) -> CableDraft {
    CableDraft {
        action: vec![to.into()],
        info: vec![],
        classification,
        precedence,
        niact,
        caveats: caveats.to_vec(),
        tags: vec!["PREL".into()],
        subject: subject.into(),
        text: text.into(),
        attachments: vec![],
        references: vec![],
    }
}

/// The running demo: keep it as long as the window.
pub struct Demo {
    /// The post and its devices.
    pub network: Network,
    /// The colleagues' clients, live.
    pub colleagues: Vec<ClientHandle>,
    _dir: Option<tempfile::TempDir>,
}

/// Waits until `handle`'s inbox holds `count` cables.
pub async fn wait_for_inbox(handle: &ClientHandle, count: usize) -> Result<Vec<InboxRow>> {
    let started = tokio::time::Instant::now();
    loop {
        let rows = handle.inbox().await?;
        if rows.len() >= count {
            return Ok(rows);
        }
        if started.elapsed() > WAIT {
            bail!(
                "only {} of {count} demo cables arrived within {WAIT:?}",
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the demo: the post, the ambassador and colleagues, and their cables. With `keep`,
/// everything lives in that folder (made empty first) and stays after exit; otherwise in a
/// temporary folder removed at exit.
pub async fn start(keep: Option<PathBuf>) -> Result<(Demo, ClientHandle, EventStream)> {
    let (dir, temp) = match keep {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                bail!(
                    "{} is not empty: give --keep a new or empty folder",
                    dir.display()
                );
            }
            std::fs::create_dir_all(&dir)?;
            (dir, None)
        }
        None => {
            let temp = tempfile::tempdir().context("cannot make a temporary folder")?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let network = Network::start(&dir)?;
    let (ambassador, events) = network.enrol(&AMBASSADOR).await?;
    let mut colleagues = Vec::new();
    for person in &COLLEAGUES {
        colleagues.push(network.enrol(person).await?.0);
    }
    let [alice, carol, david, erin] = [0, 1, 2, 3].map(|i| colleagues[i].clone());
    let to = "ambassador@paris";
    let notes = dir.join("talking-points.txt");
    std::fs::write(
        &notes,
        "Talking points for the fisheries demarche.\n\n1. Quotas.\n2. Inspection regime.\n",
    )?;
    let mut with_file = draft(
        to,
        Classification::Secret,
        &[Caveat::Noforn],
        Precedence::Immediate,
        false,
        "Demarche on fisheries: talking points",
        "The talking points for tomorrow's demarche are attached. Please clear them by noon.",
    );
    with_file.attachments.push(notes);
    let script: [(&ClientHandle, CableDraft); 6] = [
        (
            &david,
            draft(
                to,
                Classification::TopSecret,
                &[Caveat::Nodis],
                Precedence::Flash,
                true,
                "Evacuation of non-essential staff",
                "Headquarters orders the drawdown of non-essential staff within 48 hours. \
                 Acknowledge receipt.",
            ),
        ),
        (&alice, with_file),
        (
            &david,
            draft(
                to,
                Classification::Secret,
                &[Caveat::Exdis],
                Precedence::Priority,
                false,
                "Personnel: the next deputy chief of mission",
                "The candidates for deputy chief of mission, for your eyes only.",
            ),
        ),
        (
            &alice,
            draft(
                to,
                Classification::Confidential,
                &[],
                Precedence::Priority,
                false,
                "Visit of the trade delegation",
                "The delegation arrives on Tuesday; the programme follows.",
            ),
        ),
        (
            &carol,
            draft(
                to,
                Classification::Confidential,
                &[],
                Precedence::Routine,
                false,
                "Consular weekly",
                "Forty-two visas issued; two citizens assisted after a road accident.",
            ),
        ),
        (
            &erin,
            draft(
                to,
                Classification::Unclassified,
                &[],
                Precedence::Routine,
                false,
                "Press summary",
                "Morning papers lead on the budget; one editorial on the fisheries talks.",
            ),
        ),
    ];
    let count = script.len();
    for (from, cable) in script {
        from.compose(cable)
            .await
            .with_context(|| format!("{} could not send a demo cable", from.address()))?;
    }
    wait_for_inbox(&ambassador, count).await?;
    // One cable the ambassador sent, already read by its recipient.
    ambassador
        .compose(draft(
            "alice@paris",
            Classification::Secret,
            &[],
            Precedence::Priority,
            false,
            "Instructions for the fisheries demarche",
            "Take a firm line on inspections; report by cable.",
        ))
        .await?;
    let rows = wait_for_inbox(&alice, 1).await?;
    if let Some(row) = rows.first() {
        alice.mark_read(&row.id).await?;
    }
    Ok((
        Demo {
            network,
            colleagues,
            _dir: temp,
        },
        ambassador,
        events,
    ))
}
