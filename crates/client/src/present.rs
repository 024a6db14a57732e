//! How a cable is presented, the same in every front end: its marking (`SECRET//NODIS`), the
//! banner colours of its classification, its precedence with NIACT, its date-time group, and
//! sizes. Front ends lay these out; they do not decide them.

use valise_proto::v1::{Caveat, Classification, Precedence, RoutingHeader};

/// The classification line, e.g. `SECRET//NODIS`.
pub fn marking(header: &RoutingHeader) -> String {
    let class = Classification::try_from(header.classification).unwrap_or_default();
    let caveats: Vec<Caveat> = header
        .caveats
        .iter()
        .map(|c| Caveat::try_from(*c).unwrap_or_default())
        .collect();
    marking_of(class, &caveats)
}

/// The marking of a classification and its caveats.
pub fn marking_of(classification: Classification, caveats: &[Caveat]) -> String {
    let mut marking = classification.cable_name().to_owned();
    for caveat in caveats {
        marking.push_str("//");
        marking.push_str(caveat.cable_name());
    }
    marking
}

/// The highest marking among several cables on screen: the highest classification, with every
/// caveat any of them carries, in caveat order.
pub fn highest_marking<'a>(headers: impl IntoIterator<Item = &'a RoutingHeader>) -> String {
    let decoded: Vec<(Classification, Vec<Caveat>)> = headers
        .into_iter()
        .map(|h| {
            (
                Classification::try_from(h.classification).unwrap_or_default(),
                h.caveats
                    .iter()
                    .filter_map(|c| Caveat::try_from(*c).ok())
                    .collect(),
            )
        })
        .collect();
    highest_of(decoded.iter().map(|(c, v)| (*c, v.as_slice()))).1
}

/// The highest classification among decoded markings (UNCLASSIFIED when there are none),
/// and the marking that goes with it: every caveat any of them carries, in caveat order.
pub fn highest_of<'a>(
    markings: impl IntoIterator<Item = (Classification, &'a [Caveat])>,
) -> (Classification, String) {
    let mut highest = Classification::Unclassified;
    let mut caveats: Vec<Caveat> = Vec::new();
    for (class, marks) in markings {
        highest = highest.max(class);
        for c in marks {
            if *c != Caveat::Unspecified && !caveats.contains(c) {
                caveats.push(*c);
            }
        }
    }
    caveats.sort_by_key(|c| *c as i32);
    (highest, marking_of(highest, &caveats))
}

/// A recipient's delivery against its objective, in words: "on time (4 min)", "OVERDUE by
/// 2 h".
pub fn timeliness(t: crate::objectives::Timeliness) -> String {
    use crate::objectives::{Timeliness, human};
    match t {
        Timeliness::OnTime { took_ms } => format!("on time ({})", human(took_ms)),
        Timeliness::Late { by_ms } => format!("LATE by {}", human(by_ms)),
        Timeliness::Pending { left_ms } => format!("due within {}", human(left_ms)),
        Timeliness::Overdue { by_ms } => format!("OVERDUE by {}", human(by_ms)),
    }
}

/// A colour, as red, green and blue bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// A classification banner's colours: the conventional background, and text readable on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BannerColours {
    /// The banner's background.
    pub background: Rgb,
    /// Its text.
    pub text: Rgb,
}

/// The conventional banner colours: UNCLASSIFIED green, CONFIDENTIAL blue, SECRET red, TOP
/// SECRET orange, each with text of at least 4.5:1 contrast on it (WCAG AA).
pub fn banner_colours(classification: Classification) -> BannerColours {
    const WHITE: Rgb = Rgb(255, 255, 255);
    const BLACK: Rgb = Rgb(0, 0, 0);
    let (background, text) = match classification {
        Classification::TopSecret => (Rgb(255, 140, 0), BLACK),
        Classification::Secret => (Rgb(200, 16, 46), WHITE),
        Classification::Confidential => (Rgb(0, 51, 160), WHITE),
        Classification::Unclassified | Classification::Unspecified => (Rgb(0, 122, 51), WHITE),
    };
    BannerColours { background, text }
}

/// The precedence, with NIACT when set: `FLASH NIACT`.
pub fn precedence_label(precedence: Precedence, niact: bool) -> String {
    if niact {
        format!("{} NIACT", precedence.cable_name())
    } else {
        precedence.cable_name().to_owned()
    }
}

/// A date-time group, e.g. `221031Z NOV 26`.
pub fn dtg(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => {
            const MONTHS: [&str; 12] = [
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ];
            let month = MONTHS
                .get(usize::from(u8::from(t.month())).saturating_sub(1))
                .copied()
                .unwrap_or("???");
            format!(
                "{:02}{:02}{:02}Z {month} {:02}",
                t.day(),
                t.hour(),
                t.minute(),
                t.year().rem_euclid(100)
            )
        }
        Err(_) => "unknown time".into(),
    }
}

/// RFC 3339 time in UTC, for machines.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A size for people: `12.3 KiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(c: Classification, caveats: &[Caveat]) -> RoutingHeader {
        RoutingHeader {
            classification: c as i32,
            caveats: caveats.iter().map(|c| *c as i32).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn markings_banners_and_labels_read_as_cables_do() {
        assert_eq!(
            marking(&header(Classification::Secret, &[Caveat::Nodis])),
            "SECRET//NODIS"
        );
        let screen = [
            header(Classification::Confidential, &[Caveat::Noforn]),
            header(Classification::Secret, &[Caveat::Nodis]),
        ];
        assert_eq!(highest_marking(&screen), "SECRET//NODIS//NOFORN");
        assert_eq!(highest_marking(&[]), "UNCLASSIFIED");
        assert_eq!(
            banner_colours(Classification::TopSecret).background,
            Rgb(255, 140, 0)
        );
        assert_eq!(
            banner_colours(Classification::Secret).text,
            Rgb(255, 255, 255)
        );
        assert_eq!(precedence_label(Precedence::Flash, true), "FLASH NIACT");
        assert_eq!(dtg(1_795_000_000_000), "181106Z NOV 26");
        assert_eq!(rfc3339(1_795_000_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(size(1536), "1.5 KiB");
    }

    /// WCAG relative luminance contrast of each banner's text on its background.
    #[test]
    fn banner_text_is_readable_on_every_banner() {
        fn luminance(c: Rgb) -> f64 {
            let channel = |v: u8| {
                let v = f64::from(v) / 255.0;
                if v <= 0.03928 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * channel(c.0) + 0.7152 * channel(c.1) + 0.0722 * channel(c.2)
        }
        for c in [
            Classification::Unclassified,
            Classification::Confidential,
            Classification::Secret,
            Classification::TopSecret,
        ] {
            let b = banner_colours(c);
            let (hi, lo) = {
                let (x, y) = (luminance(b.background), luminance(b.text));
                if x > y { (x, y) } else { (y, x) }
            };
            let ratio = (hi + 0.05) / (lo + 0.05);
            assert!(ratio >= 4.5, "{c:?}: contrast {ratio:.2}");
        }
    }
}
