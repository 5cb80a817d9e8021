//! The health-checker's metrics. The names, units and attributes are an
//! interface: the stack's alert rules and dashboards use them.

use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

use crate::CheckResult;

/// Histogram of check durations, unit `s`, by `check.name` and
/// `check.status` (Prometheus: `health_check_duration_seconds`).
pub const CHECK_DURATION: &str = "health.check.duration";
/// Gauge per check, 1 healthy and 0 not, by `check.name` (Prometheus:
/// `health_check_status`).
pub const CHECK_STATUS: &str = "health.check.status";
/// Counter of check runs by `check.name` and `check.status` (Prometheus:
/// `health_checks_total`).
pub const CHECKS: &str = "health.checks";
/// Gauge of the [health score](crate::health_score), 0 to 100 (Prometheus:
/// `health_score`).
pub const SCORE: &str = "health.score";

#[derive(Debug, Clone)]
pub(crate) struct Instruments {
    duration: Histogram<f64>,
    status: Gauge<i64>,
    checks: Counter<u64>,
    score: Gauge<f64>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        // No unit on the gauges: the Prometheus exporter would append one
        // to their names (`_ratio` for "1").
        Instruments {
            duration: meter
                .f64_histogram(CHECK_DURATION)
                .with_unit("s")
                .with_description("Duration of health checks.")
                .with_boundaries(otelwire::http::DURATION_BUCKETS.to_vec())
                .build(),
            status: meter
                .i64_gauge(CHECK_STATUS)
                .with_description("Last status of each health check: 1 healthy, 0 not.")
                .build(),
            checks: meter
                .u64_counter(CHECKS)
                .with_unit("{check}")
                .with_description("Health checks run, by outcome.")
                .build(),
            score: meter
                .f64_gauge(SCORE)
                .with_description("Overall health score, 0 to 100.")
                .build(),
        }
    }

    pub(crate) fn check(&self, result: &CheckResult) {
        let name = KeyValue::new("check.name", result.name.clone());
        let by_outcome = [
            name.clone(),
            KeyValue::new("check.status", result.status.as_str()),
        ];
        self.duration
            .record(result.duration.as_secs_f64(), &by_outcome);
        self.checks.add(1, &by_outcome);
        self.status
            .record(i64::from(result.status.is_healthy()), &[name]);
    }

    pub(crate) fn score(&self, score: f64) {
        self.score.record(score, &[]);
    }
}
