//! Sealing and opening cables, as senders, recipients and attackers see it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use proptest::prelude::*;
use prost::Message;
use valise_crypto::envelope::{
    self, DecodeError, OpenError, SealError, decode_envelope, open, seal,
};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_proto::v1::{self, Caveat, Classification, Precedence};

const NOW: u64 = 1_795_000_000_000;
const WEEK: u64 = 7 * 86_400_000;

/// One enrolled device: identity, its receive key, and that key as a sender sees it.
struct Device {
    identity: IdentityKeyPair,
    keys: Vec<ReceiveKeyPair>,
    published: VerifiedReceiveKey,
}

impl Device {
    fn new() -> Self {
        let identity = IdentityKeyPair::generate().unwrap();
        let key = ReceiveKeyPair::generate(NOW - WEEK, NOW + WEEK).unwrap();
        let published = VerifiedReceiveKey::verify(
            &key.to_signed_record(&identity).unwrap(),
            identity.public(),
        )
        .unwrap();
        Device {
            identity,
            keys: vec![key],
            published,
        }
    }

    fn open(
        &self,
        env: &v1::Envelope,
        sender: &Device,
    ) -> Result<envelope::OpenedCable, OpenError> {
        open(
            env,
            sender.identity.public(),
            &self.identity.device_id(),
            &self.keys,
        )
    }
}

/// Fifty devices, made once: key generation is the slow part of these tests.
fn devices() -> &'static [Device] {
    static DEVICES: OnceLock<Vec<Device>> = OnceLock::new();
    DEVICES.get_or_init(|| (0..51).map(|_| Device::new()).collect())
}

fn header(classification: Classification, precedence: Precedence) -> v1::RoutingHeader {
    v1::RoutingHeader {
        cable_id: envelope::new_cable_id().unwrap().to_vec(),
        from: "alice@paris".into(),
        action_addressees: vec!["bob@nairobi".into()],
        info_addressees: vec!["POL@nairobi".into()],
        classification: classification as i32,
        caveats: vec![Caveat::Exdis as i32],
        precedence: precedence as i32,
        niact: precedence == Precedence::Flash,
        created_at_ms: NOW,
        ..Default::default()
    }
}

fn body(text: &str) -> v1::CableBody {
    v1::CableBody {
        subject: "Visit of the minister".into(),
        text: text.into(),
        tags: vec!["PREL".into(), "PGOV".into()],
        ..Default::default()
    }
}

/// A cable from device 0 to devices 1 and 2.
fn sealed() -> v1::Envelope {
    let d = devices();
    let recipients = [d[1].published.clone(), d[2].published.clone()];
    seal(
        &d[0].identity,
        header(Classification::Secret, Precedence::Immediate),
        &body("text"),
        &recipients,
    )
    .unwrap()
}

#[test]
fn every_recipient_reads_what_was_sent() {
    let d = devices();
    let env = sealed();
    for r in &d[1..3] {
        let opened = r.open(&env, &d[0]).unwrap();
        assert_eq!(opened.body, body("text"));
        assert_eq!(opened.header.from, "alice@paris");
        assert_eq!(
            opened.header.sender_device,
            d[0].identity.device_id().as_bytes()
        );
    }
}

#[test]
fn every_classification_and_precedence_round_trips() {
    let d = devices();
    let levels = [
        Classification::Unclassified,
        Classification::Confidential,
        Classification::Secret,
        Classification::TopSecret,
    ];
    let urgencies = [
        Precedence::Routine,
        Precedence::Priority,
        Precedence::Immediate,
        Precedence::Flash,
    ];
    for c in levels {
        for p in urgencies {
            let env = seal(
                &d[0].identity,
                header(c, p),
                &body("text"),
                &[d[1].published.clone()],
            )
            .unwrap();
            let opened = d[1].open(&env, &d[0]).unwrap();
            assert_eq!(
                (opened.header.classification, opened.header.precedence),
                (c as i32, p as i32)
            );
            assert_eq!(opened.body, body("text"));
        }
    }
}

#[test]
fn a_device_not_addressed_cannot_read() {
    let d = devices();
    assert_eq!(
        d[3].open(&sealed(), &d[0]).err(),
        Some(OpenError::NotARecipient(d[3].identity.device_id()))
    );
}

#[test]
fn a_cable_checked_against_another_sender_is_refused() {
    let d = devices();
    assert!(matches!(
        d[1].open(&sealed(), &d[3]),
        Err(OpenError::SenderMismatch { .. })
    ));
}

#[test]
fn a_cable_relabelled_with_another_sender_is_refused() {
    // Mallory (device 3) seals a cable and claims in the header to be device 0.
    let d = devices();
    let mut env = seal(
        &d[3].identity,
        header(Classification::Secret, Precedence::Flash),
        &body("x"),
        &[d[1].published.clone()],
    )
    .unwrap();
    env.header.as_mut().unwrap().sender_device = d[0].identity.device_id().as_bytes().to_vec();
    let err = d[1].open(&env, &d[0]).unwrap_err();
    // The wraps carry Mallory's header digest, so the header change is caught first.
    assert_eq!(err, OpenError::HeaderTampered);
}

#[test]
fn an_erased_receive_key_is_reported_as_such() {
    let d = devices();
    let env = sealed();
    let result = open(
        &env,
        d[0].identity.public(),
        &d[1].identity.device_id(),
        &[],
    );
    assert!(matches!(result, Err(OpenError::UnknownReceiveKey(_))));
}

#[test]
fn a_changed_header_field_is_reported_as_header_tampering() {
    let d = devices();
    let edits: [fn(&mut v1::RoutingHeader); 5] = [
        |h| h.classification = Classification::Unclassified as i32,
        |h| h.precedence = Precedence::Routine as i32,
        |h| h.action_addressees.push("eve@paris".into()),
        |h| h.niact = !h.niact,
        |h| h.created_at_ms -= 1,
    ];
    for edit in edits {
        let mut env = sealed();
        edit(env.header.as_mut().unwrap());
        assert_eq!(
            d[1].open(&env, &d[0]).err(),
            Some(OpenError::HeaderTampered)
        );
    }
}

#[test]
fn a_changed_body_is_reported_as_body_tampering() {
    let d = devices();
    let mut env = sealed();
    env.body_ciphertext[3] ^= 0x40;
    assert_eq!(d[1].open(&env, &d[0]).err(), Some(OpenError::BodyTampered));
}

#[test]
fn a_changed_key_wrap_is_reported_for_its_device_only() {
    let d = devices();
    let mut env = sealed();
    env.key_wraps[0].wrapped_key[0] ^= 1;
    assert_eq!(
        d[1].open(&env, &d[0]).err(),
        Some(OpenError::KeyWrapTampered)
    );
    // Device 2's own wrap is intact, but the signature covers every wrap.
    assert_eq!(d[2].open(&env, &d[0]).err(), Some(OpenError::BadSignature));
}

/// The HPKE `info` of a wrap names its cable: a wrap taken from another cable to the same
/// device, under the same receive key, does not even decrypt. (Without that binding it would
/// decrypt, and only the header digest inside it would give it away.)
#[test]
fn a_key_wrap_moved_from_another_cable_does_not_decrypt() {
    let d = devices();
    let first = sealed();
    let mut second = sealed();
    assert_ne!(first.header, second.header);
    second.key_wraps[0] = first.key_wraps[0].clone();
    assert_eq!(
        d[1].open(&second, &d[0]).err(),
        Some(OpenError::KeyWrapTampered)
    );
}

/// The HPKE `info` of a wrap names its device: a second device holding a copy of device 1's
/// receive key still cannot use device 1's wrap relabelled as its own.
#[test]
fn a_key_wrap_relabelled_for_another_device_does_not_decrypt() {
    let d = devices();
    let twin = IdentityKeyPair::generate().unwrap();
    let copied_key = ReceiveKeyPair::from_bytes(&d[1].keys[0].to_bytes()).unwrap();
    let mut env = sealed();
    env.key_wraps[0].device_id = twin.device_id().as_bytes().to_vec();
    assert_eq!(
        open(
            &env,
            d[0].identity.public(),
            &twin.device_id(),
            &[copied_key]
        )
        .err(),
        Some(OpenError::KeyWrapTampered)
    );
}

#[test]
fn a_changed_key_commitment_is_refused() {
    let d = devices();
    let mut env = sealed();
    env.key_commitment[0] ^= 1;
    assert_eq!(
        d[1].open(&env, &d[0]).err(),
        Some(OpenError::ContentKeyMismatch)
    );
    env.key_commitment.clear();
    assert_eq!(
        d[1].open(&env, &d[0]).err(),
        Some(OpenError::ContentKeyMismatch)
    );
}

#[test]
fn a_changed_signature_is_refused() {
    let d = devices();
    let mut env = sealed();
    env.signature[10] ^= 1;
    assert_eq!(d[1].open(&env, &d[0]).err(), Some(OpenError::BadSignature));
}

#[test]
fn an_unknown_version_is_refused_before_anything_else() {
    let d = devices();
    let mut env = sealed();
    env.header.as_mut().unwrap().version = 2;
    assert_eq!(
        d[1].open(&env, &d[0]).err(),
        Some(OpenError::UnsupportedVersion(2))
    );
    env.header = None;
    assert!(matches!(
        d[1].open(&env, &d[0]),
        Err(OpenError::Malformed(_))
    ));
}

#[test]
fn malformed_headers_are_refused_with_a_reason() {
    let d = devices();
    let mut env = sealed();
    env.header.as_mut().unwrap().classification = 99;
    let err = d[1].open(&env, &d[0]).unwrap_err();
    assert!(matches!(err, OpenError::MalformedHeader(_)));
    assert!(err.to_string().contains("classification value 99"));
}

#[test]
fn sealing_refuses_bad_input_with_a_reason() {
    let d = devices();
    let s = &d[0].identity;
    let r = [d[1].published.clone()];
    assert_eq!(
        seal(
            s,
            header(Classification::Secret, Precedence::Flash),
            &body(""),
            &[]
        )
        .err(),
        Some(SealError::NoRecipients)
    );
    let twice = [d[1].published.clone(), d[1].published.clone()];
    assert!(matches!(
        seal(
            s,
            header(Classification::Secret, Precedence::Flash),
            &body(""),
            &twice
        ),
        Err(SealError::DuplicateRecipient(_))
    ));
    let mut h = header(Classification::Secret, Precedence::Flash);
    h.created_at_ms = NOW + 2 * WEEK;
    assert!(matches!(
        seal(s, h, &body(""), &r),
        Err(SealError::ReceiveKeyNotValid { .. })
    ));
    let mut h = header(Classification::Unspecified, Precedence::Flash);
    assert!(matches!(
        seal(s, h.clone(), &body(""), &r),
        Err(SealError::Header(_))
    ));
    h.classification = Classification::Secret as i32;
    h.action_addressees.clear();
    let err = seal(s, h, &body(""), &r).unwrap_err();
    assert!(err.to_string().contains("no action addressee"), "{err}");
    let mut h = header(Classification::Secret, Precedence::Flash);
    h.caveats = vec![Caveat::Nodis as i32, Caveat::Nodis as i32];
    assert!(matches!(
        seal(s, h, &body(""), &r),
        Err(SealError::Header(_))
    ));
}

#[test]
fn only_the_canonical_encoding_decodes() {
    let env = sealed();
    let wire = env.encode_to_vec();
    assert_eq!(decode_envelope(&wire).unwrap(), env);
    let mut extended = wire.clone();
    extended.extend_from_slice(&[0xF8, 0x07, 0x01]); // unknown field 127
    assert_eq!(
        decode_envelope(&extended).err(),
        Some(DecodeError::NonCanonical)
    );
    assert!(matches!(
        decode_envelope(&wire[..wire.len() - 1]),
        Err(DecodeError::Protobuf(_))
    ));
}

/// What an attacker on a relay observes: whichever single bit of the envelope's bytes it
/// flips, the recipient refuses the cable. Exhaustive over every bit.
#[test]
fn flipping_any_bit_of_the_wire_bytes_makes_opening_fail() {
    let d = devices();
    let env = seal(
        &d[0].identity,
        header(Classification::TopSecret, Precedence::Flash),
        &body("short"),
        &[d[1].published.clone(), d[2].published.clone()],
    )
    .unwrap();
    let wire = env.encode_to_vec();
    for bit in 0..wire.len() * 8 {
        let mut bytes = wire.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let result = decode_envelope(&bytes)
            .map_err(|_| ())
            .and_then(|e| d[1].open(&e, &d[0]).map_err(|_| ()));
        assert!(
            result.is_err(),
            "flipping bit {bit} (byte {}) went unnoticed",
            bit / 8
        );
    }
}

/// Every part of a sealed envelope that a relay could change, down to each list element.
#[derive(Debug, Clone, Copy)]
enum Part {
    Version,
    CableId,
    SenderDevice,
    From,
    ActionAddressee(usize),
    InfoAddressee(usize),
    Classification,
    Caveat(usize),
    Precedence,
    Niact,
    CreatedAt,
    BodyCiphertext,
    WrapDevice(usize),
    WrapReceiveKey(usize),
    WrapEncapsulatedKey(usize),
    WrapWrappedKey(usize),
    Signature,
    KeyCommitment,
}

/// The parts of `env`, each element of each list on its own.
fn parts(env: &v1::Envelope) -> Vec<Part> {
    let h = env.header.as_ref().unwrap();
    let mut all = vec![
        Part::Version,
        Part::CableId,
        Part::SenderDevice,
        Part::From,
        Part::Classification,
        Part::Precedence,
        Part::Niact,
        Part::CreatedAt,
        Part::BodyCiphertext,
        Part::Signature,
        Part::KeyCommitment,
    ];
    all.extend((0..h.action_addressees.len()).map(Part::ActionAddressee));
    all.extend((0..h.info_addressees.len()).map(Part::InfoAddressee));
    all.extend((0..h.caveats.len()).map(Part::Caveat));
    for w in 0..env.key_wraps.len() {
        all.extend([
            Part::WrapDevice(w),
            Part::WrapReceiveKey(w),
            Part::WrapEncapsulatedKey(w),
            Part::WrapWrappedKey(w),
        ]);
    }
    all
}

fn flip_bit(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

/// Flips one of the low 7 bits of one byte of an ASCII string. (A decoded `String` cannot hold
/// the invalid UTF-8 that flipping a high bit would make; decoding refuses such bytes.)
fn flip_ascii(s: &mut String, bit: usize) {
    let mut bytes = std::mem::take(s).into_bytes();
    bytes[bit / 7] ^= 1 << (bit % 7);
    *s = String::from_utf8(bytes).unwrap();
}

/// The number of bits of `part` that [`flip`] can change.
fn bit_count(env: &v1::Envelope, part: Part) -> usize {
    let h = env.header.as_ref().unwrap();
    let w = |i: usize| &env.key_wraps[i];
    match part {
        Part::Version | Part::Classification | Part::Precedence => 32,
        Part::Caveat(_) => 32,
        Part::Niact => 1,
        Part::CreatedAt => 64,
        Part::CableId => h.cable_id.len() * 8,
        Part::SenderDevice => h.sender_device.len() * 8,
        Part::From => h.from.len() * 7,
        Part::ActionAddressee(i) => h.action_addressees[i].len() * 7,
        Part::InfoAddressee(i) => h.info_addressees[i].len() * 7,
        Part::BodyCiphertext => env.body_ciphertext.len() * 8,
        Part::WrapDevice(i) => w(i).device_id.len() * 8,
        Part::WrapReceiveKey(i) => w(i).receive_key_id.len() * 8,
        Part::WrapEncapsulatedKey(i) => w(i).encapsulated_key.len() * 8,
        Part::WrapWrappedKey(i) => w(i).wrapped_key.len() * 8,
        Part::Signature => env.signature.len() * 8,
        Part::KeyCommitment => env.key_commitment.len() * 8,
    }
}

/// Flips bit `bit` (below [`bit_count`]) of `part` in the decoded envelope.
fn flip(env: &mut v1::Envelope, part: Part, bit: usize) {
    let h = env.header.as_mut().unwrap();
    match part {
        Part::Version => h.version ^= 1 << bit,
        Part::CableId => flip_bit(&mut h.cable_id, bit),
        Part::SenderDevice => flip_bit(&mut h.sender_device, bit),
        Part::From => flip_ascii(&mut h.from, bit),
        Part::ActionAddressee(i) => flip_ascii(&mut h.action_addressees[i], bit),
        Part::InfoAddressee(i) => flip_ascii(&mut h.info_addressees[i], bit),
        Part::Classification => h.classification ^= 1 << bit,
        Part::Caveat(i) => h.caveats[i] ^= 1 << bit,
        Part::Precedence => h.precedence ^= 1 << bit,
        Part::Niact => h.niact = !h.niact,
        Part::CreatedAt => h.created_at_ms ^= 1 << bit,
        Part::BodyCiphertext => flip_bit(&mut env.body_ciphertext, bit),
        Part::WrapDevice(i) => flip_bit(&mut env.key_wraps[i].device_id, bit),
        Part::WrapReceiveKey(i) => flip_bit(&mut env.key_wraps[i].receive_key_id, bit),
        Part::WrapEncapsulatedKey(i) => flip_bit(&mut env.key_wraps[i].encapsulated_key, bit),
        Part::WrapWrappedKey(i) => flip_bit(&mut env.key_wraps[i].wrapped_key, bit),
        Part::Signature => flip_bit(&mut env.signature, bit),
        Part::KeyCommitment => flip_bit(&mut env.key_commitment, bit),
    }
}

/// A cable from device 0 to devices 1..=n, with two addressees of each kind and two caveats.
fn sealed_to(n: usize, c: Classification, p: Precedence, text: &str) -> v1::Envelope {
    let d = devices();
    let mut h = header(c, p);
    h.action_addressees.push("POL@nairobi".into());
    h.info_addressees.push("hq".into());
    h.caveats.push(Caveat::Noforn as i32);
    let keys: Vec<_> = d[1..=n].iter().map(|r| r.published.clone()).collect();
    seal(&d[0].identity, h, &body(text), &keys).unwrap()
}

/// Every part of a cable, each flipped at its first and its last bit, is refused by every
/// recipient. `open` must catch it on its own: the change is made to the decoded envelope, so
/// the canonical-encoding check of `decode_envelope` plays no part.
#[test]
fn a_flipped_bit_in_every_part_is_refused_by_every_recipient() {
    let d = devices();
    let env = sealed_to(3, Classification::Secret, Precedence::Flash, "text");
    let all = parts(&env);
    assert_eq!(all.len(), 11 + 2 + 2 + 2 + 3 * 4);
    for part in all {
        for bit in [0, bit_count(&env, part) - 1] {
            let mut bad = env.clone();
            flip(&mut bad, part, bit);
            for r in &d[1..=3] {
                assert!(
                    r.open(&bad, &d[0]).is_err(),
                    "bit {bit} of {part:?} flipped, yet a recipient opened the cable"
                );
            }
        }
    }
}

/// What a relay checks before custody, with no recipient's key: the sender's signature over
/// the envelope as it stands. Every part but the signature-free HPKE internals changes what
/// was signed, so a flipped bit anywhere fails, and another sender's key fails.
#[test]
fn a_relay_sees_the_signature_fail_for_any_flipped_bit() {
    let d = devices();
    let env = sealed_to(3, Classification::Secret, Precedence::Flash, "text");
    envelope::verify_signature(&env, d[0].identity.public()).unwrap();
    assert!(matches!(
        envelope::verify_signature(&env, d[1].identity.public()),
        Err(OpenError::SenderMismatch { .. })
    ));
    for part in parts(&env) {
        for bit in [0, bit_count(&env, part) - 1] {
            let mut bad = env.clone();
            flip(&mut bad, part, bit);
            assert!(
                envelope::verify_signature(&bad, d[0].identity.public()).is_err(),
                "bit {bit} of {part:?} flipped, yet the signature verified"
            );
        }
    }
}

fn classification() -> impl Strategy<Value = Classification> {
    prop_oneof![
        Just(Classification::Unclassified),
        Just(Classification::Confidential),
        Just(Classification::Secret),
        Just(Classification::TopSecret),
    ]
}

fn precedence() -> impl Strategy<Value = Precedence> {
    prop_oneof![
        Just(Precedence::Routine),
        Just(Precedence::Priority),
        Just(Precedence::Immediate),
        Just(Precedence::Flash)
    ]
}

/// Any caveats, each at most once, in any order.
fn caveats() -> impl Strategy<Value = Vec<i32>> {
    prop::sample::subsequence(
        vec![
            Caveat::Nodis as i32,
            Caveat::Exdis as i32,
            Caveat::Noforn as i32,
        ],
        0..=3,
    )
    .prop_shuffle()
}

fn cable_id_or_none() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), any::<[u8; 16]>().prop_map(Vec::from)]
}

fn reference() -> impl Strategy<Value = v1::Reference> {
    ("[A-Z]", "[ -~]{0,40}", cable_id_or_none()).prop_map(|(label, citation, cable_id)| {
        v1::Reference {
            label,
            citation,
            cable_id,
        }
    })
}

fn attachment_meta() -> impl Strategy<Value = v1::AttachmentMeta> {
    (
        ".{0,60}",
        "[a-z]{1,11}/[a-z0-9.+-]{1,20}",
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(name, media_type, size, key, sha)| v1::AttachmentMeta {
            name,
            media_type,
            size,
            key: key.to_vec(),
            ciphertext_sha256: sha.to_vec(),
        })
}

/// Any cable body: every field of `CableBody` a sender fills.
fn cable_body() -> impl Strategy<Value = v1::CableBody> {
    (
        "[ -~]{0,80}",
        ".{0,2000}",
        prop::collection::vec("[A-Z]{2,4}", 0..6),
        prop::collection::vec(reference(), 0..4),
        prop::collection::vec(attachment_meta(), 0..4),
    )
        .prop_map(
            |(subject, text, tags, references, attachments)| v1::CableBody {
                subject,
                text,
                tags,
                references,
                attachments,
                receipts: Vec::new(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// open(seal(x)) = x for every recipient, whatever the body, fan-out, level, urgency,
    /// NIACT flag and caveats; a device left out cannot open it.
    #[test]
    fn every_recipient_opens_what_was_sealed(
        b in cable_body(),
        recipients in 1usize..=50,
        c in classification(),
        p in precedence(),
        niact in any::<bool>(),
        caveats in caveats(),
    ) {
        let d = devices();
        let keys: Vec<_> = d[1..=recipients].iter().map(|r| r.published.clone()).collect();
        let mut h = header(c, p);
        h.niact = niact;
        h.caveats = caveats.clone();
        let env = seal(&d[0].identity, h, &b, &keys).unwrap();
        let env = decode_envelope(&env.encode_to_vec()).unwrap();
        for r in &d[1..=recipients] {
            let opened = r.open(&env, &d[0]).unwrap();
            prop_assert_eq!(&opened.body, &b);
            prop_assert_eq!(opened.header.classification, c as i32);
            prop_assert_eq!(opened.header.precedence, p as i32);
            prop_assert_eq!(opened.header.niact, niact);
            prop_assert_eq!(&opened.header.caveats, &caveats);
        }
        if recipients < 50 {
            prop_assert_eq!(
                d[50].open(&env, &d[0]).err(),
                Some(OpenError::NotARecipient(d[50].identity.device_id()))
            );
        }
    }

    /// A single flipped bit anywhere in a random cable's bytes is always detected.
    #[test]
    fn a_flipped_bit_in_a_random_cable_is_detected(
        text in ".{0,300}",
        recipients in 1usize..=5,
        c in classification(),
        p in precedence(),
        position in any::<prop::sample::Index>(),
    ) {
        let d = devices();
        let keys: Vec<_> = d[1..=recipients].iter().map(|r| r.published.clone()).collect();
        let wire = seal(&d[0].identity, header(c, p), &body(&text), &keys).unwrap().encode_to_vec();
        let bit = position.index(wire.len() * 8);
        let mut bytes = wire;
        bytes[bit / 8] ^= 1 << (bit % 8);
        let result = decode_envelope(&bytes).map_err(|_| ()).and_then(|e| d[1].open(&e, &d[0]).map_err(|_| ()));
        prop_assert!(result.is_err(), "bit {} went unnoticed", bit);
    }

    /// One bit of one part of a random cable, the part chosen first so that the short header
    /// fields are hit as often as the long key wraps: no recipient opens the result.
    #[test]
    fn a_flipped_bit_in_any_part_of_a_random_cable_is_refused(
        text in ".{0,300}",
        recipients in 1usize..=6,
        c in classification(),
        p in precedence(),
        part in any::<prop::sample::Index>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let d = devices();
        let env = sealed_to(recipients, c, p, &text);
        let all = parts(&env);
        let part = all[part.index(all.len())];
        let bit = bit.index(bit_count(&env, part));
        let mut bad = env;
        flip(&mut bad, part, bit);
        for r in &d[1..=recipients] {
            prop_assert!(r.open(&bad, &d[0]).is_err(), "bit {} of {:?} went unnoticed", bit, part);
        }
    }
}
