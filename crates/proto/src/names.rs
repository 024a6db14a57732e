//! The cable vocabulary as people write it: `SECRET`, `FLASH`, `NODIS`.

use std::fmt;
use std::str::FromStr;

use crate::v1::{Caveat, Classification, Precedence};

/// A word that is not a known classification, precedence or caveat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {given:?}; expected one of: {expected}")]
pub struct UnknownName {
    /// What was being parsed, e.g. "classification".
    pub kind: &'static str,
    /// The text that was given.
    pub given: String,
    /// The accepted words, comma separated.
    pub expected: &'static str,
}

/// Generates `Display` and `FromStr` from one table, so the two cannot drift apart.
macro_rules! cable_names {
    ($ty:ident, $kind:literal, $expected:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The word used in cables, e.g. `TOP SECRET`. `UNSPECIFIED` for the zero value.
            pub fn cable_name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                    $ty::Unspecified => "UNSPECIFIED",
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.cable_name())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            /// Parses the cable word, ignoring case and treating `_` and `-` as spaces.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let normal: String = s
                    .trim()
                    .chars()
                    .map(|c| if c == '_' || c == '-' { ' ' } else { c.to_ascii_uppercase() })
                    .collect();
                match normal.as_str() {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownName { kind: $kind, given: s.to_owned(), expected: $expected }),
                }
            }
        }
    };
}

cable_names!(Classification, "classification",
    "UNCLASSIFIED, CONFIDENTIAL, SECRET, TOP SECRET", {
    Unclassified => "UNCLASSIFIED",
    Confidential => "CONFIDENTIAL",
    Secret => "SECRET",
    TopSecret => "TOP SECRET",
});

cable_names!(Precedence, "precedence", "FLASH, IMMEDIATE, PRIORITY, ROUTINE", {
    Routine => "ROUTINE",
    Priority => "PRIORITY",
    Immediate => "IMMEDIATE",
    Flash => "FLASH",
});

cable_names!(Caveat, "caveat", "NODIS, EXDIS, NOFORN", {
    Nodis => "NODIS",
    Exdis => "EXDIS",
    Noforn => "NOFORN",
});

impl Precedence {
    /// The delivery objective: how long, from submission, the cable should take to reach its
    /// recipients (FLASH 10 minutes, IMMEDIATE 30 minutes, PRIORITY 3 hours, ROUTINE 6 hours).
    pub fn objective_ms(self) -> u64 {
        const MINUTE: u64 = 60_000;
        match self {
            Precedence::Flash => 10 * MINUTE,
            Precedence::Immediate => 30 * MINUTE,
            Precedence::Priority => 180 * MINUTE,
            Precedence::Routine | Precedence::Unspecified => 360 * MINUTE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_value() {
        for c in [
            Classification::Unclassified,
            Classification::Confidential,
            Classification::Secret,
            Classification::TopSecret,
        ] {
            assert_eq!(c.to_string().parse::<Classification>(), Ok(c));
        }
        for p in [
            Precedence::Routine,
            Precedence::Priority,
            Precedence::Immediate,
            Precedence::Flash,
        ] {
            assert_eq!(p.to_string().parse::<Precedence>(), Ok(p));
        }
        for v in [Caveat::Nodis, Caveat::Exdis, Caveat::Noforn] {
            assert_eq!(v.to_string().parse::<Caveat>(), Ok(v));
        }
    }

    #[test]
    fn parsing_is_forgiving_about_case_and_separators() {
        assert_eq!("top_secret".parse(), Ok(Classification::TopSecret));
        assert_eq!(" Top-Secret ".parse(), Ok(Classification::TopSecret));
        assert_eq!("flash".parse(), Ok(Precedence::Flash));
    }

    #[test]
    fn unknown_words_name_what_is_accepted() {
        let err = "SECRETISH".parse::<Classification>().unwrap_err();
        assert!(
            err.to_string()
                .contains("UNCLASSIFIED, CONFIDENTIAL, SECRET, TOP SECRET")
        );
        assert!("UNSPECIFIED".parse::<Precedence>().is_err());
    }

    #[test]
    fn levels_are_ordered_as_clearances_and_urgency() {
        assert!(Classification::TopSecret > Classification::Secret);
        assert!(Classification::Confidential > Classification::Unclassified);
        assert!(Precedence::Flash > Precedence::Immediate);
        assert!(Precedence::Priority > Precedence::Routine);
    }
}
