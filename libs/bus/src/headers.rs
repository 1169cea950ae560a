//! Header names AWFDRS reads and writes, and the one encoding of their
//! values.
//!
//! A NATS header value cannot hold CR or LF (async-nats panics on them), and
//! values quoting what a producer sent (correlation ids, dead-letter reasons
//! naming fields) may hold anything. So every value the bus writes goes
//! through [`encode`], and every value it hands out goes through [`decode`]:
//!
//! * the bytes of control characters (U+0000–U+001F, U+007F), of `%`, and
//!   of every non-ASCII character (its UTF-8 bytes) are written `%XX`
//!   (upper-case hex), as are a leading and a trailing space (which header
//!   parsers trim);
//! * everything else is written as is, so ordinary values are unchanged.
//!
//! `decode(encode(s)) == s` for every string. [`decode`] is lenient: a `%`
//! not followed by two hex digits (a value written by a producer outside
//! AWFDRS) is kept literally.

use std::borrow::Cow;

/// JetStream's de-duplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The correlation id carried from the gateway through every worker.
pub const CORRELATION_ID: &str = "X-Correlation-ID";
/// Why a message was dead-lettered.
pub const DLQ_REASON: &str = "Awfdrs-Dlq-Reason";
/// The subject a dead-lettered message was first published to.
pub const DLQ_SUBJECT: &str = "Awfdrs-Dlq-Subject";
/// Its stream sequence.
pub const DLQ_SEQUENCE: &str = "Awfdrs-Dlq-Stream-Sequence";
/// How many times it had been delivered.
pub const DLQ_DELIVERED: &str = "Awfdrs-Dlq-Delivered";
/// The consumer that gave up on it.
pub const DLQ_CONSUMER: &str = "Awfdrs-Dlq-Consumer";
/// The id of the durable dead-letter record (`awfdrs dlq show <id>`).
pub const DLQ_RECORD: &str = "Awfdrs-Dlq-Record";
/// Set (to `omitted`) when the payload was too big to travel with the
/// notification; the record holds it.
pub const DLQ_PAYLOAD: &str = "Awfdrs-Dlq-Payload";
/// How the event entered AWFDRS (`http` when the gateway published it).
pub const SOURCE: &str = "Awfdrs-Source";
/// The gateway's reservation of the event's idempotency key (a UUID), on
/// the messages it publishes: the detector stores the event only while the
/// key is still reserved by it.
pub const RESERVATION: &str = "Awfdrs-Reservation";

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'%' || b >= 0x80
}

/// `value` as a safe NATS header value (see the module's doc).
pub fn encode(value: &str) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let escape_at = |i: usize, b: u8| needs_escape(b) || (b == b' ' && (i == 0 || i == last));
    if !bytes.iter().enumerate().any(|(i, &b)| escape_at(i, b)) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for (i, &b) in bytes.iter().enumerate() {
        if escape_at(i, b) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The string [`encode`] was given. Invalid escapes are kept as written;
/// bytes that do not form UTF-8 become U+FFFD.
pub fn decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_digit),
                bytes.get(i + 2).copied().and_then(hex_digit),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// At most `max` bytes of `value`, cut on a character boundary and marked
/// with `…` when cut: for header values quoting unbounded input (the full
/// text is kept in the dead-letter record).
pub fn truncate(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &value[..end]))
}

/// Whether `name` is a valid header name (printable ASCII, no `:`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_values_are_unchanged() {
        for v in ["abc", "corr-123", "dlq:detector:42", "a b", "x=y;z", ""] {
            assert!(matches!(encode(v), Cow::Borrowed(_)), "{v}");
            assert_eq!(decode(v), v);
        }
    }

    #[test]
    fn control_characters_percent_and_non_ascii_are_escaped() {
        assert_eq!(encode("a\nb"), "a%0Ab");
        assert_eq!(encode("x\r\ny"), "x%0D%0Ay");
        assert_eq!(encode("50%"), "50%25");
        assert_eq!(encode("nul\0"), "nul%00");
        assert_eq!(encode("del\x7f"), "del%7F");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode(" padded "), "%20padded%20");
    }

    #[test]
    fn encoded_values_hold_only_printable_ascii() {
        let hostile = "unknown field \"a\nb\"\r\n\t\0 %zz € 🦀 ";
        let e = encode(hostile);
        assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)), "{e}");
        assert!(!e.starts_with(' ') && !e.ends_with(' '));
    }

    #[test]
    fn decode_reverses_encode() {
        for v in [
            "a\nb",
            "x\ny",
            "100%",
            "%41",
            "é€🦀",
            " lead",
            "trail ",
            " ",
            "\0\x01\x1f\x7f",
            "%%%",
        ] {
            assert_eq!(decode(&encode(v)), v, "{v:?}");
        }
    }

    #[test]
    fn decode_keeps_invalid_escapes_literally() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%41%62"), "Ab");
    }

    #[test]
    fn truncate_cuts_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(100);
        let t = truncate(&long, 11);
        assert!(t.len() <= 11 && t.ends_with('…'), "{t}");
    }

    #[test]
    fn header_names_are_checked() {
        assert!(is_valid_name(MSG_ID));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a:b"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a\nb"));
    }
}
