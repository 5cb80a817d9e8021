//! The middleware against a real server on 127.0.0.1, exporting to an
//! in-process collector.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::baggage::BaggageExt;
use otelwire::opentelemetry::trace::FutureExt as _;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_reqwest::{DisableOtel, OtelMiddleware, UrlTemplate};
use otelwire_test::{Collector, PointValue, SpanKind, StatusCode as OtelStatus};
use tracing::Instrument;

/// Echoes the context headers it received.
async fn server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    async fn echo(headers: HeaderMap) -> axum::Json<serde_json::Value> {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        axum::Json(serde_json::json!({
            "traceparent": h("traceparent"),
            "baggage": h("baggage"),
        }))
    }
    let app = Router::new()
        .route("/items/{sku}", get(echo))
        .route("/p", get(echo))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (
        addr,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

fn telemetry(collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("client-test")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .process_metrics(false)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn client_spans_propagation_errors_and_metrics() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let (addr, server) = server().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OtelMiddleware::new().meter(t.meter("otelwire-reqwest")))
        .build();

    let parent = tracing::info_span!("checkout");
    let echoed: Vec<serde_json::Value> = async {
        let mut out = Vec::new();
        for sku in ["1", "2"] {
            let r = client
                .get(format!("http://{addr}/items/{sku}"))
                .with_extension(UrlTemplate::new("/items/{sku}"))
                .send()
                .await
                .unwrap();
            out.push(r.json().await.unwrap());
        }
        out
    }
    .instrument(parent.clone())
    .await;

    // Baggage in the current context is forwarded.
    let cx = parent
        .context()
        .with_baggage(vec![KeyValue::new("tenant", "blue")]);
    let with_baggage: serde_json::Value = client
        .get(format!(
            "http://user:s3cr3t-pw@{addr}/p?token=tok-xyz-9&x=1"
        ))
        .send()
        .with_context(cx)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(
        client
            .get(format!("http://{addr}/missing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .get(format!("http://{addr}/broken"))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = client
        .get(format!("http://127.0.0.1:{closed}/x"))
        .send()
        .await;
    assert!(refused.is_err(), "the error reaches the caller");
    let opted_out: serde_json::Value = client
        .get(format!("http://{addr}/items/3"))
        .with_extension(DisableOtel)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    drop(parent);
    drop(_default);
    t.shutdown().await;
    server.abort();

    // Child spans of the caller's span, and the server saw their context.
    let parent_span = &collector.spans_named("checkout")[0];
    let calls = collector.spans_named("GET /items/{sku}");
    assert_eq!(calls.len(), 2, "the opted-out call has no span");
    for (call, echo) in calls.iter().zip(&echoed) {
        assert_eq!(call.kind, SpanKind::Client);
        assert_eq!(call.trace_id, parent_span.trace_id);
        assert_eq!(
            call.parent_span_id.as_deref(),
            Some(parent_span.span_id.as_str())
        );
        let a = &call.attributes;
        assert_eq!(a.get_str("http.request.method"), Some("GET"));
        assert_eq!(a.get_str("server.address"), Some("127.0.0.1"));
        assert_eq!(a.get_i64("server.port"), Some(i64::from(addr.port())));
        assert_eq!(a.get_str("url.template"), Some("/items/{sku}"));
        assert_eq!(a.get_i64("http.response.status_code"), Some(200));
        assert_eq!(call.status.code, OtelStatus::Unset);
        let tp = echo["traceparent"].as_str().expect("traceparent injected");
        // Sampled, and `random` (W3C Level 2): the trace started here.
        assert!(
            calls
                .iter()
                .any(|c| tp == format!("00-{}-{}-03", c.trace_id, c.span_id)),
            "{tp}"
        );
    }
    assert!(opted_out["traceparent"].is_null(), "{opted_out}");

    let plain = collector.spans_named("GET");
    let redacted = plain
        .iter()
        .find(|s| {
            s.attributes
                .get_str("url.full")
                .is_some_and(|u| u.contains("/p?"))
        })
        .expect("the /p call");
    assert_eq!(
        redacted.attributes.get_str("url.full"),
        // reqwest moves URL credentials into an Authorization header (never
        // recorded) before middleware runs; the query values are redacted.
        Some(format!("http://{addr}/p?token=REDACTED&x=REDACTED").as_str())
    );
    let everything = format!("{:?}", collector.spans());
    // Values that cannot occur by chance in hex ids.
    assert!(!everything.contains("s3cr3t-pw") && !everything.contains("tok-xyz-9"));
    assert!(
        with_baggage["baggage"]
            .as_str()
            .is_some_and(|b| b.contains("tenant=blue")),
        "{with_baggage}"
    );

    let by_status = |code: i64| {
        plain
            .iter()
            .find(|s| s.attributes.get_i64("http.response.status_code") == Some(code))
            .unwrap_or_else(|| panic!("a {code} span"))
    };
    for code in [404, 500] {
        let s = by_status(code);
        assert_eq!(s.status.code, OtelStatus::Error);
        assert_eq!(
            s.attributes.get_str("error.type"),
            Some(code.to_string().as_str())
        );
    }
    let failed = plain
        .iter()
        .find(|s| s.attributes.get_str("error.type") == Some("connect"))
        .expect("the refused call's span");
    assert_eq!(failed.status.code, OtelStatus::Error);

    // One duration series for both templated calls, no raw path.
    let points: Vec<_> = collector
        .metric_points("http.client.request.duration")
        .into_iter()
        .filter(|p| p.attributes.get_str("url.template") == Some("/items/{sku}"))
        .collect();
    assert_eq!(points.len(), 1, "{points:?}");
    assert!(matches!(
        points[0].value,
        PointValue::Histogram { count: 2, .. }
    ));
    assert!(
        collector
            .metric_points("http.client.request.duration")
            .iter()
            .all(|p| p
                .attributes
                .iter()
                .all(|(_, v)| v.as_str().is_none_or(|s| !s.contains("/items/1"))))
    );
}
