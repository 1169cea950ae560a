//! Rules for producer text that leaves the process: what PostgreSQL can
//! store, what may become a header value, and how to show an untrusted
//! string in a log line or an error message without letting it forge one.
//!
//! Pure functions only; the gateway and the workers call them before a
//! value reaches a NATS or HTTP header, a `text` or `jsonb` column, or a log.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The reason given for a string PostgreSQL cannot store.
pub const NUL_REASON: &str = "contains a NUL character (U+0000), which cannot be stored";

/// Longest correlation id, in characters.
pub const MAX_CORRELATION_ID_CHARS: usize = 255;

/// Whether `s` holds a NUL character, which neither `text` nor `jsonb`
/// (as `\u0000`) accepts.
pub fn has_nul(s: &str) -> bool {
    s.as_bytes().contains(&0)
}

/// Whether `c` is a control character: C0 (below U+0020), DEL (U+007F)
/// or C1 (U+0080 to U+009F).
pub const fn is_control(c: char) -> bool {
    matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Checks a correlation id, from an event body or the `X-Correlation-ID`
/// header: 1 to 255 characters, none of them a control character, so it
/// is safe in a header value and a log line.
///
/// # Errors
/// The reason, naming the first offending character by code point.
pub fn check_correlation_id(s: &str) -> Result<(), String> {
    let mut count = 0usize;
    for c in s.chars() {
        if is_control(c) {
            return Err(format!(
                "contains the control character U+{:04X} at position {count}; \
                 control characters are not allowed",
                u32::from(c)
            ));
        }
        count += 1;
    }
    if count == 0 || count > MAX_CORRELATION_ID_CHARS {
        return Err(format!(
            "must be 1 to {MAX_CORRELATION_ID_CHARS} characters, not {count}"
        ));
    }
    Ok(())
}

/// `s` with every character that could forge or hide log content escaped:
/// control characters, line and paragraph separators, bidirectional and
/// zero-width formatting characters, and the backslash itself (so an
/// escape in the output is never ambiguous). Borrowed when nothing needs
/// escaping.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`printable`], cut to at most `max` characters (an ellipsis marks the
/// cut), for names that end up inside error messages.
pub fn printable_prefix(s: &str, max: usize) -> String {
    let p = printable(s);
    match p.char_indices().nth(max) {
        None => p.into_owned(),
        Some((at, _)) => format!("{}…", &p[..at]),
    }
}

const fn needs_escape(c: char) -> bool {
    is_control(c)
        || matches!(
            c,
            '\\' | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_correlation_id_is_accepted() {
        assert_eq!(check_correlation_id("req-42/é✓"), Ok(()));
    }

    #[test]
    fn a_correlation_id_with_a_newline_is_refused() {
        let e = check_correlation_id("x\ny").expect_err("refused");
        assert!(e.contains("U+000A at position 1"), "{e}");
    }

    #[test]
    fn a_correlation_id_with_a_nul_is_refused() {
        assert!(check_correlation_id("a\0").is_err());
    }

    #[test]
    fn a_correlation_id_with_del_or_a_c1_control_is_refused() {
        assert!(check_correlation_id("a\u{7f}").is_err());
        assert!(check_correlation_id("a\u{85}").is_err());
        assert!(check_correlation_id("a\u{9f}").is_err());
        assert_eq!(check_correlation_id("a\u{a0}"), Ok(()));
    }

    #[test]
    fn an_empty_or_overlong_correlation_id_is_refused() {
        assert!(check_correlation_id("").is_err());
        assert_eq!(check_correlation_id(&"é".repeat(255)), Ok(()));
        assert!(check_correlation_id(&"é".repeat(256)).is_err());
    }

    #[test]
    fn printable_borrows_a_clean_string() {
        assert!(matches!(printable("checkout step 3"), Cow::Borrowed(_)));
    }

    #[test]
    fn printable_escapes_controls_separators_and_backslashes() {
        assert_eq!(printable("a\nb\r\t\0"), "a\\nb\\r\\t\\u{0}");
        assert_eq!(
            printable("x\u{2028}y\u{202e}z\u{85}"),
            "x\\u{2028}y\\u{202e}z\\u{85}"
        );
        assert_eq!(printable("a\\nb"), "a\\\\nb");
    }

    #[test]
    fn printable_prefix_cuts_long_names() {
        assert_eq!(printable_prefix("abcdef", 3), "abc…");
        assert_eq!(printable_prefix("abc", 3), "abc");
    }

    #[test]
    fn has_nul_finds_a_nul_anywhere() {
        assert!(has_nul("abc\0"));
        assert!(!has_nul("abc"));
    }
}
