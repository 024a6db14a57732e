//! Whether a node accepts a submitted cable, and for which devices. Pure: the caller supplies
//! a view of the directory; nothing here does I/O, so every refusal is tested without a socket.

use std::collections::HashSet;
use std::fmt;

use valise_crypto::directory::{Address, Directory};
use valise_crypto::envelope::verify_signature;
use valise_crypto::identity::{DeviceId, IdentityPublicKey};
use valise_proto::ENVELOPE_VERSION;
use valise_proto::v1::{Caveat, Classification, Envelope, ErrorCode, Precedence, RoutingHeader};

use crate::limits::Limits;
use crate::reason::Reason;

/// What the policy needs to know about one enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// The device.
    pub id: DeviceId,
    /// Its user's address, e.g. `alice@paris`.
    pub user: String,
    /// The post that enrolled it, e.g. `paris`.
    pub post: String,
    /// Its identity key, which signs its cables.
    pub identity: IdentityPublicKey,
    /// The user's clearance.
    pub clearance: Classification,
    /// Whether the device is revoked.
    pub revoked: bool,
    /// The user is not a national: NOFORN cables do not reach them.
    pub foreign_national: bool,
}

/// The directory as the policy sees it.
pub trait DirectoryView {
    /// The device, if enrolled (revoked devices included).
    fn device(&self, id: &DeviceId) -> Option<DeviceView>;
    /// The devices an address reaches, or `None` if the address is unknown.
    fn devices_for(&self, address: &str) -> Option<Vec<DeviceId>>;
    /// Whether an address is an office mailbox (e.g. `POL@paris`) rather than a person.
    fn is_office(&self, address: &str) -> bool;
}

/// Why a cable was refused. Each maps to a wire error code and an audit reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The envelope is larger than the limit.
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More key wraps than the limit.
    TooManyRecipients {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The envelope is malformed.
    Malformed(&'static str),
    /// The envelope version is not supported.
    UnsupportedVersion(u32),
    /// The header names another device than the one connected.
    SenderMismatch,
    /// The sending device is not enrolled.
    UnknownSender,
    /// The sending device is revoked.
    RevokedSender,
    /// The header's `from` is not the address of the device that signed the cable.
    ForgedSender {
        /// The address the header claims.
        claimed: String,
        /// The signing device's address, from its directory record.
        actual: String,
    },
    /// The sender's signature does not verify over the envelope as received.
    BadSignature(String),
    /// The sender is cleared below the classification they marked the cable with.
    SenderClearance {
        /// The sender's address.
        user: String,
        /// Their clearance.
        clearance: Classification,
        /// The cable's classification.
        classification: Classification,
    },
    /// An addressee is not in the directory, or all its devices are revoked.
    UnknownAddressee(String),
    /// A key wrap is for a device that is not enrolled or is revoked.
    UnknownRecipient(DeviceId),
    /// A key wrap is for a device no addressee reaches: a hidden recipient.
    UnaddressedRecipient(DeviceId),
    /// A recipient's clearance is below the classification.
    Clearance {
        /// The recipient's address.
        user: String,
        /// Their clearance.
        clearance: Classification,
        /// The cable's classification.
        classification: Classification,
    },
    /// A NODIS cable is addressed to an office mailbox.
    NodisToOffice(String),
    /// A NOFORN cable would reach a device of a user the directory records as a foreign
    /// national.
    Noforn(String),
    /// A forwarded cable names a device (sender or recipient) this node's directory does not
    /// hold yet: it is behind the origin's, and the neighbour retries once it has caught up.
    DirectoryBehind(DeviceId),
}

impl Refusal {
    /// The error code sent to the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::TooLarge { .. } => ErrorCode::TooLarge,
            Refusal::TooManyRecipients { .. } => ErrorCode::TooManyRecipients,
            Refusal::Malformed(_) | Refusal::SenderMismatch => ErrorCode::Malformed,
            Refusal::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            Refusal::UnknownSender => ErrorCode::UnknownSender,
            Refusal::RevokedSender => ErrorCode::Revoked,
            Refusal::ForgedSender { .. } | Refusal::BadSignature(_) => ErrorCode::BadSignature,
            Refusal::SenderClearance { .. } => ErrorCode::Clearance,
            Refusal::UnknownAddressee(_)
            | Refusal::UnknownRecipient(_)
            | Refusal::UnaddressedRecipient(_) => ErrorCode::Malformed,
            Refusal::Clearance { .. } => ErrorCode::Clearance,
            Refusal::NodisToOffice(_) => ErrorCode::NodisToOffice,
            Refusal::Noforn(_) => ErrorCode::Clearance,
            Refusal::DirectoryBehind(_) => ErrorCode::DirectoryBehind,
        }
    }

    /// The machine-readable reason recorded in the audit log.
    pub fn audit_reason(&self) -> Reason {
        match self {
            Refusal::TooLarge { .. } => Reason::Oversize,
            Refusal::TooManyRecipients { .. } => Reason::TooManyRecipients,
            Refusal::Malformed(_) => Reason::Malformed,
            Refusal::UnsupportedVersion(_) => Reason::UnsupportedVersion,
            Refusal::SenderMismatch => Reason::SenderMismatch,
            Refusal::UnknownSender => Reason::UnknownSender,
            Refusal::RevokedSender => Reason::RevokedSender,
            Refusal::ForgedSender { .. } => Reason::ForgedSender,
            Refusal::BadSignature(_) => Reason::BadSignature,
            Refusal::SenderClearance { .. } => Reason::SenderClearance,
            Refusal::UnknownAddressee(_) => Reason::UnknownAddressee,
            Refusal::UnknownRecipient(_) => Reason::UnknownRecipient,
            Refusal::UnaddressedRecipient(_) => Reason::UnaddressedRecipient,
            Refusal::Clearance { .. } => Reason::Clearance,
            Refusal::NodisToOffice(_) => Reason::NodisToOffice,
            Refusal::Noforn(_) => Reason::Noforn,
            Refusal::DirectoryBehind(_) => Reason::DirectoryBehind,
        }
    }
}

impl fmt::Display for Refusal {
    /// The message for the diplomat: what went wrong and what to do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooLarge { size, max } => {
                write!(
                    f,
                    "the cable is {size} bytes, over this node's {max}-byte limit; send large content as attachments"
                )
            }
            Refusal::TooManyRecipients { count, max } => {
                write!(
                    f,
                    "the cable is sealed for {count} devices, over this node's limit of {max}; split the distribution"
                )
            }
            Refusal::Malformed(what) => {
                write!(f, "the envelope is malformed ({what}); update the client")
            }
            Refusal::UnsupportedVersion(v) => {
                write!(f, "envelope version {v} is not supported by this node")
            }
            Refusal::SenderMismatch => {
                f.write_str("the cable names another sending device than this connection's")
            }
            Refusal::UnknownSender => {
                f.write_str("this device is not enrolled at this node; enrol it first")
            }
            Refusal::RevokedSender => {
                f.write_str("this device has been revoked; contact ministry IT")
            }
            Refusal::ForgedSender { claimed, actual } => write!(
                f,
                "the cable says it is from {claimed}, but it is signed by a device of {actual}; \
                 a cable may only name its own sender"
            ),
            Refusal::BadSignature(why) => write!(
                f,
                "the sender's signature does not verify ({why}); the cable was altered or forged \
                 and was not accepted"
            ),
            Refusal::SenderClearance {
                user,
                clearance,
                classification,
            } => write!(
                f,
                "{user} is cleared for {clearance} and may not send a {classification} cable; \
                 lower the classification or ask ministry IT about the clearance"
            ),
            Refusal::UnknownAddressee(a) => write!(
                f,
                "addressee {a} has no active device in this node's directory: the address is \
                 wrong, or all its devices were revoked; sync the directory and check the address"
            ),
            Refusal::UnknownRecipient(d) => {
                write!(
                    f,
                    "device {d} is not an enrolled, unrevoked device; sync the directory and reseal"
                )
            }
            Refusal::UnaddressedRecipient(d) => {
                write!(
                    f,
                    "device {d} is not reached by any addressee; hidden recipients are not allowed"
                )
            }
            Refusal::Clearance {
                user,
                clearance,
                classification,
            } => write!(
                f,
                "{user} is cleared for {clearance}, below this cable's classification {classification}; remove them or lower the classification"
            ),
            Refusal::NodisToOffice(a) => {
                write!(
                    f,
                    "NODIS cables go to named individuals only, not to the office mailbox {a}"
                )
            }
            Refusal::Noforn(user) => write!(
                f,
                "{user} is recorded as a foreign national, and this cable is NOFORN; remove \
                 them, or drop the caveat if the cable may be shared"
            ),
            Refusal::DirectoryBehind(d) => write!(
                f,
                "device {d} is not in this node's directory yet; it is still replicating, so \
                 retry shortly"
            ),
        }
    }
}

/// An accepted cable: what the node queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The cable id.
    pub cable_id: [u8; 16],
    /// Its precedence, for queue order.
    pub precedence: Precedence,
    /// The devices to deliver to, in wrap order.
    pub recipients: Vec<DeviceId>,
}

/// Checks a cable submitted by the device on this connection, `encoded_len` bytes on the wire.
pub fn check_submission(
    limits: &Limits,
    directory: &impl DirectoryView,
    connected: &DeviceId,
    encoded_len: usize,
    envelope: &Envelope,
) -> Result<Accepted, Refusal> {
    let (header, cable_id) = header_within_limits(limits, encoded_len, envelope)?;
    if header.sender_device != connected.as_bytes() {
        return Err(Refusal::SenderMismatch);
    }
    let sender = directory.device(connected).ok_or(Refusal::UnknownSender)?;
    if sender.revoked {
        return Err(Refusal::RevokedSender);
    }
    check_from(header, &sender)?;
    if envelope.key_wraps.len() > limits.max_recipients {
        return Err(Refusal::TooManyRecipients {
            count: envelope.key_wraps.len(),
            max: limits.max_recipients,
        });
    }
    if envelope.key_wraps.is_empty() {
        return Err(Refusal::Malformed("no key wraps"));
    }
    let classification = known(
        Classification::try_from(header.classification),
        Classification::Unspecified,
    )
    .ok_or(Refusal::Malformed("classification"))?;
    if sender.clearance < classification {
        return Err(Refusal::SenderClearance {
            user: sender.user,
            clearance: sender.clearance,
            classification,
        });
    }
    let precedence = known(
        Precedence::try_from(header.precedence),
        Precedence::Unspecified,
    )
    .ok_or(Refusal::Malformed("precedence"))?;

    let nodis = header.caveats.contains(&(Caveat::Nodis as i32));
    let noforn = header.caveats.contains(&(Caveat::Noforn as i32));
    let addressees = header
        .action_addressees
        .iter()
        .chain(&header.info_addressees);
    let mut reachable: HashSet<DeviceId> = directory
        .devices_for(&sender.user)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for address in addressees {
        if nodis && directory.is_office(address) {
            return Err(Refusal::NodisToOffice(address.clone()));
        }
        let devices = directory
            .devices_for(address)
            .ok_or_else(|| Refusal::UnknownAddressee(address.clone()))?;
        reachable.extend(devices);
    }

    let mut recipients = Vec::with_capacity(envelope.key_wraps.len());
    let mut seen = HashSet::with_capacity(envelope.key_wraps.len());
    for wrap in &envelope.key_wraps {
        let id = DeviceId::from_slice(&wrap.device_id)
            .map_err(|_| Refusal::Malformed("key wrap device id"))?;
        if !seen.insert(id) {
            return Err(Refusal::Malformed("two key wraps for one device"));
        }
        let device = directory
            .device(&id)
            .filter(|d| !d.revoked)
            .ok_or(Refusal::UnknownRecipient(id))?;
        if !reachable.contains(&id) {
            return Err(Refusal::UnaddressedRecipient(id));
        }
        if device.clearance < classification {
            return Err(Refusal::Clearance {
                user: device.user,
                clearance: device.clearance,
                classification,
            });
        }
        if noforn && device.foreign_national {
            return Err(Refusal::Noforn(device.user));
        }
        recipients.push(id);
    }
    // Last, as the costliest check: the node takes custody only of what the sender signed.
    check_signature(envelope, &sender)?;
    Ok(Accepted {
        cable_id,
        precedence,
        recipients,
    })
}

/// A cable a neighbouring node forwarded, as this node will take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAccepted {
    /// The cable.
    pub cable_id: [u8; 16],
    /// Its precedence.
    pub precedence: Precedence,
    /// The claimed devices still enrolled: this node answers for them.
    pub devices: Vec<DeviceId>,
    /// The claimed devices revoked since the cable was sealed: not delivered.
    pub revoked: Vec<DeviceId>,
}

/// Checks a cable forwarded by a neighbouring node for `claimed` devices. The origin node made
/// the sender's checks (enrolled, addressees, clearance, NODIS) when it took custody; they are
/// not made again, so a sender revoked since, say after an emergency wipe, does not lose a
/// cable already accepted. What is checked is what this node relies on: the envelope is well
/// formed and within limits, each claimed device has a key wrap in it, and the sender and
/// every claimed device are in this node's directory (else it is behind: retry later).
pub fn check_forward(
    limits: &Limits,
    directory: &impl DirectoryView,
    encoded_len: usize,
    envelope: &Envelope,
    claimed: &[Vec<u8>],
) -> Result<ForwardAccepted, Refusal> {
    let (header, cable_id) = header_within_limits(limits, encoded_len, envelope)?;
    if claimed.is_empty() {
        return Err(Refusal::Malformed("a forward names no device"));
    }
    if claimed.len() > limits.max_recipients || envelope.key_wraps.len() > limits.max_recipients {
        return Err(Refusal::TooManyRecipients {
            count: claimed.len().max(envelope.key_wraps.len()),
            max: limits.max_recipients,
        });
    }
    let precedence = known(
        Precedence::try_from(header.precedence),
        Precedence::Unspecified,
    )
    .ok_or(Refusal::Malformed("precedence"))?;
    let sender_id = DeviceId::from_slice(&header.sender_device)
        .map_err(|_| Refusal::Malformed("sender device id"))?;
    let sender = directory
        .device(&sender_id)
        .ok_or(Refusal::DirectoryBehind(sender_id))?;
    // Authenticity is checked at every hop: a neighbour may be compromised.
    check_from(header, &sender)?;
    let wrapped: HashSet<&[u8]> = envelope
        .key_wraps
        .iter()
        .map(|w| w.device_id.as_slice())
        .collect();
    let mut devices = Vec::with_capacity(claimed.len());
    let mut revoked = Vec::new();
    let mut seen = HashSet::with_capacity(claimed.len());
    for bytes in claimed {
        let id = DeviceId::from_slice(bytes).map_err(|_| Refusal::Malformed("device id"))?;
        if !wrapped.contains(bytes.as_slice()) {
            return Err(Refusal::Malformed("a forwarded device has no key wrap"));
        }
        if !seen.insert(id) {
            return Err(Refusal::Malformed("a forward names one device twice"));
        }
        match directory.device(&id) {
            None => return Err(Refusal::DirectoryBehind(id)),
            Some(d) if d.revoked => revoked.push(id),
            Some(_) => devices.push(id),
        }
    }
    check_signature(envelope, &sender)?;
    Ok(ForwardAccepted {
        cable_id,
        precedence,
        devices,
        revoked,
    })
}

/// The header's `from` must be the signing device's own address, as its record gives it.
fn check_from(header: &RoutingHeader, sender: &DeviceView) -> Result<(), Refusal> {
    if header.from != sender.user {
        return Err(Refusal::ForgedSender {
            claimed: header.from.clone(),
            actual: sender.user.clone(),
        });
    }
    Ok(())
}

fn check_signature(envelope: &Envelope, sender: &DeviceView) -> Result<(), Refusal> {
    verify_signature(envelope, &sender.identity).map_err(|e| Refusal::BadSignature(e.to_string()))
}

/// The checks every cable gets, from a device or a node: size within the limit, a routing
/// header of the supported version, a well-formed cable id.
fn header_within_limits<'e>(
    limits: &Limits,
    encoded_len: usize,
    envelope: &'e Envelope,
) -> Result<(&'e RoutingHeader, [u8; 16]), Refusal> {
    if encoded_len > limits.max_envelope_bytes {
        return Err(Refusal::TooLarge {
            size: encoded_len,
            max: limits.max_envelope_bytes,
        });
    }
    let header = envelope
        .header
        .as_ref()
        .ok_or(Refusal::Malformed("no routing header"))?;
    if header.version != ENVELOPE_VERSION {
        return Err(Refusal::UnsupportedVersion(header.version));
    }
    let cable_id: [u8; 16] = header
        .cable_id
        .as_slice()
        .try_into()
        .map_err(|_| Refusal::Malformed("cable id length"))?;
    Ok((header, cable_id))
}

fn known<T: PartialEq>(value: Result<T, prost::UnknownEnumValue>, unspecified: T) -> Option<T> {
    value.ok().filter(|v| *v != unspecified)
}

/// The verified directory, as the policy reads it.
impl DirectoryView for Directory {
    fn device(&self, id: &DeviceId) -> Option<DeviceView> {
        self.lookup(id).map(|entry| DeviceView {
            id: entry.device.id,
            user: entry.device.address(),
            post: entry.device.post.clone(),
            identity: entry.device.identity,
            clearance: entry.device.clearance,
            revoked: entry.revoked,
            foreign_national: entry.device.foreign_national,
        })
    }

    fn devices_for(&self, address: &str) -> Option<Vec<DeviceId>> {
        // An address nobody answers to is unknown, not an empty distribution.
        let devices = self.resolve(address).ok()?;
        Some(devices.iter().map(|d| d.id).collect())
    }

    fn is_office(&self, address: &str) -> bool {
        Address::parse(address).is_ok_and(|a| a.office)
    }
}
