//! Ranking of similar past incidents in a history of 100,000: the planted
//! incidents come first, in order, wherever they sit in the history. No
//! timing is asserted; the ranking computes one dot product per incident.

mod common;

use awfdrs_analysis::PastIncident;
use awfdrs_analysis::similar;
use awfdrs_domain::decision::Category;

const MESSAGE: &str = "stripe: upstream connect error or disconnect/reset before headers";

#[test]
fn a_history_of_100000_incidents_ranks_the_planted_ones_first() {
    let mut rng = common::Seeded(0x5EED);
    let words = [
        "invoice",
        "pdf",
        "render",
        "font",
        "missing",
        "queue",
        "backlog",
        "disk",
        "quota",
        "exceeded",
        "webhook",
        "signature",
        "mismatch",
        "schema",
        "field",
        "unknown",
        "csv",
        "column",
        "encoding",
        "latin1",
    ];
    let vendors = ["docraptor", "twilio", "sendgrid", "hubspot", "shippo"];
    let mut past: Vec<PastIncident> = (0..100_000_u128)
        .map(|i| {
            let message = (0..6)
                .map(|_| rng.one_of(&words))
                .collect::<Vec<_>>()
                .join(" ");
            let minutes = i64::try_from(rng.next() % 500_000).expect("small");
            common::past(
                0x100_0000 + i,
                &format!("acme:wf{}:code{}", i % 97, i % 13),
                "code",
                Some(rng.one_of(&vendors)),
                Category::Transient,
                &message,
                common::t(-minutes),
            )
        })
        .collect();
    let mut input = common::vendor_outage();
    input.incident.message = Some(MESSAGE.to_owned());
    let sig = input.incident.signature.clone();
    let planted = [
        (
            7_777,
            common::past(
                0xA1,
                &sig,
                "payment_timeout",
                Some("stripe"),
                Category::Transient,
                "card network timeout",
                common::t(-90_000),
            ),
        ),
        (
            50_001,
            common::past(
                0xA2,
                "acme:invoicing:gateway_timeout",
                "gateway_timeout",
                Some("stripe"),
                Category::Transient,
                "stripe: gateway timeout",
                common::t(-3),
            ),
        ),
        (
            99_998,
            common::past(
                0xA3,
                "acme:refunds:upstream",
                "upstream",
                Some("stripe"),
                Category::Transient,
                MESSAGE,
                common::t(-800_000),
            ),
        ),
        (
            3,
            common::past(
                0xA4,
                "acme:payouts:reset",
                "reset",
                Some("adyen"),
                Category::Transient,
                MESSAGE,
                common::t(-10),
            ),
        ),
        (
            64_000,
            common::past(
                0xA5,
                "acme:payouts:reset2",
                "reset",
                Some("adyen"),
                Category::Transient,
                "adyen: upstream connect error or disconnect/reset before headers",
                common::t(-20),
            ),
        ),
        (
            12,
            common::past(
                0xA6,
                "acme:payouts:reset3",
                "reset",
                Some("adyen"),
                Category::Transient,
                "upstream connect error",
                common::t(-30),
            ),
        ),
    ];
    for (at, p) in planted {
        past.insert(at, p);
    }
    input.past = past;
    let ranked = similar::rank(&input);
    assert_eq!(
        ranked.iter().map(|s| s.incident_id).collect::<Vec<_>>(),
        [0xA1, 0xA3, 0xA2, 0xA4, 0xA5].map(common::id),
        "{ranked:#?}"
    );
}
