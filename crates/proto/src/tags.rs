//! TAGS: the subject and country codes a cable is filed under, as in the traditional cable
//! format (`TAGS: PREL, PGOV, KE`). A tag is two to eight upper-case letters or digits, and must
//! be a known one: a subject tag from [`SUBJECT_TAGS`], a country code (ISO 3166-1 alpha-2), an
//! organisation from [`ORGANISATION_TAGS`], or one ministry IT added for its network (the
//! node's `[cables] extra_tags`, which devices learn with the node's welcome). Lower case is
//! accepted and written in upper case; anything else is refused, naming the tag.

/// Subject tags, the classic set most ministries file under.
pub const SUBJECT_TAGS: &[&str] = &[
    // Administration and management.
    "ABUD", "ADMN", "AFIN", "AINF", "AMGT", "AODE", "APER", "ASEC", "ASIG", "AFSI", "AMED",
    // Consular affairs.
    "CASC", "CMGT", "CPAS", "CVIS", // Economic and commercial.
    "EAGR", "EAID", "EAIR", "ECIN", "ECON", "ECPS", "EFIN", "EIND", "EINV", "ELAB", "ELTN", "EMIN",
    "ENRG", "EPET", "ETRD", "ETTC", "EWWT", // Political and security.
    "MARR", "MASS", "MCAP", "MNUC", "MOPS", "PARM", "PBTS", "PGOV", "PHSA", "PHUM", "PINR", "PINS",
    "PREF", "PREL", "PTER", // Cross-cutting (K tags).
    "KCOR", "KCRM", "KDEM", "KFRD", "KGHG", "KHLS", "KIRF", "KJUS", "KMDR", "KNNP", "KPAO", "KPKO",
    "KSCA", "KTFN", "KTIP", "KWMN", // Operations, travel and visits.
    "OEXC", "OIIP", "OPDC", "OREP", "OTRA", "OVIP", // Social, science and environment.
    "SCUL", "SENV", "SMIG", "SNAR", "SOCI", "TBIO", "TINT", "TNGD", "TPHY", "TSPA", "TSPL",
];

/// International organisations, filed under like countries.
pub const ORGANISATION_TAGS: &[&str] = &[
    "UN", "UNGA", "UNSC", "UNHRC", "UNESCO", "EU", "NATO", "OSCE", "OECD", "WTO", "IAEA", "ICC",
    "AU", "ASEAN", "OAS", "G7", "G20", "IMF", "IBRD", "WHO", "ICAO", "IMO", "ITU", "WIPO",
];

/// ISO 3166-1 alpha-2 country codes.
pub const COUNTRY_TAGS: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AW", "AX", "AZ", "BA",
    "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT",
    "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO",
    "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG",
    "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF", "GG",
    "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN",
    "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO",
    "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI",
    "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML",
    "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC",
    "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH",
    "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA",
    "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR",
    "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN",
    "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Most tags one cable carries.
pub const MAX_TAGS: usize = 16;

/// A tag that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// Not two to eight letters or digits.
    #[error(
        "{0:?} is not a tag: a tag is two to eight letters or digits, such as PREL, PGOV or KE; \
         separate tags with commas"
    )]
    Format(String),
    /// Well formed, but not a tag this network files under.
    #[error(
        "{0} is not a known tag: use a subject tag (PREL, PGOV, ECON, ...), a country code \
         (FR, KE, ...) or an organisation (UN, EU, ...); ministry IT can add tags in the \
         node's [cables] extra_tags"
    )]
    Unknown(String),
    /// More than [`MAX_TAGS`].
    #[error("a cable carries at most {MAX_TAGS} tags, not {0}")]
    TooMany(usize),
}

/// Checks one tag against the known ones and `extra` (ministry IT's own); returns it in upper
/// case.
pub fn check(tag: &str, extra: &[String]) -> Result<String, TagError> {
    let upper = tag.trim().to_ascii_uppercase();
    let well_formed =
        (2..=8).contains(&upper.len()) && upper.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(TagError::Format(tag.to_owned()));
    }
    let known = [SUBJECT_TAGS, ORGANISATION_TAGS, COUNTRY_TAGS]
        .iter()
        .any(|list| list.contains(&upper.as_str()))
        || extra.iter().any(|e| e.eq_ignore_ascii_case(&upper));
    if known {
        Ok(upper)
    } else {
        Err(TagError::Unknown(upper))
    }
}

/// Checks every tag of a cable: each known, none twice, at most [`MAX_TAGS`].
pub fn check_all(tags: &[String], extra: &[String]) -> Result<Vec<String>, TagError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = check(tag, extra)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(TagError::TooMany(out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn known_tags_pass_in_upper_case_and_anything_else_is_named() {
        assert_eq!(
            check_all(
                &["prel".into(), "PGOV".into(), "ke".into(), "UN".into()],
                &[]
            )
            .unwrap(),
            vec!["PREL", "PGOV", "KE", "UN"]
        );
        assert_eq!(
            check("not a tag", &[]),
            Err(TagError::Format("not a tag".into()))
        );
        assert_eq!(check(";;", &[]), Err(TagError::Format(";;".into())));
        assert_eq!(check("", &[]), Err(TagError::Format(String::new())));
        assert_eq!(check("ZZZZ", &[]), Err(TagError::Unknown("ZZZZ".into())));
        assert!(
            check("ZZZZ", &["zzzz".into()]).is_ok(),
            "ministry IT's own tag"
        );
        let many: Vec<String> = COUNTRY_TAGS[..17].iter().map(|t| (*t).to_owned()).collect();
        assert_eq!(check_all(&many, &[]), Err(TagError::TooMany(17)));
        assert_eq!(
            check_all(&["PREL".into(), "prel".into()], &[]).unwrap(),
            vec!["PREL"],
            "once each"
        );
    }
}
