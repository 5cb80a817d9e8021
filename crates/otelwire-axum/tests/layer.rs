//! The layer as a user sees it: what arrives at a collector for requests
//! through an axum router.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_axum::OtelLayer;
use otelwire_test::{Collector, PointValue, SpanKind, StatusCode as OtelStatus};
use tower::ServiceExt;

fn telemetry(collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("axum-test")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_secs(60))
        .process_metrics(false)
        .build()
        .unwrap()
}

fn app(t: &Telemetry, layer: OtelLayer) -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tracing::info!("looking the order up");
                "order"
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/broken", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("the handler fell over");
                }
                "unreachable"
            }),
        )
        // Unmatched requests are traced only through an explicit fallback.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(layer.meter(t.meter("otelwire-axum")))
        .merge(otelwire_axum::health_router(t.health_source()))
}

async fn send(app: &Router, req: Request<Body>) -> http::Response<Body> {
    app.clone().oneshot(req).await.unwrap()
}

fn get_req(uri: &str) -> http::request::Builder {
    Request::get(uri)
        .header("host", "orders.example:8080")
        .header("user-agent", "test/1")
}

#[tokio::test(flavor = "current_thread")]
async fn spans_metrics_request_ids_and_errors() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let app = app(
        &t,
        OtelLayer::new()
            .capture_request_header(http::HeaderName::from_static("x-tenant"))
            .capture_request_header(http::HeaderName::from_static("authorization")),
    );

    let r1 = send(
        &app,
        get_req("/orders/1?card=card-zz-77")
            .header("x-request-id", "req-kept-1")
            .header("x-tenant", "blue")
            .header("authorization", "Bearer top-secret")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r1.status(), 200);
    assert_eq!(r1.headers()["x-request-id"], "req-kept-1");
    let invalid = "x".repeat(200);
    let r2 = send(
        &app,
        get_req("/orders/2")
            .header("x-request-id", &invalid)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let replaced = r2.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(replaced, invalid);
    assert_eq!(replaced.len(), 32);
    let r3 = send(&app, get_req("/orders/3").body(Body::empty()).unwrap()).await;
    let generated = r3.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    assert_ne!(generated, replaced);

    assert_eq!(
        send(&app, get_req("/missing").body(Body::empty()).unwrap())
            .await
            .status(),
        404
    );
    assert_eq!(
        send(&app, get_req("/broken").body(Body::empty()).unwrap())
            .await
            .status(),
        503
    );
    assert_eq!(
        send(&app, get_req("/panic").body(Body::empty()).unwrap())
            .await
            .status(),
        500
    );
    assert_eq!(
        send(&app, get_req("/nowhere/42").body(Body::empty()).unwrap())
            .await
            .status(),
        404
    );
    let health = send(
        &app,
        get_req("/health/telemetry").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(health.status(), 200);

    drop(_default);
    let report = t.shutdown().await;
    assert_eq!(report.dropped(), 0, "{report}");

    // One span per request, named by the route template.
    let orders = collector.spans_named("GET /orders/{id}");
    assert_eq!(orders.len(), 3);
    let first = orders
        .iter()
        .find(|s| s.attributes.get_str("request.id") == Some("req-kept-1"))
        .expect("the kept request id is on the span");
    assert_eq!(first.kind, SpanKind::Server);
    assert_eq!(first.status.code, OtelStatus::Unset);
    let a = &first.attributes;
    assert_eq!(a.get_str("http.request.method"), Some("GET"));
    assert_eq!(a.get_str("http.route"), Some("/orders/{id}"));
    assert_eq!(a.get_str("url.path"), Some("/orders/1"));
    assert_eq!(a.get_str("url.scheme"), Some("http"));
    assert_eq!(a.get_i64("http.response.status_code"), Some(200));
    assert_eq!(a.get_str("server.address"), Some("orders.example"));
    assert_eq!(a.get_i64("server.port"), Some(8080));
    assert_eq!(a.get_str("user_agent.original"), Some("test/1"));
    assert_eq!(a.get_str("network.protocol.version"), Some("1.1"));
    assert_eq!(a.get_str("url.query"), None, "url.query is off by default");
    assert_eq!(a.get_str("http.request.header.x-tenant"), Some("blue"));
    assert!(!a.contains_key("http.request.header.authorization"));
    let everything = format!("{:?}{:?}", collector.spans(), collector.logs());
    assert!(
        !everything.contains("top-secret"),
        "a sensitive header was recorded"
    );
    assert!(!everything.contains("card-zz-77"), "the query was recorded");

    // 4xx is not a server error; 5xx and panics are.
    let missing = &collector.spans_named("GET /missing")[0];
    assert_eq!(missing.status.code, OtelStatus::Unset);
    assert!(!missing.attributes.contains_key("error.type"));
    let broken = &collector.spans_named("GET /broken")[0];
    assert_eq!(broken.status.code, OtelStatus::Error);
    assert_eq!(broken.attributes.get_str("error.type"), Some("503"));
    let panicked = &collector.spans_named("GET /panic")[0];
    assert_eq!(panicked.status.code, OtelStatus::Error);
    assert_eq!(panicked.attributes.get_str("error.type"), Some("panic"));
    assert_eq!(
        panicked.attributes.get_i64("http.response.status_code"),
        Some(500)
    );
    assert!(
        panicked.events.iter().any(|e| e.name == "exception"
            || e.attributes
                .get_str("exception.message")
                .is_some_and(|m| m.contains("fell over"))),
        "{:?}",
        panicked.events
    );
    // No route matched: the method alone, never the raw path.
    let unmatched = collector.spans_named("GET");
    assert_eq!(unmatched.len(), 1);
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| !s.name.contains("/nowhere"))
    );
    // Health routes are not traced.
    assert!(collector.spans().iter().all(|s| !s.name.contains("health")));

    // Log records inside the request carry its id; the completion log's
    // severity follows the status.
    let looked = collector.logs_with_body("looking the order up");
    let ids: Vec<_> = looked
        .iter()
        .filter_map(|l| l.attributes.get_str("request.id"))
        .collect();
    assert!(
        ids.contains(&"req-kept-1") && ids.contains(&generated.as_str()),
        "{ids:?}"
    );
    let completed = collector.logs_with_body("request completed");
    let severity = |code: i64| {
        completed
            .iter()
            .find(|l| l.attributes.get_i64("http.response.status_code") == Some(code))
            .map(|l| l.severity_text.clone())
    };
    assert_eq!(severity(200).as_deref(), Some("INFO"));
    assert_eq!(severity(404).as_deref(), Some("INFO"), "a client's error");
    assert_eq!(severity(503).as_deref(), Some("ERROR"));

    // One series for /orders/1, /orders/2 and /orders/3.
    let points: Vec<_> = collector
        .metric_points("http.server.request.duration")
        .into_iter()
        .filter(|p| p.attributes.get_str("http.route") == Some("/orders/{id}"))
        .collect();
    assert_eq!(
        points.len(),
        1,
        "{points:?} {:?}",
        collector
            .metrics()
            .iter()
            .map(|m| (&m.name, &m.attributes))
            .collect::<Vec<_>>()
    );
    let PointValue::Histogram {
        count,
        explicit_bounds,
        ..
    } = &points[0].value
    else {
        panic!("a histogram: {points:?}");
    };
    assert_eq!(*count, 3);
    assert_eq!(explicit_bounds.as_slice(), otelwire_axum::DURATION_BUCKETS);
    let mut keys: Vec<_> = points[0]
        .attributes
        .iter()
        .map(|(k, _)| k.to_owned())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "http.request.method",
            "http.response.status_code",
            "http.route",
            "url.scheme"
        ]
    );
    // Failures are their own series, named by their error type; the
    // unmatched request has no route.
    let series = |route: Option<&str>, code: i64| {
        collector
            .metric_points("http.server.request.duration")
            .into_iter()
            .filter(|p| {
                p.attributes.get_str("http.route") == route
                    && p.attributes.get_i64("http.response.status_code") == Some(code)
            })
            .map(|p| p.attributes.get_str("error.type").map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(series(Some("/broken"), 503), [Some("503".to_owned())]);
    assert_eq!(series(Some("/panic"), 500), [Some("panic".to_owned())]);
    assert_eq!(series(Some("/missing"), 404), [None]);
    assert_eq!(series(None, 404), [None]);
    // Every request finished: the last point of each series says no
    // request is active.
    let active = collector.metric_points("http.server.active_requests");
    assert!(!active.is_empty());
    let mut last = std::collections::BTreeMap::new();
    for p in &active {
        last.insert(format!("{:?}", p.attributes), &p.value);
    }
    for (series, value) in last {
        assert!(matches!(value, PointValue::Int(0)), "{series}: {value:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn incoming_context_is_honoured_and_malformed_context_starts_a_new_trace() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let app = app(&t, OtelLayer::new());
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    send(
        &app,
        get_req("/orders/1")
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .header("x-request-id", "with-parent")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    for bad in [
        "garbage",
        "00-xyz-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let r = send(
            &app,
            get_req("/orders/2")
                .header("traceparent", bad)
                .header("x-request-id", "malformed")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    drop(_default);
    t.shutdown().await;
    let spans = collector.spans_named("GET /orders/{id}");
    let child = spans
        .iter()
        .find(|s| s.attributes.get_str("request.id") == Some("with-parent"))
        .unwrap();
    assert_eq!(child.trace_id, trace_id);
    assert_eq!(child.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.attributes.get_str("request.id") == Some("malformed"))
        .collect();
    assert_eq!(roots.len(), 3);
    for r in roots {
        assert_eq!(r.parent_span_id, None);
        assert_ne!(r.trace_id, trace_id);
    }
    let invalid = collector.metric_points("otelwire.http.server.invalid_context");
    assert_eq!(
        invalid.last().and_then(|p| p.as_f64()),
        Some(3.0),
        "{invalid:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn health_reports_503_once_export_has_been_failing() {
    let collector = Collector::start().unwrap();
    let endpoint = collector.http_endpoint();
    collector.stop();
    let t = otelwire::builder()
        .env_source(|_| None)
        .endpoint(endpoint)
        .log_format(LogFormat::None)
        .timeout(Duration::from_millis(300))
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .health_failing_after(Duration::from_millis(300))
        .metrics(false)
        .build()
        .unwrap();
    let health = otelwire_axum::health_router(t.health_source());
    let status = |r: &Router| {
        let r = r.clone();
        async move {
            let resp = r
                .oneshot(
                    Request::get("/health/telemetry")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let code = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                code,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (code, json) = status(&health).await;
    assert_eq!(code, 200);
    assert_eq!(json["status"], "ok");
    assert!(
        json["signals"].as_array().is_some_and(|s| s.len() == 3),
        "{json}"
    );

    tracing::dispatcher::with_default(t.dispatch(), || tracing::info!("nobody listens"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (code, json) = status(&health).await;
        if code == 503 {
            assert_eq!(json["status"], "failing");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never failing: {json}"
        );
        tracing::dispatcher::with_default(t.dispatch(), || tracing::info!("still nobody"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(t);
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_dropped_before_its_response_is_no_longer_active() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let app = Router::new()
        .route("/hang", get(std::future::pending::<&'static str>))
        .route("/ok", get(|| async { "ok" }))
        .layer(OtelLayer::new().meter(t.meter("otelwire-axum")));
    // The client goes away while the handler still runs.
    let hung = tokio::time::timeout(
        Duration::from_millis(50),
        app.clone()
            .oneshot(get_req("/hang").body(Body::empty()).unwrap()),
    )
    .await;
    assert!(hung.is_err(), "the handler never answers");
    send(&app, get_req("/ok").body(Body::empty()).unwrap()).await;
    t.force_flush();
    let points = collector
        .wait_for_metric(
            "http.server.active_requests",
            |_| true,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let active: i64 = points
        .iter()
        .map(|p| match p.value {
            PointValue::Int(n) => n,
            ref other => panic!("an integer sum: {other:?}"),
        })
        .sum();
    assert_eq!(active, 0, "{points:?}");
    t.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_completion_levels_of_4xx_and_5xx_are_the_services_choice() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let layer = OtelLayer::new()
        .client_error_level(tracing::Level::WARN)
        .server_error_level(tracing::Level::INFO);
    let app = app(&t, layer);
    for uri in ["/orders/1", "/missing", "/broken"] {
        send(&app, get_req(uri).body(Body::empty()).unwrap()).await;
    }
    let completed = collector
        .wait_for_logs(
            3,
            |l| l.body_str() == Some("request completed"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let severity = |code: i64| {
        completed
            .iter()
            .find(|l| l.attributes.get_i64("http.response.status_code") == Some(code))
            .map(|l| l.severity_text.clone())
    };
    assert_eq!(severity(200).as_deref(), Some("INFO"));
    assert_eq!(severity(404).as_deref(), Some("WARN"));
    assert_eq!(severity(503).as_deref(), Some("INFO"));
    t.shutdown().await;
}
