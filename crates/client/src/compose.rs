//! Composing a cable: the draft a diplomat fills in, and the checks made before anything is
//! sealed. Each addressee is resolved through the verified directory; a cable is refused,
//! naming who and why, when an addressee is unknown or revoked, cleared below the
//! classification, or an office under NODIS. The node checks the same rules again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use valise_crypto::directory::{Address, Directory, ResolveError, VerifiedDevice};
use valise_crypto::identity::DeviceId;
use valise_crypto::receive_key::VerifiedReceiveKey;
use valise_proto::v1::{Caveat, Classification, Precedence};

/// A cable as the diplomat wrote it, before it is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CableDraft {
    /// Action addressees: `alice@paris`, `POL@paris` or a bare post.
    pub action: Vec<String>,
    /// Info addressees.
    pub info: Vec<String>,
    /// The classification.
    pub classification: Classification,
    /// The precedence.
    pub precedence: Precedence,
    /// Night action: wake the addressee.
    pub niact: bool,
    /// Handling caveats (NODIS, EXDIS, NOFORN).
    pub caveats: Vec<Caveat>,
    /// TAGS, e.g. `PREL`, `PGOV`.
    pub tags: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub text: String,
    /// Files to attach.
    pub attachments: Vec<PathBuf>,
    /// Earlier cables this one refers to (a reply or a forward), shown as `REF:` lines.
    pub references: Vec<valise_proto::v1::Reference>,
}

/// Why a draft cannot be sent as written. Nothing was sealed or queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// No action addressee.
    #[error("a cable needs at least one action addressee (--to)")]
    NoActionAddressee,
    /// No subject.
    #[error("a cable needs a subject")]
    NoSubject,
    /// The classification or precedence is missing.
    #[error("a cable needs a {0}")]
    Missing(&'static str),
    /// An addressee does not resolve.
    #[error(transparent)]
    Unresolved(#[from] ResolveError),
    /// Every device answering to the addressee has been revoked.
    #[error(
        "{address} is revoked: {devices} device(s) answering to it were revoked by their post; \
         the cable was not sent to anyone. Remove {address}, or ask its post to enrol a new device"
    )]
    Revoked {
        /// The addressee.
        address: String,
        /// How many revoked devices answered to it.
        devices: usize,
    },
    /// A recipient is cleared below the cable's classification.
    #[error(
        "{who} is cleared {clearance} only, below this cable's {classification}; \
         the cable was not sent to anyone. Remove {addressee}, or lower the classification"
    )]
    Clearance {
        /// The person (`alice@paris`).
        who: String,
        /// The addressee that reached them (may be an office).
        addressee: String,
        /// Their clearance.
        clearance: &'static str,
        /// The cable's classification.
        classification: &'static str,
    },
    /// NODIS cables go to named people only.
    #[error(
        "{0} is an office mailbox, and a NODIS cable may go to named people only; address the people instead"
    )]
    NodisToOffice(String),
    /// A recipient has no receive key valid now.
    #[error(
        "{0} has no receive key valid now; sync the directory, or ask them to rotate their keys"
    )]
    NoReceiveKey(String),
    /// The sender is cleared below the classification chosen.
    #[error(
        "you are cleared {clearance} and may not write a {classification} cable; lower the \
         classification, or ask ministry IT about your clearance"
    )]
    SenderClearance {
        /// The sender's clearance.
        clearance: &'static str,
        /// The classification chosen.
        classification: &'static str,
    },
    /// A NOFORN cable would reach a foreign national.
    #[error(
        "{who} is recorded as a foreign national and this cable is NOFORN; the cable was not \
         sent to anyone. Remove {addressee}, or drop NOFORN if the cable may be shared"
    )]
    Noforn {
        /// The person.
        who: String,
        /// The addressee that reached them.
        addressee: String,
    },
    /// A TAG is malformed or unknown.
    #[error(transparent)]
    Tags(#[from] valise_proto::tags::TagError),
    /// The sealed cable is larger than the node accepts.
    #[error(
        "the cable is {size} bytes sealed, over this node's {max}-byte limit; shorten the text, \
         send it to fewer devices, or attach the long part as a file (attachments travel \
         separately)"
    )]
    TooLarge {
        /// The sealed size.
        size: usize,
        /// The node's limit.
        max: u64,
    },
    /// More recipient devices than the node accepts.
    #[error(
        "the cable would be sealed for {count} devices, over this node's limit of {max}; split \
         the distribution"
    )]
    TooManyRecipients {
        /// How many devices.
        count: usize,
        /// The node's limit.
        max: u32,
    },
    /// An attachment larger than the node accepts.
    #[error(
        "{name} is {size} bytes encrypted, over this node's {max}-byte limit for an attachment; \
         split it or compress it"
    )]
    AttachmentTooLarge {
        /// The file.
        name: String,
        /// Its encrypted size.
        size: u64,
        /// The node's limit.
        max: u64,
    },
    /// A reply or forward marked below the cable it refers to.
    #[error(
        "this cable refers to a {original} cable, so it must be marked {original} or higher, \
         not {classification}"
    )]
    BelowReference {
        /// The referenced cable's classification.
        original: &'static str,
        /// The classification chosen.
        classification: &'static str,
    },
    /// The cable may not be forwarded.
    #[error("this cable is {0}: it may not be forwarded; ask its sender to send it to others")]
    NoForwarding(&'static str),
    /// More attachments than one cable may carry.
    #[error(
        "the cable has {0} attachments; a cable carries at most {max}: send the rest in a \
         second cable, or put them in one archive",
        max = valise_proto::MAX_ATTACHMENTS_PER_CABLE
    )]
    TooManyAttachments(usize),
}

/// One device a cable is sealed for.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The person's address (`alice@paris`).
    pub address: String,
    /// The device.
    pub device: DeviceId,
    /// Its newest receive key valid at the cable's time.
    pub key: VerifiedReceiveKey,
    /// Reached through an action addressee (asked to act), not only an info addressee.
    pub action: bool,
}

/// Checks a draft against the directory at time `now_ms` and returns the devices to seal it
/// for, each once, in a stable order.
pub fn recipients(
    directory: &Directory,
    draft: &CableDraft,
    now_ms: u64,
) -> Result<Vec<Recipient>, ComposeError> {
    if draft.action.is_empty() {
        return Err(ComposeError::NoActionAddressee);
    }
    if draft.subject.trim().is_empty() {
        return Err(ComposeError::NoSubject);
    }
    if draft.classification == Classification::Unspecified {
        return Err(ComposeError::Missing("classification"));
    }
    if draft.precedence == Precedence::Unspecified {
        return Err(ComposeError::Missing("precedence"));
    }
    if draft.attachments.len() > valise_proto::MAX_ATTACHMENTS_PER_CABLE {
        return Err(ComposeError::TooManyAttachments(draft.attachments.len()));
    }
    let nodis = draft.caveats.contains(&Caveat::Nodis);
    let noforn = draft.caveats.contains(&Caveat::Noforn);
    let mut chosen: BTreeMap<DeviceId, Recipient> = BTreeMap::new();
    let action_count = draft.action.len();
    for (position, addressee) in draft.action.iter().chain(&draft.info).enumerate() {
        let action = position < action_count;
        let parsed = Address::parse(addressee)?;
        if nodis && parsed.office {
            return Err(ComposeError::NodisToOffice(addressee.clone()));
        }
        let devices = match directory.resolve(addressee) {
            Ok(devices) => devices,
            Err(ResolveError::Unknown(address)) => {
                let revoked = directory.revoked_at(&address).len();
                return Err(if revoked > 0 {
                    ComposeError::Revoked {
                        address,
                        devices: revoked,
                    }
                } else {
                    ComposeError::Unresolved(ResolveError::Unknown(address))
                });
            }
            Err(e) => return Err(e.into()),
        };
        for device in devices {
            check_clearance(device, addressee, draft.classification)?;
            if noforn && device.foreign_national {
                return Err(ComposeError::Noforn {
                    who: device.address(),
                    addressee: addressee.clone(),
                });
            }
            let key = newest_valid_key(device, now_ms)
                .ok_or_else(|| ComposeError::NoReceiveKey(device.address()))?;
            chosen
                .entry(device.id)
                .or_insert_with(|| Recipient {
                    address: device.address(),
                    device: device.id,
                    key: key.clone(),
                    action,
                })
                .action |= action;
        }
    }
    Ok(chosen.into_values().collect())
}

/// The sender may write only up to their own clearance (the node refuses the rest too).
pub fn check_sender(
    sender_clearance: Classification,
    classification: Classification,
) -> Result<(), ComposeError> {
    if sender_clearance < classification {
        return Err(ComposeError::SenderClearance {
            clearance: sender_clearance.cable_name(),
            classification: classification.cable_name(),
        });
    }
    Ok(())
}

fn check_clearance(
    device: &VerifiedDevice,
    addressee: &str,
    classification: Classification,
) -> Result<(), ComposeError> {
    if device.clearance < classification {
        return Err(ComposeError::Clearance {
            who: device.address(),
            addressee: addressee.to_owned(),
            clearance: device.clearance.cable_name(),
            classification: classification.cable_name(),
        });
    }
    Ok(())
}

/// The receive key to seal for: the newest one valid now.
pub fn newest_valid_key(device: &VerifiedDevice, now_ms: u64) -> Option<&VerifiedReceiveKey> {
    device
        .receive_keys
        .iter()
        .filter(|k| k.is_valid_at(now_ms))
        .max_by_key(|k| k.valid_from_ms())
}
