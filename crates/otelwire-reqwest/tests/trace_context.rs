//! What the middleware sends on the wire under W3C Trace Context Level 2
//! (issue 16, section 1): every flag bit of the trace is sent on, and an
//! empty `tracestate` is not sent at all.

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use otelwire::opentelemetry::Context;
use otelwire::opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use otelwire::{LogFormat, Signal};
use otelwire_reqwest::OtelMiddleware;
use otelwire_test::Collector;
use tracing::Instrument;

#[tokio::test(flavor = "current_thread")]
async fn flags_are_kept_and_an_empty_tracestate_is_not_sent() {
    let collector = Collector::start().unwrap();
    let t = otelwire::builder()
        .env_source(|_| None)
        .service_name("client-trace-context")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .process_metrics(false)
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(t.dispatch());

    // Every header line of the context headers, as the server got them.
    async fn echo(headers: HeaderMap) -> axum::Json<serde_json::Value> {
        let all = |n: &str| -> Vec<String> {
            headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        };
        axum::Json(serde_json::json!({
            "traceparent": all("traceparent"),
            "tracestate": all("tracestate"),
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().route("/", get(echo))).await;
    });
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OtelMiddleware::new())
        .build();

    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let remote = |flags: u8, state: TraceState| {
        Context::new().with_remote_span_context(SpanContext::new(
            trace,
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::new(flags),
            true,
            state,
        ))
    };
    let mut seen = Vec::new();
    for (flags, state) in [
        (0x03, TraceState::default()),
        (
            0x01,
            TraceState::from_key_value([("a", "1"), ("b", "2")]).unwrap(),
        ),
    ] {
        let span = tracing::info_span!("caller");
        let _ = span.set_parent(remote(flags, state));
        let got: serde_json::Value = async {
            client
                .get(format!("http://{addr}/"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        }
        .instrument(span)
        .await;
        seen.push(got);
    }
    drop(_default);
    t.shutdown().await;
    server.abort();

    let calls = collector.spans_named("GET");
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (got, flags) in seen.iter().zip(["03", "01"]) {
        let tp = got["traceparent"].as_array().unwrap();
        assert_eq!(tp.len(), 1, "{got}");
        let tp = tp[0].as_str().unwrap();
        let call = calls
            .iter()
            .find(|c| tp == format!("00-{}-{}-{flags}", c.trace_id, c.span_id))
            .unwrap_or_else(|| panic!("{tp} names a client span, flags {flags}"));
        assert_eq!(call.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
    assert_eq!(seen[0]["tracestate"], serde_json::json!([]), "{}", seen[0]);
    assert_eq!(seen[1]["tracestate"], serde_json::json!(["a=1,b=2"]));
}
