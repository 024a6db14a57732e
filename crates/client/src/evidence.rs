//! Evidence bundles: what proves a cable later, to a third party holding only the bundle and
//! the ministry root's fingerprint (docs/protocol.md, "Evidence bundles").
//!
//! A device that sent or received a cable keeps, sealed in its store, everything signed about
//! it: the envelope with the sender's signature, the custody receipts, the delivered, read and
//! acknowledged receipts. [`Client::evidence`] gathers that with the directory records and
//! root certificates that vouch for each signer; [`verify`] checks a bundle offline, with no
//! store and no node, and names each check that passes or fails.

use prost::Message;
use valise_crypto::custody;
use valise_crypto::directory::{Enroller, VerifiedDevice, verify_device_record};
use valise_crypto::envelope::{
    content_key, decode_envelope, open_with_content_key, verify_signature,
};
use valise_crypto::identity::DeviceId;
use valise_proto::v1::{EvidenceBundle, ReceiptKind};

use crate::client::{Client, now_ms};
use crate::error::ClientError;

/// The bundle format written and read here.
pub const FORMAT: u32 = 1;
/// Largest bundle file read: an envelope at the largest limit, with records and receipts.
pub const MAX_BUNDLE_BYTES: usize = 80 * 1024 * 1024;

/// One check of a bundle, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. "the sender's signature".
    pub what: String,
    /// What it found: `Ok` with a detail, or `Err` with why it failed.
    pub outcome: Result<String, String>,
}

/// What a bundle proves, check by check.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every check made, in order.
    pub checks: Vec<Check>,
    /// The cable's id (hex), once the envelope decoded.
    pub cable: String,
    /// The sender's verified address.
    pub sender: Option<String>,
    /// The subject and text, when the content key was disclosed and checked.
    pub content: Option<(String, String)>,
}

impl Report {
    /// Whether every check passed.
    pub fn verified(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.outcome.is_ok())
    }

    fn pass(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check {
            what: what.into(),
            outcome: Ok(detail.into()),
        });
    }

    fn fail(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.checks.push(Check {
            what: what.into(),
            outcome: Err(why.into()),
        });
    }
}

/// The devices a bundle vouches for, each checked along its chain to the root.
struct Signers {
    devices: Vec<VerifiedDevice>,
}

impl Signers {
    fn find(&self, id: &[u8]) -> Option<&VerifiedDevice> {
        self.devices.iter().find(|d| d.id.as_bytes() == id)
    }
}

/// Checks `bundle` against the ministry root whose fingerprint the verifier was given, with
/// nothing else: every signature, every chain to the root, and the content if disclosed.
pub fn verify(bundle: &EvidenceBundle, ca_fingerprint: &str) -> Report {
    let mut report = Report::default();
    if bundle.format != FORMAT {
        report.fail(
            "the bundle format",
            format!(
                "format {} is not one this version reads ({FORMAT})",
                bundle.format
            ),
        );
        return report;
    }
    let root =
        match valise_crypto::tls::check_root_fingerprint(&bundle.root_certificate, ca_fingerprint)
            .and_then(|()| valise_crypto::tls::directory_root(&bundle.root_certificate))
        {
            Ok(root) => {
                report.pass(
                    "the ministry root",
                    format!("fingerprint {ca_fingerprint} matches"),
                );
                root
            }
            Err(e) => {
                report.fail("the ministry root", e.to_string());
                return report;
            }
        };
    // Every device record the bundle carries, each checked against its post's certified key.
    let mut signers = Signers {
        devices: Vec::new(),
    };
    for record in &bundle.devices {
        let post = &record.post;
        let verified = bundle
            .enrollers
            .iter()
            .find(|c| c.post == *post)
            .ok_or_else(|| format!("no enrolment certificate of post {post} in the bundle"))
            .and_then(|cert| {
                Enroller::verify(cert, &root, &bundle.ministry).map_err(|e| e.to_string())
            })
            .and_then(|enroller| {
                verify_device_record(record, &enroller).map_err(|e| e.to_string())
            });
        match verified {
            Ok(device) => signers.devices.push(device),
            Err(e) => report.fail(
                format!("the record of device {}", hex::encode(&record.device_id)),
                e,
            ),
        }
    }
    let envelope = match decode_envelope(&bundle.envelope) {
        Ok(e) => e,
        Err(e) => {
            report.fail("the envelope", e.to_string());
            return report;
        }
    };
    let Some(header) = envelope.header.clone() else {
        report.fail("the envelope", "it has no routing header");
        return report;
    };
    report.cable = hex::encode(&header.cable_id);
    // Authorship: the record of the signing device, its address in `from`, its signature.
    let Some(sender) = signers.find(&header.sender_device) else {
        report.fail(
            "the sender's device",
            format!(
                "the bundle holds no verified record of device {}",
                hex::encode(&header.sender_device)
            ),
        );
        return report;
    };
    let address = sender.address();
    if header.from == address {
        report.pass(
            "the sender's device",
            format!(
                "device {} of {address}, certified by post {}",
                sender.id, sender.post
            ),
        );
    } else {
        report.fail(
            "the sender's device",
            format!(
                "the cable says it is from {}, but its signing device is {address}'s",
                crate::text::single_line(&header.from)
            ),
        );
    }
    match verify_signature(&envelope, &sender.identity) {
        Ok(()) => report.pass(
            "the sender's signature",
            "valid over the header, body ciphertext, key wraps and key commitment",
        ),
        Err(e) => report.fail("the sender's signature", e.to_string()),
    }
    report.sender = Some(address);
    if !bundle.content_key.is_empty() {
        match open_with_content_key(&envelope, &sender.identity, &bundle.content_key) {
            Ok(opened) => {
                report.pass(
                    "the content",
                    "the disclosed key is the one the sender committed to, and the body decrypts",
                );
                report.content = Some((opened.body.subject, opened.body.text));
            }
            Err(e) => report.fail("the content", e.to_string()),
        }
    }
    // Custody: each receipt against a node key the root certified.
    for receipt in &bundle.custody {
        let what = format!(
            "custody by node {}",
            crate::text::single_line(&receipt.node)
        );
        let checked = bundle
            .node_keys
            .iter()
            .find(|c| c.node == receipt.node)
            .ok_or_else(|| "the bundle holds no root certificate of that node's key".to_owned())
            .and_then(|cert| {
                custody::verify_node_key(
                    cert,
                    &root,
                    &bundle.ministry,
                    &receipt.node,
                    receipt.accepted_at_ms,
                )
                .map_err(|e| e.to_string())
            })
            .and_then(|key| {
                custody::verify(
                    receipt,
                    &receipt.node,
                    &key,
                    &header.cable_id,
                    &bundle.envelope,
                )
                .map_err(|e| e.to_string())
            });
        match checked {
            Ok(()) => report.pass(
                what,
                format!(
                    "of exactly these envelope bytes, at {} ms",
                    receipt.accepted_at_ms
                ),
            ),
            Err(e) => report.fail(what, e),
        }
    }
    // Receipts: each signed by a recipient device of this cable.
    for receipt in &bundle.receipts {
        let kind = match ReceiptKind::try_from(receipt.kind) {
            Ok(ReceiptKind::Delivered) => "delivered",
            Ok(ReceiptKind::Read) => "read",
            Ok(ReceiptKind::Acknowledged) => "acknowledged",
            _ => "unknown",
        };
        let signer = signers.find(&receipt.device_id);
        let what = format!(
            "the {kind} receipt of {}",
            signer.map_or_else(|| hex::encode(&receipt.device_id), VerifiedDevice::address)
        );
        let checked = match signer {
            None => Err("the bundle holds no verified record of its device".to_owned()),
            Some(_) if receipt.cable_id != header.cable_id => {
                Err("it is a receipt for another cable".to_owned())
            }
            Some(_)
                if !envelope
                    .key_wraps
                    .iter()
                    .any(|w| w.device_id == receipt.device_id) =>
            {
                Err("its device is not a recipient of this cable".to_owned())
            }
            Some(device) => {
                crate::receipt::verify(receipt, &device.identity).map_err(|e| e.to_string())
            }
        };
        match checked {
            Ok(()) => report.pass(what, format!("signed at {} ms", receipt.at_ms)),
            Err(e) => report.fail(what, e),
        }
    }
    report
}

/// Reads a bundle file's bytes.
pub fn decode(bytes: &[u8]) -> Result<EvidenceBundle, String> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(format!(
            "the file is {} bytes, larger than any evidence bundle ({MAX_BUNDLE_BYTES})",
            bytes.len()
        ));
    }
    EvidenceBundle::decode(bytes).map_err(|e| {
        format!("not an evidence bundle ({e}); export one with `valise evidence export`")
    })
}

impl Client {
    /// The evidence bundle of a cable this device sent or received (by id or prefix). With
    /// `disclose_content`, a received cable's content key goes in too, so the reader of the
    /// bundle can read the cable and check it is what the sender signed.
    pub fn evidence(
        &self,
        id: &str,
        disclose_content: bool,
    ) -> Result<EvidenceBundle, ClientError> {
        let (envelope_bytes, custody, receipts) = match self.received(id) {
            Ok((_, entry)) => (entry.envelope.clone(), Vec::new(), entry.receipts.clone()),
            Err(ClientError::NoSuchCable(_)) => {
                let sent = self.status(id)?;
                if disclose_content {
                    return Err(ClientError::Crypto(
                        "a sender does not keep the content key of what it sealed; ask a \
                         recipient to export the bundle with --disclose-content"
                            .into(),
                    ));
                }
                (sent.envelope, sent.custody, sent.receipts)
            }
            Err(e) => return Err(e),
        };
        if envelope_bytes.is_empty() {
            return Err(ClientError::Crypto(
                "this cable was stored before envelopes were kept with it; no bundle can be made"
                    .into(),
            ));
        }
        let envelope =
            decode_envelope(&envelope_bytes).map_err(|e| ClientError::Crypto(e.to_string()))?;
        let header = envelope.header.clone().unwrap_or_default();
        let mut devices: Vec<DeviceId> = Vec::new();
        let mut add = |raw: &[u8]| {
            if let Ok(id) = DeviceId::from_slice(raw)
                && !devices.contains(&id)
            {
                devices.push(id);
            }
        };
        add(&header.sender_device);
        for r in &receipts {
            add(&r.device_id);
        }
        let records: Vec<_> = devices
            .iter()
            .filter_map(|d| self.directory.lookup(d).map(|e| e.record.clone()))
            .collect();
        let mut posts: Vec<&str> = records.iter().map(|r| r.post.as_str()).collect();
        posts.sort_unstable();
        posts.dedup();
        let enrollers = posts
            .iter()
            .filter_map(|p| self.directory.enrolment_certificate(p).cloned())
            .collect();
        let content = if disclose_content {
            let sender = self
                .directory
                .lookup(
                    &DeviceId::from_slice(&header.sender_device)
                        .map_err(|e| ClientError::Crypto(e.to_string()))?,
                )
                .map(|e| e.device.identity)
                .ok_or_else(|| {
                    ClientError::Crypto("the sender is no longer in the directory".into())
                })?;
            content_key(&envelope, &sender, &self.device_id(), &self.keys.receive)
                .map_err(|e| ClientError::Crypto(e.to_string()))?
                .to_vec()
        } else {
            Vec::new()
        };
        let node_keys = self
            .profile
            .node_key_certificate
            .iter()
            .filter(|_| !custody.is_empty())
            .cloned()
            .collect();
        Ok(EvidenceBundle {
            format: FORMAT,
            ministry: self.profile.ministry.clone(),
            root_certificate: self.profile.ca_pem.clone(),
            envelope: envelope_bytes,
            enrollers,
            devices: records,
            custody,
            node_keys,
            receipts,
            content_key: content,
            exported_by: self.address(),
            exported_at_ms: now_ms(),
        })
    }
}
