//! `OTEL_PROPAGATORS=tracecontext,baggage,b3multi,jaeger` (issue 16,
//! section 2), a fleet with Zipkin/Envoy and Jaeger clients: after
//! `init()`, a request carrying only B3 (multi or single header) or only
//! `uber-trace-id` is continued, and the calls made while serving it carry
//! every format, with the server span as their parent. Its own test
//! binary: `init()` is global.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use otelwire_axum::OtelLayer;
use otelwire_test::{Collector, SpanKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the handler would send on a call it makes: the injected headers.
async fn outgoing() -> axum::Json<HashMap<String, String>> {
    let cx = tracing::Span::current().context();
    let mut headers = HashMap::new();
    otelwire::http::with_propagator(|p| p.inject_context(&cx, &mut headers));
    axum::Json(headers)
}

/// Sends `GET /call` with `header_lines`; the headers the handler injected.
async fn call(addr: std::net::SocketAddr, header_lines: &str) -> HashMap<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /call HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{header_lines}\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str(body).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn b3_and_jaeger_requests_are_continued_and_every_format_is_sent_on() {
    let collector = Collector::start().unwrap();
    let t = common::init_with_propagators(
        &collector,
        "tracecontext,baggage,b3multi,jaeger",
        "mixed-fleet",
    );
    let app = Router::new()
        .route("/call", get(outgoing))
        .layer(OtelLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // (what the caller sent, its trace id, its span id)
    let trials = [
        (
            "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\n\
             x-b3-spanid: e457b5a2e4d86bd1\r\n\
             x-b3-parentspanid: 05e3ac9a4f6e3b90\r\n\
             x-b3-sampled: 1\r\n",
            "80f198ee56343ba864fe8b2a57d3eff7",
            "e457b5a2e4d86bd1",
        ),
        (
            "b3: 463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1\r\n",
            "463ac35c9f6413ad48485a3953bb6124",
            "a2fb4a1d1a96d312",
        ),
        (
            "uber-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1\r\n",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
        ),
    ];
    let mut sent = Vec::new();
    for (lines, _, _) in &trials {
        sent.push(call(addr, lines).await);
    }
    t.force_flush();
    let spans = collector
        .wait_for_spans(
            3,
            |s| s.name == "GET /call" && s.kind == SpanKind::Server,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    t.shutdown().await;
    server.abort();

    for ((lines, trace_id, parent_id), headers) in trials.iter().zip(&sent) {
        let span = spans
            .iter()
            .find(|s| s.trace_id == *trace_id)
            .unwrap_or_else(|| panic!("{lines}: not continued: {spans:#?}"));
        assert_eq!(span.parent_span_id.as_deref(), Some(*parent_id), "{lines}");
        let id = &span.span_id;
        // Every format, each naming the server span as the parent.
        assert_eq!(
            headers["traceparent"],
            format!("00-{trace_id}-{id}-01"),
            "{lines}"
        );
        assert_eq!(headers["x-b3-traceid"], *trace_id, "{lines}");
        assert_eq!(headers["x-b3-spanid"], *id, "{lines}");
        assert_eq!(headers["x-b3-sampled"], "1", "{lines}");
        assert!(
            !headers.contains_key("x-b3-parentspanid"),
            "{lines}: {headers:?}"
        );
        assert_eq!(
            headers["uber-trace-id"],
            format!("{trace_id}:{id}:0:1"),
            "{lines}"
        );
    }
}
