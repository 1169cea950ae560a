//! The detector's feed against real KV: only the vendor's faults count, one
//! noisy tenant cannot open a vendor's breaker, thousands of events cost one
//! compare-and-set, and nothing observed is lost at shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use awfdrs_guard::{BreakerFeed, BreakerState, FeedSettings};
use common::World;
use tokio_util::sync::CancellationToken;

const STORM: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_one_tenants_auth_errors_leaves_the_vendor_closed() {
    let w = World::new().await;
    let feed = BreakerFeed::new(w.breakers("w1").await, FeedSettings::default());
    let rules = w.rules.current();
    let auth = rules.error_code("auth_failed");
    for _ in 0..STORM {
        assert!(!feed.observe_failure("stripe", auth, "tenant-a"));
    }
    // Thousands of the vendor's own faults, but all through one tenant.
    let outage = rules.error_code("vendor_5xx");
    for _ in 0..STORM {
        assert!(feed.observe_failure("stripe", outage, "tenant-a"));
    }
    let report = feed.flush().await;
    assert_eq!((report.merged, report.transitions), (1, 0));
    let view = w.breakers("check").await.fetch("stripe").await.unwrap();
    assert_eq!(view.state, BreakerState::Closed);
    assert_eq!(
        view.failures, STORM as u64,
        "auth errors are not the vendor's"
    );
    assert_eq!(view.distinct_sources, 1);
    assert!(w.transitions("stripe").await.is_empty());
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_storm_through_three_tenants_opens_the_vendor_once() {
    let w = World::new().await;
    let feed = BreakerFeed::new(w.breakers("w1").await, FeedSettings::default());
    let outage = w.rules.current().error_code("vendor_5xx").clone();
    for i in 0..STORM {
        feed.observe_failure("stripe", &outage, &format!("tenant-{}", i % 3));
    }
    let report = feed.flush().await;
    assert_eq!(report.transitions, 1);
    let rows = w.transitions("stripe").await;
    assert_eq!(rows.len(), 1);
    let (from, to, actor, reason) = &rows[0];
    assert_eq!(
        (from.as_str(), to.as_str(), actor.as_str()),
        ("CLOSED", "OPEN", "feed:w1")
    );
    assert!(reason.contains("from 3 sources"), "{reason}");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_observations_cost_one_compare_and_set_per_vendor() {
    let w = World::new().await;
    let breakers = w.breakers("w1").await;
    let feed = BreakerFeed::new(breakers.clone(), FeedSettings::default());
    feed.observe_success("twilio", "tenant-a");
    feed.flush().await;
    let before = breakers.fetch("twilio").await.unwrap().revision;
    for i in 0..10_000 {
        feed.observe("twilio", i % 10 != 0, &format!("tenant-{}", i % 7));
    }
    feed.flush().await;
    let after = breakers.fetch("twilio").await.unwrap();
    assert_eq!(
        after.revision,
        before + 1,
        "one write for 10,000 observations"
    );
    assert_eq!((after.calls, after.failures), (10_001, 1_000));
    assert_eq!(after.distinct_sources, 7);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_observed_is_merged_at_shutdown() {
    let w = World::new().await;
    let breakers = w.breakers("w1").await;
    let settings = FeedSettings {
        flush_interval: Duration::from_secs(3600),
        ..FeedSettings::default()
    };
    let feed = BreakerFeed::new(breakers.clone(), settings);
    let shutdown = CancellationToken::new();
    let task = feed.spawn(shutdown.clone());
    for _ in 0..25 {
        feed.observe_success("sendgrid", "tenant-a");
    }
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(breakers.fetch("sendgrid").await.unwrap().calls, 25);
    w.finish().await;
}
