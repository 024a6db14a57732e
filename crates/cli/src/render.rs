//! How cables look on a terminal: banners drawn in text, columns. What a cable's marking,
//! precedence or date-time group *is* comes from the library (`valise_client::present` and
//! the views of `valise_client::views`), the same for every front end.

use valise_client::views::Routing;

pub use valise_client::present::{dtg, rfc3339, size};

/// Width of banners.
const WIDTH: usize = 78;

/// A banner line with the marking centred.
pub fn banner(marking: &str) -> String {
    let text = format!(" {marking} ");
    let side = WIDTH.saturating_sub(text.len()) / 2;
    let right = WIDTH.saturating_sub(text.len() + side);
    format!("{}{text}{}", "=".repeat(side), "=".repeat(right))
}

/// The precedence, with NIACT when set: `FLASH NIACT`.
pub fn precedence(routing: &Routing) -> String {
    valise_client::present::precedence_label(routing.precedence, routing.niact)
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
    use valise_proto::v1::{Caveat, Classification, Precedence, RoutingHeader};

    #[test]
    fn a_date_time_group_reads_as_cables_write_it() {
        // 2026-11-22 10:31:00 UTC.
        assert_eq!(dtg(1_795_343_460_000), "221031Z NOV 26");
        assert_eq!(rfc3339(1_795_343_460_000), "2026-11-22T10:31:00Z");
    }

    #[test]
    fn banners_carry_classification_and_caveats() {
        let routing = Routing::of(&RoutingHeader {
            classification: Classification::TopSecret as i32,
            caveats: vec![Caveat::Nodis as i32, Caveat::Noforn as i32],
            precedence: Precedence::Flash as i32,
            niact: true,
            ..Default::default()
        });
        assert_eq!(routing.marking, "TOP SECRET//NODIS//NOFORN");
        let line = banner(&routing.marking);
        assert_eq!(line.chars().count(), WIDTH);
        assert!(line.contains(" TOP SECRET//NODIS//NOFORN "));
        assert_eq!(precedence(&routing), "FLASH NIACT");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(12_595), "12.3 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }
}
