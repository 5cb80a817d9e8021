//! Each kind of check against real targets, as the spans, log records and
//! results a user would see.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use common::{WAIT, closed_address, pipeline, serve};
use health_checker::{CheckConfig, CheckKind, CheckStatus, Config};
use otelwire_test::{Collector, SpanKind, StatusCode};

const HOUR: Duration = Duration::from_secs(3600);
const SLOW_TIMEOUT: Duration = Duration::from_millis(300);
/// How much later than its timeout a timed-out check may be reported.
const MARGIN: Duration = Duration::from_millis(250);

#[tokio::test]
async fn every_kind_of_check_reports_its_status_as_a_span() {
    let collector = Collector::start().unwrap();
    let telemetry = pipeline(&collector);

    // The checked service records the trace context it is sent.
    let traceparents = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = traceparents.clone();
    let target = serve(
        axum::Router::new()
            .route(
                "/ok",
                get(move |headers: axum::http::HeaderMap| {
                    let seen = seen.clone();
                    async move {
                        if let Some(tp) = headers.get("traceparent") {
                            seen.lock().unwrap().push(tp.to_str().unwrap().to_owned());
                        }
                        "ok"
                    }
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            ),
    )
    .await;
    let tmp = std::env::temp_dir();
    let missing_db = tmp.join(format!("health-checker-test-{}.db", std::process::id()));
    let checks = vec![
        CheckConfig::http("api", target.url("/ok")).critical(true),
        CheckConfig::http("slow", target.url("/slow")).timeout(SLOW_TIMEOUT),
        CheckConfig::tcp("closed", closed_address()),
        CheckConfig::database("memory-db", "sqlite::memory:"),
        CheckConfig::database("missing-db", format!("sqlite://{}", missing_db.display()))
            .critical(true),
        CheckConfig::disk("tmp-disk", &tmp, 0.0),
        CheckConfig::new(
            "full-disk",
            CheckKind::Disk {
                path: tmp.clone(),
                min_free_mb: Some(u64::MAX / 2),
                min_free_percent: None,
            },
        ),
        CheckConfig::disk("no-disk", tmp.join("no/such/dir"), 1.0),
    ]
    .into_iter()
    .map(|c| c.interval(HOUR))
    .collect();
    let config = Config { checks };
    config.validate().unwrap();

    let handle = health_checker::spawn(&telemetry, config);
    let run = handle.run_now().await.expect("a run");

    let status = |name: &str| {
        run.results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no result for {name}: {run:?}"))
    };
    let expected = [
        ("api", CheckStatus::Healthy),
        ("slow", CheckStatus::Timeout),
        ("closed", CheckStatus::Unhealthy),
        ("memory-db", CheckStatus::Healthy),
        ("missing-db", CheckStatus::Unhealthy),
        ("tmp-disk", CheckStatus::Healthy),
        ("full-disk", CheckStatus::Unhealthy),
        ("no-disk", CheckStatus::Error),
    ];
    for (name, want) in expected {
        assert_eq!(status(name).status, want, "{name}: {:?}", status(name));
    }
    assert!(
        !missing_db.exists(),
        "a database check never creates the file"
    );
    let slow = status("slow");
    assert!(
        slow.duration >= SLOW_TIMEOUT && slow.duration < SLOW_TIMEOUT + MARGIN,
        "timed out after {:?}",
        slow.duration
    );
    assert!(
        status("closed").detail.contains("cannot connect"),
        "{:?}",
        status("closed")
    );
    // Weights: api 2, slow 1, closed 1, memory-db 1, missing-db 2, disks 1 each = 10;
    // scored: 2 + 0.3 + 0 + 1 + 0 + 1 + 0 + 0.3 = 4.6.
    assert_eq!(run.score, 46.0);

    // The run span and one child span per check, all in the run's trace.
    let id = run.execution_id.as_str();
    let of_run = |s: &otelwire_test::Span| s.attributes.get_str("execution.id") == Some(id);
    let spans = collector
        .wait_for_spans(9, of_run, WAIT)
        .await
        .expect("the run's spans arrive");
    let root = spans
        .iter()
        .find(|s| s.name == "health_check.run")
        .expect("a run span");
    assert_eq!(Some(root.trace_id.as_str()), run.trace_id.as_deref());
    assert_eq!(root.attributes.get_i64("checks.total"), Some(8));
    assert_eq!(root.attributes.get_i64("checks.failed"), Some(5));
    assert_eq!(root.attributes.get_f64("health.score"), Some(46.0));
    assert_eq!(
        root.status.code,
        StatusCode::Error,
        "a critical check failed"
    );
    for (name, want) in expected {
        let span = spans
            .iter()
            .find(|s| s.attributes.get_str("check.name") == Some(name))
            .unwrap_or_else(|| panic!("no span for {name}"));
        assert_eq!(span.name, format!("health_check {name}"));
        assert_eq!(span.parent_span_id.as_deref(), Some(root.span_id.as_str()));
        assert_eq!(span.trace_id, root.trace_id);
        assert_eq!(span.attributes.get_str("check.status"), Some(want.as_str()));
        let critical = matches!(name, "api" | "missing-db");
        assert_eq!(
            span.attributes.get_bool("check.critical"),
            Some(critical),
            "{name}"
        );
        let error = want != CheckStatus::Healthy;
        assert_eq!(
            span.status.code == StatusCode::Error,
            error,
            "{name}: {:?}",
            span.status
        );
    }
    let slow_span = spans
        .iter()
        .find(|s| s.attributes.get_str("check.name") == Some("slow"))
        .unwrap();
    let took = Duration::from_nanos(slow_span.duration_nanos());
    assert!(
        took >= SLOW_TIMEOUT && took < SLOW_TIMEOUT + MARGIN,
        "slow span lasted {took:?}"
    );
    assert_eq!(slow_span.attributes.get_str("check.kind"), Some("http"));

    // The HTTP check's call is a client span below it, and its context
    // reached the service.
    let api = spans
        .iter()
        .find(|s| s.attributes.get_str("check.name") == Some("api"))
        .unwrap();
    let client = collector
        .wait_for_spans(
            1,
            |s| s.kind == SpanKind::Client && s.parent_span_id.as_deref() == Some(&api.span_id),
            WAIT,
        )
        .await
        .expect("the HTTP check's client span")
        .remove(0);
    assert_eq!(client.name, "GET /ok");
    let sent = format!("00-{}-{}-", client.trace_id, client.span_id);
    assert!(
        traceparents
            .lock()
            .unwrap()
            .iter()
            .any(|tp| tp.starts_with(&sent)),
        "{sent} not in {:?}",
        traceparents.lock().unwrap()
    );
    // So is the database check's query.
    let memory_db = spans
        .iter()
        .find(|s| s.attributes.get_str("check.name") == Some("memory-db"))
        .unwrap();
    let query = collector
        .wait_for_spans(
            1,
            |s| s.parent_span_id.as_deref() == Some(&memory_db.span_id),
            WAIT,
        )
        .await
        .expect("the database check's query span")
        .remove(0);
    assert_eq!(query.kind, SpanKind::Client);
    assert_eq!(query.attributes.get_str("db.system.name"), Some("sqlite"));

    // Alerts: WARN for a failing check, ERROR for a failing critical one,
    // inside the check's span, with its fields.
    let alert = |check: &'static str, level: &'static str| {
        let collector = &collector;
        async move {
            collector
                .wait_for_logs(
                    1,
                    |l| {
                        l.attributes.get_str("check.name") == Some(check)
                            && l.attributes.get_str("execution.id") == Some(id)
                            && l.severity_text == level
                    },
                    WAIT,
                )
                .await
                .unwrap_or_else(|e| panic!("no {level} for {check}: {e}"))
                .remove(0)
        }
    };
    let warn = alert("closed", "WARN").await;
    assert_eq!(warn.attributes.get_str("check.status"), Some("unhealthy"));
    assert_eq!(warn.attributes.get_bool("check.critical"), Some(false));
    assert!(warn.attributes.get_f64("duration_ms").is_some());
    assert_eq!(warn.trace_id.as_deref(), Some(root.trace_id.as_str()));
    let error = alert("missing-db", "ERROR").await;
    assert_eq!(error.attributes.get_str("check.status"), Some("unhealthy"));
    assert_eq!(error.attributes.get_bool("check.critical"), Some(true));
    let missing_span = spans
        .iter()
        .find(|s| s.attributes.get_str("check.name") == Some("missing-db"))
        .unwrap();
    assert_eq!(
        error.span_id.as_deref(),
        Some(missing_span.span_id.as_str())
    );
    assert!(
        error
            .body_str()
            .unwrap()
            .contains("critical health check missing-db is unhealthy"),
        "{:?}",
        error.body
    );
    let healthy_alerts = collector
        .logs()
        .into_iter()
        .filter(|l| l.attributes.get_str("check.name") == Some("api") && l.severity_number >= 13)
        .count();
    assert_eq!(healthy_alerts, 0, "a healthy check raises no alert");

    handle.stop().await;
    assert!(
        handle.run_now().await.is_none(),
        "a stopped worker runs nothing"
    );
}

#[tokio::test]
async fn checks_fall_due_on_their_own_intervals() {
    let collector = Collector::start().unwrap();
    let telemetry = pipeline(&collector);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config = Config {
        checks: vec![
            CheckConfig::tcp("often", &address)
                .timeout(Duration::from_millis(100))
                .interval(Duration::from_millis(150)),
            CheckConfig::tcp("rarely", &address).interval(HOUR),
        ],
    };
    let handle = health_checker::spawn(&telemetry, config);
    let named = |name: &'static str| {
        move |s: &otelwire_test::Span| s.attributes.get_str("check.name") == Some(name)
    };
    collector
        .wait_for_spans(4, named("often"), WAIT)
        .await
        .expect("the frequent check runs again and again");
    assert_eq!(
        collector
            .spans()
            .iter()
            .filter(|s| named("rarely")(s))
            .count(),
        1
    );
    // Every run has its own execution id.
    let ids: std::collections::HashSet<String> = collector
        .spans_named("health_check.run")
        .iter()
        .filter_map(|s| s.attributes.get_str("execution.id").map(str::to_owned))
        .collect();
    assert!(ids.len() >= 4, "{ids:?}");
    handle.stop().await;
}
