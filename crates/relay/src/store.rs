//! The node's durable store of cables in transit: envelopes, per-device queues in delivery
//! order, and the cable ids already seen.
//!
//! Keys (sled, one keyspace; big-endian numbers so keys sort as values):
//!
//! | key | value |
//! |---|---|
//! | `v` ‖ cable id | the envelope, as received, sealed under the node storage key |
//! | `r` ‖ cable id | queue entries still to complete (u32): local devices and next hops |
//! | `q` ‖ device id ‖ rank ‖ seq | cable id: one queue entry, in delivery order |
//! | `f` ‖ hop label ‖ 0 ‖ rank ‖ seq | cable id ‖ custody time ‖ device ids: one cable to forward to a next hop, in forwarding order |
//! | `a` ‖ cable id | the SHA-256 of each attachment the cable carries, 32 bytes each (absent for none) |
//! | `d` ‖ cable id | when the cable was first seen (Unix ms) ‖ SHA-256 of its envelope: the dedup set |
//! | `m` `seq` | the last arrival sequence number |
//! | `s` ‖ device id | the device's last connection number (u64), to notice a cloned device |
//!
//! [`RelayStore::enqueue`] writes all of a cable's keys in one atomic batch and returns only
//! once it is durable (group commit, flush and fsync): only then may the node sign custody.
//! A resend is answered as a duplicate only if its envelope is the one held (same SHA-256),
//! and only after a durability barrier: writes a failed sync left visible are never taken for
//! custody. A failed sync leaves the store degraded, refusing custody, until a sync succeeds
//! again ([`GroupCommit`]).
//! An acknowledgement is applied at once but made durable by the next sync; if a crash loses
//! it, the cable is delivered again and the device drops the duplicate by cable id.
//!
//! Envelopes are sealed under the node storage key (DESIGN §5): their routing headers name
//! senders, addressees, classification and caveats. Erasing that key makes every held cable
//! unreadable at once, whatever the disk keeps. Keys, counts and dates stay in clear: they
//! hold device ids and random cable ids, which the directory and the audit log hold too.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use valise_crypto::at_rest::{RecordSealer, StorageKey};
use valise_crypto::identity::DeviceId;
use valise_proto::v1::Precedence;
use valise_store::{DiskStore, GroupCommit, Lane, Store, StoreError, Write};

use crate::attachments::{ATTACHMENT_ID_LEN, AttachmentId};
use crate::queue::QueueKey;
use crate::routing::NextHop;

/// A cable id.
pub type CableId = [u8; 16];

/// A cable to take custody of: where each of its recipient devices goes next.
#[derive(Debug, Clone, Copy)]
pub struct Custody<'a> {
    /// The cable.
    pub cable: CableId,
    /// Its precedence: the order of every queue it joins.
    pub precedence: Precedence,
    /// The envelope as received.
    pub envelope: &'a [u8],
    /// Devices served by this node.
    pub local: &'a [DeviceId],
    /// Devices to forward, grouped by next hop (never [`NextHop::Local`]).
    pub onward: &'a [(NextHop, Vec<DeviceId>)],
    /// When custody was first taken in the network (Unix ms): carried to every hop.
    pub accepted_at_ms: u64,
    /// The attachments the cable carries (held by this node), to carry to the next hops.
    pub attachments: &'a [AttachmentId],
}

/// One cable waiting for a next hop to take custody of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onward {
    /// The cable.
    pub cable: CableId,
    /// When custody was first taken in the network (Unix ms).
    pub accepted_at_ms: u64,
    /// The devices the next hop is to answer for.
    pub devices: Vec<DeviceId>,
}

/// A cable waiting past its delivery objective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    /// The cable.
    pub cable: CableId,
    /// Its precedence.
    pub precedence: Precedence,
    /// What it waits for: `device <id>`, or a next hop's label.
    pub waiting_for: String,
    /// Since when it has been held (Unix ms).
    pub since_ms: u64,
}

/// What happened to a submitted cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably, arrival number `seq`: sign custody.
    Stored {
        /// The arrival sequence number.
        seq: u64,
    },
    /// Already held, byte for byte (a resend after a lost receipt, or a replay), and durable:
    /// not queued again. Custody was already taken, so the node may sign a receipt again.
    Duplicate,
    /// Another envelope with this cable id is held: the id was reused. Nothing was stored and
    /// no receipt may be signed.
    Conflict,
    /// The same cable is being stored right now by another submission: retry shortly.
    InProgress,
}

/// A custody ready to commit ([`RelayStore::prepare_custody`]).
#[must_use]
pub struct PreparedCustody(Prepared);

enum Prepared {
    /// Nothing to write: the answer is known.
    Answer(Enqueued),
    /// Already held byte for byte: a duplicate once what is held is durable.
    Barrier,
    /// The writes of a new custody, in the lane of its precedence.
    Write {
        cable: CableId,
        seq: u64,
        lane: Lane,
        writes: Vec<Write>,
    },
}

/// The node's store of cables in transit.
pub struct RelayStore {
    kv: Arc<dyn Store>,
    sealer: RecordSealer,
    commit: GroupCommit,
    /// Serialises the dedup check and sequence allocation; the durable sync happens outside.
    /// Shared with the committer, which ends a cable's "in progress" mark once it is durable.
    admission: Arc<Mutex<Admission>>,
    /// Serialises acknowledgements, which read and update a cable's recipient count.
    acks: Mutex<()>,
}

struct Admission {
    next_seq: u64,
    storing: HashSet<CableId>,
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn queue_key(device: &DeviceId, at: QueueKey) -> Vec<u8> {
    key(b'q', &[device.as_bytes(), &at.to_bytes()])
}

/// `f` ‖ label ‖ 0: the prefix of one next hop's queue. Labels hold no zero byte, so no
/// hop's prefix is a prefix of another's.
fn hop_prefix(hop: &NextHop) -> Vec<u8> {
    key(b'f', &[hop.label().as_bytes(), &[0]])
}

fn hop_key(hop: &NextHop, at: QueueKey) -> Vec<u8> {
    [hop_prefix(hop), at.to_bytes().to_vec()].concat()
}

impl RelayStore {
    /// Opens (or creates) the store in `dir`, sealed under `storage_key`, and resumes its
    /// queues.
    pub fn open(dir: &Path, storage_key: &StorageKey) -> Result<Self, StoreError> {
        Self::open_on(Arc::new(DiskStore::open(dir)?), storage_key)
    }

    /// Opens the store on any engine (a test may inject faults), sealed under `storage_key`.
    pub fn open_on(kv: Arc<dyn Store>, storage_key: &StorageKey) -> Result<Self, StoreError> {
        let sealer = storage_key
            .record_sealer()
            .map_err(|e| StoreError::Io(format!("cannot derive the queue sealing key: {e}")))?;
        check_storage_key(&*kv, &sealer)?;
        let last = kv
            .get(b"mseq")?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes);
        let commit = GroupCommit::start(Arc::clone(&kv))?;
        Ok(RelayStore {
            kv,
            sealer,
            commit,
            admission: Arc::new(Mutex::new(Admission {
                next_seq: last.map_or(0, |s| s + 1),
                storing: HashSet::new(),
            })),
            acks: Mutex::new(()),
        })
    }

    /// Stores a cable for its recipients, all served here; durable before it returns
    /// [`Enqueued::Stored`].
    pub fn enqueue(
        &self,
        cable: CableId,
        precedence: Precedence,
        envelope: &[u8],
        recipients: &[DeviceId],
        now_ms: u64,
    ) -> Result<Enqueued, StoreError> {
        self.take_custody(
            Custody {
                cable,
                precedence,
                envelope,
                local: recipients,
                onward: &[],
                accepted_at_ms: now_ms,
                attachments: &[],
            },
            now_ms,
        )
    }

    /// Takes custody of a cable: its envelope, a delivery queue entry per local device and a
    /// forwarding entry per next hop, in one atomic batch, durable before it returns
    /// [`Enqueued::Stored`]. Blocks: an async caller uses [`Self::prepare_custody`] and
    /// [`Self::commit_custody`].
    pub fn take_custody(&self, custody: Custody<'_>, now_ms: u64) -> Result<Enqueued, StoreError> {
        let prepared = self.prepare_custody(custody, now_ms)?;
        let (tx, rx) = std::sync::mpsc::channel();
        self.commit_custody(
            prepared,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .map_err(|_| StoreError::Io("the store is closed".into()))?
    }

    /// The first half of taking custody, without waiting on the disk: the dedup check, the
    /// arrival number, the sealed envelope and every write, or why nothing is to be written.
    /// Hand the result to [`Self::commit_custody`], always: it also ends the "in progress"
    /// mark that makes a concurrent resend wait.
    pub fn prepare_custody(
        &self,
        custody: Custody<'_>,
        now_ms: u64,
    ) -> Result<PreparedCustody, StoreError> {
        let cable = custody.cable;
        let digest = valise_crypto::sha256(custody.envelope);
        let seq = {
            let mut admission = self
                .admission
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if admission.storing.contains(&cable) {
                return Ok(PreparedCustody(Prepared::Answer(Enqueued::InProgress)));
            }
            if let Some(seen) = self.kv.get(&key(b'd', &[&cable]))? {
                drop(admission);
                return self
                    .resent(&cable, &seen, &digest, custody.envelope)
                    .map(PreparedCustody);
            }
            admission.storing.insert(cable);
            let seq = admission.next_seq;
            admission.next_seq += 1;
            seq
        };
        // FLASH and IMMEDIATE are committed ahead of the bulk waiting.
        let lane = if QueueKey::new(custody.precedence, seq).rank <= 1 {
            Lane::Urgent
        } else {
            Lane::Bulk
        };
        match self.custody_writes(&custody, seq, &digest, now_ms) {
            Ok(writes) => Ok(PreparedCustody(Prepared::Write {
                cable,
                seq,
                lane,
                writes,
            })),
            Err(e) => {
                self.done_storing(&cable);
                Err(e)
            }
        }
    }

    /// The second half: commits what [`Self::prepare_custody`] prepared, and calls `done` with
    /// the outcome once it is durable. `done` runs on the committer's thread: it must be quick.
    pub fn commit_custody(
        &self,
        prepared: PreparedCustody,
        done: Box<dyn FnOnce(Result<Enqueued, StoreError>) + Send>,
    ) {
        match prepared.0 {
            Prepared::Answer(answer) => done(Ok(answer)),
            // A duplicate is answered once what is held is durable: an empty commit is the
            // barrier.
            Prepared::Barrier => self.commit.commit_then(
                Vec::new(),
                Box::new(move |r| done(r.map(|()| Enqueued::Duplicate))),
            ),
            Prepared::Write {
                cable,
                seq,
                lane,
                writes,
            } => {
                let admission = Arc::clone(&self.admission);
                self.commit.commit_in(
                    lane,
                    writes,
                    Box::new(move |result| {
                        admission
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .storing
                            .remove(&cable);
                        done(result.map(|()| Enqueued::Stored { seq }));
                    }),
                );
            }
        }
    }

    /// Every write of one cable's custody, at arrival number `seq`.
    fn custody_writes(
        &self,
        custody: &Custody<'_>,
        seq: u64,
        digest: &[u8; 32],
        now_ms: u64,
    ) -> Result<Vec<Write>, StoreError> {
        let cable = custody.cable;
        let at = QueueKey::new(custody.precedence, seq);
        let entries = custody.local.len() + custody.onward.len();
        if entries == 0 {
            // Nobody left to deliver to (every recipient revoked since sealing): remembered as
            // seen, so a resend is a duplicate, but no envelope is kept that nothing would free.
            return Ok(vec![
                Write::Put(key(b'd', &[&cable]), seen_value(now_ms, digest)),
                Write::Put(b"mseq".to_vec(), seq.to_be_bytes().to_vec()),
            ]);
        }
        let count = u32::try_from(entries).unwrap_or(u32::MAX);
        let sealed = self
            .sealer
            .seal(ENVELOPE_TABLE, &cable, custody.envelope)
            .map_err(|e| StoreError::Io(format!("cannot seal the envelope: {e}")))?;
        let mut writes = vec![
            Write::Put(key(b'v', &[&cable]), sealed),
            Write::Put(key(b'r', &[&cable]), count.to_be_bytes().to_vec()),
            Write::Put(key(b'd', &[&cable]), seen_value(now_ms, digest)),
            Write::Put(b"mseq".to_vec(), seq.to_be_bytes().to_vec()),
        ];
        if !custody.attachments.is_empty() && !custody.onward.is_empty() {
            let ids: Vec<u8> = custody
                .attachments
                .iter()
                .flat_map(|a| a.as_bytes().iter().copied())
                .collect();
            writes.push(Write::Put(key(b'a', &[&cable]), ids));
        }
        writes.extend(
            custody
                .local
                .iter()
                .map(|d| Write::Put(queue_key(d, at), cable.to_vec())),
        );
        writes.extend(custody.onward.iter().map(|(hop, devices)| {
            let mut value = cable.to_vec();
            value.extend_from_slice(&custody.accepted_at_ms.to_be_bytes());
            for d in devices {
                value.extend_from_slice(d.as_bytes());
            }
            Write::Put(hop_key(hop, at), value)
        }));
        Ok(writes)
    }

    /// A cable id already in the dedup set arrived again: a duplicate only if it is the same
    /// envelope, and only once what is held is durable (an empty commit is the barrier).
    fn resent(
        &self,
        cable: &CableId,
        seen: &[u8],
        digest: &[u8; 32],
        envelope: &[u8],
    ) -> Result<Prepared, StoreError> {
        let same = match seen.get(8..) {
            Some(held) if held.len() == 32 => held == digest,
            // Written before digests were kept: compare with the envelope, if still held.
            _ => self.envelope(cable)?.is_some_and(|held| held == envelope),
        };
        Ok(if same {
            Prepared::Barrier
        } else {
            Prepared::Answer(Enqueued::Conflict)
        })
    }

    /// Removes a cable whose custody could not be completed (its audit record failed), so a
    /// resend is stored afresh rather than taken for a duplicate. `seq` is what
    /// [`Self::take_custody`] returned.
    pub fn abandon(&self, custody: Custody<'_>, seq: u64) -> Result<(), StoreError> {
        let cable = custody.cable;
        let at = QueueKey::new(custody.precedence, seq);
        let mut writes = vec![
            Write::Delete(key(b'v', &[&cable])),
            Write::Delete(key(b'r', &[&cable])),
            Write::Delete(key(b'd', &[&cable])),
            Write::Delete(key(b'a', &[&cable])),
        ];
        writes.extend(
            custody
                .local
                .iter()
                .map(|d| Write::Delete(queue_key(d, at))),
        );
        writes.extend(
            custody
                .onward
                .iter()
                .map(|(hop, _)| Write::Delete(hop_key(hop, at))),
        );
        self.commit.commit(writes)
    }

    /// Why the store cannot take custody now (its last sync failed), or `None`.
    pub fn degraded(&self) -> Option<String> {
        self.commit.degraded()
    }

    fn done_storing(&self, cable: &CableId) {
        self.admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .storing
            .remove(cable);
    }

    /// Up to `limit` cables waiting for `hop` to take custody, in forwarding order (precedence,
    /// then arrival).
    pub fn onward(
        &self,
        hop: &NextHop,
        limit: usize,
    ) -> Result<Vec<(QueueKey, Onward)>, StoreError> {
        let prefix = hop_prefix(hop);
        self.kv
            .scan(&prefix)
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                let at = QueueKey::from_bytes(&k[prefix.len()..])
                    .ok_or_else(|| damaged("forwarding key"))?;
                Ok((at, decode_onward(&v)?))
            })
            .collect()
    }

    /// `hop` took custody of the cable at `at`: drop the forwarding entry, and the envelope
    /// once nothing else needs it. Returns whether the entry was still there.
    pub fn forwarded(&self, hop: &NextHop, at: QueueKey) -> Result<bool, StoreError> {
        self.release(hop_key(hop, at), |v| v.get(..16).map(<[u8]>::to_vec))
    }

    /// Cables waiting per next hop (by [`NextHop::label`]) and precedence:
    /// [FLASH, IMMEDIATE, PRIORITY, ROUTINE].
    pub fn onward_depth(&self) -> Result<std::collections::BTreeMap<String, [u64; 4]>, StoreError> {
        let mut depth: std::collections::BTreeMap<String, [u64; 4]> = Default::default();
        for item in self.kv.scan(b"f") {
            let (k, _) = item?;
            let (label, rank) = hop_and_rank(&k)?;
            depth.entry(label.to_owned()).or_default()[usize::from(rank.min(3))] += 1;
        }
        Ok(depth)
    }

    /// Up to `limit` entries queued for `device`, in delivery order.
    pub fn queued(
        &self,
        device: &DeviceId,
        limit: usize,
    ) -> Result<Vec<(QueueKey, CableId)>, StoreError> {
        let prefix = key(b'q', &[device.as_bytes()]);
        self.kv
            .scan(&prefix)
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                let at =
                    QueueKey::from_bytes(&k[prefix.len()..]).ok_or_else(|| damaged("queue key"))?;
                let cable: CableId = v.try_into().map_err(|_| damaged("queue entry"))?;
                Ok((at, cable))
            })
            .collect()
    }

    /// Up to `limit` keys queued for `device` after `after` (from the head with `None`), in
    /// delivery order: a page of a delivery stream.
    pub fn queued_after(
        &self,
        device: &DeviceId,
        after: Option<QueueKey>,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        let prefix = key(b'q', &[device.as_bytes()]);
        let start = match after {
            // The smallest key sorting after `after`'s own.
            Some(after) => [queue_key(device, after), vec![0]].concat(),
            None => prefix.clone(),
        };
        self.kv
            .scan_from(&prefix, &start)
            .take(limit)
            .map(|item| {
                let (k, _) = item?;
                QueueKey::from_bytes(&k[prefix.len()..]).ok_or_else(|| damaged("queue key"))
            })
            .collect()
    }

    /// The envelope queued for `device` at `at`, if the entry is still queued: what a delivery
    /// stream sends. `None` once acknowledged or purged.
    pub fn delivery(&self, device: &DeviceId, at: QueueKey) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(value) = self.kv.get(&queue_key(device, at))? else {
            return Ok(None);
        };
        let cable: CableId = value.try_into().map_err(|_| damaged("queue entry"))?;
        self.envelope(&cable)
    }

    /// The envelope of a cable still being delivered. A record that does not open under this
    /// node's storage key (altered, moved, or from another key) is an error, never delivered.
    pub fn envelope(&self, cable: &CableId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(sealed) = self.kv.get(&key(b'v', &[cable]))? else {
            return Ok(None);
        };
        let envelope = self
            .sealer
            .open(ENVELOPE_TABLE, cable, &sealed)
            .map_err(|e| {
                StoreError::Io(format!(
                    "the queued envelope of cable {} does not open under this node's storage key \
                     ({e}); restore the matching node-storage.key or the queue store",
                    hex::encode(cable)
                ))
            })?;
        Ok(Some(envelope.to_vec()))
    }

    /// Whether the cable was already taken into custody here (the dedup set).
    pub fn seen(&self, cable: &CableId) -> Result<bool, StoreError> {
        Ok(self.kv.get(&key(b'd', &[cable]))?.is_some())
    }

    /// Replaces the attachments a cable in transit carries (one expired here, say). Nothing
    /// is written for a cable no longer held.
    pub fn set_attachments(
        &self,
        cable: &CableId,
        attachments: &[AttachmentId],
    ) -> Result<(), StoreError> {
        let _serial = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        if self.kv.get(&key(b'v', &[cable]))?.is_none() {
            return Ok(());
        }
        let k = key(b'a', &[cable]);
        let write = if attachments.is_empty() {
            Write::Delete(k)
        } else {
            Write::Put(k, attachments.iter().flat_map(|a| *a.as_bytes()).collect())
        };
        self.commit.commit(vec![write])
    }

    /// The attachments a cable still in transit carries, to go with it to the next hop.
    pub fn attachments(&self, cable: &CableId) -> Result<Vec<AttachmentId>, StoreError> {
        let Some(ids) = self.kv.get(&key(b'a', &[cable]))? else {
            return Ok(Vec::new());
        };
        if !ids.len().is_multiple_of(ATTACHMENT_ID_LEN) {
            return Err(damaged("attachment list"));
        }
        ids.chunks(ATTACHMENT_ID_LEN)
            .map(|id| AttachmentId::from_slice(id).ok_or_else(|| damaged("attachment list")))
            .collect()
    }

    /// `device` has stored the cable at `at`: drop its queue entry, and the envelope once every
    /// recipient has it. Returns whether the entry was still queued (a repeated ack is harmless).
    pub fn ack(&self, device: &DeviceId, at: QueueKey) -> Result<bool, StoreError> {
        self.release(queue_key(device, at), |v| Some(v.to_vec()))
    }

    /// `device` has stored the cables at `keys`: drops their queue entries, and each envelope
    /// once every recipient has it, in one batch. Returns the entries that were still queued.
    pub fn ack_many(
        &self,
        device: &DeviceId,
        keys: &[QueueKey],
    ) -> Result<Vec<QueueKey>, StoreError> {
        let _serial = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut writes = Vec::with_capacity(keys.len() * 2);
        let mut left: std::collections::HashMap<Vec<u8>, u32> = Default::default();
        let mut removed = Vec::with_capacity(keys.len());
        for at in keys {
            let entry = queue_key(device, *at);
            let Some(cable) = self.kv.get(&entry)? else {
                continue;
            };
            let rk = key(b'r', &[&cable]);
            let count = match left.get(&rk) {
                Some(count) => *count,
                None => self
                    .kv
                    .get(&rk)?
                    .and_then(|v| v.try_into().ok())
                    .map_or(1, u32::from_be_bytes),
            };
            writes.push(Write::Delete(entry));
            if count <= 1 {
                writes.push(Write::Delete(key(b'v', &[&cable])));
                writes.push(Write::Delete(key(b'a', &[&cable])));
            }
            left.insert(rk, count.saturating_sub(1));
            removed.push(*at);
        }
        for (rk, count) in left {
            writes.push(if count == 0 {
                Write::Delete(rk)
            } else {
                Write::Put(rk, count.to_be_bytes().to_vec())
            });
        }
        if !writes.is_empty() {
            self.kv.apply(writes)?;
        }
        Ok(removed)
    }

    /// Deletes one queue entry (its value names the cable through `cable_of`), and the
    /// cable's envelope with the last entry.
    fn release(
        &self,
        entry: Vec<u8>,
        cable_of: impl Fn(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let _serial = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(value) = self.kv.get(&entry)? else {
            return Ok(false);
        };
        let cable = cable_of(&value).ok_or_else(|| damaged("queue entry"))?;
        let rk = key(b'r', &[&cable]);
        let left = self
            .kv
            .get(&rk)?
            .and_then(|v| v.try_into().ok())
            .map_or(1, u32::from_be_bytes);
        let mut writes = vec![Write::Delete(entry)];
        if left <= 1 {
            writes.push(Write::Delete(rk));
            writes.push(Write::Delete(key(b'v', &[&cable])));
            writes.push(Write::Delete(key(b'a', &[&cable])));
        } else {
            writes.push(Write::Put(rk, (left - 1).to_be_bytes().to_vec()));
        }
        self.kv.apply(writes)?;
        Ok(true)
    }

    /// Records that `device` connected with number `session`, durably; returns the largest
    /// number it had connected with before, if any. The caller decides what a number not above
    /// it means (a cloned device); the largest is kept either way.
    pub fn note_session(&self, device: &DeviceId, session: u64) -> Result<Option<u64>, StoreError> {
        let k = key(b's', &[device.as_bytes()]);
        let _serial = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        let last = self
            .kv
            .get(&k)?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes);
        if last.is_none_or(|l| session > l) {
            self.commit
                .commit(vec![Write::Put(k, session.to_be_bytes().to_vec())])?;
        }
        Ok(last)
    }

    /// The devices with anything in their delivery queue.
    pub fn queued_devices(&self) -> Result<Vec<DeviceId>, StoreError> {
        let mut devices: Vec<DeviceId> = Vec::new();
        for item in self.kv.scan(b"q") {
            let (k, _) = item?;
            let id = k
                .get(1..17)
                .and_then(|b| DeviceId::from_slice(b).ok())
                .ok_or_else(|| damaged("queue key"))?;
            if devices.last() != Some(&id) {
                devices.push(id);
            }
        }
        Ok(devices)
    }

    /// Drops every entry queued for `device` (revoked: nothing will ever take them), and each
    /// envelope no other recipient or hop still needs. Returns the entries dropped.
    pub fn purge_device(&self, device: &DeviceId) -> Result<Vec<(QueueKey, CableId)>, StoreError> {
        self.purge_device_where(device, |_| true)
    }

    /// Drops the entries queued for `device` whose cable `drop` picks, as [`Self::purge_device`].
    pub fn purge_device_where(
        &self,
        device: &DeviceId,
        drop: impl Fn(&CableId) -> bool,
    ) -> Result<Vec<(QueueKey, CableId)>, StoreError> {
        let picked: Vec<(QueueKey, CableId)> = self
            .queued(device, usize::MAX)?
            .into_iter()
            .filter(|(_, cable)| drop(cable))
            .collect();
        for (key, _) in &picked {
            self.ack(device, *key)?;
        }
        self.commit.commit(Vec::new())?;
        Ok(picked)
    }

    /// Every cable waiting here past its delivery objective at `now_ms`, most overdue first:
    /// for a local device, since this node took custody; for a next hop, since custody was
    /// first taken in the network.
    pub fn past_objective(&self, now_ms: u64) -> Result<Vec<Overdue>, StoreError> {
        let mut overdue = Vec::new();
        let late = |precedence: Precedence, since: u64| {
            now_ms.saturating_sub(since) > precedence.objective_ms()
        };
        for item in self.kv.scan(b"q") {
            let (k, v) = item?;
            let rank = *k.get(17).ok_or_else(|| damaged("queue key"))?;
            let precedence = crate::queue::precedence_of(rank);
            let cable: CableId = v.try_into().map_err(|_| damaged("queue entry"))?;
            let since = self
                .kv
                .get(&key(b'd', &[&cable]))?
                .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                .map_or(now_ms, u64::from_be_bytes);
            if late(precedence, since) {
                let device = k
                    .get(1..17)
                    .and_then(|b| DeviceId::from_slice(b).ok())
                    .ok_or_else(|| damaged("queue key"))?;
                overdue.push(Overdue {
                    cable,
                    precedence,
                    waiting_for: format!("device {device}"),
                    since_ms: since,
                });
            }
        }
        for item in self.kv.scan(b"f") {
            let (k, v) = item?;
            let (label, rank) = hop_and_rank(&k)?;
            let precedence = crate::queue::precedence_of(rank);
            let onward = decode_onward(&v)?;
            if late(precedence, onward.accepted_at_ms) {
                overdue.push(Overdue {
                    cable: onward.cable,
                    precedence,
                    waiting_for: label.to_owned(),
                    since_ms: onward.accepted_at_ms,
                });
            }
        }
        overdue.sort_by_key(|o| o.since_ms.saturating_add(o.precedence.objective_ms()));
        Ok(overdue)
    }

    /// Queue depth per precedence over all devices: [FLASH, IMMEDIATE, PRIORITY, ROUTINE].
    pub fn depth(&self) -> Result<[u64; 4], StoreError> {
        let mut depth = [0u64; 4];
        for item in self.kv.scan(b"q") {
            let (k, _) = item?;
            let rank = k.get(17).copied().ok_or_else(|| damaged("queue key"))?;
            depth[usize::from(rank.min(3))] += 1;
        }
        Ok(depth)
    }

    /// Forgets cable ids first seen before `cutoff_ms` whose delivery is complete, bounding
    /// the dedup set. Returns how many were forgotten.
    pub fn forget_seen_before(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut writes = Vec::new();
        for item in self.kv.scan(b"d") {
            let (k, v) = item?;
            let seen = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| damaged("dedup entry"))?;
            let delivered = self.kv.get(&key(b'v', &[&k[1..]]))?.is_none();
            if seen < cutoff_ms && delivered {
                writes.push(Write::Delete(k));
            }
        }
        let n = writes.len();
        if n > 0 {
            self.commit.commit(writes)?;
        }
        Ok(n)
    }

    /// Makes everything applied so far durable (acknowledgements included), e.g. at shutdown.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.kv.sync()
    }
}

/// The key under which the store's key check is kept: a fixed text sealed under the storage
/// key when the store was first opened.
const KEY_CHECK: &[u8] = b"mkey-check";
const KEY_CHECK_TABLE: &str = "relay/key-check";
const KEY_CHECK_TEXT: &[u8] = b"valise relay queue";

/// Refuses a store sealed under another storage key: its cables could never be delivered, and
/// nothing else would say so. A store from before the check is tried on its first envelope.
fn check_storage_key(kv: &dyn Store, sealer: &RecordSealer) -> Result<(), StoreError> {
    let wrong = || {
        StoreError::Sealed(
            "the queue store was sealed under another node storage key than this node's \
             node-storage.key: its cables could not be delivered. Put back the key this store \
             was made with (or this node's own queue store); do not start the node until then"
                .into(),
        )
    };
    if let Some(sealed) = kv.get(KEY_CHECK)? {
        return match sealer.open(KEY_CHECK_TABLE, b"", &sealed) {
            Ok(text) if text.as_slice() == KEY_CHECK_TEXT => Ok(()),
            _ => Err(wrong()),
        };
    }
    if let Some(first) = kv.scan(b"v").next() {
        let (k, sealed) = first?;
        if sealer.open(ENVELOPE_TABLE, &k[1..], &sealed).is_err() {
            return Err(wrong());
        }
    }
    let check = sealer
        .seal(KEY_CHECK_TABLE, b"", KEY_CHECK_TEXT)
        .map_err(|e| StoreError::Io(format!("cannot seal the key check: {e}")))?;
    kv.apply(vec![Write::Put(KEY_CHECK.to_vec(), check)])?;
    kv.sync()
}

/// A dedup entry: when the cable was first seen, and its envelope's SHA-256.
fn seen_value(now_ms: u64, digest: &[u8; 32]) -> Vec<u8> {
    [&now_ms.to_be_bytes()[..], digest].concat()
}

/// The sealing table name of envelopes: binds each sealed record to its place.
const ENVELOPE_TABLE: &str = "relay/envelope";

/// The next hop's label and the precedence rank of a forwarding key `f` ‖ label ‖ 0 ‖ rank ‖ seq.
fn hop_and_rank(key: &[u8]) -> Result<(&str, u8), StoreError> {
    let end = key
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| damaged("forwarding key"))?;
    let label = std::str::from_utf8(&key[1..end]).map_err(|_| damaged("forwarding key"))?;
    let rank = *key.get(end + 1).ok_or_else(|| damaged("forwarding key"))?;
    Ok((label, rank))
}

fn decode_onward(value: &[u8]) -> Result<Onward, StoreError> {
    let bad = || damaged("forwarding entry");
    let (cable, rest) = value.split_at_checked(16).ok_or_else(bad)?;
    let (at, devices) = rest.split_at_checked(8).ok_or_else(bad)?;
    if !devices.len().is_multiple_of(16) {
        return Err(bad());
    }
    Ok(Onward {
        cable: cable.try_into().map_err(|_| bad())?,
        accepted_at_ms: u64::from_be_bytes(at.try_into().map_err(|_| bad())?),
        devices: devices
            .chunks(16)
            .map(|d| DeviceId::from_slice(d).map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
    })
}

fn damaged(what: &str) -> StoreError {
    StoreError::Io(format!("the relay store is damaged: malformed {what}"))
}
