//! The configuration's cross-field and range checks.

use std::net::SocketAddr;

use crate::Config;

impl Config {
    /// Cross-field and range checks; every problem, each with its key path.
    pub(crate) fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, path: &str, reason: &str| {
            if !ok {
                errs.push((path.to_owned(), reason.to_owned()));
            }
        };
        check(
            awfdrs_domain::is_slug(&self.namespace) && !self.namespace.contains('-'),
            "namespace",
            "must match [a-z0-9][a-z0-9_]{0,62} (it becomes a subject token and a stream name prefix)",
        );
        check(
            self.database.url.starts_with("postgres://")
                || self.database.url.starts_with("postgresql://"),
            "database.url",
            "must be a postgres:// URL",
        );
        check(
            self.database.max_connections >= 1,
            "database.max_connections",
            "must be at least 1",
        );
        check(
            self.nats.url.contains("://") || !self.nats.url.is_empty(),
            "nats.url",
            "must not be empty",
        );
        check(
            (1..=5).contains(&self.nats.replicas),
            "nats.replicas",
            "must be between 1 and 5",
        );
        check(
            self.nats.publish_timeout_ms > 0,
            "nats.publish_timeout_ms",
            "must be positive",
        );
        check(
            self.http.addr.parse::<SocketAddr>().is_ok(),
            "http.addr",
            "must be a socket address such as 127.0.0.1:8080",
        );
        check(
            self.http.body_limit_bytes >= 1024,
            "http.body_limit_bytes",
            "must be at least 1024",
        );
        check(
            self.http.batch_body_limit_bytes >= self.http.body_limit_bytes,
            "http.batch_body_limit_bytes",
            "must be at least http.body_limit_bytes",
        );
        check(
            (1..=500).contains(&self.http.max_batch_items),
            "http.max_batch_items",
            "must be between 1 and 500",
        );
        check(
            (self.http.body_limit_bytes..=self.http.batch_body_limit_bytes)
                .contains(&self.http.webhook_batch_body_limit_bytes),
            "http.webhook_batch_body_limit_bytes",
            "must be between http.body_limit_bytes and http.batch_body_limit_bytes",
        );
        check(
            self.http.max_buffered_body_bytes >= self.http.batch_body_limit_bytes,
            "http.max_buffered_body_bytes",
            "must be at least http.batch_body_limit_bytes",
        );
        check(
            self.http.max_unauthenticated_bodies >= 1,
            "http.max_unauthenticated_bodies",
            "must be at least 1",
        );
        for (value, path) in [
            (
                self.http.header_read_timeout_ms,
                "http.header_read_timeout_ms",
            ),
            (self.http.body_read_timeout_ms, "http.body_read_timeout_ms"),
            (self.http.idle_timeout_ms, "http.idle_timeout_ms"),
        ] {
            check(value >= 10, path, "must be at least 10");
        }
        check(
            self.http.max_connections >= 1,
            "http.max_connections",
            "must be at least 1",
        );
        check(
            self.http.max_concurrent_requests >= 1,
            "http.max_concurrent_requests",
            "must be at least 1",
        );
        check(
            (4096..=1 << 20).contains(&self.http.max_header_bytes),
            "http.max_header_bytes",
            "must be between 4096 and 1048576",
        );
        check(
            (256..=65_534).contains(&self.http.max_uri_bytes),
            "http.max_uri_bytes",
            "must be between 256 and 65534",
        );
        check(
            (1..=1000).contains(&self.http.group_max),
            "http.group_max",
            "must be between 1 and 1000",
        );
        check(
            self.http.group_linger_us <= 100_000,
            "http.group_linger_us",
            "must be at most 100000 (0 turns group commit off)",
        );
        check(
            self.http.group_queue >= 1,
            "http.group_queue",
            "must be at least 1",
        );
        check(
            self.http.group_settlements >= 1,
            "http.group_settlements",
            "must be at least 1",
        );
        check(
            self.ingress.per_tenant_per_second >= 1,
            "ingress.per_tenant_per_second",
            "must be at least 1",
        );
        check(
            self.ingress.burst >= 1,
            "ingress.burst",
            "must be at least 1",
        );
        check(
            (1..=16).contains(&self.detector.consumers),
            "detector.consumers",
            "must be between 1 and 16",
        );
        check(
            (1..=8).contains(&self.detector.pipeline),
            "detector.pipeline",
            "must be between 1 and 8",
        );
        check(
            (1..=5000).contains(&self.detector.batch_size),
            "detector.batch_size",
            "must be between 1 and 5000",
        );
        check(
            self.detector.linger_ms <= 1000,
            "detector.linger_ms",
            "must be at most 1000",
        );
        check(
            (1..=10_000).contains(&self.scheduler.batch_size),
            "scheduler.batch_size",
            "must be between 1 and 10000",
        );
        check(
            self.scheduler.max_sleep_ms >= 10,
            "scheduler.max_sleep_ms",
            "must be at least 10",
        );
        check(
            (100..=300_000).contains(&self.scheduler.callback_timeout_ms),
            "scheduler.callback_timeout_ms",
            "must be between 100 and 300000",
        );
        check(
            (1..=10_000).contains(&self.notifications.batch_size),
            "notifications.batch_size",
            "must be between 1 and 10000",
        );
        check(
            (100..=300_000).contains(&self.notifications.timeout_ms),
            "notifications.timeout_ms",
            "must be between 100 and 300000",
        );
        check(
            self.notifications.escalate_after_ms >= 100,
            "notifications.escalate_after_ms",
            "must be at least 100",
        );
        check(
            self.notifications.group_wait_ms <= 600_000,
            "notifications.group_wait_ms",
            "must be at most 600000",
        );
        check(
            self.notifications.group_window_ms <= 86_400_000,
            "notifications.group_window_ms",
            "must be at most 86400000",
        );
        check(
            (1..=60_000).contains(&self.notifications.channel_rate_per_minute),
            "notifications.channel_rate_per_minute",
            "must be between 1 and 60000",
        );
        check(
            (1..=10_000).contains(&self.notifications.channel_burst),
            "notifications.channel_burst",
            "must be between 1 and 10000",
        );
        check(
            self.retention.sweep_ms >= 100,
            "retention.sweep_ms",
            "must be at least 100",
        );
        check(
            (1..=1_000_000).contains(&self.retention.batch),
            "retention.batch",
            "must be between 1 and 1000000",
        );
        check(
            (1..=60).contains(&self.retention.partitions_ahead_days),
            "retention.partitions_ahead_days",
            "must be between 1 and 60",
        );
        check(
            (1..=100).contains(&self.notifications.max_tries),
            "notifications.max_tries",
            "must be between 1 and 100",
        );
        check(
            (1..=100).contains(&self.scheduler.callback_max_tries),
            "scheduler.callback_max_tries",
            "must be between 1 and 100",
        );
        check(
            (1..=1000).contains(&self.coordinator.batch_size),
            "coordinator.batch_size",
            "must be between 1 and 1000",
        );
        check(
            self.coordinator.linger_ms <= 1000,
            "coordinator.linger_ms",
            "must be at most 1000",
        );
        check(
            self.coordinator.hold_check_ms >= 10,
            "coordinator.hold_check_ms",
            "must be at least 10",
        );
        check(
            self.coordinator.gauges_ms >= 100,
            "coordinator.gauges_ms",
            "must be at least 100",
        );
        check(
            self.analyzer.engine == "local",
            "analyzer.engine",
            "must be local (the only engine built in)",
        );
        check(
            (1..=1000).contains(&self.analyzer.batch_size),
            "analyzer.batch_size",
            "must be between 1 and 1000",
        );
        check(
            self.analyzer.linger_ms <= 1000,
            "analyzer.linger_ms",
            "must be at most 1000",
        );
        check(
            (1..=64).contains(&self.analyzer.concurrency),
            "analyzer.concurrency",
            "must be between 1 and 64",
        );
        check(
            self.analyzer.vendor_window_secs >= 1,
            "analyzer.vendor_window_secs",
            "must be at least 1",
        );
        check(
            (1..=10_000).contains(&self.analyzer.similar_candidates),
            "analyzer.similar_candidates",
            "must be between 1 and 10000",
        );
        check(
            self.analyzer.breaker_check_ms >= 10,
            "analyzer.breaker_check_ms",
            "must be at least 10",
        );
        check(
            self.outbox.sweep_ms >= 10,
            "outbox.sweep_ms",
            "must be at least 10",
        );
        check(
            self.consumer.max_deliver >= 2,
            "consumer.max_deliver",
            "must be at least 2",
        );
        check(
            self.consumer.ack_wait_secs >= 1,
            "consumer.ack_wait_secs",
            "must be at least 1",
        );
        check(
            self.consumer.max_ack_pending >= self.detector.batch_size as i64,
            "consumer.max_ack_pending",
            "must be at least detector.batch_size",
        );
        check(
            self.consumer.nak_base_ms <= self.consumer.nak_max_ms,
            "consumer.nak_base_ms",
            "must not exceed consumer.nak_max_ms",
        );
        check(
            self.telemetry.metrics_addr.parse::<SocketAddr>().is_ok(),
            "telemetry.metrics_addr",
            "must be a socket address",
        );
        check(!self.rules.dir.is_empty(), "rules.dir", "must not be empty");
        if let Err(problems) = self.secrets.keys() {
            errs.extend(problems);
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Env};

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn group_commit_settings_are_checked_together() {
        let errs = Config::load(
            None,
            &env(&[
                ("AWFDRS__HTTP__GROUP_MAX", "0"),
                ("AWFDRS__HTTP__GROUP_LINGER_US", "100001"),
                ("AWFDRS__HTTP__GROUP_QUEUE", "0"),
                ("AWFDRS__HTTP__GROUP_SETTLEMENTS", "0"),
            ]),
            &[],
        )
        .expect_err("invalid");
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "http.group_max",
                "http.group_linger_us",
                "http.group_queue",
                "http.group_settlements"
            ]
        );
    }

    #[test]
    fn the_analyzer_concurrency_is_between_one_and_sixty_four() {
        for bad in ["0", "65"] {
            let errs = Config::load(None, &env(&[("AWFDRS__ANALYZER__CONCURRENCY", bad)]), &[])
                .expect_err("invalid");
            let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["analyzer.concurrency"], "concurrency {bad}");
        }
        let c = Config::load(None, &env(&[("AWFDRS__ANALYZER__CONCURRENCY", "64")]), &[])
            .expect("valid");
        assert_eq!(c.analyzer.concurrency, 64);
    }

    #[test]
    fn the_detector_pipeline_is_between_one_and_eight_batches() {
        for bad in ["0", "9"] {
            let errs = Config::load(None, &env(&[("AWFDRS__DETECTOR__PIPELINE", bad)]), &[])
                .expect_err("invalid");
            let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["detector.pipeline"], "pipeline {bad}");
        }
        for good in ["1", "8"] {
            let c = Config::load(None, &env(&[("AWFDRS__DETECTOR__PIPELINE", good)]), &[])
                .expect("valid");
            assert_eq!(c.detector.pipeline.to_string(), good);
        }
    }
}
