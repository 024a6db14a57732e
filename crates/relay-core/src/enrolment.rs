//! One-time enrolment codes: an operator issues one for a named diplomat; the diplomat's new
//! device redeems it once, over the one unauthenticated path, and is enrolled. Pure: time and
//! randomness are arguments, so every rule is tested without clocks.
//!
//! Only a SHA-256 of each code is kept: a copy of the node's store reveals no usable code.
//! Codes are 20 Crockford base32 characters (100 bits), written in groups of four.

use std::collections::HashMap;

use valise_proto::v1::Classification;

/// Crockford's base32 alphabet: no I, L, O or U, which are easily misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Random bytes per code: 100 bits are used.
pub const CODE_ENTROPY_BYTES: usize = 13;
const CODE_CHARS: usize = 20;

/// Who a code enrols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The user's name at the post, e.g. `alice`.
    pub user: String,
    /// Full name.
    pub display_name: String,
    /// Clearance.
    pub clearance: Classification,
    /// Office mailboxes.
    pub offices: Vec<String>,
    /// Not a national of the ministry's state: NOFORN cables do not reach them.
    pub foreign_national: bool,
}

/// Why a code was not issued or redeemed. Redemption failures do not say whether a code
/// existed, so they cannot be used to probe for live codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Too many codes are outstanding.
    #[error(
        "{0} enrolment codes are already outstanding; let some expire or raise limits.max_pending_enrolments"
    )]
    TooManyPending(usize),
    /// The code is unknown, already used, or mistyped.
    #[error(
        "this enrolment code is not valid: it was mistyped, already used, or never issued; ask ministry IT for a new one"
    )]
    Invalid,
    /// The code expired.
    #[error("this enrolment code has expired; ask ministry IT for a new one")]
    Expired,
    /// Too many attempts from this source.
    #[error("too many enrolment attempts; wait a minute and try again")]
    RateLimited,
}

struct Pending {
    invitation: Invitation,
    expires_ms: u64,
}

/// A code just issued: the code to hand over, and what a store keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The code, in groups of four.
    pub code: String,
    /// SHA-256 of the normalised code: the only form in which it is stored.
    pub digest: [u8; 32],
    /// When it expires (Unix ms).
    pub expires_ms: u64,
}

/// How many sources the attempt counters hold before stale ones are forgotten.
const ATTEMPTS_PRUNE_AT: usize = 1024;

/// Outstanding codes and the attempt counters.
pub struct Codes {
    ttl_ms: u64,
    max_pending: usize,
    attempts_per_minute: u32,
    pending: HashMap<[u8; 32], Pending>,
    attempts: HashMap<String, (u64, u32)>,
}

impl Codes {
    /// Codes valid for `ttl_ms`, at most `max_pending` at once, and at most
    /// `attempts_per_minute` redemption attempts per source.
    pub fn new(ttl_ms: u64, max_pending: usize, attempts_per_minute: u32) -> Self {
        Codes {
            ttl_ms,
            max_pending,
            attempts_per_minute,
            pending: HashMap::new(),
            attempts: HashMap::new(),
        }
    }

    /// Issues a code for `invitation` from fresh `entropy`.
    pub fn issue(
        &mut self,
        invitation: Invitation,
        entropy: [u8; CODE_ENTROPY_BYTES],
        now_ms: u64,
    ) -> Result<Issued, CodeError> {
        self.expire(now_ms);
        if self.pending.len() >= self.max_pending {
            return Err(CodeError::TooManyPending(self.pending.len()));
        }
        let code = encode(&entropy);
        let issued = Issued {
            code: format_groups(&code),
            digest: digest(&code),
            expires_ms: now_ms.saturating_add(self.ttl_ms),
        };
        self.pending.insert(
            issued.digest,
            Pending {
                invitation,
                expires_ms: issued.expires_ms,
            },
        );
        Ok(issued)
    }

    /// Puts back a code a store kept (when a node restarts).
    pub fn restore(&mut self, digest: [u8; 32], invitation: Invitation, expires_ms: u64) {
        self.pending.insert(
            digest,
            Pending {
                invitation,
                expires_ms,
            },
        );
    }

    /// Redeems `code` from `source`: the peer's IP address, never with its port, since each new
    /// connection has a new port and would get a fresh allowance. A code works once. Returns
    /// Withdraws the code kept under `digest` (its issue could not be made durable).
    pub fn withdraw(&mut self, digest: &[u8; 32]) {
        self.pending.remove(digest);
    }

    /// the invitation and the digest the code was kept under, which is now spent.
    pub fn redeem(
        &mut self,
        code: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<(Invitation, [u8; 32]), CodeError> {
        self.count_attempt(source, now_ms)?;
        let normal = normalise(code).ok_or(CodeError::Invalid)?;
        let key = digest(&normal);
        let pending = self.pending.remove(&key).ok_or(CodeError::Invalid)?;
        if now_ms > pending.expires_ms {
            return Err(CodeError::Expired);
        }
        Ok((pending.invitation, key))
    }

    /// How many codes are outstanding (expired ones included until the next issue).
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    fn expire(&mut self, now_ms: u64) {
        self.pending.retain(|_, p| p.expires_ms >= now_ms);
        self.attempts
            .retain(|_, (window, _)| now_ms.saturating_sub(*window) < 60_000);
    }

    fn count_attempt(&mut self, source: &str, now_ms: u64) -> Result<(), CodeError> {
        // Past windows are forgotten as the map grows, so a scan from many addresses leaves
        // nothing behind a minute later.
        if self.attempts.len() >= ATTEMPTS_PRUNE_AT {
            self.attempts
                .retain(|_, (window, _)| now_ms.saturating_sub(*window) < 60_000);
        }
        let (window, count) = self
            .attempts
            .entry(source.to_owned())
            .or_insert((now_ms, 0));
        if now_ms.saturating_sub(*window) >= 60_000 {
            *window = now_ms;
            *count = 0;
        }
        *count += 1;
        if *count > self.attempts_per_minute {
            return Err(CodeError::RateLimited);
        }
        Ok(())
    }
}

fn encode(entropy: &[u8; CODE_ENTROPY_BYTES]) -> String {
    let mut bits: u128 = 0;
    for &b in entropy {
        bits = (bits << 8) | u128::from(b);
    }
    (0..CODE_CHARS)
        .map(|i| char::from(ALPHABET[((bits >> (5 * i)) & 31) as usize]))
        .collect()
}

fn format_groups(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect::<Vec<_>>()
        .join("-")
}

/// Uppercases, drops separators and maps the characters Crockford treats as look-alikes.
fn normalise(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    (code.len() == CODE_CHARS && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

fn digest(code: &str) -> [u8; 32] {
    valise_crypto::sha256(code.as_bytes())
}

/// The digest a code is kept under, from the code as a person typed it; `None` for input
/// that cannot be a code.
pub fn code_digest(input: &str) -> Option<[u8; 32]> {
    normalise(input).map(|code| digest(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn alice() -> Invitation {
        Invitation {
            user: "alice".into(),
            display_name: "Alice Martin".into(),
            clearance: Classification::Secret,
            offices: vec!["POL".into()],
            foreign_national: false,
        }
    }

    fn codes() -> Codes {
        Codes::new(72 * HOUR, 10, 5)
    }

    #[test]
    fn a_code_enrols_once() {
        let mut c = codes();
        let code = c.issue(alice(), [7; 13], 0).unwrap().code;
        assert_eq!(c.redeem(&code, "10.0.0.1", HOUR).map(|r| r.0), Ok(alice()));
        assert_eq!(
            c.redeem(&code, "10.0.0.1", HOUR),
            Err(CodeError::Invalid),
            "a reused code is refused"
        );
    }

    #[test]
    fn an_expired_code_is_refused() {
        let mut c = codes();
        let code = c.issue(alice(), [7; 13], 0).unwrap().code;
        assert_eq!(c.redeem(&code, "a", 72 * HOUR + 1), Err(CodeError::Expired));
    }

    #[test]
    fn codes_are_forgiving_to_type() {
        let mut c = codes();
        let code = c.issue(alice(), [0xAB; 13], 0).unwrap().code;
        assert_eq!(code.len(), 20 + 4, "five groups of four");
        assert!(code.split('-').all(|g| g.len() == 4));
        let typed = code
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(c.redeem(&typed, "a", 1).map(|r| r.0), Ok(alice()));
    }

    #[test]
    fn the_attempt_counters_forget_past_minutes_so_a_scan_leaves_nothing_behind() {
        let mut c = codes();
        for i in 0..5000u32 {
            let _ = c.redeem("AAAA", &format!("10.0.{}.{}", i / 256, i % 256), 10);
        }
        assert!(c.attempts.len() <= 5000);
        let _ = c.redeem("AAAA", "10.9.9.9", 120_000);
        assert!(
            c.attempts.len() < ATTEMPTS_PRUNE_AT,
            "{} counters kept after the minute passed",
            c.attempts.len()
        );
    }

    #[test]
    fn guessing_is_rate_limited_per_source() {
        let mut c = codes();
        let code = c.issue(alice(), [9; 13], 0).unwrap().code;
        for _ in 0..5 {
            assert_eq!(
                c.redeem("AAAA-AAAA-AAAA-AAAA-AAAA", "attacker", 10),
                Err(CodeError::Invalid)
            );
        }
        assert_eq!(
            c.redeem(&code, "attacker", 10),
            Err(CodeError::RateLimited),
            "even a right code, from a noisy source"
        );
        assert_eq!(
            c.redeem(&code, "diplomat", 10).map(|r| r.0),
            Ok(alice()),
            "other sources are unaffected"
        );
        assert_eq!(
            c.redeem("AAAA", "attacker", 60_010),
            Err(CodeError::Invalid),
            "a new minute, a new allowance"
        );
    }

    #[test]
    fn outstanding_codes_are_bounded() {
        let mut c = Codes::new(HOUR, 2, 5);
        c.issue(alice(), [1; 13], 0).unwrap();
        c.issue(alice(), [2; 13], 0).unwrap();
        assert_eq!(
            c.issue(alice(), [3; 13], 0),
            Err(CodeError::TooManyPending(2))
        );
        assert!(
            c.issue(alice(), [3; 13], HOUR + 1).is_ok(),
            "expired codes make room"
        );
        assert_eq!(c.outstanding(), 1);
    }

    #[test]
    fn malformed_input_is_just_invalid() {
        let mut c = codes();
        for bad in ["", "x", "UUUU-UUUU-UUUU-UUUU-UUUU", "é", &"A".repeat(1000)] {
            assert_eq!(c.redeem(bad, "a", 1), Err(CodeError::Invalid), "{bad:?}");
        }
    }
}
