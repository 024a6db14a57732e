//! Safety numbers: 60 digits two diplomats read to each other to confirm they hold each other's
//! true identity keys.
//!
//! Each side contributes 30 digits derived from its address and identity key through 5,200
//! rounds of SHA-512 (making a key that collides with a chosen number costly to search for).
//! The two halves are sorted before joining, so both parties compute the same number.

use std::fmt;

use ring::digest::{Context, SHA512};

use crate::identity::IdentityPublicKey;

const ROUNDS: usize = 5200;
const GROUPS_PER_SIDE: usize = 6;
const FORMAT_VERSION: [u8; 2] = [0, 1];

/// A safety number: 12 groups of 5 digits.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    digits: String,
}

impl SafetyNumber {
    /// The safety number between two parties, each an address (`alice@paris`) and the identity
    /// key of the device being checked. The order of the two does not matter.
    pub fn between(a: (&str, &IdentityPublicKey), b: (&str, &IdentityPublicKey)) -> Self {
        let mut halves = [side_digits(a.0, a.1), side_digits(b.0, b.1)];
        halves.sort();
        SafetyNumber {
            digits: halves.concat(),
        }
    }

    /// The 60 digits without spaces.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The twelve 5-digit groups.
    pub fn groups(&self) -> Vec<&str> {
        (0..self.digits.len())
            .step_by(5)
            .filter_map(|i| self.digits.get(i..i + 5))
            .collect()
    }

    /// Three lines of four groups, the way it is shown to be read aloud.
    pub fn lines(&self) -> Vec<String> {
        self.groups().chunks(4).map(|line| line.join(" ")).collect()
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

/// 30 digits for one party.
fn side_digits(address: &str, key: &IdentityPublicKey) -> String {
    let mut ctx = Context::new(&SHA512);
    ctx.update(b"valise/1 safety-number\0");
    ctx.update(&FORMAT_VERSION);
    ctx.update(key.as_bytes());
    ctx.update(&(address.len() as u64).to_be_bytes());
    ctx.update(address.as_bytes());
    let mut hash = ctx.finish();
    for _ in 1..ROUNDS {
        let mut ctx = Context::new(&SHA512);
        ctx.update(hash.as_ref());
        ctx.update(key.as_bytes());
        hash = ctx.finish();
    }
    let bytes = hash.as_ref();
    (0..GROUPS_PER_SIDE)
        .map(|g| {
            let chunk = &bytes[g * 5..g * 5 + 5];
            let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            format!("{:05}", value % 100_000)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;

    fn key(seed: u8) -> IdentityPublicKey {
        *IdentityKeyPair::from_seed(&[seed; 32]).unwrap().public()
    }

    #[test]
    fn both_sides_compute_the_same_number() {
        let (alice, bob) = (key(1), key(2));
        assert_eq!(
            SafetyNumber::between(("alice@paris", &alice), ("bob@nairobi", &bob)),
            SafetyNumber::between(("bob@nairobi", &bob), ("alice@paris", &alice))
        );
    }

    #[test]
    fn the_number_is_sixty_digits_in_twelve_groups() {
        let n = SafetyNumber::between(("alice@paris", &key(1)), ("bob@nairobi", &key(2)));
        assert_eq!(n.digits().len(), 60);
        assert!(n.digits().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(n.groups().len(), 12);
        assert_eq!(n.lines().len(), 3);
        assert_eq!(n.to_string().len(), 60 + 11);
    }

    /// Two diplomats may run different releases: the number must be the one `docs/protocol.md`
    /// defines, forever. These digits were computed from that description by a separate
    /// implementation (Python's `hashlib`), for the two public keys of RFC 8032 §7.1 tests 1
    /// and 2.
    #[test]
    fn the_number_is_the_documented_derivation() {
        let public =
            |hex_key: &str| IdentityPublicKey::from_slice(&hex::decode(hex_key).unwrap()).unwrap();
        let alice = public("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let bob = public("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
        let n = SafetyNumber::between(("alice@paris", &alice), ("bob@nairobi", &bob));
        assert_eq!(
            n.to_string(),
            "34767 79536 39925 43149 71439 66862 58942 56148 01703 02627 21227 95962"
        );
        assert_eq!(
            n.lines(),
            [
                "34767 79536 39925 43149",
                "71439 66862 58942 56148",
                "01703 02627 21227 95962"
            ]
        );
    }

    #[test]
    fn a_substituted_key_or_address_changes_the_number() {
        let honest = SafetyNumber::between(("alice@paris", &key(1)), ("bob@nairobi", &key(2)));
        let mitm = SafetyNumber::between(("alice@paris", &key(1)), ("bob@nairobi", &key(3)));
        let renamed = SafetyNumber::between(("alice@paris", &key(1)), ("bob@paris", &key(2)));
        assert_ne!(honest, mitm);
        assert_ne!(honest, renamed);
    }
}
