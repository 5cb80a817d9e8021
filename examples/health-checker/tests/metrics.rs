//! The metrics arrive at a collector with the documented names, units and
//! attributes: the stack's alert rules and dashboards depend on them.

mod common;

use std::time::Duration;

use common::{WAIT, closed_address, pipeline};
use health_checker::{CheckConfig, Config};
use otelwire_test::{Collector, MetricKind, MetricPoint, PointValue};

fn attribute_names(p: &MetricPoint) -> Vec<&str> {
    let mut names: Vec<&str> = p.attributes.iter().map(|(k, _)| k).collect();
    names.sort();
    names
}

#[tokio::test]
async fn metrics_arrive_with_the_documented_names_and_attributes() {
    let collector = Collector::start().unwrap();
    let telemetry = pipeline(&collector);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hour = Duration::from_secs(3600);
    let config = Config {
        checks: vec![
            CheckConfig::tcp("up", listener.local_addr().unwrap().to_string())
                .critical(true)
                .interval(hour),
            CheckConfig::tcp("down", closed_address()).interval(hour),
        ],
    };
    let handle = health_checker::spawn(&telemetry, config);
    let run = handle.run_now().await.unwrap();
    assert_eq!(run.score, 66.67);

    let check = |name: &'static str| {
        move |p: &MetricPoint| p.attributes.get_str("check.name") == Some(name)
    };

    // health.check.status: a gauge per check, 1 healthy and 0 not.
    for (name, value) in [("up", 1.0), ("down", 0.0)] {
        let p = collector
            .wait_for_metric("health.check.status", check(name), WAIT)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(p.kind, MetricKind::Gauge);
        assert_eq!(p.as_f64(), Some(value), "{name}");
        assert_eq!(attribute_names(&p), ["check.name"]);
        assert_eq!(p.unit, "");
        assert_eq!(p.resource.get_str("service.name"), Some("health-checker"));
    }

    // health.checks: a counter by check and outcome.
    let p = collector
        .wait_for_metric("health.checks", check("down"), WAIT)
        .await
        .unwrap()
        .remove(0);
    assert!(
        matches!(
            p.kind,
            MetricKind::Sum {
                monotonic: true,
                ..
            }
        ),
        "{:?}",
        p.kind
    );
    assert_eq!(attribute_names(&p), ["check.name", "check.status"]);
    assert_eq!(p.attributes.get_str("check.status"), Some("unhealthy"));
    assert!(p.as_f64().unwrap() >= 1.0, "{p:?}");

    // health.check.duration: a histogram in seconds by check and outcome.
    let p = collector
        .wait_for_metric("health.check.duration", check("up"), WAIT)
        .await
        .unwrap()
        .remove(0);
    assert!(
        matches!(p.kind, MetricKind::Histogram { .. }),
        "{:?}",
        p.kind
    );
    assert_eq!(p.unit, "s");
    assert_eq!(attribute_names(&p), ["check.name", "check.status"]);
    assert_eq!(p.attributes.get_str("check.status"), Some("healthy"));
    match &p.value {
        PointValue::Histogram { count, sum, .. } => {
            assert!(*count >= 1);
            assert!(
                sum.unwrap() < 1.0,
                "a local connect takes well under a second"
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }

    // health.score: one gauge, 0 to 100.
    let p = collector
        .wait_for_metric("health.score", |_| true, WAIT)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(p.kind, MetricKind::Gauge);
    assert_eq!(p.as_f64(), Some(66.67));
    assert!(p.attributes.is_empty());
    handle.stop().await;
}
