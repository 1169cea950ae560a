//! `awfdrs demo` against `awfdrs up`: it passes with the shipped rules and
//! fails when the system does not do what the rules say.

use std::path::{Path, PathBuf};

use awfdrs_tests::{Served, World, cleanup, free_port};

use crate::{REPO, awfdrs, finish, report, text};

#[tokio::test]
async fn demo_passes_against_awfdrs_up_with_the_shipped_rules() {
    let world = World::new().await;
    // As scripts/run starts it.
    let up = Served::start(
        &world,
        &[
            ("AWFDRS__NOTIFICATIONS__ESCALATE_AFTER_MS", "5000"),
            ("AWFDRS__NOTIFICATIONS__MAX_TRIES", "3"),
        ],
    )
    .await;
    let out = awfdrs(&world, &up.addr, &["demo", "--url", &up.base]).await;
    assert!(
        out.status.success(),
        "the demo failed:\n{}",
        report(&out, &up)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 incidents with"), "{stdout}");
    assert!(stdout.contains("dead-lettered on"), "{stdout}");
    // Each incident explained: why grouped, the root cause, what to do.
    for heading in ["Why grouped", "Root cause", "Recommendation"] {
        assert_eq!(stdout.matches(heading).count(), 3, "{heading}:\n{stdout}");
    }
    // Then the remediation stories, each ended as it should.
    for story in [
        "(Standard Webhooks signature verified)",
        "a transient failure, retried and auto-resolved",
        "the retry is held while the breaker is open",
        // HALF_OPEN, or CLOSED when another tenant's held retry was the
        // half-open breaker's probe and closed it first.
        "released from hold: breaker ",
        "a permanent error, escalated",
        "(shadow): shadow mode: would retry",
        // And the notification stories.
        "a permanent error, escalated to level 1:",
        "webhook   oncall  level 1 <- incident.escalated of",
        "slack     team    level 1 <- text and 5 blocks, \"Incident escalated: checkout\"",
        "pagerduty pager   level 2 <- trigger, dedup_key",
        "s after level 1)",
        "webhook   primary level 1 answered 500 to each of 3 tries, all webhook-id notification:",
        "slack     backup  level 2 <- ",
        "FAILED    3 tries, last HTTP 500: HTTP 500 (gave up after 3 tries)",
        "saying why: every channel of level 1 failed to take it (fallback)",
        "DELIVERED 1 try, last HTTP 200",
        "-> 200, acknowledged by operator:",
        "acknowledged: level 2 not told of it",
        "notification queued, held for dns_failure's notify_after (60 s)",
        "notify   CANCELLED  level 1 webhook oncall: not sent: the incident resolved (by auto-resolve) within notify_after",
        "its channel was sent nothing",
    ] {
        assert!(stdout.contains(story), "{story}:\n{stdout}");
    }
    finish(world, up).await;
}

/// A copy of the shipped rules in which `code` needs `count` failures.
fn rules_with_open_after(code: &str, count: u32) -> PathBuf {
    let shipped = Path::new(REPO).join("config/rules");
    let dir = std::env::temp_dir().join(format!("awfdrs-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "error_codes.yaml",
        "retry_policies.yaml",
        "vendor_config.yaml",
    ] {
        std::fs::copy(shipped.join(f), dir.join(f)).unwrap();
    }
    let codes = std::fs::read_to_string(dir.join("error_codes.yaml")).unwrap();
    let head = format!("  {code}:");
    let mut out = Vec::new();
    let mut inside = false;
    for line in codes.lines() {
        if line == head {
            inside = true;
            out.push(line.to_owned());
            out.push(format!("    open_after: {{ count: {count}, within: 10m }}"));
            continue;
        }
        if inside && !line.starts_with("    ") {
            inside = false;
        }
        if !(inside && line.trim_start().starts_with("open_after:")) {
            out.push(line.to_owned());
        }
    }
    assert!(
        out.iter().any(|l| l == &head),
        "no {code} in the shipped rules"
    );
    std::fs::write(dir.join("error_codes.yaml"), out.join("\n") + "\n").unwrap();
    dir
}

#[tokio::test]
async fn demo_fails_when_the_system_does_not_do_what_the_rules_say() {
    // The running system holds vendor_5xx back far longer than the rules
    // the demo reads: the payout incident never opens, and the demo's
    // check must say so.
    let world = World::new().await;
    let stricter = rules_with_open_after("vendor_5xx", 50);
    let up = Served::start(
        &world,
        &[("AWFDRS__RULES__DIR", stricter.to_str().unwrap())],
    )
    .await;
    let out = awfdrs(
        &world,
        &up.addr,
        &["demo", "--url", &up.base, "--timeout", "5"],
    )
    .await;
    assert!(
        !out.status.success(),
        "the demo passed:\n{}",
        report(&out, &up)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("expected incidents") && stderr.contains("payouts/vendor_5xx: 3 events"),
        "{}",
        report(&out, &up)
    );
    finish(world, up).await;
    let _ = std::fs::remove_dir_all(stricter);

    // Nothing listening: it fails at once, saying what to start.
    let world = World::new().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}");
    let out = awfdrs(&world, &addr, &["demo", "--url", &url]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is `awfdrs up` running?"),
        "{}",
        text(&out.stderr)
    );
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}
