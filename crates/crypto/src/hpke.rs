//! HPKE (RFC 9180) base mode with KEM X-Wing (0x647a), KDF HKDF-SHA256 (0x0001) and AEAD
//! ChaCha20-Poly1305 (0x0003).
//!
//! The key schedule, nonces and exporter follow RFC 9180 §5 directly over ring's HMAC, HKDF and
//! ChaCha20-Poly1305; only the KEM comes from [`crate::xwing`]. The suite's vectors (generated
//! by Go's `crypto/hpke`, in `tests/data/hpke-xwing.json`) pin every step; see this module's
//! `known_answers` tests.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::xwing::{self, KemError, XWingPublicKey, XWingSecretKey};

/// KEM id of X-Wing.
pub const KEM_ID: u16 = 0x647a;
/// KDF id of HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// AEAD id of ChaCha20-Poly1305.
pub const AEAD_ID: u16 = 0x0003;
/// Length of the encapsulated key `enc`.
pub const ENC_LEN: usize = xwing::CIPHERTEXT_LEN;
/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;

const SUITE_ID: [u8; 10] = [
    b'H',
    b'P',
    b'K',
    b'E',
    (KEM_ID >> 8) as u8,
    KEM_ID as u8,
    (KDF_ID >> 8) as u8,
    KDF_ID as u8,
    (AEAD_ID >> 8) as u8,
    AEAD_ID as u8,
];
const VERSION_LABEL: &[u8] = b"HPKE-v1";
const MODE_BASE: u8 = 0x00;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const HASH_LEN: usize = 32;

/// Errors of HPKE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HpkeError {
    /// The KEM step failed.
    #[error(transparent)]
    Kem(#[from] KemError),
    /// A ciphertext did not authenticate: wrong key, wrong info or AAD, or tampering.
    #[error("the HPKE ciphertext does not authenticate: wrong key, or altered")]
    OpenFailed,
    /// The context has used all its nonces.
    #[error("the HPKE context has reached its message limit")]
    MessageLimitReached,
    /// An export asked for more than 255 × 32 bytes.
    #[error("an HPKE export of {0} bytes is over the 8160-byte limit")]
    ExportTooLong(usize),
    /// ring refused the derived AEAD key; this indicates a bug, not bad input.
    #[error("internal error: the HPKE AEAD key could not be set up")]
    KeySetup,
}

/// The secrets that the key schedule derives (RFC 9180 §5.1).
pub(crate) struct KeySchedule {
    pub(crate) key: Zeroizing<[u8; KEY_LEN]>,
    pub(crate) base_nonce: [u8; NONCE_LEN],
    pub(crate) exporter_secret: Zeroizing<[u8; HASH_LEN]>,
}

/// An HPKE encryption context, on the sender's or the receiver's side.
pub struct Context {
    aead: LessSafeKey,
    base_nonce: [u8; NONCE_LEN],
    seq: u64,
    exporter_secret: Zeroizing<[u8; HASH_LEN]>,
}

/// Sets up a sender context to `recipient` (RFC 9180 `SetupBaseS`). Returns `enc`, which the
/// recipient needs, and the context.
pub fn setup_sender(
    recipient: &XWingPublicKey,
    info: &[u8],
) -> Result<([u8; ENC_LEN], Context), HpkeError> {
    let (enc, shared_secret) = recipient.encapsulate()?;
    Ok((enc, Context::new(key_schedule(&shared_secret[..], info)?)?))
}

/// `SetupBaseS` with caller-supplied KEM randomness, for known-answer tests only.
#[cfg(test)]
pub(crate) fn setup_sender_derand(
    recipient: &XWingPublicKey,
    info: &[u8],
    randomness: &[u8; xwing::ENCAPSULATION_RANDOMNESS_LEN],
) -> Result<([u8; ENC_LEN], Context), HpkeError> {
    let (enc, shared_secret) = recipient.encapsulate_derand(randomness);
    Ok((enc, Context::new(key_schedule(&shared_secret[..], info)?)?))
}

/// Sets up a receiver context (RFC 9180 `SetupBaseR`).
pub fn setup_receiver(
    secret: &XWingSecretKey,
    enc: &[u8],
    info: &[u8],
) -> Result<Context, HpkeError> {
    let shared_secret = secret.decapsulate(enc)?;
    Context::new(key_schedule(&shared_secret[..], info)?)
}

impl Context {
    fn new(ks: KeySchedule) -> Result<Self, HpkeError> {
        let key =
            UnboundKey::new(&CHACHA20_POLY1305, &ks.key[..]).map_err(|_| HpkeError::KeySetup)?;
        Ok(Context {
            aead: LessSafeKey::new(key),
            base_nonce: ks.base_nonce,
            seq: 0,
            exporter_secret: ks.exporter_secret,
        })
    }

    /// Encrypts the next message (RFC 9180 `ContextS.Seal`).
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let nonce = self.next_nonce()?;
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        self.aead
            .seal_in_place_append_tag(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| HpkeError::MessageLimitReached)?;
        Ok(buf)
    }

    /// Decrypts the next message (RFC 9180 `ContextR.Open`). The plaintext is wiped on drop.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let nonce = self.next_nonce()?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .aead
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| HpkeError::OpenFailed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Derives `len` bytes bound to `exporter_context` (RFC 9180 §5.3).
    pub fn export(
        &self,
        exporter_context: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        labeled_expand(
            &self.exporter_secret[..],
            b"sec",
            exporter_context,
            &mut out,
        )
        .map_err(|_| HpkeError::ExportTooLong(len))?;
        Ok(out)
    }

    /// base_nonce XOR I2OSP(seq, 12), then seq + 1.
    fn next_nonce(&mut self) -> Result<Nonce, HpkeError> {
        let mut nonce = self.base_nonce;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or(HpkeError::MessageLimitReached)?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// RFC 9180 §5.1 `KeySchedule` for mode_base with no PSK.
pub(crate) fn key_schedule(shared_secret: &[u8], info: &[u8]) -> Result<KeySchedule, HpkeError> {
    let psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(b"", b"info_hash", info);
    let mut context = Vec::with_capacity(1 + 2 * HASH_LEN);
    context.push(MODE_BASE);
    context.extend_from_slice(&psk_id_hash[..]);
    context.extend_from_slice(&info_hash[..]);
    let secret = labeled_extract(shared_secret, b"secret", b"");

    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let mut base_nonce = [0u8; NONCE_LEN];
    let mut exporter_secret = Zeroizing::new([0u8; HASH_LEN]);
    labeled_expand(&secret[..], b"key", &context, &mut key[..])?;
    labeled_expand(&secret[..], b"base_nonce", &context, &mut base_nonce)?;
    labeled_expand(&secret[..], b"exp", &context, &mut exporter_secret[..])?;
    Ok(KeySchedule {
        key,
        base_nonce,
        exporter_secret,
    })
}

/// `LabeledExtract(salt, label, ikm)`: HMAC-SHA256 keyed by the salt. An empty salt is the
/// same HMAC key as HashLen zero bytes, as HKDF requires.
fn labeled_extract(salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; HASH_LEN]> {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, salt));
    for part in [VERSION_LABEL, &SUITE_ID[..], label, ikm] {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// `LabeledExpand(prk, label, info, L)` into `out`; L is `out.len()`, at most 255 × 32.
fn labeled_expand(prk: &[u8], label: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
    let too_long = HpkeError::ExportTooLong(out.len());
    let len = u16::try_from(out.len())
        .map_err(|_| too_long.clone())?
        .to_be_bytes();
    let info_parts = [&len[..], VERSION_LABEL, &SUITE_ID[..], label, info];
    hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk)
        .expand(&info_parts, OutputLen(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| too_long)
}

/// Tells ring's HKDF-Expand how many bytes to produce.
pub(crate) struct OutputLen(pub(crate) usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// Known answers for this suite (Go `crypto/hpke` vectors via rust-hpke, copied to
/// `tests/data/hpke-xwing.json`). Only the `kdf_id: 1` case is Valise's suite.
#[cfg(test)]
mod known_answers {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vector {
        mode: u8,
        kem_id: u16,
        kdf_id: u16,
        aead_id: u16,
        info: String,
        #[serde(rename = "ikmE")]
        ikm_e: String,
        #[serde(rename = "skRm")]
        sk_rm: String,
        #[serde(rename = "pkRm")]
        pk_rm: String,
        enc: String,
        shared_secret: String,
        suite_id: String,
        key: String,
        base_nonce: String,
        exporter_secret: String,
        encryptions: Vec<Encryption>,
        exports: Vec<Export>,
    }

    #[derive(serde::Deserialize)]
    struct Encryption {
        aad: String,
        pt: String,
        ct: String,
    }

    #[derive(serde::Deserialize)]
    struct Export {
        exporter_context: String,
        #[serde(rename = "L")]
        len: usize,
        exported_value: String,
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn our_suite() -> Vector {
        let all: Vec<Vector> =
            serde_json::from_str(include_str!("../tests/data/hpke-xwing.json")).unwrap();
        let v = all.into_iter().find(|v| v.kdf_id == KDF_ID).unwrap();
        assert_eq!((v.mode, v.kem_id, v.aead_id), (MODE_BASE, KEM_ID, AEAD_ID));
        v
    }

    #[test]
    fn suite_id_matches() {
        assert_eq!(SUITE_ID.to_vec(), unhex(&our_suite().suite_id));
    }

    #[test]
    fn encapsulation_and_key_schedule_match() {
        let v = our_suite();
        let sk = XWingSecretKey::from_seed(&unhex(&v.sk_rm)).unwrap();
        assert_eq!(sk.public_key().to_bytes().to_vec(), unhex(&v.pk_rm));

        let ikm_e: [u8; 64] = unhex(&v.ikm_e).try_into().unwrap();
        let (enc, ss) = sk.public_key().encapsulate_derand(&ikm_e);
        assert_eq!(enc.to_vec(), unhex(&v.enc), "enc");
        assert_eq!(
            ss.to_vec(),
            unhex(&v.shared_secret),
            "shared secret (sender)"
        );
        assert_eq!(
            sk.decapsulate(&enc).unwrap().to_vec(),
            unhex(&v.shared_secret),
            "shared secret (receiver)"
        );

        let ks = key_schedule(&ss[..], &unhex(&v.info)).unwrap();
        assert_eq!(ks.key.to_vec(), unhex(&v.key), "key");
        assert_eq!(ks.base_nonce.to_vec(), unhex(&v.base_nonce), "base nonce");
        assert_eq!(
            ks.exporter_secret.to_vec(),
            unhex(&v.exporter_secret),
            "exporter secret"
        );
    }

    #[test]
    fn every_encryption_matches_in_sequence() {
        let v = our_suite();
        let sk = XWingSecretKey::from_seed(&unhex(&v.sk_rm)).unwrap();
        let ikm_e: [u8; 64] = unhex(&v.ikm_e).try_into().unwrap();
        let (enc, mut sender) =
            setup_sender_derand(&sk.public_key(), &unhex(&v.info), &ikm_e).unwrap();
        let mut receiver = setup_receiver(&sk, &enc, &unhex(&v.info)).unwrap();
        assert_eq!(v.encryptions.len(), 10);
        for (seq, e) in v.encryptions.iter().enumerate() {
            let ct = sender.seal(&unhex(&e.aad), &unhex(&e.pt)).unwrap();
            assert_eq!(ct, unhex(&e.ct), "encryption {seq}");
            let pt = receiver.open(&unhex(&e.aad), &ct).unwrap();
            assert_eq!(pt.to_vec(), unhex(&e.pt), "decryption {seq}");
        }
    }

    #[test]
    fn every_export_matches_on_both_sides() {
        let v = our_suite();
        let sk = XWingSecretKey::from_seed(&unhex(&v.sk_rm)).unwrap();
        let ikm_e: [u8; 64] = unhex(&v.ikm_e).try_into().unwrap();
        let (_, sender) = setup_sender_derand(&sk.public_key(), &unhex(&v.info), &ikm_e).unwrap();
        let receiver = setup_receiver(&sk, &unhex(&v.enc), &unhex(&v.info)).unwrap();
        assert_eq!(v.exports.len(), 5);
        for x in &v.exports {
            for (side, ctx) in [("sender", &sender), ("receiver", &receiver)] {
                let got = ctx.export(&unhex(&x.exporter_context), x.len).unwrap();
                assert_eq!(
                    got.to_vec(),
                    unhex(&x.exported_value),
                    "{side} export {:?}",
                    x.exporter_context
                );
            }
        }
    }

    #[test]
    fn a_ciphertext_opens_only_in_its_place() {
        let v = our_suite();
        let sk = XWingSecretKey::from_seed(&unhex(&v.sk_rm)).unwrap();
        let mut receiver = setup_receiver(&sk, &unhex(&v.enc), &unhex(&v.info)).unwrap();
        // The second vector ciphertext, presented first, is under the wrong nonce.
        let second = &v.encryptions[1];
        assert_eq!(
            receiver.open(&unhex(&second.aad), &unhex(&second.ct)),
            Err(HpkeError::OpenFailed)
        );
        let mut wrong_info = setup_receiver(&sk, &unhex(&v.enc), b"another info").unwrap();
        let first = &v.encryptions[0];
        assert_eq!(
            wrong_info.open(&unhex(&first.aad), &unhex(&first.ct)),
            Err(HpkeError::OpenFailed)
        );
        assert_eq!(
            receiver.export(b"", 255 * 32 + 1).err(),
            Some(HpkeError::ExportTooLong(255 * 32 + 1))
        );
    }
}
