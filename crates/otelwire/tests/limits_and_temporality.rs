//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` and the count limits
//! of spans and log records (issue 16, section 3), checked on what the
//! collector received: the temporality of the points, the number of
//! attributes, events and links, and the dropped counts.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Link, Span as _, SpanContext, TraceFlags, TraceState, Tracer as _};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::SpanLimits;
use otelwire::{InitError, Signal};
use otelwire_test::{Collector, MetricKind, builder_for};

mod common;

const WAIT: Duration = Duration::from_secs(10);

/// The temporality of a counter, an up-down counter, a histogram and an
/// observable counter, as received.
fn temporalities(configure: impl FnOnce(otelwire::Builder) -> otelwire::Builder) -> [bool; 4] {
    let collector = Collector::start().unwrap();
    let telemetry = configure(builder_for(&collector).process_metrics(false))
        .build()
        .unwrap();
    let meter = telemetry.meter("temporality");
    meter.u64_counter("t.counter").build().add(1, &[]);
    meter.i64_up_down_counter("t.updown").build().add(1, &[]);
    meter.f64_histogram("t.histogram").build().record(1.0, &[]);
    let _observed = meter
        .u64_observable_counter("t.observed")
        .with_callback(|o| o.observe(1, &[]))
        .build();
    let cumulative = |name: &str| {
        let points = collector
            .wait_for_metric_blocking(name, |_| true, WAIT)
            .unwrap();
        match points[0].kind {
            MetricKind::Sum { cumulative, .. } | MetricKind::Histogram { cumulative } => cumulative,
            other => panic!("{name}: {other:?}"),
        }
    };
    let out = [
        cumulative("t.counter"),
        cumulative("t.updown"),
        cumulative("t.histogram"),
        cumulative("t.observed"),
    ];
    telemetry.shutdown_blocking();
    out
}

#[test]
fn temporality_preference_follows_the_otlp_exporter_table() {
    const VAR: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    // counter, up-down counter, histogram, observable counter: cumulative?
    assert_eq!(temporalities(|b| b), [true; 4]);
    assert_eq!(
        temporalities(|b| b.env_source(common::env(&[(VAR, "Delta")]))),
        [false, true, false, false]
    );
    assert_eq!(
        temporalities(|b| b.env_source(common::env(&[(VAR, "lowmemory")]))),
        [false, true, false, true]
    );
    // Code wins over the environment.
    assert_eq!(
        temporalities(|b| b
            .env_source(common::env(&[(VAR, "delta")]))
            .metrics_temporality(Temporality::Cumulative)),
        [true; 4]
    );
    assert_eq!(
        temporalities(|b| b.metrics_temporality(Temporality::Delta)),
        [false, true, false, false]
    );
    let err = otelwire::builder()
        .env_source(common::env(&[(VAR, "deltas")]))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, InitError::InvalidEnv { var, value, .. } if var == VAR && value == "deltas"),
        "{err}"
    );
}

/// One span with 10 attributes, 10 events of 10 attributes and 10 links of
/// 10 attributes, as received.
fn limited_span(
    configure: impl FnOnce(otelwire::Builder) -> otelwire::Builder,
) -> otelwire_test::Span {
    let collector = Collector::start().unwrap();
    let telemetry = configure(builder_for(&collector).metrics(false))
        .build()
        .unwrap();
    let attrs = |p: &str| {
        (0..10)
            .map(|i| KeyValue::new(format!("{p}{i}"), i as i64))
            .collect::<Vec<_>>()
    };
    let tracer = telemetry.tracer("limits");
    let links = (1..=10u128)
        .map(|i| {
            let cx = SpanContext::new(
                TraceId::from(i),
                SpanId::from(i as u64),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            );
            Link::new(cx, attrs("l"), 0)
        })
        .collect();
    let mut span = tracer
        .span_builder("limited")
        .with_attributes(attrs("a"))
        .with_links(links)
        .start(&tracer);
    for i in 0..10 {
        span.add_event(format!("e{i}"), attrs("e"));
    }
    span.end();
    let spans = collector
        .wait_for_spans_blocking(1, |s| s.name == "limited", WAIT)
        .unwrap();
    telemetry.shutdown_blocking();
    spans.into_iter().next().unwrap()
}

#[test]
fn span_count_limits_come_from_the_environment_or_code() {
    let s = limited_span(|b| b);
    assert_eq!(
        (s.attributes.len(), s.events.len(), s.links.len()),
        (10, 10, 10)
    );
    assert_eq!(s.dropped_attributes_count, 0);

    let s = limited_span(|b| {
        b.env_source(common::env(&[
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "4"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "5"),
            ("OTEL_SPAN_LINK_COUNT_LIMIT", "6"),
            ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "2"),
        ]))
    });
    assert_eq!(s.attributes.len(), 3);
    assert_eq!(s.dropped_attributes_count, 7);
    assert_eq!(s.events.len(), 5);
    assert_eq!(s.dropped_events_count, 5);
    assert_eq!(s.links.len(), 6);
    assert_eq!(s.dropped_links_count, 4);
    // The generic limit applies where no specific one is set.
    assert!(
        s.events.iter().all(|e| e.attributes.len() == 4),
        "{:?}",
        s.events
    );
    assert!(
        s.links.iter().all(|l| l.attributes.len() == 2),
        "{:?}",
        s.links
    );

    // Code replaces all of them.
    let s = limited_span(|b| {
        b.env_source(common::env(&[("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")]))
            .span_limits(SpanLimits {
                max_attributes_per_span: 8,
                max_events_per_span: 1,
                ..SpanLimits::default()
            })
    });
    assert_eq!((s.attributes.len(), s.events.len()), (8, 1));

    for var in ["OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"] {
        let err = otelwire::builder()
            .env_source(common::env(&[(var, "-1")]))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, InitError::InvalidEnv { var: v, value, .. } if v == var && value == "-1"),
            "{err}"
        );
    }
}

#[test]
fn log_records_keep_at_most_the_attribute_count_limit() {
    let collector = Collector::start().unwrap();
    let records = |configure: fn(otelwire::Builder) -> otelwire::Builder, body: &str| {
        let telemetry = configure(builder_for(&collector).metrics(false))
            .build()
            .unwrap();
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            tracing::info!(a0 = 0, a1 = 1, a2 = 2, a3 = 3, a4 = 4, a5 = 5, "{body}");
        });
        let report = telemetry.shutdown_blocking();
        assert_eq!(report.signal(Signal::Logs).dropped, 0, "{report}");
        let logs = collector.logs_with_body(body);
        assert_eq!(logs.len(), 1, "{logs:?}");
        logs[0]
            .attributes
            .iter()
            .filter(|(k, _)| k.starts_with('a'))
            .count()
    };
    assert_eq!(records(|b| b, "unlimited"), 6);
    assert_eq!(
        records(
            |b| b.env_source(common::env(&[(
                "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
                "3"
            )])),
            "env limited"
        ),
        3
    );
    assert_eq!(
        records(
            |b| b
                .env_source(common::env(&[("OTEL_ATTRIBUTE_COUNT_LIMIT", "3")]))
                .log_attribute_count_limit(2),
            "code limited"
        ),
        2
    );
}
