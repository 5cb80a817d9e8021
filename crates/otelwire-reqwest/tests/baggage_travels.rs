//! W3C baggage received by a service travels on with the calls it makes
//! while serving the request (issue 16, section 2): in through
//! otelwire-axum, out through otelwire-reqwest, over real HTTP, after
//! `init()` with the default `OTEL_PROPAGATORS` (`tracecontext,baggage`).
//! Its own test binary: `init()` is global.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use otelwire::{LogFormat, Signal};
use otelwire_test::{Collector, SpanKind};
use reqwest_middleware::ClientWithMiddleware;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "current_thread")]
async fn the_requests_baggage_goes_out_with_its_calls() {
    let collector = Collector::start().unwrap();
    let endpoint = collector.http_endpoint();
    let t = otelwire::builder()
        .env_source(move |k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| endpoint.clone()))
        .service_name("front")
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .process_metrics(false)
        .init()
        .unwrap();

    // The downstream service: answers with the context headers it got.
    let downstream = serve(Router::new().route(
        "/stock",
        get(|headers: HeaderMap| async move {
            let h = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            format!("{}\n{}", h("traceparent"), h("baggage"))
        }),
    ))
    .await;
    // The service under test: calls downstream while serving /order.
    let client = otelwire_reqwest::client(reqwest::Client::new());
    let front = serve(
        Router::new()
            .route(
                "/order",
                get(
                    |State((client, down)): State<(ClientWithMiddleware, String)>| async move {
                        client
                            .get(format!("{down}/stock"))
                            .send()
                            .await
                            .unwrap()
                            .text()
                            .await
                            .unwrap()
                    },
                ),
            )
            .with_state((client, format!("http://{downstream}")))
            .layer(otelwire_axum::OtelLayer::new()),
    )
    .await;

    let mut stream = tokio::net::TcpStream::connect(front).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /order HTTP/1.1\r\nhost: {front}\r\nconnection: close\r\n\
                 traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
                 baggage: tenant.id=blue,plan=gold;ttl=60\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let (traceparent, baggage) = body.split_once('\n').unwrap();

    t.force_flush();
    let client_span = collector
        .wait_for_spans(1, |s| s.kind == SpanKind::Client, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    t.shutdown().await;
    // The call continues the request's trace, from the client span...
    assert_eq!(
        traceparent,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            client_span.span_id
        )
    );
    // ...and carries the request's baggage, every member, properties kept.
    let mut members: Vec<&str> = baggage.split(',').map(str::trim).collect();
    members.sort();
    assert_eq!(members, ["plan=gold;ttl=60", "tenant.id=blue"], "{baggage}");
}
