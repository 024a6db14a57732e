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

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// open(seal(x)) = x for every recipient, whatever the body, fan-out, level and urgency.
    #[test]
    fn every_recipient_opens_what_was_sealed(
        text in ".{0,2000}",
        subject in "[ -~]{0,80}",
        recipients in 1usize..=50,
        c in classification(),
        p in precedence(),
    ) {
        let d = devices();
        let keys: Vec<_> = d[1..=recipients].iter().map(|r| r.published.clone()).collect();
        let mut b = body(&text);
        b.subject = subject;
        let env = seal(&d[0].identity, header(c, p), &b, &keys).unwrap();
        let env = decode_envelope(&env.encode_to_vec()).unwrap();
        for r in &d[1..=recipients] {
            let opened = r.open(&env, &d[0]).unwrap();
            prop_assert_eq!(&opened.body, &b);
            prop_assert_eq!(opened.header.classification, c as i32);
            prop_assert_eq!(opened.header.precedence, p as i32);
        }
        prop_assert!(d[50].open(&env, &d[0]).is_err() || recipients == 50);
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
}
