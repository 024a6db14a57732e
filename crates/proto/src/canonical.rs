//! Canonical bytes: the exact bytes that Valise signs and uses as AEAD associated data.
//!
//! Protobuf encodings are not canonical (field order, packed or unpacked repeats, unknown
//! fields and default values may all vary), so nothing is ever signed over them. Instead each
//! signed structure has one encoding, defined here and pinned by tests:
//!
//! * it starts with a context string naming the structure and ending in a zero byte, e.g.
//!   `valise.v1.RoutingHeader\0`, so bytes of one kind can never be taken for another;
//! * fields follow in field-number order; the `signature` field is never included;
//! * integers are big-endian and fixed width: `u32` and `u64` as such, enums as their `i32`
//!   value, `bool` as one byte `0x00` or `0x01`;
//! * `bytes` and `string` (UTF-8) are a `u32` length followed by the content;
//! * `repeated` fields are a `u32` count followed by each element, in order.
//!
//! Because the bytes are computed from decoded values, a relay that re-encodes a message,
//! reorders its fields or adds unknown ones changes nothing here; a relay that changes any
//! value changes these bytes, and so breaks the signature and the AEAD tag.

use crate::v1::{
    CustodyReceipt, DeviceRecord, EnrolmentCertificate, KeyWrap, NodeKeyCertificate, Receipt,
    ReceiveKey, Revocation, RoutingHeader,
};

/// A structure too large to encode canonically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// A field or list is longer than the 32-bit length prefix can express.
    #[error("{field} is {len} long, over the canonical encoding's 4 GiB limit")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// Its length in bytes or elements.
        len: usize,
    },
}

/// Builds canonical bytes field by field.
struct Canon(Vec<u8>);

impl Canon {
    fn new(context: &str) -> Self {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(context.as_bytes());
        out.push(0);
        Canon(out)
    }

    fn len(field: &'static str, len: usize) -> Result<[u8; 4], CanonicalError> {
        u32::try_from(len)
            .map(u32::to_be_bytes)
            .map_err(|_| CanonicalError::TooLong { field, len })
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn enumeration(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }

    fn bytes(&mut self, field: &'static str, v: &[u8]) -> Result<&mut Self, CanonicalError> {
        self.0.extend_from_slice(&Self::len(field, v.len())?);
        self.0.extend_from_slice(v);
        Ok(self)
    }

    fn strings(&mut self, field: &'static str, v: &[String]) -> Result<&mut Self, CanonicalError> {
        self.0.extend_from_slice(&Self::len(field, v.len())?);
        for s in v {
            self.bytes(field, s.as_bytes())?;
        }
        Ok(self)
    }

    fn enumerations(
        &mut self,
        field: &'static str,
        v: &[i32],
    ) -> Result<&mut Self, CanonicalError> {
        self.0.extend_from_slice(&Self::len(field, v.len())?);
        for e in v {
            self.enumeration(*e);
        }
        Ok(self)
    }

    fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Canonical bytes of a routing header: the body AEAD's associated data, and part of what the
/// sender signs.
pub fn routing_header(h: &RoutingHeader) -> Result<Vec<u8>, CanonicalError> {
    let mut c = Canon::new("valise.v1.RoutingHeader");
    c.u32(h.version)
        .bytes("cable_id", &h.cable_id)?
        .bytes("sender_device", &h.sender_device)?
        .bytes("from", h.from.as_bytes())?
        .strings("action_addressees", &h.action_addressees)?
        .strings("info_addressees", &h.info_addressees)?
        .enumeration(h.classification)
        .enumerations("caveats", &h.caveats)?
        .enumeration(h.precedence)
        .bool(h.niact)
        .u64(h.created_at_ms);
    Ok(c.finish())
}

/// Canonical bytes of an envelope's key wraps, in envelope order.
pub fn key_wraps(wraps: &[KeyWrap]) -> Result<Vec<u8>, CanonicalError> {
    let mut c = Canon::new("valise.v1.KeyWrap[]");
    c.0.extend_from_slice(&Canon::len("key_wraps", wraps.len())?);
    for w in wraps {
        c.bytes("device_id", &w.device_id)?
            .bytes("receive_key_id", &w.receive_key_id)?
            .bytes("encapsulated_key", &w.encapsulated_key)?
            .bytes("wrapped_key", &w.wrapped_key)?;
    }
    Ok(c.finish())
}

/// Canonical bytes of a receive key, without its signature.
pub fn receive_key(k: &ReceiveKey) -> Result<Vec<u8>, CanonicalError> {
    let mut c = Canon::new("valise.v1.ReceiveKey");
    receive_key_fields(&mut c, k)?;
    Ok(c.finish())
}

fn receive_key_fields(c: &mut Canon, k: &ReceiveKey) -> Result<(), CanonicalError> {
    c.bytes("key_id", &k.key_id)?
        .bytes("public_key", &k.public_key)?
        .bytes("device_id", &k.device_id)?
        .u64(k.valid_from_ms)
        .u64(k.valid_until_ms);
    Ok(())
}

/// Canonical bytes of a device record, without its signature. Each receive key is included
/// with its own signature, so the enrolment key vouches for exactly those signed keys.
pub fn device_record(r: &DeviceRecord) -> Result<Vec<u8>, CanonicalError> {
    let mut c = Canon::new("valise.v1.DeviceRecord");
    c.bytes("device_id", &r.device_id)?
        .bytes("user", r.user.as_bytes())?
        .bytes("post", r.post.as_bytes())?
        .bytes("display_name", r.display_name.as_bytes())?
        .strings("offices", &r.offices)?
        .enumeration(r.clearance)
        .bytes("identity_key", &r.identity_key)?;
    c.0.extend_from_slice(&Canon::len("receive_keys", r.receive_keys.len())?);
    for k in &r.receive_keys {
        receive_key_fields(&mut c, k)?;
        c.bytes("receive_keys.signature", &k.signature)?;
    }
    c.u64(r.enrolled_at_ms);
    // Field 11, appended only when set: every record from before it keeps its bytes, and the
    // encoding stays unambiguous, since the fields before it delimit themselves.
    if r.foreign_national {
        c.bool(true);
    }
    Ok(c.finish())
}

/// Canonical bytes of an enrolment certificate, without its signature.
pub fn enrolment_certificate(c: &EnrolmentCertificate) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Canon::new("valise.v1.EnrolmentCertificate");
    out.bytes("ministry", c.ministry.as_bytes())?
        .bytes("post", c.post.as_bytes())?
        .bytes("public_key", &c.public_key)?
        .u64(c.valid_from_ms)
        .u64(c.valid_until_ms);
    Ok(out.finish())
}

/// Canonical bytes of a node key certificate, without its signature.
pub fn node_key_certificate(c: &NodeKeyCertificate) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Canon::new("valise.v1.NodeKeyCertificate");
    out.bytes("ministry", c.ministry.as_bytes())?
        .bytes("node", c.node.as_bytes())?
        .bytes("public_key", &c.public_key)?
        .u64(c.valid_from_ms)
        .u64(c.valid_until_ms);
    Ok(out.finish())
}

/// Canonical bytes of a revocation, without its signature.
pub fn revocation(r: &Revocation) -> Result<Vec<u8>, CanonicalError> {
    let mut c = Canon::new("valise.v1.Revocation");
    c.bytes("device_id", &r.device_id)?
        .bytes("reason", r.reason.as_bytes())?
        .u64(r.revoked_at_ms);
    Ok(c.finish())
}

/// Canonical bytes of a receipt, without its signature.
pub fn receipt(r: &Receipt) -> Result<Vec<u8>, CanonicalError> {
    let mut c = Canon::new("valise.v1.Receipt");
    c.bytes("cable_id", &r.cable_id)?
        .bytes("device_id", &r.device_id)?
        .enumeration(r.kind)
        .u64(r.at_ms);
    Ok(c.finish())
}

/// Canonical bytes of a custody receipt, without its signature.
pub fn custody_receipt(r: &CustodyReceipt) -> Result<Vec<u8>, CanonicalError> {
    let mut c = Canon::new("valise.v1.CustodyReceipt");
    c.bytes("cable_id", &r.cable_id)?
        .bytes("node", r.node.as_bytes())?
        .bytes("envelope_sha256", &r.envelope_sha256)?
        .u64(r.accepted_at_ms);
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::v1::{Caveat, Classification, Precedence, ReceiptKind};

    fn fixed_header() -> RoutingHeader {
        RoutingHeader {
            version: 1,
            cable_id: (0x00..0x10).collect(),
            sender_device: vec![0xAA; 16],
            from: "alice@paris".into(),
            action_addressees: vec!["bob@nairobi".into(), "POL@nairobi".into()],
            info_addressees: vec!["hq".into()],
            classification: Classification::Secret as i32,
            caveats: vec![Caveat::Exdis as i32, Caveat::Noforn as i32],
            precedence: Precedence::Immediate as i32,
            niact: true,
            created_at_ms: 1_795_000_000_000,
        }
    }

    /// The canonical header bytes are the body AEAD's AAD and are signed: a change to this
    /// encoding breaks every stored cable, so these bytes are written out field by field.
    #[test]
    fn routing_header_bytes_are_pinned() {
        let expected = [
            "76616c6973652e76312e526f7574696e6748656164657200", // "valise.v1.RoutingHeader\0"
            "00000001",                                         // version 1
            "00000010",
            "000102030405060708090a0b0c0d0e0f", // cable_id
            "00000010",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // sender_device
            "0000000b",
            "616c696365407061726973", // from "alice@paris"
            "00000002",               // 2 action addressees
            "0000000b",
            "626f62406e6169726f6269", // "bob@nairobi"
            "0000000b",
            "504f4c406e6169726f6269", // "POL@nairobi"
            "00000001",
            "00000002",
            "6871",     // info: ["hq"]
            "00000003", // SECRET
            "00000002",
            "00000002",
            "00000003",         // caveats EXDIS, NOFORN
            "00000003",         // IMMEDIATE
            "01",               // NIACT
            "000001a1ee565e00", // created_at_ms 1795000000000
        ]
        .concat();
        let got = hex::encode(routing_header(&fixed_header()).unwrap());
        assert_eq!(got, expected);
    }

    #[test]
    fn protobuf_reencoding_does_not_change_canonical_bytes() {
        let h = fixed_header();
        let mut wire = h.encode_to_vec();
        // Append an unknown field (number 99, varint 7): protobuf accepts and drops it.
        wire.extend_from_slice(&[0x98, 0x06, 0x07]);
        let decoded = RoutingHeader::decode(wire.as_slice()).unwrap();
        assert_eq!(
            routing_header(&decoded).unwrap(),
            routing_header(&h).unwrap()
        );
    }

    #[test]
    fn every_header_field_changes_the_bytes() {
        let base = routing_header(&fixed_header()).unwrap();
        let edits: [fn(&mut RoutingHeader); 11] = [
            |h| h.version = 2,
            |h| h.cable_id[0] ^= 1,
            |h| h.sender_device[15] ^= 1,
            |h| h.from = "mallory@paris".into(),
            |h| {
                h.action_addressees.pop();
            },
            |h| h.info_addressees.push("eve@paris".into()),
            |h| h.classification = Classification::TopSecret as i32,
            |h| h.caveats.reverse(),
            |h| h.precedence = Precedence::Flash as i32,
            |h| h.niact = false,
            |h| h.created_at_ms += 1,
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut h = fixed_header();
            edit(&mut h);
            assert_ne!(
                routing_header(&h).unwrap(),
                base,
                "edit {i} left the bytes unchanged"
            );
        }
    }

    /// Moving an addressee from the action list to the info list must not produce the same
    /// bytes: length prefixes keep list boundaries unambiguous.
    #[test]
    fn list_boundaries_are_unambiguous() {
        let mut a = fixed_header();
        a.action_addressees = vec!["x".into(), "y".into()];
        a.info_addressees = vec![];
        let mut b = a.clone();
        b.action_addressees = vec!["x".into()];
        b.info_addressees = vec!["y".into()];
        assert_ne!(routing_header(&a).unwrap(), routing_header(&b).unwrap());
    }

    #[test]
    fn structures_of_different_kinds_never_share_bytes() {
        let receipt_bytes = receipt(&Receipt {
            cable_id: vec![1; 16],
            device_id: vec![2; 16],
            kind: ReceiptKind::Read as i32,
            at_ms: 5,
            signature: vec![],
        })
        .unwrap();
        assert!(receipt_bytes.starts_with(b"valise.v1.Receipt\0"));
        let revocation_bytes = revocation(&Revocation {
            device_id: vec![2; 16],
            reason: String::new(),
            revoked_at_ms: 5,
            signature: vec![],
        })
        .unwrap();
        assert!(revocation_bytes.starts_with(b"valise.v1.Revocation\0"));
    }

    #[test]
    fn signatures_are_never_part_of_the_signed_bytes() {
        let mut r = Receipt {
            cable_id: vec![1; 16],
            device_id: vec![2; 16],
            kind: 1,
            at_ms: 9,
            signature: vec![],
        };
        let unsigned = receipt(&r).unwrap();
        r.signature = vec![7; 64];
        assert_eq!(receipt(&r).unwrap(), unsigned);
    }

    #[test]
    fn a_receive_key_signature_is_covered_by_the_device_record() {
        let key = ReceiveKey {
            key_id: vec![1; 16],
            public_key: vec![2; 8],
            device_id: vec![3; 16],
            valid_from_ms: 1,
            valid_until_ms: 2,
            signature: vec![4; 64],
        };
        let mut record = DeviceRecord {
            device_id: vec![3; 16],
            user: "alice".into(),
            post: "paris".into(),
            receive_keys: vec![key],
            ..Default::default()
        };
        let before = device_record(&record).unwrap();
        record.receive_keys[0].signature[0] ^= 1;
        assert_ne!(device_record(&record).unwrap(), before);
    }
}
