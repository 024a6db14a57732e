//! The command line: every command and option, with the help text a diplomat reads.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Valise: classified cables, end to end encrypted.
#[derive(Debug, Parser)]
#[command(name = "valise", version, about, long_about = None)]
pub struct Cli {
    /// This device's data folder [default: ~/.valise].
    #[arg(long, global = true, env = "VALISE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Read the passphrase from this file (first line) instead of asking. VALISE_PASSPHRASE
    /// works too.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Print machine-readable JSON (a stable contract for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Work from this device's store only: do not contact the node.
    #[arg(long, global = true)]
    pub offline: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Classifications as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClassificationArg {
    /// UNCLASSIFIED.
    #[value(alias = "U")]
    Unclassified,
    /// CONFIDENTIAL.
    #[value(alias = "C")]
    Confidential,
    /// SECRET.
    #[value(alias = "S")]
    Secret,
    /// TOP SECRET.
    #[value(
        name = "top-secret",
        alias = "TS",
        alias = "TOP_SECRET",
        alias = "top secret"
    )]
    TopSecret,
}

/// Precedences as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PrecedenceArg {
    /// ROUTINE (R).
    #[value(alias = "R")]
    Routine,
    /// PRIORITY (P).
    #[value(alias = "P")]
    Priority,
    /// IMMEDIATE (O).
    #[value(alias = "O")]
    Immediate,
    /// FLASH (Z).
    #[value(alias = "Z")]
    Flash,
}

/// Handling caveats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CaveatArg {
    /// No distribution beyond the named addressees.
    Nodis,
    /// Exclusive distribution.
    Exdis,
    /// Not releasable to foreign nationals.
    Noforn,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrol this device with the one-time code your post gave you.
    #[command(
        after_help = "Example:\n  valise enroll --node paris.mfa.example:4433 \\\n      --code K7QF-M2XD-9RTA-W4HC-PZ3N --ca-fingerprint '3f2a 9c1b …'"
    )]
    Enroll {
        /// Your post's node, HOST:PORT.
        #[arg(long)]
        node: String,
        /// The one-time enrolment code.
        #[arg(long)]
        code: String,
        /// The ministry root's fingerprint, as handed to you.
        #[arg(long)]
        ca_fingerprint: String,
    },
    /// Send a cable.
    #[command(
        after_help = "Example:\n  valise send --to alice@paris,POL@paris --info ECON@paris \\\n      --classification SECRET --precedence IMMEDIATE --tags PREL,PGOV \\\n      --subject 'Meeting with the foreign minister' --body-file cable.txt --attach brief.pdf"
    )]
    Send {
        /// Action addressees: user@post, OFFICE@post or a bare post, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// Info addressees.
        #[arg(long, value_delimiter = ',')]
        info: Vec<String>,
        /// Classification.
        #[arg(long, value_enum, ignore_case = true)]
        classification: ClassificationArg,
        /// Precedence.
        #[arg(long, value_enum, ignore_case = true)]
        precedence: PrecedenceArg,
        /// Night action: the addressee must act (and acknowledge) at once, day or night.
        #[arg(long)]
        niact: bool,
        /// Handling caveats.
        #[arg(long, value_enum, ignore_case = true)]
        caveat: Vec<CaveatArg>,
        /// TAGS, comma-separated (e.g. PREL,PGOV).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Subject line.
        #[arg(long)]
        subject: String,
        /// The text.
        #[arg(
            long,
            conflicts_with = "body_file",
            required_unless_present = "body_file"
        )]
        body: Option<String>,
        /// Read the text from a file.
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
        /// Attach a file (repeat for several).
        #[arg(long, value_name = "FILE")]
        attach: Vec<PathBuf>,
    },
    /// Forward a received cable to others: its classification and caveats are kept, its text
    /// quoted, and a reference to it added. NODIS and EXDIS cables may not be forwarded.
    #[command(
        after_help = "Example:\n  valise forward 3f2a9c --to ECON@paris --comment 'For your meeting on Friday.'"
    )]
    Forward {
        /// The cable's id (or its first characters).
        id: String,
        /// Action addressees, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// Info addressees.
        #[arg(long, value_delimiter = ',')]
        info: Vec<String>,
        /// A note put above the forwarded text.
        #[arg(long)]
        comment: Option<String>,
    },
    /// List received cables: most urgent first, NIACT first at one precedence, then newest.
    Inbox {
        /// Only cables not yet read.
        #[arg(long)]
        unread: bool,
    },
    /// Read a cable (marks it read, and tells the sender).
    Read {
        /// The cable's id (or its first characters).
        id: String,
        /// Fetch and decrypt its attachments into this folder.
        #[arg(long, value_name = "DIR")]
        save_attachments: Option<PathBuf>,
    },
    /// Acknowledge a cable: a signed acknowledgement goes back to the sender. FLASH and NIACT
    /// cables need one.
    Ack {
        /// The cable's id (or its first characters).
        id: String,
    },
    /// Show a sent cable's state for each recipient: queued, custody, delivered, read,
    /// acknowledged.
    Status {
        /// The cable's id (or its first characters). Without it, every sent cable.
        id: Option<String>,
    },
    /// Look people and offices up in the directory.
    Directory {
        /// A name, address or office; everything when omitted.
        query: Option<String>,
    },
    /// Show the safety number to compare with someone out of band.
    Verify {
        /// Their address, e.g. alice@paris.
        address: String,
    },
    /// Manage this device's keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Take a cable out of the outbox before the node has it (it is not sent).
    Cancel {
        /// The cable's id (or its first characters).
        id: String,
    },
    /// Evidence of a cable for a third party: everything signed about it, checkable offline.
    Evidence {
        /// What to do.
        #[command(subcommand)]
        action: EvidenceAction,
    },
    /// Stay connected: sync every few seconds (backing off while the node is unreachable) and
    /// report new cables and status changes as they happen, until Ctrl-C.
    Watch,
    /// Erase this device's keys and every cable on it.
    #[command(
        after_help = "The storage key is destroyed first, so nothing on this device can be read again,\neven from a copy of the disk. If a passphrase is available and the node can be\nreached, the node is told and revokes this device."
    )]
    Wipe {
        /// Required: confirms that everything on this device is to be destroyed now.
        #[arg(long)]
        emergency: bool,
    },
    /// Run a complete local network (a root CA, the hub and two posts, diplomats at each) and
    /// show Valise at work.
    Demo {
        /// Keep the network's files in this folder for inspection.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

impl Command {
    /// Whether the command only reads (or changes) this device's store: it answers at once,
    /// waiting only briefly for the node, and works just as well offline.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Command::Inbox { .. }
                | Command::Read { .. }
                | Command::Status { .. }
                | Command::Directory { .. }
                | Command::Verify { .. }
                | Command::Keys {
                    action: KeysAction::List
                }
                | Command::Evidence { .. }
        )
    }
}

/// Evidence bundles.
#[derive(Debug, Subcommand)]
pub enum EvidenceAction {
    /// Write a cable's evidence bundle: the envelope and the sender's signature, the sender's
    /// device record with its chain to the ministry root, the custody and delivery, read and
    /// acknowledgement receipts this device holds.
    #[command(
        after_help = "Example:\n  valise evidence export 3f2a9c --out cable-3f2a9c.evidence --disclose-content"
    )]
    Export {
        /// The cable's id (or its first characters).
        id: String,
        /// The file to write (it must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Include the cable's content key, so the bundle's reader can read the cable and check
        /// it is what the sender signed. Only a recipient can disclose it.
        #[arg(long)]
        disclose_content: bool,
    },
    /// Check a bundle offline, with no store and no node: names each check and what fails.
    #[command(
        after_help = "Example:\n  valise evidence verify cable-3f2a9c.evidence --ca-fingerprint '3f2a 9c1b …'"
    )]
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// The ministry root's fingerprint, from a trusted source.
        #[arg(long)]
        ca_fingerprint: String,
    },
}

/// Key operations.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a new receive key now and publish it. Older ones are kept 30 days more.
    Rotate,
    /// List the receive keys this device holds.
    List,
}
