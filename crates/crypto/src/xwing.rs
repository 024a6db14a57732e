//! X-Wing (draft-connolly-cfrg-xwing-kem-06): hybrid ML-KEM-768 + X25519.
//!
//! The KEM combines two well-kept implementations: libcrux's formally verified ML-KEM-768 and
//! x25519-dalek. This module adds only the X-Wing key expansion and combiner, which the
//! draft's known-answer vectors check (`known_answers` below). Why not another crate is in
//! `docs/threat-model.md`; the figures behind it are in `docs/benchmarks.md`.

use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768KeyPair, MlKem768PublicKey};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::length::{LengthError, fixed};
use crate::random::{self, RandomError};

/// Length of an X-Wing public (encapsulation) key: ML-KEM-768 key ‖ X25519 key.
pub const PUBLIC_KEY_LEN: usize = 1216;
/// Length of an X-Wing private (decapsulation) key: a 32-byte seed.
pub const SECRET_KEY_LEN: usize = 32;
/// Length of an X-Wing ciphertext: ML-KEM-768 ciphertext ‖ X25519 ephemeral key.
pub const CIPHERTEXT_LEN: usize = 1120;
/// Length of the randomness one encapsulation consumes.
pub const ENCAPSULATION_RANDOMNESS_LEN: usize = 64;
/// Length of the shared secret.
pub const SHARED_SECRET_LEN: usize = 32;

const ML_KEM_PUBLIC_KEY_LEN: usize = 1184;
const ML_KEM_CIPHERTEXT_LEN: usize = 1088;
/// The X-Wing label `\.//^\`, the last input of the combiner.
const LABEL: &[u8; 6] = b"\\.//^\\";

/// Errors of the X-Wing KEM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KemError {
    /// A key or ciphertext has the wrong length.
    #[error(transparent)]
    BadLength(#[from] LengthError),
    /// The ML-KEM half of a public key fails the FIPS 203 modulus check.
    #[error("the X-Wing public key is invalid: its ML-KEM-768 part fails the FIPS 203 check")]
    InvalidPublicKey,
    /// Randomness failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A shared secret, wiped when dropped.
pub type SharedSecret = Zeroizing<[u8; SHARED_SECRET_LEN]>;

/// An X-Wing private key: its 32-byte seed, wiped when dropped. The ML-KEM and X25519 private
/// keys are expanded from it for each decapsulation and dropped straight after.
#[derive(ZeroizeOnDrop)]
pub struct XWingSecretKey {
    seed: Zeroizing<[u8; SECRET_KEY_LEN]>,
}

/// An X-Wing public key whose ML-KEM half has passed the FIPS 203 input check.
#[derive(Clone)]
pub struct XWingPublicKey {
    ml_kem: MlKem768PublicKey,
    x25519: X25519Public,
}

struct Expanded {
    ml_kem: MlKem768KeyPair,
    x25519: StaticSecret,
    x25519_public: X25519Public,
}

impl XWingSecretKey {
    /// Generates a new key from the operating system's randomness.
    pub fn generate() -> Result<Self, KemError> {
        Ok(XWingSecretKey {
            seed: random::secret()?,
        })
    }

    /// Rebuilds a key from its 32-byte seed.
    pub fn from_seed(seed: &[u8]) -> Result<Self, KemError> {
        let seed: [u8; SECRET_KEY_LEN] = fixed(seed, "an X-Wing private key")?;
        Ok(XWingSecretKey {
            seed: Zeroizing::new(seed),
        })
    }

    /// The seed, for a sealed keystore. Never log or display it.
    pub fn seed(&self) -> &Zeroizing<[u8; SECRET_KEY_LEN]> {
        &self.seed
    }

    /// The matching public key.
    pub fn public_key(&self) -> XWingPublicKey {
        let e = self.expand();
        XWingPublicKey {
            ml_kem: e.ml_kem.public_key().clone(),
            x25519: e.x25519_public,
        }
    }

    /// Recovers the shared secret from a ciphertext. X-Wing decapsulation never fails on a
    /// well-formed ciphertext: a wrong one yields an unrelated secret, which the AEAD that
    /// uses it then rejects.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<SharedSecret, KemError> {
        let ct: [u8; CIPHERTEXT_LEN] = fixed(ciphertext, "an X-Wing ciphertext")?;
        let (ct_m, ct_x) = split_ciphertext(&ct);
        let e = self.expand();
        let ss_m = Zeroizing::new(mlkem768::decapsulate(e.ml_kem.private_key(), &ct_m));
        let ss_x = e.x25519.diffie_hellman(&ct_x);
        Ok(combine(&ss_m, ss_x.as_bytes(), &ct_x, &e.x25519_public))
    }

    /// Draft-06 key expansion: SHAKE256(seed, 96) → ML-KEM-768 (d ‖ z), X25519 scalar.
    fn expand(&self) -> Expanded {
        let expanded: Zeroizing<[u8; 96]> = Zeroizing::new(libcrux_sha3::shake256(&self.seed[..]));
        let mut kem_seed = Zeroizing::new([0u8; 64]);
        kem_seed.copy_from_slice(&expanded[..64]);
        let ml_kem = mlkem768::generate_key_pair(*kem_seed);
        let mut sk_x = Zeroizing::new([0u8; 32]);
        sk_x.copy_from_slice(&expanded[64..]);
        let x25519 = StaticSecret::from(*sk_x);
        let x25519_public = X25519Public::from(&x25519);
        Expanded {
            ml_kem,
            x25519,
            x25519_public,
        }
    }
}

impl XWingPublicKey {
    /// Reads and checks a 1216-byte public key.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KemError> {
        let bytes: [u8; PUBLIC_KEY_LEN] = fixed(bytes, "an X-Wing public key")?;
        let mut m = [0u8; ML_KEM_PUBLIC_KEY_LEN];
        m.copy_from_slice(&bytes[..ML_KEM_PUBLIC_KEY_LEN]);
        let ml_kem = MlKem768PublicKey::from(m);
        if !mlkem768::validate_public_key(&ml_kem) {
            return Err(KemError::InvalidPublicKey);
        }
        let mut x = [0u8; 32];
        x.copy_from_slice(&bytes[ML_KEM_PUBLIC_KEY_LEN..]);
        Ok(XWingPublicKey {
            ml_kem,
            x25519: X25519Public::from(x),
        })
    }

    /// The key's 1216 bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out[..ML_KEM_PUBLIC_KEY_LEN].copy_from_slice(self.ml_kem.as_slice());
        out[ML_KEM_PUBLIC_KEY_LEN..].copy_from_slice(self.x25519.as_bytes());
        out
    }

    /// Encapsulates a fresh shared secret to this key.
    pub fn encapsulate(&self) -> Result<([u8; CIPHERTEXT_LEN], SharedSecret), KemError> {
        let randomness = random::secret::<ENCAPSULATION_RANDOMNESS_LEN>()?;
        Ok(self.encapsulate_derand(&randomness))
    }

    /// Encapsulates with caller-supplied randomness. The randomness must be uniform and never
    /// reused; only known-answer tests have a reason to supply it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn encapsulate_derand(
        &self,
        randomness: &[u8; ENCAPSULATION_RANDOMNESS_LEN],
    ) -> ([u8; CIPHERTEXT_LEN], SharedSecret) {
        let mut rand_m = Zeroizing::new([0u8; 32]);
        rand_m.copy_from_slice(&randomness[..32]);
        let mut rand_x = Zeroizing::new([0u8; 32]);
        rand_x.copy_from_slice(&randomness[32..]);

        let (ct_m, ss_m) = mlkem768::encapsulate(&self.ml_kem, *rand_m);
        let ss_m = Zeroizing::new(ss_m);
        let ek_x = StaticSecret::from(*rand_x);
        let ct_x = X25519Public::from(&ek_x);
        let ss_x = ek_x.diffie_hellman(&self.x25519);

        let mut ct = [0u8; CIPHERTEXT_LEN];
        ct[..ML_KEM_CIPHERTEXT_LEN].copy_from_slice(ct_m.as_slice());
        ct[ML_KEM_CIPHERTEXT_LEN..].copy_from_slice(ct_x.as_bytes());
        (ct, combine(&ss_m, ss_x.as_bytes(), &ct_x, &self.x25519))
    }
}

fn split_ciphertext(ct: &[u8; CIPHERTEXT_LEN]) -> (MlKem768Ciphertext, X25519Public) {
    let mut m = [0u8; ML_KEM_CIPHERTEXT_LEN];
    m.copy_from_slice(&ct[..ML_KEM_CIPHERTEXT_LEN]);
    let mut x = [0u8; 32];
    x.copy_from_slice(&ct[ML_KEM_CIPHERTEXT_LEN..]);
    (MlKem768Ciphertext::from(m), X25519Public::from(x))
}

/// ss = SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ label).
fn combine(
    ss_m: &[u8; 32],
    ss_x: &[u8; 32],
    ct_x: &X25519Public,
    pk_x: &X25519Public,
) -> SharedSecret {
    let mut input = Zeroizing::new([0u8; 32 * 4 + LABEL.len()]);
    input[..32].copy_from_slice(ss_m);
    input[32..64].copy_from_slice(ss_x);
    input[64..96].copy_from_slice(ct_x.as_bytes());
    input[96..128].copy_from_slice(pk_x.as_bytes());
    input[128..].copy_from_slice(LABEL);
    Zeroizing::new(libcrux_sha3::sha256(&input[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_on_the_secret() {
        let sk = XWingSecretKey::generate().unwrap();
        let (ct, ss) = sk.public_key().encapsulate().unwrap();
        assert_eq!(*sk.decapsulate(&ct).unwrap(), *ss);
    }

    #[test]
    fn another_key_gets_another_secret() {
        let sk = XWingSecretKey::generate().unwrap();
        let other = XWingSecretKey::generate().unwrap();
        let (ct, ss) = sk.public_key().encapsulate().unwrap();
        assert_ne!(*other.decapsulate(&ct).unwrap(), *ss);
    }

    #[test]
    fn a_public_key_survives_serialisation() {
        let sk = XWingSecretKey::generate().unwrap();
        let bytes = sk.public_key().to_bytes();
        assert_eq!(
            XWingPublicKey::from_slice(&bytes).unwrap().to_bytes(),
            bytes
        );
    }

    #[test]
    fn malformed_keys_and_ciphertexts_are_refused_with_a_reason() {
        let err = XWingPublicKey::from_slice(&[0; 100]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "an X-Wing public key must be 1216 bytes, got 100"
        );
        // Coefficients of 0xFFF are >= q = 3329: FIPS 203 requires refusing such a key.
        assert_eq!(
            XWingPublicKey::from_slice(&[0xFF; PUBLIC_KEY_LEN]).err(),
            Some(KemError::InvalidPublicKey)
        );
        let sk = XWingSecretKey::generate().unwrap();
        assert!(sk.decapsulate(&[0; CIPHERTEXT_LEN - 1]).is_err());
        assert!(XWingSecretKey::from_seed(&[0; 31]).is_err());
    }
}

/// Known answers from draft-connolly-cfrg-xwing-kem (RustCrypto's vector file, copied to
/// `tests/data/xwing-kem.json`).
#[cfg(test)]
mod known_answers {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vector {
        seed: String,
        sk: String,
        pk: String,
        eseed: String,
        ct: String,
        ss: String,
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn every_xwing_vector_matches() {
        let vectors: Vec<Vector> =
            serde_json::from_str(include_str!("../tests/data/xwing-kem.json")).unwrap();
        assert_eq!(vectors.len(), 3);
        for (i, v) in vectors.iter().enumerate() {
            let sk = XWingSecretKey::from_seed(&unhex(&v.seed)).unwrap();
            assert_eq!(sk.seed().to_vec(), unhex(&v.sk), "vector {i}: sk");
            let pk = sk.public_key();
            assert_eq!(pk.to_bytes().to_vec(), unhex(&v.pk), "vector {i}: pk");

            let eseed: [u8; ENCAPSULATION_RANDOMNESS_LEN] = unhex(&v.eseed).try_into().unwrap();
            let (ct, ss) = XWingPublicKey::from_slice(&unhex(&v.pk))
                .unwrap()
                .encapsulate_derand(&eseed);
            assert_eq!(ct.to_vec(), unhex(&v.ct), "vector {i}: ct");
            assert_eq!(
                ss.to_vec(),
                unhex(&v.ss),
                "vector {i}: ss from encapsulation"
            );
            assert_eq!(
                sk.decapsulate(&ct).unwrap().to_vec(),
                unhex(&v.ss),
                "vector {i}: ss from decapsulation"
            );
        }
    }
}
