//! Ranking of similar past incidents on seeded histories: same signature
//! first, then same vendor and category, then similar messages; ties by
//! similarity, then the newest, then id; at most five.

mod common;

use awfdrs_analysis::similar::{self, LIMIT, SIMILARITY_THRESHOLD};
use awfdrs_analysis::{AnalysisInput, PastIncident};
use awfdrs_domain::decision::{Category, Likeness, SimilarIncident, round2};
use uuid::Uuid;

const MESSAGE: &str = "stripe: upstream connect error or disconnect/reset before headers";

/// The incident whose history is ranked: a transient stripe failure.
fn incident() -> AnalysisInput {
    let mut input = common::vendor_outage();
    input.incident.message = Some(MESSAGE.to_owned());
    input
}

fn ids(list: &[SimilarIncident]) -> Vec<Uuid> {
    list.iter().map(|s| s.incident_id).collect()
}

#[test]
fn the_seeded_history_ranks_signature_then_vendor_and_category_then_message() {
    let mut input = incident();
    let sig = input.incident.signature.clone();
    let mut same_message_same_time_a = common::past(
        0x31,
        "acme:payouts:reset",
        "reset",
        Some("adyen"),
        Category::Transient,
        MESSAGE,
        common::t(-300),
    );
    same_message_same_time_a.status = "NEW".to_owned();
    let same_message_same_time_b = common::past(
        0x30,
        "acme:refunds:reset",
        "reset",
        Some("adyen"),
        Category::Transient,
        MESSAGE,
        common::t(-300),
    );
    input.past = vec![
        // Unrelated: another vendor, another category, another message.
        common::past(
            0x40,
            "acme:crm:validation_error",
            "validation_error",
            Some("hubspot"),
            Category::Validation,
            "Property \"email\" is invalid",
            common::t(-10),
        ),
        // Same vendor, another category: not listed for that.
        common::past(
            0x41,
            "acme:checkout:card_declined",
            "card_declined",
            Some("stripe"),
            Category::Permanent,
            "Your card was declined.",
            common::t(-20),
        ),
        same_message_same_time_a,
        same_message_same_time_b,
        common::past(
            0x20,
            "acme:invoicing:gateway_timeout",
            "gateway_timeout",
            Some("stripe"),
            Category::Transient,
            "stripe: gateway timeout",
            common::t(-900),
        ),
        common::past(
            0x10,
            &sig,
            "payment_timeout",
            Some("stripe"),
            Category::Transient,
            "a different message entirely",
            common::t(-100),
        ),
        common::past(
            0x11,
            &sig,
            "payment_timeout",
            Some("stripe"),
            Category::Transient,
            MESSAGE,
            common::t(-5_000),
        ),
        // This incident itself, should the store list it: never similar to itself.
        common::past(
            0x1_0001,
            &sig,
            "payment_timeout",
            Some("stripe"),
            Category::Transient,
            MESSAGE,
            common::t(0),
        ),
    ];
    let ranked = similar::rank(&input);
    assert_eq!(
        ids(&ranked),
        [0x11, 0x10, 0x20, 0x30, 0x31].map(common::id),
        "{ranked:#?}"
    );
    assert_eq!(
        ranked.iter().map(|s| s.likeness).collect::<Vec<_>>(),
        [
            Likeness::SameSignature,
            Likeness::SameSignature,
            Likeness::SameVendorAndCategory,
            Likeness::SimilarMessage,
            Likeness::SimilarMessage,
        ]
    );
    assert!((ranked[0].similarity - 1.0).abs() < f64::EPSILON);
    assert!(ranked[1].similarity < 0.5);
    assert_eq!(ranked[3].status, "RESOLVED");
    assert_eq!(ranked[4].resolution, "still open");
    assert_eq!(ranked[4].took_secs, Some(420));
    assert_eq!(ranked[0].resolution, "auto-resolved after 3 successes");
}

#[test]
fn a_message_below_the_threshold_is_not_listed_for_its_message_alone() {
    let mut input = incident();
    input.past = vec![common::past(
        0x50,
        "acme:other:thing",
        "thing",
        Some("adyen"),
        Category::Transient,
        "stripe: error",
        common::t(-1),
    )];
    let sim = round2(similar::cosine(
        &similar::vector(MESSAGE),
        &input.past[0].vector,
    ));
    assert!(sim > 0.0 && sim < SIMILARITY_THRESHOLD, "{sim}");
    assert!(similar::rank(&input).is_empty());
}

#[test]
fn an_incident_without_a_message_still_finds_its_signature() {
    let mut input = incident();
    input.incident.message = None;
    let sig = input.incident.signature.clone();
    input.past = vec![
        common::past(
            0x60,
            &sig,
            "payment_timeout",
            Some("stripe"),
            Category::Transient,
            MESSAGE,
            common::t(-1),
        ),
        common::past(
            0x61,
            "acme:x:y",
            "y",
            Some("adyen"),
            Category::Transient,
            MESSAGE,
            common::t(-1),
        ),
    ];
    let ranked = similar::rank(&input);
    assert_eq!(ids(&ranked), [common::id(0x60)]);
    assert!(ranked[0].similarity.abs() < f64::EPSILON);
}

/// The ranking by its definition: every candidate scored, all sorted.
fn reference(input: &AnalysisInput) -> Vec<Uuid> {
    let message = similar::vector(input.incident.message.as_deref().unwrap_or(""));
    let mut scored: Vec<(Likeness, f64, &PastIncident)> = input
        .past
        .iter()
        .filter(|p| p.id != input.incident.id)
        .filter_map(|p| {
            let sim = round2(similar::cosine(&message, &p.vector));
            let likeness = if p.signature == input.incident.signature {
                Likeness::SameSignature
            } else if p.vendor.is_some()
                && p.vendor == input.incident.inputs.vendor
                && p.category == input.rule.category
            {
                Likeness::SameVendorAndCategory
            } else if sim >= SIMILARITY_THRESHOLD {
                Likeness::SimilarMessage
            } else {
                return None;
            };
            Some((likeness, sim, p))
        })
        .collect();
    scored.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.total_cmp(&a.1))
            .then(b.2.first_seen.cmp(&a.2.first_seen))
            .then(a.2.id.cmp(&b.2.id))
    });
    scored.iter().take(LIMIT).map(|s| s.2.id).collect()
}

/// A history drawn from few messages, vendors, signatures and times, so
/// that ties are everywhere.
fn crowded_history(seed: u64, n: u128, signatures: &[&str], vendors: &[&str]) -> Vec<PastIncident> {
    let mut rng = common::Seeded(seed);
    let messages = [
        MESSAGE,
        "stripe: upstream connect error",
        "upstream connect error or disconnect/reset before headers",
        "gateway timeout",
        "card declined",
    ];
    let categories = [Category::Transient, Category::Permanent];
    (0..n)
        .map(|i| {
            let minutes = i64::try_from(rng.next() % 4).expect("small");
            common::past(
                0x9_0000 + i,
                rng.one_of(signatures),
                "code",
                Some(rng.one_of(vendors)),
                rng.one_of(&categories),
                rng.one_of(&messages),
                common::t(-minutes),
            )
        })
        .collect()
}

#[test]
fn the_ranking_equals_sorting_every_candidate_on_histories_full_of_ties() {
    let sig = incident().incident.signature;
    for seed in [1, 7, 42, 1_000_003] {
        let mut input = incident();
        input.past = crowded_history(
            seed,
            2_000,
            &[&sig, "acme:a:b", "acme:c:d"],
            &["stripe", "adyen", "braintree"],
        );
        assert_eq!(
            ids(&similar::rank(&input)),
            reference(&input),
            "seed {seed}"
        );
        input.past.reverse();
        assert_eq!(
            ids(&similar::rank(&input)),
            reference(&input),
            "seed {seed} reversed"
        );
    }
}

#[test]
fn the_ranking_equals_sorting_every_candidate_whichever_tiers_fill_the_list() {
    let sig = incident().incident.signature;
    // Same signature and same vendor-and-category incidents planted in a
    // crowd that is alike by message only, so that each tier in turn is the
    // last one that reaches the list.
    for (same_signature, same_vendor) in [(0, 0), (2, 0), (2, 2), (3, 4), (6, 1), (0, 9)] {
        let mut input = incident();
        let mut past = crowded_history(
            99,
            1_000,
            &["acme:a:b", "acme:c:d"],
            &["adyen", "braintree"],
        );
        for n in 0..same_signature {
            past.insert(
                n * 97,
                common::past(
                    0xA_0000 + n as u128,
                    &sig,
                    "payment_timeout",
                    Some("adyen"),
                    Category::Permanent,
                    "gateway timeout",
                    common::t(-1),
                ),
            );
        }
        for n in 0..same_vendor {
            past.insert(
                n * 89,
                common::past(
                    0xB_0000 + n as u128,
                    "acme:x:y",
                    "y",
                    Some("stripe"),
                    Category::Transient,
                    "card declined",
                    common::t(-2),
                ),
            );
        }
        input.past = past;
        let ranked = similar::rank(&input);
        assert_eq!(
            ids(&ranked),
            reference(&input),
            "{same_signature} + {same_vendor}"
        );
        assert_eq!(ranked.len(), LIMIT);
    }
}
