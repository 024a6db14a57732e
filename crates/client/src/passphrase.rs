//! What a new device passphrase must be. It is the one secret between a seized disk and every
//! cable on it: the store's key is sealed under it with Argon2id, and an attacker with the
//! disk can guess offline. Following NIST SP 800-63B-4 for a passphrase that is the only
//! factor: at least 15 characters, any characters (spaces and all of Unicode welcome), no
//! composition rules, but not a well-known or trivially repetitive one.

/// The fewest characters a new passphrase may have.
pub const MIN_CHARS: usize = 15;
/// The fewest different characters: `aaaaaaaaaaaaaaaa` is long but not a passphrase.
const MIN_DISTINCT: usize = 5;

/// Passphrases anyone would try first (compared without case, spaces or punctuation).
const COMMON: &[&str] = &[
    "correcthorsebatterystaple",
    "passwordpassword",
    "password123456789",
    "123456789012345",
    "1234567890123456",
    "qwertyuiopasdfgh",
    "qwertyuiopasdfghjkl",
    "iloveyouiloveyou",
    "letmeinletmein",
    "thequickbrownfoxjumpsoverthelazydog",
    "changemechangeme",
    "valisevalisevalise",
    "diplomaticpouch",
];

/// Why a new passphrase was refused. Nothing was created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// Shorter than [`MIN_CHARS`].
    #[error(
        "the passphrase has {0} characters; use at least {MIN_CHARS}: several words you will \
         remember make a good one"
    )]
    TooShort(usize),
    /// Too few different characters.
    #[error("the passphrase repeats a few characters; choose several unrelated words")]
    Repetitive,
    /// A well-known passphrase.
    #[error("that passphrase is well known and among the first an attacker tries; choose your own")]
    Common,
}

/// Checks a new passphrase.
pub fn check(passphrase: &str) -> Result<(), PassphraseError> {
    let chars = passphrase.chars().count();
    if chars < MIN_CHARS {
        return Err(PassphraseError::TooShort(chars));
    }
    let mut distinct: Vec<char> = passphrase.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT {
        return Err(PassphraseError::Repetitive);
    }
    let folded: String = passphrase
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if COMMON.contains(&folded.as_str()) {
        return Err(PassphraseError::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_repetitive_or_famous_passphrases_are_refused_and_long_ones_pass() {
        assert_eq!(check("hunter2"), Err(PassphraseError::TooShort(7)));
        assert_eq!(check("12345678"), Err(PassphraseError::TooShort(8)));
        assert_eq!(
            check("aaaaaaaaaaaaaaaaaaaa"),
            Err(PassphraseError::Repetitive)
        );
        assert_eq!(
            check("Correct Horse Battery Staple"),
            Err(PassphraseError::Common)
        );
        assert!(check("diplomat passphrase 1").is_ok());
        assert!(check("la valise part à l'aube").is_ok(), "any characters");
        let message = check("short").unwrap_err().to_string();
        assert!(message.contains("at least 15"), "{message}");
    }
}
