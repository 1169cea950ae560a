//! Golden tests of `explain::render`: the text `awfdrs incidents explain`
//! prints, checked in under `tests/golden/`. Run with `UPDATE_GOLDEN=1` to
//! rewrite the files after an intended change, and review the diff.

mod common;

use std::path::PathBuf;

use awfdrs_analysis::{AnalysisInput, Analyst, LocalAnalyst, explain};

fn check(name: &str, input: &AnalysisInput) {
    let text = explain::render(&LocalAnalyst::new().analyze(input));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("golden file written");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert!(
        text == want,
        "{name}: explain output differs from {} (run with UPDATE_GOLDEN=1 after an intended change)\n{}",
        path.display(),
        first_difference(&want, &text)
    );
}

/// The first line where `want` and `got` differ, numbered.
fn first_difference(want: &str, got: &str) -> String {
    let (mut w, mut g) = (want.lines(), got.lines());
    for n in 1.. {
        match (w.next(), g.next()) {
            (None, None) => break,
            (a, b) if a == b => {}
            (a, b) => return format!("line {n}:\n  want {a:?}\n  got  {b:?}"),
        }
    }
    "the texts differ only in line endings".to_owned()
}

#[test]
fn explains_a_vendor_outage_with_its_history() {
    check("vendor_outage", &common::vendor_outage_with_history());
}

#[test]
fn explains_a_regression_with_releases() {
    check("regression", &common::regression());
}

#[test]
fn explains_throttling_with_its_overrides_and_retry() {
    let mut input = common::throttling();
    // The rule alone would not retry: the signals override it.
    input.rule.category = awfdrs_domain::decision::Category::Transient;
    check("throttling", &input);
}

#[test]
fn explains_bad_credentials() {
    check("bad_credentials", &common::bad_credentials());
}

#[test]
fn explains_a_data_problem() {
    check("data_problem", &common::data_problem());
}

#[test]
fn explains_noise() {
    check("noise", &common::noise_unexplained());
}

#[test]
fn the_text_names_every_part_of_the_decision() {
    let d = LocalAnalyst::new().analyze(&common::vendor_outage_with_history());
    let text = explain::render(&d);
    for needle in [
        "\"PAYMENT_TIMEOUT\" normalised to payment_timeout",
        "error_codes.yaml codes.payment_timeout",
        "awfdrs.yaml detector.reopen_window_secs",
        "Root cause: vendor_outage",
        "rejected",
        "Similar incidents",
        "auto-resolved after 3 successes in 420s",
        "resolved by ops-alice",
        "still open",
        "Recommendation",
        "hold",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
}
