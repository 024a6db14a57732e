//! The unlocked client: the one object a front end holds. It reads and writes the local store,
//! composes and seals cables, and keeps the directory; [`crate::sync`] adds the work that needs
//! the node.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::sync::broadcast;
use valise_crypto::directory::{Directory, VerifiedDevice};
use valise_crypto::envelope::{new_cable_id, seal};
use valise_crypto::fingerprint::SafetyNumber;
use valise_crypto::identity::{DeviceId, IdentityPublicKey};
use valise_crypto::tls::{client_config, directory_root};
use valise_proto::v1::{CableBody, Classification, Precedence, ReceiptKind, RoutingHeader};

use crate::attachments::{self, OUTGOING_DIR};
use crate::compose::{self, CableDraft, newest_valid_key};
use crate::connection::{NetError, NodeLink};
use crate::error::ClientError;
use crate::inbox::{self, InboxEntry};
use crate::keys::DeviceKeys;
use crate::outbox::OutboxEntry;
use crate::profile::Profile;
use crate::receipt;
use crate::status::{DeliveryState, RecipientStatus, SentCable};
use crate::store::{LocalStore, StoreError, Table};
use crate::sync::{NoProgress, Progress, TransferStage};

/// The key of the device's connection counter in the profile table.
const SESSION: &[u8] = b"session";

/// Something a front end may want to show as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Connected to the node.
    Online {
        /// The node's name.
        node: String,
    },
    /// The node cannot be reached; work continues from the local store.
    Offline {
        /// Why.
        reason: String,
    },
    /// A cable arrived.
    Received {
        /// Its id, hex.
        id: String,
        /// Its precedence.
        precedence: Precedence,
    },
    /// A sent cable's status changed (custody or a receipt).
    StatusChanged {
        /// Its id, hex.
        id: String,
    },
    /// The node could not be reached, and is tried again after this long.
    Retrying {
        /// Until the next try, ms.
        in_ms: u64,
        /// Why the last try failed.
        reason: String,
    },
    /// A sync with the node began.
    SyncStarted,
    /// A sync with the node ended.
    SyncFinished {
        /// Cables received.
        received: usize,
        /// Cables the node took custody of.
        sent: usize,
        /// Cables still waiting in the outbox.
        waiting: usize,
    },
    /// The node refused a cable for good; it left the outbox.
    Refused {
        /// Its id, hex.
        id: String,
        /// The node's words.
        reason: String,
    },
    /// This device refused a delivery (forged, altered, not for it).
    DeliveryRefused {
        /// Why.
        reason: String,
    },
    /// The outbox changed: a cable was queued, sent, refused or cancelled.
    OutboxChanged {
        /// Cables now waiting.
        waiting: usize,
    },
    /// The directory changed.
    DirectoryChanged {
        /// Its new version.
        version: u64,
    },
    /// New receive keys were published.
    KeysRotated,
    /// An attachment is being sealed, uploaded or saved.
    AttachmentProgress {
        /// What is being done to it.
        stage: TransferStage,
        /// The cable, hex.
        cable: String,
        /// The attachment's position in it.
        attachment: usize,
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// This device was wiped: nothing of it is left on disk, and it must be enrolled again.
    /// The node is told next, if it answers (the wipe's answer says whether it was).
    Wiped,
    /// This reader fell behind and missed events: reload what it shows.
    Reload {
        /// How many events it missed.
        missed: u64,
    },
}

/// A draft that passed every check, with what sealing it needs.
struct Checked {
    /// The draft, addressees made canonical.
    draft: CableDraft,
    /// Its TAGS, checked.
    tags: Vec<String>,
    /// The devices to seal it for.
    recipients: Vec<compose::Recipient>,
}

/// What stands between a draft and sending it ([`Client::check_draft`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftCheck {
    /// What it still lacks ("a subject"): not a refusal, it is not finished yet.
    pub missing: Vec<&'static str>,
    /// Why it may not be sent as written, naming the addressee who blocks it and why.
    pub blocking: Option<String>,
    /// The people it would be sealed for, once per device.
    pub recipients: Vec<String>,
}

impl DraftCheck {
    /// Whether it can be sealed and sent as it stands.
    pub fn is_ready(&self) -> bool {
        self.missing.is_empty() && self.blocking.is_none() && !self.recipients.is_empty()
    }
}

/// A received cable's classification (unspecified if it carries an unknown one).
fn classification_of(header: &RoutingHeader) -> Classification {
    Classification::try_from(header.classification).unwrap_or(Classification::Unspecified)
}

/// A received cable's caveats, as known to this version.
fn caveats_of(header: &RoutingHeader) -> Vec<valise_proto::v1::Caveat> {
    header
        .caveats
        .iter()
        .filter_map(|c| valise_proto::v1::Caveat::try_from(*c).ok())
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A person in the directory, as lookups show them.
#[derive(Debug, Clone)]
pub struct DirectoryEntry {
    /// The verified record.
    pub device: VerifiedDevice,
    /// Whether the device is revoked.
    pub revoked: bool,
    /// When it was revoked (Unix ms); 0 while active.
    pub revoked_at_ms: u64,
}

/// An unlocked device.
pub struct Client {
    pub(crate) store: LocalStore,
    pub(crate) keys: DeviceKeys,
    pub(crate) profile: Profile,
    pub(crate) directory: Directory,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) connect_timeout: std::time::Duration,
}

impl Client {
    /// Unlocks the store in `dir` with `passphrase` and loads keys, profile and directory.
    pub fn unlock(dir: &Path, passphrase: &[u8]) -> Result<Self, ClientError> {
        let store = LocalStore::unlock(dir, passphrase)?;
        let profile = Profile::load(&store)?;
        let keys = DeviceKeys::load(&store)?;
        Self::assemble(store, keys, profile)
    }

    pub(crate) fn assemble(
        store: LocalStore,
        mut keys: DeviceKeys,
        profile: Profile,
    ) -> Result<Self, ClientError> {
        let root =
            directory_root(&profile.ca_pem).map_err(|e| ClientError::Crypto(e.to_string()))?;
        let directory = crate::directory::load(&store, &profile.ministry, root)?;
        keys.erase_expired(&store, now_ms())?;
        let (events, _) = broadcast::channel(256);
        Ok(Client {
            store,
            keys,
            profile,
            directory,
            events,
            connect_timeout: crate::connection::CONNECT_TIMEOUT,
        })
    }

    /// The user's address, e.g. `alice@paris`.
    pub fn address(&self) -> String {
        self.profile.address()
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.keys.identity.device_id()
    }

    /// Who this device is and which node serves it.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The verified directory as this device holds it.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Events as they happen, for a front end.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn emit(&self, event: Event) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Says how many cables wait in the outbox now.
    pub(crate) fn emit_outbox(&self) {
        if let Ok(entries) = self.outbox() {
            self.emit(Event::OutboxChanged {
                waiting: entries
                    .iter()
                    .filter(|e| !e.is_receipt && !e.refused)
                    .count(),
            });
        }
    }

    /// The receive keys' count and the newest one's validity, for `keys` displays.
    pub fn receive_keys(&self) -> Vec<(String, u64, u64)> {
        self.keys
            .receive
            .iter()
            .map(|k| {
                (
                    hex::encode(k.id().as_bytes()),
                    k.valid_from_ms(),
                    k.valid_until_ms(),
                )
            })
            .collect()
    }

    /// Connects to the node with this device's certificate.
    pub async fn connect(&self) -> Result<NodeLink, NetError> {
        let tls = client_config(&self.profile.ca_pem, Some(&self.keys.tls)).map_err(|e| {
            NetError::Unreachable {
                addr: self.profile.node_addr.clone(),
                reason: e.to_string(),
            }
        })?;
        let session = self.next_session().map_err(|e| NetError::Unreachable {
            addr: self.profile.node_addr.clone(),
            reason: format!("the device's store could not count the connection ({e})"),
        })?;
        NodeLink::connect(
            &self.profile.node_addr,
            &self.profile.node_name,
            tls,
            session,
            self.connect_timeout,
        )
        .await
    }

    /// How long to wait for the node's handshake before working from the store: the default
    /// suits commands that need the node; a command that only reads the store waits less.
    pub fn set_connect_timeout(&mut self, timeout: std::time::Duration) {
        self.connect_timeout = timeout;
    }

    /// One more connection: the number is kept durably before it is sent, so a crash skips a
    /// number rather than repeat one (which the node would take for a cloned device).
    fn next_session(&self) -> Result<u64, StoreError> {
        let last = self
            .store
            .get(Table::Profile, SESSION)?
            .and_then(|v| v.as_slice().try_into().ok())
            .map_or(0, u64::from_be_bytes);
        let next = last.saturating_add(1);
        self.store
            .put(Table::Profile, SESSION, &next.to_be_bytes())?;
        Ok(next)
    }

    /// Received cables in reading order: most urgent first, NIACT first at one precedence, then
    /// newest; cables received in the same millisecond by id, so the order never shifts.
    pub fn inbox(&self) -> Result<Vec<(String, InboxEntry)>, ClientError> {
        let mut entries: Vec<(String, InboxEntry)> = self
            .store
            .scan_messages(Table::Inbox)?
            .into_iter()
            .map(|(key, entry)| (hex::encode(key), entry))
            .collect();
        entries.sort_by(|a, b| inbox::order(&a.1, &b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(entries)
    }

    /// The full id of the one record in `table` whose hex id starts with `prefix`.
    fn resolve_id(&self, table: Table, prefix: &str) -> Result<Vec<u8>, ClientError> {
        let wanted = prefix.trim().to_ascii_lowercase();
        if wanted.len() < 4 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::BadId(prefix.to_owned()));
        }
        let mut found = self
            .store
            .scan(table)?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| hex::encode(k).starts_with(&wanted));
        match (found.next(), found.next()) {
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => Err(ClientError::AmbiguousId(prefix.to_owned())),
            (None, _) => Err(ClientError::NoSuchCable(prefix.to_owned())),
        }
    }

    /// A received cable by id or id prefix.
    pub fn received(&self, id: &str) -> Result<(Vec<u8>, InboxEntry), ClientError> {
        let key = self.resolve_id(Table::Inbox, id)?;
        let entry = self
            .store
            .get_message(Table::Inbox, &key)?
            .ok_or_else(|| ClientError::NoSuchCable(id.to_owned()))?;
        Ok((key, entry))
    }

    /// A sent cable and each recipient's state, by id or id prefix.
    pub fn status(&self, id: &str) -> Result<SentCable, ClientError> {
        let key = self.resolve_id(Table::Sent, id)?;
        self.sent(&key)?
            .ok_or_else(|| ClientError::NoSuchCable(id.to_owned()))
    }

    /// Every sent cable, newest first.
    pub fn sent_cables(&self) -> Result<Vec<SentCable>, ClientError> {
        let mut all: Vec<SentCable> = self
            .store
            .scan_messages(Table::Sent)?
            .into_iter()
            .map(|(_, cable)| cable)
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.created_at_ms));
        Ok(all)
    }

    pub(crate) fn sent(&self, cable_id: &[u8]) -> Result<Option<SentCable>, ClientError> {
        Ok(self.store.get_message(Table::Sent, cable_id)?)
    }

    pub(crate) fn save_sent(&self, sent: &SentCable) -> Result<(), ClientError> {
        self.store
            .put(Table::Sent, &sent.cable_id, &sent.encode_to_vec())?;
        Ok(())
    }

    pub(crate) fn save_received(&self, id: &[u8], entry: &InboxEntry) -> Result<(), ClientError> {
        self.store.put(Table::Inbox, id, &entry.encode_to_vec())?;
        Ok(())
    }

    /// Marks a received cable read. The first time, a read receipt is queued for the sender.
    /// Returns the cable and, if no receipt could be made, why.
    pub fn mark_read(
        &mut self,
        id: &str,
    ) -> Result<(String, InboxEntry, Option<String>), ClientError> {
        self.mark(id, false)
    }

    /// Acknowledges a received cable (reading it, if not yet read): a signed acknowledgement
    /// goes back to the sender.
    pub fn acknowledge(
        &mut self,
        id: &str,
    ) -> Result<(String, InboxEntry, Option<String>), ClientError> {
        self.mark(id, true)
    }

    /// Queues the receipts not yet sent, then stores the new state: a failure leaves the cable
    /// as it was, to be tried again.
    fn mark(
        &mut self,
        id: &str,
        acknowledge: bool,
    ) -> Result<(String, InboxEntry, Option<String>), ClientError> {
        let (key, mut entry) = self.received(id)?;
        let mut note = None;
        if !entry.read {
            note = self.queue_receipt(&mut entry, ReceiptKind::Read)?;
            entry.read = true;
        }
        if acknowledge && !entry.acknowledged {
            note = self
                .queue_receipt(&mut entry, ReceiptKind::Acknowledged)?
                .or(note);
            entry.acknowledged = true;
        }
        self.save_received(&key, &entry)?;
        Ok((hex::encode(&key), entry, note))
    }

    /// Seals a receipt envelope for the sender's device and queues it, keeping the signed
    /// receipt with the cable. Returns why not, when the sender's device is no longer in the
    /// directory.
    pub(crate) fn queue_receipt(
        &mut self,
        entry: &mut InboxEntry,
        kind: ReceiptKind,
    ) -> Result<Option<String>, ClientError> {
        let Some(header) = entry.header.clone() else {
            return Ok(Some("the cable has no header".into()));
        };
        let now = now_ms();
        let signed = receipt::sign(&self.keys.identity, &header.cable_id, kind, now)
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        entry.receipts.push(signed.clone());
        self.queue_receipts(&header.sender_device, header.precedence, vec![signed], now)
    }

    /// Seals `receipts` in one receipt envelope to the sending device, and queues it.
    pub(crate) fn queue_receipts(
        &mut self,
        sender_device: &[u8],
        precedence: i32,
        receipts: Vec<valise_proto::v1::Receipt>,
        now: u64,
    ) -> Result<Option<String>, ClientError> {
        let Ok(device) = DeviceId::from_slice(sender_device) else {
            return Ok(Some("the sender's device id is malformed".into()));
        };
        let Some(sender) = self
            .directory
            .lookup(&device)
            .filter(|e| !e.revoked)
            .map(|e| e.device.clone())
        else {
            return Ok(Some(
                "the sender's device is revoked or unknown: no receipt was sent".into(),
            ));
        };
        let Some(key) = newest_valid_key(&sender, now).cloned() else {
            return Ok(Some(
                "the sender has no valid receive key: no receipt was sent".into(),
            ));
        };
        let cable_id = new_cable_id().map_err(|e| ClientError::Crypto(e.to_string()))?;
        let header = RoutingHeader {
            cable_id: cable_id.to_vec(),
            from: self.address(),
            action_addressees: vec![sender.address()],
            classification: Classification::Unclassified as i32,
            precedence,
            created_at_ms: now,
            ..Default::default()
        };
        let envelope = seal(
            &self.keys.identity,
            header,
            &receipt::body(receipts),
            &[key],
        )
        .map_err(|e| ClientError::Crypto(e.to_string()))?;
        let entry = OutboxEntry {
            cable_id: cable_id.to_vec(),
            envelope: envelope.encode_to_vec(),
            precedence,
            queued_at_ms: now,
            is_receipt: true,
            ..Default::default()
        };
        self.store
            .put(Table::Outbox, &cable_id, &entry.encode_to_vec())?;
        Ok(None)
    }

    /// Every check made before sealing, on the canonical addressees: attachments readable, the
    /// sender's clearance, TAGS, references, each addressee's clearance, caveats and keys, and
    /// the node's limits. Returns what sealing needs.
    fn check(&self, draft: &CableDraft, now: u64) -> Result<Checked, ClientError> {
        // `pol@paris` or `alice@PARIS` mean the one address the directory spells otherwise.
        let canonical = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|a| {
                    self.directory
                        .canonical_address(a.trim())
                        .unwrap_or_else(|| a.trim().to_owned())
                })
                .collect()
        };
        let draft = &CableDraft {
            action: canonical(&draft.action),
            info: canonical(&draft.info),
            ..draft.clone()
        };
        attachments::check_readable(&draft.attachments)?;
        compose::check_sender(self.own_clearance(), draft.classification)?;
        let tags = valise_proto::tags::check_all(&draft.tags, &self.profile.extra_tags)
            .map_err(compose::ComposeError::from)?;
        // A reply or forward is marked at least as high as what it quotes.
        for reference in draft.references.iter().filter(|r| !r.cable_id.is_empty()) {
            if let Some(original) = self
                .store
                .get_message::<InboxEntry>(Table::Inbox, &reference.cable_id)?
                .and_then(|e| e.header)
                .and_then(|h| Classification::try_from(h.classification).ok())
                .filter(|c| *c > draft.classification)
            {
                return Err(compose::ComposeError::BelowReference {
                    original: original.cable_name(),
                    classification: draft.classification.cable_name(),
                }
                .into());
            }
        }
        let recipients = compose::recipients(&self.directory, draft, now)?;
        // What the node said it takes: a cable over its limits would never leave the outbox.
        let limits = self.profile.limits.unwrap_or_default();
        if limits.max_recipients > 0 && recipients.len() > limits.max_recipients as usize {
            return Err(compose::ComposeError::TooManyRecipients {
                count: recipients.len(),
                max: limits.max_recipients,
            }
            .into());
        }
        if limits.max_attachment_bytes > 0 {
            for path in &draft.attachments {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let sealed = valise_crypto::attachment::ciphertext_len(size);
                if sealed > limits.max_attachment_bytes {
                    return Err(compose::ComposeError::AttachmentTooLarge {
                        name: path.display().to_string(),
                        size: sealed,
                        max: limits.max_attachment_bytes,
                    }
                    .into());
                }
            }
        }
        Ok(Checked {
            draft: draft.clone(),
            tags,
            recipients,
        })
    }

    /// What stands between a draft and sending it, checked as the diplomat types, before
    /// anything is sealed: what it still lacks, and the first addressee (or setting) that
    /// blocks it, named with the reason. Nothing is written.
    pub fn check_draft(&self, draft: &CableDraft) -> DraftCheck {
        let mut missing = Vec::new();
        if draft.action.iter().all(|a| a.trim().is_empty()) {
            missing.push("an action addressee (To)");
        }
        if draft.classification == Classification::Unspecified {
            missing.push("a classification");
        }
        if draft.precedence == Precedence::Unspecified {
            missing.push("a precedence");
        }
        if draft.subject.trim().is_empty() {
            missing.push("a subject");
        }
        // Check what is there: what is still missing is filled in so the addressees, the
        // classification and the caveats are checked now, not after the subject is typed.
        let mut trial = draft.clone();
        if trial.action.iter().all(|a| a.trim().is_empty()) {
            trial.action = std::mem::take(&mut trial.info);
        }
        trial.action.retain(|a| !a.trim().is_empty());
        trial.info.retain(|a| !a.trim().is_empty());
        if trial.classification == Classification::Unspecified {
            trial.classification = Classification::Unclassified;
        }
        if trial.precedence == Precedence::Unspecified {
            trial.precedence = Precedence::Routine;
        }
        if trial.subject.trim().is_empty() {
            trial.subject = "-".into();
        }
        let (blocking, recipients) = if trial.action.is_empty() {
            (None, Vec::new())
        } else {
            match self.check(&trial, now_ms()) {
                Ok(checked) => (
                    None,
                    checked.recipients.into_iter().map(|r| r.address).collect(),
                ),
                Err(e) => (Some(e.to_string()), Vec::new()),
            }
        };
        DraftCheck {
            missing,
            blocking,
            recipients,
        }
    }

    /// A draft replying to a received cable: to its sender (and, for `all`, to its other
    /// addressees, this user left out), with its classification and caveats, `RE:` before its
    /// subject and a reference to it. The diplomat writes the text.
    pub fn reply_draft(&self, id: &str, all: bool) -> Result<CableDraft, ClientError> {
        let (key, entry) = self.received(id)?;
        let header = entry.header.clone().unwrap_or_default();
        let body = entry.body.clone().unwrap_or_default();
        let sender = self
            .sender_of(&entry)
            .map(|(device, _)| device.address())
            .ok_or_else(|| {
                ClientError::from(compose::ComposeError::Unresolved(
                    valise_crypto::directory::ResolveError::Unknown(header.from.clone()),
                ))
            })?;
        let me = self.address();
        let mut action = vec![sender];
        let mut info = Vec::new();
        if all {
            for a in &header.action_addressees {
                if *a != me && !action.contains(a) {
                    action.push(a.clone());
                }
            }
            for a in &header.info_addressees {
                if *a != me && !action.contains(a) && !info.contains(a) {
                    info.push(a.clone());
                }
            }
        }
        let subject = if body.subject.to_uppercase().starts_with("RE:") {
            body.subject.clone()
        } else {
            format!("RE: {}", body.subject)
        };
        Ok(CableDraft {
            action,
            info,
            classification: classification_of(&header),
            precedence: Precedence::try_from(header.precedence).unwrap_or(Precedence::Routine),
            niact: false,
            caveats: caveats_of(&header),
            tags: body.tags.clone(),
            subject,
            text: String::new(),
            attachments: Vec::new(),
            references: vec![valise_proto::v1::Reference {
                label: "A".into(),
                citation: format!("cable {}", hex::encode(&key)),
                cable_id: key,
            }],
        })
    }

    /// Checks a draft against the directory, seals it for every recipient device, and queues
    /// it durably with its attachments. Returns the cable id (hex). Nothing leaves the device
    /// until [`Client::sync`](crate::sync); a refused draft leaves nothing behind.
    pub fn compose(&mut self, draft: &CableDraft) -> Result<String, ClientError> {
        self.compose_with(draft, &NoProgress)
    }

    /// [`Client::compose`], reporting the sealing of each attachment to `progress`.
    pub fn compose_with(
        &mut self,
        draft: &CableDraft,
        progress: &dyn Progress,
    ) -> Result<String, ClientError> {
        let now = now_ms();
        let Checked {
            draft,
            tags,
            recipients,
        } = self.check(draft, now)?;
        let draft = &draft;
        let cable_id = new_cable_id().map_err(|e| ClientError::Crypto(e.to_string()))?;
        if !draft.attachments.is_empty() {
            progress.context(TransferStage::Sealing, &hex::encode(cable_id));
        }
        let limits = self.profile.limits.unwrap_or_default();
        let outgoing = self.store.dir().join(OUTGOING_DIR);
        let mut metas = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for (index, path) in draft.attachments.iter().enumerate() {
            match attachments::seal_file(path, &cable_id, index, &outgoing, progress) {
                Ok((meta, file)) => {
                    metas.push(meta);
                    files.push(file);
                }
                Err(e) => {
                    files.iter().for_each(|f| drop(std::fs::remove_file(f)));
                    return Err(e);
                }
            }
        }
        let header = RoutingHeader {
            cable_id: cable_id.to_vec(),
            from: self.address(),
            action_addressees: draft.action.clone(),
            info_addressees: draft.info.clone(),
            classification: draft.classification as i32,
            caveats: draft.caveats.iter().map(|c| *c as i32).collect(),
            precedence: draft.precedence as i32,
            niact: draft.niact,
            created_at_ms: now,
            ..Default::default()
        };
        let body = CableBody {
            subject: draft.subject.clone(),
            text: draft.text.clone(),
            tags,
            attachments: metas,
            references: draft.references.clone(),
            ..Default::default()
        };
        let keys: Vec<_> = recipients.iter().map(|r| r.key.clone()).collect();
        let envelope = seal(&self.keys.identity, header, &body, &keys)
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        let size = envelope.encoded_len();
        if limits.max_envelope_bytes > 0 && size as u64 > limits.max_envelope_bytes {
            files.iter().for_each(|f| drop(std::fs::remove_file(f)));
            return Err(compose::ComposeError::TooLarge {
                size,
                max: limits.max_envelope_bytes,
            }
            .into());
        }
        let envelope_bytes = envelope.encode_to_vec();
        let sent = SentCable {
            cable_id: cable_id.to_vec(),
            envelope: envelope_bytes.clone(),
            custody: Vec::new(),
            receipts: Vec::new(),
            cancelled: false,
            header: envelope.header.clone(),
            body: Some(body.clone()),
            recipients: recipients
                .iter()
                .map(|r| RecipientStatus {
                    address: r.address.clone(),
                    device_id: r.device.as_bytes().to_vec(),
                    state: DeliveryState::Queued as i32,
                    updated_at_ms: now,
                    action: r.action,
                    ..Default::default()
                })
                .collect(),
            created_at_ms: now,
            refused: String::new(),
        };
        let entry = OutboxEntry {
            cable_id: cable_id.to_vec(),
            envelope: envelope_bytes,
            precedence: draft.precedence as i32,
            queued_at_ms: now,
            attachments: body
                .attachments
                .iter()
                .map(|a| a.ciphertext_sha256.clone())
                .collect(),
            ..Default::default()
        };
        self.save_sent(&sent)?;
        self.store
            .put(Table::Outbox, &cable_id, &entry.encode_to_vec())?;
        Ok(hex::encode(cable_id))
    }

    /// This user's clearance, as the newest verified record of this device says (a change by
    /// ministry IT arrives with the directory).
    pub fn own_clearance(&self) -> Classification {
        self.directory
            .lookup(&self.device_id())
            .map(|e| e.device.clearance)
            .or_else(|| {
                self.profile
                    .record
                    .as_ref()
                    .and_then(|r| Classification::try_from(r.clearance).ok())
            })
            .unwrap_or(Classification::Unclassified)
    }

    /// Takes a cable out of the outbox before the node has it: it is not sent, its attachments'
    /// sealed copies are deleted, and its status says cancelled. Returns its id (hex). A cable
    /// the node already holds cannot be recalled.
    pub fn cancel(&mut self, id: &str) -> Result<String, ClientError> {
        let key = match self.resolve_id(Table::Outbox, id) {
            Ok(key) => key,
            Err(ClientError::NoSuchCable(_)) if self.status(id).is_ok() => {
                return Err(ClientError::NotCancellable(id.to_owned()));
            }
            Err(e) => return Err(e),
        };
        let entry: OutboxEntry = self
            .store
            .get_message(Table::Outbox, &key)?
            .ok_or_else(|| ClientError::NoSuchCable(id.to_owned()))?;
        if entry.is_receipt {
            return Err(ClientError::NoSuchCable(id.to_owned()));
        }
        self.store.delete(Table::Outbox, &key)?;
        for sha in &entry.attachments {
            let file = self.store.dir().join(OUTGOING_DIR).join(hex::encode(sha));
            let _ = std::fs::remove_file(file);
        }
        if let Some(mut sent) = self.sent(&key)? {
            sent.cancelled = true;
            self.save_sent(&sent)?;
        }
        self.emit(Event::StatusChanged {
            id: hex::encode(&key),
        });
        Ok(hex::encode(key))
    }

    /// The cables still waiting for the node.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, ClientError> {
        Ok(self
            .store
            .scan_messages(Table::Outbox)?
            .into_iter()
            .map(|(_, entry)| entry)
            .collect())
    }

    /// Directory entries whose address, name or office contains `query` (all when empty,
    /// without case), revoked ones included when a query is given, and marked with when.
    pub fn lookup(&self, query: &str) -> Vec<DirectoryEntry> {
        let q = query.to_lowercase();
        let matches = |d: &VerifiedDevice| {
            q.is_empty()
                || d.address().to_lowercase().contains(&q)
                || d.display_name.to_lowercase().contains(&q)
                || d.offices.iter().any(|o| o.to_lowercase() == q)
        };
        let mut found: Vec<DirectoryEntry> = self
            .directory
            .entries()
            .filter(|e| (!e.revoked || !q.is_empty()) && matches(&e.device))
            .map(|e| DirectoryEntry {
                device: e.device.clone(),
                revoked: e.revoked,
                revoked_at_ms: e.revoked_at_ms,
            })
            .collect();
        found.sort_by(|a, b| {
            a.revoked
                .cmp(&b.revoked)
                .then_with(|| a.device.address().cmp(&b.device.address()))
                .then_with(|| a.device.id.cmp(&b.device.id))
        });
        found
    }

    /// The safety number between this device and each device answering to `address`, to be
    /// compared out of band (read aloud, or on paper).
    pub fn safety_numbers(
        &self,
        address: &str,
    ) -> Result<Vec<(VerifiedDevice, SafetyNumber)>, ClientError> {
        let me = self.address();
        let mine: IdentityPublicKey = *self.keys.identity.public();
        let devices = self
            .directory
            .resolve(address)
            .map_err(compose::ComposeError::from)?;
        Ok(devices
            .into_iter()
            .map(|d| {
                let number = SafetyNumber::between((&me, &mine), (&d.address(), &d.identity));
                (d.clone(), number)
            })
            .collect())
    }

    /// A draft forwarding a received cable to `action` (and `info`), with its classification
    /// and caveats, its text quoted and a reference to it; the diplomat may add to it before
    /// composing. NODIS and EXDIS cables may not be forwarded: refused, saying why.
    /// Attachments are not carried (the recipient may ask the sender for them).
    pub fn forward_draft(
        &self,
        id: &str,
        action: Vec<String>,
        info: Vec<String>,
    ) -> Result<CableDraft, ClientError> {
        let (key, entry) = self.received(id)?;
        let header = entry.header.clone().unwrap_or_default();
        let caveats = caveats_of(&header);
        for (caveat, word) in [
            (valise_proto::v1::Caveat::Nodis, "NODIS"),
            (valise_proto::v1::Caveat::Exdis, "EXDIS"),
        ] {
            if caveats.contains(&caveat) {
                return Err(compose::ComposeError::NoForwarding(word).into());
            }
        }
        let body = entry.body.clone().unwrap_or_default();
        let text = format!(
            "---- Forwarded cable {} from {} ----\n{}",
            hex::encode(&key),
            self.sender_address(&entry),
            body.text
        );
        Ok(CableDraft {
            action,
            info,
            classification: classification_of(&header),
            precedence: Precedence::try_from(header.precedence).unwrap_or(Precedence::Routine),
            niact: false,
            caveats,
            tags: body.tags.clone(),
            subject: format!("FWD: {}", body.subject),
            text,
            attachments: Vec::new(),
            references: vec![valise_proto::v1::Reference {
                label: "A".into(),
                citation: format!("cable {}", hex::encode(&key)),
                cable_id: key,
            }],
        })
    }

    /// Who sent a received cable, as a front end shows it: the address in the verified
    /// directory record of the device that signed it (kept with the cable when it was
    /// checked), never the header's `from` alone.
    pub fn sender_address(&self, entry: &InboxEntry) -> String {
        if !entry.sender_address.is_empty() {
            return entry.sender_address.clone();
        }
        // Stored before the address was kept: the device's record says who it is.
        self.sender_of(entry)
            .map(|(device, _)| device.address())
            .unwrap_or_else(|| "(sender not in the directory)".into())
    }

    /// The identity key of the device that sent a received cable, as the directory lists it,
    /// and whether that device has since been revoked.
    pub fn sender_of(&self, entry: &InboxEntry) -> Option<(VerifiedDevice, bool)> {
        let header = entry.header.as_ref()?;
        let id = DeviceId::from_slice(&header.sender_device).ok()?;
        self.directory
            .lookup(&id)
            .map(|e| (e.device.clone(), e.revoked))
    }
}
