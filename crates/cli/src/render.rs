//! How cables look on a terminal: classification banners, precedence, date-time groups.

use valise_proto::v1::{Caveat, Classification, Precedence, RoutingHeader};

/// Width of banners.
const WIDTH: usize = 78;

/// The classification line, e.g. `SECRET//NODIS`.
pub fn marking(header: &RoutingHeader) -> String {
    let class = Classification::try_from(header.classification).unwrap_or_default();
    let mut marking = class.cable_name().to_owned();
    for caveat in &header.caveats {
        let caveat = Caveat::try_from(*caveat).unwrap_or_default();
        marking.push_str("//");
        marking.push_str(caveat.cable_name());
    }
    marking
}

/// A banner line with the marking centred.
pub fn banner(marking: &str) -> String {
    let text = format!(" {marking} ");
    let side = WIDTH.saturating_sub(text.len()) / 2;
    let right = WIDTH.saturating_sub(text.len() + side);
    format!("{}{text}{}", "=".repeat(side), "=".repeat(right))
}

/// The precedence, with NIACT when set: `FLASH NIACT`.
pub fn precedence(header: &RoutingHeader) -> String {
    let p = Precedence::try_from(header.precedence)
        .unwrap_or_default()
        .cable_name();
    if header.niact {
        format!("{p} NIACT")
    } else {
        p.to_owned()
    }
}

/// The precedence's name alone.
pub fn precedence_word(header: &RoutingHeader) -> &'static str {
    Precedence::try_from(header.precedence)
        .unwrap_or_default()
        .cable_name()
}

/// The classification's name alone.
pub fn classification_word(header: &RoutingHeader) -> &'static str {
    Classification::try_from(header.classification)
        .unwrap_or_default()
        .cable_name()
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

/// RFC 3339 time for JSON.
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

/// Cuts `text` to `width` characters, marking the cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        format!("{text:width$}")
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_date_time_group_reads_as_cables_write_it() {
        // 2026-11-22 10:31:00 UTC.
        assert_eq!(dtg(1_795_343_460_000), "221031Z NOV 26");
        assert_eq!(rfc3339(1_795_343_460_000), "2026-11-22T10:31:00Z");
    }

    #[test]
    fn banners_carry_classification_and_caveats() {
        let header = RoutingHeader {
            classification: Classification::TopSecret as i32,
            caveats: vec![Caveat::Nodis as i32, Caveat::Noforn as i32],
            precedence: Precedence::Flash as i32,
            niact: true,
            ..Default::default()
        };
        assert_eq!(marking(&header), "TOP SECRET//NODIS//NOFORN");
        let line = banner(&marking(&header));
        assert_eq!(line.chars().count(), WIDTH);
        assert!(line.contains(" TOP SECRET//NODIS//NOFORN "));
        assert_eq!(precedence(&header), "FLASH NIACT");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(12_595), "12.3 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }
}
