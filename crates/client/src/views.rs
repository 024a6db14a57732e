//! What a front end shows, as plain values with real enums: an inbox row, a cable opened for
//! reading, a sent cable with its recipients, a directory entry. Built from the sealed store and
//! the verified directory by [`Client`]; front ends lay them out and never look inside stored
//! records.

use valise_crypto::fingerprint::SafetyNumber;
use valise_crypto::identity::DeviceId;
use valise_proto::v1::{Caveat, Classification, Precedence, Reference, RoutingHeader};

use crate::client::{Client, now_ms};
use crate::contacts::Verification;
use crate::error::ClientError;
use crate::inbox::InboxEntry;
use crate::objectives::{self, Timeliness};
use crate::status::{DeliveryState, SentCable};

/// A cable's routing facts, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// The classification.
    pub classification: Classification,
    /// Its caveats.
    pub caveats: Vec<Caveat>,
    /// The precedence.
    pub precedence: Precedence,
    /// Night action.
    pub niact: bool,
    /// The marking, e.g. `SECRET//NODIS`.
    pub marking: String,
    /// Action addressees.
    pub to: Vec<String>,
    /// Info addressees.
    pub info: Vec<String>,
    /// When the sender wrote it (Unix ms).
    pub created_at_ms: u64,
}

impl Routing {
    /// The routing facts of `header`.
    pub fn of(header: &RoutingHeader) -> Self {
        Routing {
            classification: Classification::try_from(header.classification).unwrap_or_default(),
            caveats: header
                .caveats
                .iter()
                .filter_map(|c| Caveat::try_from(*c).ok())
                .collect(),
            precedence: Precedence::try_from(header.precedence).unwrap_or_default(),
            niact: header.niact,
            marking: crate::present::marking(header),
            to: header.action_addressees.clone(),
            info: header.info_addressees.clone(),
            created_at_ms: header.created_at_ms,
        }
    }
}

/// One row of the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    /// The cable id (hex).
    pub id: String,
    /// The sender, from the verified record of the signing device.
    pub from: String,
    /// The subject.
    pub subject: String,
    /// Routing facts.
    pub routing: Routing,
    /// When this device stored it (Unix ms).
    pub received_at_ms: u64,
    /// Opened.
    pub read: bool,
    /// An acknowledgement is asked of this user and not yet given.
    pub ack_required: bool,
    /// Acknowledged.
    pub acknowledged: bool,
    /// This user is only an info addressee.
    pub info_only: bool,
    /// Words of the subject, text, TAGS and sender, lower case, for a local filter.
    pub search_text: String,
}

/// One attachment of a cable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentView {
    /// Its position in the cable.
    pub index: usize,
    /// The name the sender gave (shown through [`crate::text::single_line`]).
    pub name: String,
    /// The media type.
    pub media_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
}

/// Who signed a cable, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderView {
    /// The sender's address, from the verified record.
    pub address: String,
    /// The signing device.
    pub device: Option<DeviceId>,
    /// The safety number between this device and the sender's, to compare out of band.
    pub safety_number: Option<String>,
    /// The sending device has since been revoked.
    pub revoked: bool,
    /// Whether the sender was verified in person, and still holds the same keys.
    pub verification: Verification,
}

/// A received cable, opened for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CableView {
    /// The cable id (hex).
    pub id: String,
    /// The verified sender.
    pub sender: SenderView,
    /// Routing facts.
    pub routing: Routing,
    /// The subject.
    pub subject: String,
    /// The text.
    pub text: String,
    /// TAGS.
    pub tags: Vec<String>,
    /// References to earlier cables.
    pub references: Vec<Reference>,
    /// Attachments.
    pub attachments: Vec<AttachmentView>,
    /// When this device stored it (Unix ms).
    pub received_at_ms: u64,
    /// Opened.
    pub read: bool,
    /// An acknowledgement is asked of this user and not yet given.
    pub ack_required: bool,
    /// Acknowledged.
    pub acknowledged: bool,
    /// The cable may be forwarded (it is neither NODIS nor EXDIS).
    pub forwardable: bool,
}

/// One recipient device of a sent cable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientView {
    /// The person's address.
    pub address: String,
    /// The device (hex).
    pub device: String,
    /// Its state.
    pub state: DeliveryState,
    /// When it last changed (Unix ms).
    pub updated_at_ms: u64,
    /// Reached as an action addressee.
    pub action: bool,
    /// How it stands against the delivery objective.
    pub timeliness: Timeliness,
}

/// A sent cable and what is known of each recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentView {
    /// The cable id (hex).
    pub id: String,
    /// The subject.
    pub subject: String,
    /// Routing facts.
    pub routing: Routing,
    /// When it was written (Unix ms).
    pub created_at_ms: u64,
    /// Why the node refused it for good, if it did.
    pub refused: Option<String>,
    /// Cancelled before the node took it.
    pub cancelled: bool,
    /// Each recipient device.
    pub recipients: Vec<RecipientView>,
    /// Action addressees who owe an acknowledgement past the objective.
    pub ack_overdue: Vec<String>,
}

/// A person's device in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryView {
    /// `alice@paris`.
    pub address: String,
    /// Full name.
    pub name: String,
    /// Offices.
    pub offices: Vec<String>,
    /// Clearance.
    pub clearance: Classification,
    /// The device.
    pub device: DeviceId,
    /// Revoked, and when (Unix ms).
    pub revoked_at_ms: Option<u64>,
    /// Recorded as a foreign national.
    pub foreign_national: bool,
    /// The safety number between this device and that one, to compare in person.
    pub safety_number: String,
    /// Whether the person was verified in person, and still holds the same keys.
    pub verification: Verification,
}

/// What kind of addressee a compose picker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddresseeKind {
    /// A named person (`alice@paris`).
    Person,
    /// An office mailbox (`POL@paris`): everyone in it.
    Office,
    /// A post (`paris`): its front office.
    Post,
}

/// An addressee a compose picker offers as the diplomat types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddresseeView {
    /// What goes in the To or Info field.
    pub address: String,
    /// Who it is: a person's name, or how many people an office reaches.
    pub label: String,
    /// Person, office or post.
    pub kind: AddresseeKind,
}

impl Client {
    fn row(&self, id: String, e: &InboxEntry) -> InboxRow {
        let header = e.header.clone().unwrap_or_default();
        let body = e.body.clone().unwrap_or_default();
        let from = self.sender_address(e);
        let search_text = format!(
            "{} {} {} {}",
            body.subject,
            body.text,
            body.tags.join(" "),
            from
        )
        .to_lowercase();
        InboxRow {
            id,
            from,
            subject: body.subject,
            routing: Routing::of(&header),
            received_at_ms: e.received_at_ms,
            read: e.read,
            ack_required: e.needs_ack() && !e.acknowledged,
            acknowledged: e.acknowledged,
            info_only: e.info_only(),
            search_text,
        }
    }

    /// The inbox as rows, in reading order.
    pub fn inbox_rows(&self) -> Result<Vec<InboxRow>, ClientError> {
        Ok(self
            .inbox()?
            .into_iter()
            .map(|(id, e)| self.row(id, &e))
            .collect())
    }

    /// A received cable as a reading pane shows it (without marking it read).
    pub fn cable_view(&self, id: &str) -> Result<CableView, ClientError> {
        let (key, e) = self.received(id)?;
        Ok(self.view_of(hex::encode(key), &e))
    }

    /// The view of a stored cable.
    pub fn view_of(&self, id: String, e: &InboxEntry) -> CableView {
        let header = e.header.clone().unwrap_or_default();
        let body = e.body.clone().unwrap_or_default();
        let sender = self.sender_of(e);
        let safety_number = sender.as_ref().map(|(d, _)| {
            SafetyNumber::between(
                (&self.address(), self.keys.identity.public()),
                (&d.address(), &d.identity),
            )
            .to_string()
        });
        let routing = Routing::of(&header);
        let forwardable = !routing
            .caveats
            .iter()
            .any(|c| matches!(c, Caveat::Nodis | Caveat::Exdis));
        CableView {
            id,
            sender: SenderView {
                address: self.sender_address(e),
                verification: sender.as_ref().map_or(Verification::Unverified, |(d, _)| {
                    self.verification(&d.address())
                }),
                device: sender.as_ref().map(|(d, _)| d.id),
                safety_number,
                revoked: sender.as_ref().is_some_and(|(_, r)| *r),
            },
            routing,
            subject: body.subject,
            text: body.text,
            tags: body.tags,
            references: body.references,
            attachments: body
                .attachments
                .iter()
                .enumerate()
                .map(|(index, a)| AttachmentView {
                    index,
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                })
                .collect(),
            received_at_ms: e.received_at_ms,
            read: e.read,
            ack_required: e.needs_ack() && !e.acknowledged,
            acknowledged: e.acknowledged,
            forwardable,
        }
    }

    /// A sent cable's view at `now_ms`.
    pub fn sent_view(&self, cable: &SentCable, now_ms: u64) -> SentView {
        let header = cable.header.clone().unwrap_or_default();
        SentView {
            id: hex::encode(&cable.cable_id),
            subject: cable
                .body
                .as_ref()
                .map(|b| b.subject.clone())
                .unwrap_or_default(),
            routing: Routing::of(&header),
            created_at_ms: cable.created_at_ms,
            refused: (!cable.refused.is_empty()).then(|| cable.refused.clone()),
            cancelled: cable.cancelled,
            recipients: cable
                .recipients
                .iter()
                .map(|r| RecipientView {
                    address: r.address.clone(),
                    device: hex::encode(&r.device_id),
                    state: r.state(),
                    updated_at_ms: r.updated_at_ms,
                    action: r.action,
                    timeliness: objectives::timeliness(cable, r, now_ms),
                })
                .collect(),
            ack_overdue: objectives::ack_overdue(cable, now_ms),
        }
    }

    /// A sent cable's view now, by id or id prefix.
    pub fn status_view(&self, id: &str) -> Result<SentView, ClientError> {
        Ok(self.sent_view(&self.status(id)?, now_ms()))
    }

    /// Every sent cable as views, newest first.
    pub fn sent_views(&self) -> Result<Vec<SentView>, ClientError> {
        let now = now_ms();
        Ok(self
            .sent_cables()?
            .iter()
            .map(|c| self.sent_view(c, now))
            .collect())
    }

    /// Directory entries matching `query` as views.
    pub fn directory_views(&self, query: &str) -> Vec<DirectoryView> {
        self.lookup(query)
            .into_iter()
            .map(|e| DirectoryView {
                address: e.device.address(),
                name: e.device.display_name.clone(),
                offices: e.device.offices.clone(),
                clearance: e.device.clearance,
                device: e.device.id,
                revoked_at_ms: e.revoked.then_some(e.revoked_at_ms),
                foreign_national: e.device.foreign_national,
                safety_number: SafetyNumber::between(
                    (&self.address(), self.keys.identity.public()),
                    (&e.device.address(), &e.device.identity),
                )
                .to_string(),
                verification: self.verification(&e.device.address()),
            })
            .collect()
    }

    /// People, offices and posts whose address or name contains `query` (without case), for
    /// a compose picker: people first, then offices, then posts, each once.
    pub fn addressees(&self, query: &str) -> Vec<AddresseeView> {
        use std::collections::BTreeMap;
        let q = query.trim().to_lowercase();
        let mut found: BTreeMap<(AddresseeKind, String), AddresseeView> = BTreeMap::new();
        let mut office_sizes: BTreeMap<String, usize> = BTreeMap::new();
        for device in self.directory().active_devices() {
            let address = device.address();
            found
                .entry((AddresseeKind::Person, address.clone()))
                .or_insert_with(|| AddresseeView {
                    address,
                    label: device.display_name.clone(),
                    kind: AddresseeKind::Person,
                });
            for office in &device.offices {
                // A bare post reaches its front office.
                let key = if office == valise_crypto::directory::FRONT_OFFICE {
                    device.post.clone()
                } else {
                    format!("{office}@{}", device.post)
                };
                *office_sizes.entry(key).or_default() += 1;
            }
        }
        for (address, people) in office_sizes {
            let kind = if address.contains('@') {
                AddresseeKind::Office
            } else {
                AddresseeKind::Post
            };
            let label = match kind {
                AddresseeKind::Post => format!("front office of {address}"),
                _ => format!("office mailbox, {people} device(s)"),
            };
            found.insert(
                (kind, address.clone()),
                AddresseeView {
                    address,
                    label,
                    kind,
                },
            );
        }
        found
            .into_values()
            .filter(|a| {
                q.is_empty()
                    || a.address.to_lowercase().contains(&q)
                    || a.label.to_lowercase().contains(&q)
            })
            .collect()
    }
}
