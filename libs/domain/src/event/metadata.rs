//! One pass over an event's `metadata`: its serialized size, its nesting
//! depth, and every key or string that PostgreSQL's `jsonb` cannot store
//! (it refuses `\u0000` in keys and values at any depth).
//!
//! The size is computed the way `serde_json` serializes the value, without
//! serializing it, so validation walks the tree once.

use std::fmt::{self, Write as _};

use serde_json::{Map, Number, Value};

use super::FieldError;
use crate::text::{NUL_REASON, has_nul, printable_prefix};

/// Largest serialized `metadata` object.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Deepest nesting of objects and arrays in `metadata`, counting
/// `metadata` itself as level 1.
pub const MAX_METADATA_DEPTH: usize = 32;
/// At most this many NUL findings are reported per event.
const MAX_REPORTED: usize = 8;
/// Longest key shown in a reported path.
const MAX_SHOWN_KEY: usize = 64;

/// Checks `metadata`, pushing every problem onto `errs`.
/// Returns whether it is acceptable.
pub(super) fn check(m: &Map<String, Value>, errs: &mut Vec<FieldError>) -> bool {
    let mut walk = Walk::default();
    walk.object(m, 1);
    let before = errs.len();
    errs.append(&mut walk.found);
    if walk.size > MAX_METADATA_BYTES {
        let bound = if walk.truncated { "at least " } else { "" };
        errs.push(FieldError::new(
            "metadata",
            format!(
                "{bound}{} bytes serialized; at most {MAX_METADATA_BYTES}",
                walk.size
            ),
        ));
    }
    errs.len() == before
}

/// The serialized length of `m` as `serde_json::to_vec` writes it.
#[cfg(test)]
pub(super) fn serialized_len(m: &Map<String, Value>) -> usize {
    let mut walk = Walk::default();
    walk.object(m, 1);
    walk.size
}

/// Where the walk is: `metadata`, then keys and indices.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Default)]
struct Walk<'a> {
    path: Vec<Step<'a>>,
    size: usize,
    found: Vec<FieldError>,
    nul_reported: usize,
    /// A too-deep subtree was not visited, so `size` is a lower bound.
    truncated: bool,
}

impl<'a> Walk<'a> {
    fn object(&mut self, m: &'a Map<String, Value>, depth: usize) {
        if self.too_deep(depth) {
            return;
        }
        self.size += 2 + m.len().saturating_sub(1);
        for (k, v) in m {
            self.path.push(Step::Key(k));
            // The key, its colon.
            self.size += string_len(k) + 1;
            if has_nul(k) {
                self.nul("the key ");
            }
            self.value(v, depth);
            self.path.pop();
        }
    }

    fn array(&mut self, items: &'a [Value], depth: usize) {
        if self.too_deep(depth) {
            return;
        }
        self.size += 2 + items.len().saturating_sub(1);
        for (i, v) in items.iter().enumerate() {
            self.path.push(Step::Index(i));
            self.value(v, depth);
            self.path.pop();
        }
    }

    fn value(&mut self, v: &'a Value, depth: usize) {
        match v {
            Value::Null | Value::Bool(true) => self.size += 4,
            Value::Bool(false) => self.size += 5,
            Value::Number(n) => self.size += number_len(n),
            Value::String(s) => {
                self.size += string_len(s);
                if has_nul(s) {
                    self.nul("");
                }
            }
            Value::Array(items) => self.array(items, depth + 1),
            Value::Object(m) => self.object(m, depth + 1),
        }
    }

    fn too_deep(&mut self, depth: usize) -> bool {
        if depth <= MAX_METADATA_DEPTH {
            return false;
        }
        if !self.truncated {
            self.truncated = true;
            self.found.push(FieldError::new(
                self.field(),
                format!("nested deeper than {MAX_METADATA_DEPTH} levels"),
            ));
        }
        true
    }

    fn nul(&mut self, what: &str) {
        if self.nul_reported < MAX_REPORTED {
            self.nul_reported += 1;
            self.found
                .push(FieldError::new(self.field(), format!("{what}{NUL_REASON}")));
        }
    }

    /// The current path: `metadata.a.b[2]`, keys shown printable and cut.
    fn field(&self) -> String {
        let mut out = String::from("metadata");
        for step in &self.path {
            match step {
                Step::Key(k) => {
                    out.push('.');
                    out.push_str(&printable_prefix(k, MAX_SHOWN_KEY));
                }
                Step::Index(i) => {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

/// The length of `s` as a JSON string, quotes and escapes included, as
/// `serde_json` writes it (short escapes for \b \t \n \f \r, `\u00XX` for
/// the other C0 controls; nothing else is escaped).
fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The length of a number as `serde_json` writes it (its `Display` uses
/// the same integer and shortest-float formatting as its serializer).
fn number_len(n: &Number) -> usize {
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = write!(c, "{n}");
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn errors(v: Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        check(&obj(v), &mut errs);
        errs
    }

    #[test]
    fn the_computed_size_matches_serde_json() {
        let m = obj(json!({
            "s": "a\"b\\c\n\t\u{1}\u{7f}é",
            "n": [0, -1, 1.5, 1e300, 5e-324, -0.0, u64::MAX, i64::MIN],
            "b": [true, false, null, [], {}],
            "deep": {"x": {"y": []}}
        }));
        let expected = serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(0);
        assert_eq!(serialized_len(&m), expected);
        assert_eq!(serialized_len(&Map::new()), 2);
    }

    #[test]
    fn a_nul_in_a_nested_value_is_named_by_its_path() {
        let errs = errors(json!({"a": {"b": "x\u{0}y"}}));
        assert_eq!(errs, [FieldError::new("metadata.a.b", NUL_REASON)]);
    }

    #[test]
    fn a_nul_in_a_key_is_named_with_the_key_escaped() {
        let errs = errors(json!({"a": {"b\u{0}": 1}}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.a.b\\u{0}");
        assert!(errs[0].reason.starts_with("the key contains a NUL"));
    }

    #[test]
    fn a_nul_inside_an_array_is_named_by_its_index() {
        let errs = errors(json!({"list": ["ok", ["\u{0}"]]}));
        assert_eq!(errs[0].field, "metadata.list[1][0]");
    }

    #[test]
    fn metadata_nested_deeper_than_the_limit_is_refused() {
        let mut v = json!("leaf");
        for _ in 0..MAX_METADATA_DEPTH {
            v = json!({ "d": v });
        }
        // `metadata` plus 32 nested objects: 33 levels.
        let errs = errors(json!({ "d": v }));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].reason.contains("nested deeper than 32 levels"));
        assert!(errs[0].field.starts_with("metadata.d.d"));
    }

    #[test]
    fn metadata_at_exactly_the_depth_limit_is_accepted() {
        let mut v = json!([]);
        for _ in 0..MAX_METADATA_DEPTH - 2 {
            v = json!({ "d": v });
        }
        assert_eq!(errors(json!({ "d": v })), []);
    }

    #[test]
    fn only_the_first_few_nul_findings_are_reported() {
        let m: Map<String, Value> = (0..100)
            .map(|i| (format!("k{i:03}"), json!("\u{0}")))
            .collect();
        let mut errs = Vec::new();
        assert!(!check(&m, &mut errs));
        assert_eq!(errs.len(), MAX_REPORTED);
    }

    #[test]
    fn oversized_metadata_reports_its_size() {
        let errs = errors(json!({"blob": "x".repeat(MAX_METADATA_BYTES)}));
        assert_eq!(errs[0].field, "metadata");
        assert_eq!(
            errs[0].reason,
            format!(
                "{} bytes serialized; at most {MAX_METADATA_BYTES}",
                MAX_METADATA_BYTES + 11
            )
        );
    }
}
