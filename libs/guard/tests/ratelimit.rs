//! GCRA in KV under concurrency: however many workers ask at once, a key
//! never admits more than its rate times the elapsed time plus its burst.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use awfdrs_guard::{Decision, RateKey, RateLimits};
use awfdrs_safety::RateLimit;
use common::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_in_kv_never_admits_more_than_rate_plus_burst_under_concurrency() {
    let w = World::new().await;
    // Two limiters stand for two workers; each runs four tasks.
    let workers = [
        RateLimits::open(&w.bus, Arc::clone(&w.metrics))
            .await
            .unwrap(),
        RateLimits::open(&w.bus, Arc::clone(&w.metrics))
            .await
            .unwrap(),
    ];
    let limit = RateLimit {
        retries_per_second: 5.0,
        burst: 10,
    };
    let key = RateKey::Tenant("acme".into());
    let run_for = Duration::from_secs(2);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (limits, key) = (workers[i % 2].clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let (mut allowed, mut denied) = (0_u64, 0_u64);
            while start.elapsed() < run_for {
                match limits.check(&key, &limit).await.unwrap() {
                    Decision::Allow { .. } => allowed += 1,
                    Decision::Deny { retry_after } => {
                        assert!(retry_after <= Duration::from_millis(200));
                        denied += 1;
                    }
                }
            }
            (allowed, denied)
        }));
    }
    let (mut allowed, mut denied) = (0, 0);
    for t in tasks {
        let (a, d) = t.await.unwrap();
        allowed += a;
        denied += d;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Timestamps are whole milliseconds: allow the rounding of both ends.
    let bound = 5.0 * (elapsed + 0.002) + 10.0;
    println!(
        "admitted {allowed} of {} in {elapsed:.3}s (bound {bound:.1})",
        allowed + denied
    );
    assert!(
        (allowed as f64) <= bound,
        "{allowed} admitted, bound {bound:.1}"
    );
    assert!(allowed >= 10, "the burst goes through at once: {allowed}");
    assert!(denied > 0);

    // The vendor's limit is a separate count: its burst is still there.
    // (A slow rate, so the test's own pace cannot refill it.)
    let slow = RateLimit {
        retries_per_second: 0.1,
        burst: 10,
    };
    let vendor = RateKey::Vendor("acme".into());
    for _ in 0..10 {
        assert!(workers[0].check(&vendor, &slow).await.unwrap().is_allowed());
    }
    assert!(!workers[1].check(&vendor, &slow).await.unwrap().is_allowed());
    w.finish().await;
}
