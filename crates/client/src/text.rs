//! Untrusted text made safe to show. Subjects, bodies, attachment names and addresses come
//! from other people's devices; printed raw, an escape sequence could clear a terminal, forge
//! a coloured `FROM:` line or reorder what a window shows (bidirectional overrides). Every
//! front end shows such text only through these functions.

/// Text for one line (a subject, a name, an address): every control character, line break
/// and bidirectional override is shown as a visible `\u{…}` escape, so nothing it contains
/// can move the cursor, change colours or start a new line.
pub fn single_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_safe(&mut out, c);
    }
    out
}

/// Text of several lines (a cable's body): line feeds and tabs are kept, carriage returns
/// dropped, and every other control character or bidirectional override escaped visibly.
pub fn multi_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => {}
            '\n' | '\t' => out.push(c),
            _ => push_safe(&mut out, c),
        }
    }
    out
}

/// Whether text is already safe to show on one line (nothing [`single_line`] would change).
pub fn is_single_line_safe(text: &str) -> bool {
    text.chars().all(|c| !needs_escape(c))
}

fn push_safe(out: &mut String, c: char) {
    if needs_escape(c) {
        out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
    } else {
        out.push(c);
    }
}

/// C0 and C1 controls, DEL, and the Unicode bidirectional controls and line separators.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}'..='\u{200F}'
                | '\u{2028}'..='\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{061C}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_line_breaks_cannot_reach_a_terminal() {
        let forged = "Lunch\u{1b}[2J\u{1b}[32mFROM: ambassador@paris\r\nsigned";
        let shown = single_line(forged);
        assert!(!shown.contains('\u{1b}') && !shown.contains('\n') && !shown.contains('\r'));
        assert_eq!(
            shown,
            "Lunch\\u{1b}[2J\\u{1b}[32mFROM: ambassador@paris\\u{d}\\u{a}signed"
        );
        let body = multi_line("line one\r\nline two\u{7}\u{9b}31m\n\tindented");
        assert_eq!(body, "line one\nline two\\u{7}\\u{9b}31m\n\tindented");
    }

    #[test]
    fn bidirectional_overrides_are_shown_not_obeyed() {
        // "report_\u{202E}fdp.exe" would display as "report_exe.pdf".
        let name = single_line("report_\u{202E}fdp.exe");
        assert_eq!(name, "report_\\u{202e}fdp.exe");
        assert!(!is_single_line_safe("report_\u{202E}fdp.exe"));
        assert!(is_single_line_safe("Visite du ministre à Nairobi"));
        assert_eq!(
            single_line("Visite du ministre à Nairobi"),
            "Visite du ministre à Nairobi"
        );
    }
}
