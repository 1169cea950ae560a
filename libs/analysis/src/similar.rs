//! Similar past incidents: the tenant's earlier incidents with the same
//! signature first, then those of the same vendor and category, then those
//! whose error message is close by cosine similarity of hashed character
//! 3-gram vectors; at most [`LIMIT`], in an order fixed down to the id.
//!
//! Past incidents carry their message's vector, computed once when they were
//! stored ([`vector`]); an analysis computes only the new message's, and
//! compares it only with the incidents whose tier can still reach the list
//! (none beyond the same signature when five share it), so a history of
//! 100,000 incidents costs at most one dot product each.

use std::cmp::Ordering;

use awfdrs_domain::decision::{Likeness, SimilarIncident, round2};

use crate::input::{AnalysisInput, PastIncident};

/// Dimensions of a message vector.
pub const DIMS: usize = 256;

/// Length of the character n-grams hashed into a vector.
const GRAM: usize = 3;

/// Similarity a message must reach to be listed for its message alone.
pub const SIMILARITY_THRESHOLD: f64 = 0.5;

/// Most similar incidents listed.
pub const LIMIT: usize = 5;

/// Status of an incident that has been resolved.
const RESOLVED: &str = "RESOLVED";

/// `resolved_by` of an incident that closed itself.
const AUTO_RESOLVE: &str = "auto-resolve";

/// The vector of a message: its character 3-grams, after lowercasing,
/// folding every digit to `0` (so ids and amounts do not make two
/// otherwise equal messages differ) and collapsing whitespace, each hashed
/// with FNV-1a into one of [`DIMS`] counts; L2-normalised. A message
/// shorter than three characters is one gram; an empty one is all zeros.
#[must_use]
pub fn vector(text: &str) -> Vec<f32> {
    let chars = normalise(text);
    let mut v = vec![0.0_f32; DIMS];
    if chars.is_empty() {
        return v;
    }
    let mut buf = [0_u8; 4 * GRAM];
    for gram in chars.windows(GRAM.min(chars.len())) {
        let mut len = 0;
        for c in gram {
            len += c.encode_utf8(&mut buf[len..]).len();
        }
        let slot = fnv1a(&buf[..len]) % DIMS as u64;
        v[usize::try_from(slot).unwrap_or(0)] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in &mut v {
        *x /= norm;
    }
    v
}

/// Lowercased characters with digits folded to `0` and whitespace runs
/// collapsed to one space, trimmed.
fn normalise(text: &str) -> Vec<char> {
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_digit() {
            '0'
        } else if c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && out.last() == Some(&' ') {
            continue;
        }
        out.push(c);
    }
    out
}

/// 64-bit FNV-1a: stable across platforms and releases, unlike std's
/// hasher, so stored vectors stay comparable.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Cosine similarity of two vectors; 0 when either is all zeros or their
/// lengths differ (a vector of another shape is not comparable).
#[must_use]
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (dot, na, nb) = (dot(a, b), dot(a, a), dot(b, b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    f64::from(dot / (na.sqrt() * nb.sqrt()))
}

/// Lanes of the dot product: independent sums the compiler can keep in one
/// SIMD register, added in a fixed order, so the result is the same on
/// every run.
const LANES: usize = 8;

/// The dot product of two vectors of the same length.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0_f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for i in 0..LANES {
            lanes[i] += xa[i] * xb[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A past incident that qualified, with what ranks it.
struct Candidate<'a> {
    past: &'a PastIncident,
    likeness: Likeness,
    similarity: f64,
}

/// The tenant's past incidents most like `input`'s, best first.
#[must_use]
pub fn rank(input: &AnalysisInput) -> Vec<SimilarIncident> {
    let message = input.incident.message.as_deref().map(vector);
    let past: Vec<(&PastIncident, Option<Likeness>)> = input
        .past
        .iter()
        .filter(|p| p.id != input.incident.id)
        .map(|p| (p, likeness_by_facts(input, p)))
        .collect();
    let deepest = deepest_tier(&past);
    let mut candidates: Vec<Candidate<'_>> = past
        .into_iter()
        .filter_map(|(p, likeness)| candidate(message.as_deref(), p, likeness, deepest))
        .collect();
    if candidates.len() > LIMIT {
        candidates.select_nth_unstable_by(LIMIT - 1, order);
        candidates.truncate(LIMIT);
    }
    candidates.sort_unstable_by(order);
    candidates.into_iter().map(listed).collect()
}

/// How `past` is like `input` by its signature, vendor and category alone;
/// `None` leaves its message to decide.
fn likeness_by_facts(input: &AnalysisInput, past: &PastIncident) -> Option<Likeness> {
    if past.signature == input.incident.signature {
        Some(Likeness::SameSignature)
    } else if past.vendor.is_some()
        && past.vendor == input.incident.inputs.vendor
        // Both categories under the current rules, before any override.
        && past.category == input.rule.category
    {
        Some(Likeness::SameVendorAndCategory)
    } else {
        None
    }
}

/// The last tier that can still reach the list: when the better tiers
/// alone fill it, the others' vectors are never read, which keeps a large
/// history cheap (a vector is a kilobyte to read).
fn deepest_tier(past: &[(&PastIncident, Option<Likeness>)]) -> Likeness {
    let count = |tier: Likeness| past.iter().filter(|(_, l)| *l == Some(tier)).count();
    let same_signature = count(Likeness::SameSignature);
    if same_signature >= LIMIT {
        Likeness::SameSignature
    } else if same_signature + count(Likeness::SameVendorAndCategory) >= LIMIT {
        Likeness::SameVendorAndCategory
    } else {
        Likeness::SimilarMessage
    }
}

/// `past` as a candidate, or `None` when it is not alike or its tier cannot
/// reach the list.
fn candidate<'a>(
    message: Option<&[f32]>,
    past: &'a PastIncident,
    by_facts: Option<Likeness>,
    deepest: Likeness,
) -> Option<Candidate<'a>> {
    if by_facts.unwrap_or(Likeness::SimilarMessage) > deepest {
        return None;
    }
    let similarity = match (message, past.message.is_some()) {
        (Some(m), true) => round2(cosine(m, &past.vector)),
        _ => 0.0,
    };
    let likeness = match by_facts {
        Some(likeness) => likeness,
        None if similarity >= SIMILARITY_THRESHOLD => Likeness::SimilarMessage,
        None => return None,
    };
    Some(Candidate {
        past,
        likeness,
        similarity,
    })
}

/// Likeness, then similarity descending, then the newest first, then id.
fn order(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.likeness
        .cmp(&b.likeness)
        .then_with(|| b.similarity.total_cmp(&a.similarity))
        .then_with(|| b.past.first_seen.cmp(&a.past.first_seen))
        .then_with(|| a.past.id.cmp(&b.past.id))
}

/// A candidate as the decision lists it, with how it ended.
fn listed(c: Candidate<'_>) -> SimilarIncident {
    let p = c.past;
    SimilarIncident {
        incident_id: p.id,
        likeness: c.likeness,
        similarity: c.similarity,
        workflow_id: p.workflow_id.clone(),
        error_code: p.error_code.clone(),
        status: p.status.clone(),
        resolution: resolution(p),
        resolved_by: p.resolved_by.clone(),
        took_secs: p
            .resolved_at
            .map(|at| (at - p.first_seen).num_seconds().max(0)),
    }
}

/// `auto-resolved after N successes` (`after retry R and N successes` when
/// a retry preceded the recovery), `resolved by <name>`, or `still open`.
fn resolution(p: &PastIncident) -> String {
    if p.status != RESOLVED {
        return "still open".to_owned();
    }
    let after_retry = p
        .resolved_by_retry
        .map(|n| format!(" after retry {n}"))
        .unwrap_or_default();
    match (p.resolved_by.as_deref(), p.resolved_after_successes) {
        (Some(AUTO_RESOLVE), Some(n)) if after_retry.is_empty() => {
            format!("auto-resolved after {n} successes")
        }
        (Some(AUTO_RESOLVE), Some(n)) => format!("auto-resolved{after_retry} and {n} successes"),
        (Some(AUTO_RESOLVE), None) => format!("auto-resolved{after_retry}"),
        (Some(name), _) => format!("resolved by {name}"),
        (None, _) => "resolved".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auto_resolution_names_the_retry_that_preceded_it() {
        let mut p = PastIncident {
            id: uuid::Uuid::nil(),
            signature: "s".into(),
            workflow_id: "checkout".into(),
            error_code: "payment_timeout".into(),
            vendor: None,
            category: awfdrs_domain::decision::Category::Transient,
            message: None,
            vector: Vec::new(),
            status: RESOLVED.into(),
            first_seen: chrono::DateTime::UNIX_EPOCH,
            resolved_at: None,
            resolved_by: Some(AUTO_RESOLVE.into()),
            resolved_after_successes: Some(3),
            resolved_by_retry: None,
        };
        assert_eq!(resolution(&p), "auto-resolved after 3 successes");
        p.resolved_by_retry = Some(2);
        assert_eq!(
            resolution(&p),
            "auto-resolved after retry 2 and 3 successes"
        );
    }

    #[test]
    fn a_vector_is_unit_length_and_the_same_every_time() {
        let v = vector("Connection reset by peer after 30s");
        assert_eq!(v.len(), DIMS);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(v, vector("Connection reset by peer after 30s"));
    }

    #[test]
    fn an_empty_message_has_a_zero_vector_and_no_similarity() {
        let empty = vector("   ");
        assert!(empty.iter().all(|x| *x == 0.0));
        assert!(cosine(&empty, &vector("timeout")).abs() < f64::EPSILON);
    }

    #[test]
    fn case_digits_and_spacing_do_not_change_the_vector() {
        assert_eq!(
            vector("Timeout after 30s  calling  /v1/charges"),
            vector("timeout after 45s calling /v0/charges")
        );
    }

    #[test]
    fn close_messages_are_more_similar_than_unrelated_ones() {
        let a = vector("stripe: connection timed out while creating charge");
        let b = vector("stripe: connection timed out while capturing charge");
        let c = vector("invalid email address in field customer.email");
        assert!(cosine(&a, &b) > 0.7);
        assert!(cosine(&a, &c) < 0.3);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn vectors_of_different_lengths_are_not_compared() {
        assert!(cosine(&[1.0, 0.0], &[1.0]).abs() < f64::EPSILON);
    }

    #[test]
    fn a_short_message_is_one_gram() {
        assert_eq!(vector("ok"), vector("OK"));
        assert!(vector("ok").iter().any(|x| *x > 0.0));
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
