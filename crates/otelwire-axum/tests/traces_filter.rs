//! Traces are not at the mercy of the log level (issue 18, section 2):
//! with `RUST_LOG=warn` a request's server span is still exported, with
//! the trace ids on the WARN record inside it, and no INFO record is.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_axum::OtelLayer;
use otelwire_test::{Collector, SpanKind};
use tower::ServiceExt;

const WAIT: Duration = Duration::from_secs(10);

fn telemetry(collector: &Collector, vars: &'static [(&'static str, &'static str)]) -> Telemetry {
    otelwire::builder()
        .env_source(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .service_name("traces-filter-test")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(50))
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .metrics(false)
        .process_metrics(false)
        .build()
        .unwrap()
}

fn app() -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                let lookup = tracing::info_span!("lookup order");
                let _e = lookup.enter();
                tracing::debug!("debug inside the request");
                tracing::info!("info inside the request");
                tracing::warn!("warn inside the request");
                "order"
            }),
        )
        .layer(OtelLayer::new())
}

async fn request(app: &Router) {
    let r = app
        .clone()
        .oneshot(Request::get("/orders/7").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "current_thread")]
async fn rust_log_warn_still_exports_the_server_span_and_no_info_record() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, &[("RUST_LOG", "warn")]);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    request(&app()).await;

    let server = collector
        .wait_for_spans(1, |s| s.name == "GET /orders/{id}", WAIT)
        .await
        .unwrap();
    assert_eq!(server[0].kind, SpanKind::Server);
    let child = collector
        .wait_for_spans(1, |s| s.name == "lookup order", WAIT)
        .await
        .unwrap();
    assert_eq!(child[0].trace_id, server[0].trace_id);
    assert_eq!(child[0].parent_span_id.as_ref(), Some(&server[0].span_id));

    // The WARN record is there, in the span that only traces record.
    let warn = collector
        .wait_for_logs(1, |l| l.body_str() == Some("warn inside the request"), WAIT)
        .await
        .unwrap();
    assert_eq!(warn[0].trace_id.as_ref(), Some(&server[0].trace_id));
    assert_eq!(warn[0].span_id.as_ref(), Some(&child[0].span_id));
    t.shutdown().await;
    for l in collector.logs() {
        assert!(l.severity_number >= 13, "a record below WARN: {l:?}");
    }
    assert!(collector.spans_named("lookup order").len() == 1);
}

#[tokio::test(flavor = "current_thread")]
async fn rust_log_debug_records_debug_spans_and_a_given_traces_filter_wins() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, &[("RUST_LOG", "debug")]);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    tracing::debug_span!("debug span").in_scope(|| tracing::info!("in debug span"));
    collector
        .wait_for_spans(1, |s| s.name == "debug span", WAIT)
        .await
        .unwrap();
    drop(_default);
    t.shutdown().await;

    // OTELWIRE_TRACES_FILTER=warn: INFO spans are not exported, but the
    // INFO events inside them are still logged, with no trace id.
    let collector = Collector::start().unwrap();
    let t = telemetry(
        &collector,
        &[("RUST_LOG", "info"), ("OTELWIRE_TRACES_FILTER", "warn")],
    );
    let _default = tracing::dispatcher::set_default(t.dispatch());
    request(&app()).await;
    let info = collector
        .wait_for_logs(1, |l| l.body_str() == Some("info inside the request"), WAIT)
        .await
        .unwrap();
    assert_eq!(info[0].trace_id, None);
    t.shutdown().await;
    assert!(collector.spans().is_empty(), "{:?}", collector.spans());
}
