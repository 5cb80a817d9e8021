//! `OTEL_PROPAGATORS=none` (issue 16, section 2): after `init()`, no
//! context is extracted from a request and none is injected into the
//! calls made while serving it. Its own test binary: `init()` is global.

mod common;

use std::collections::HashMap;

use axum::Router;
use axum::routing::get;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use otelwire_axum::OtelLayer;
use otelwire_test::Collector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "current_thread")]
async fn none_stops_extraction_and_injection() {
    let collector = Collector::start().unwrap();
    let t = common::init_with_propagators(&collector, "none", "no-propagation");

    async fn outgoing() -> String {
        let cx = tracing::Span::current().context();
        let mut headers = HashMap::new();
        otelwire::http::with_propagator(|p| p.inject_context(&cx, &mut headers));
        format!("{headers:?}")
    }
    let app = Router::new()
        .route("/call", get(outgoing))
        .layer(OtelLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /call HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
                 traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
                 baggage: tenant=blue\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    t.shutdown().await;
    server.abort();

    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with("\r\n\r\n{}"),
        "nothing injected: {response}"
    );
    let spans = collector.spans_named("GET /call");
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_ne!(spans[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(spans[0].parent_span_id, None, "not continued");
    // Not extracting is no invalid context.
    assert!(
        collector
            .metric_points("otelwire.http.server.invalid_context")
            .is_empty()
    );
}
