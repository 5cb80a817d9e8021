//! The hardening trial (issue 19), item 17: secrets in path segments
//! (`/orders/<token>`, `;jsessionid=…`) reach `url.path` as sent unless
//! the opt-in scrubber rewrites them; with it, neither the exported span
//! nor the local line carries them.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use otelwire::{LogFormat, Signal};
use otelwire_axum::OtelLayer;
use otelwire_test::{Collector, Console};
use tower::ServiceExt;

const TOKEN: &str = "tok-8f2b9c1d";
const SESSION: &str = "sess-77aa01";

/// Sends the trial's two requests through a router with `layer`; the
/// `url.path` of the exported spans and the console's text.
async fn trial(layer: OtelLayer) -> (Vec<String>, String) {
    let collector = Collector::start().unwrap();
    let console = Console::default();
    let t = otelwire::builder()
        .env_source(|_| None)
        .service_name("axum-hardening")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .process_metrics(false)
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(layer.meter(t.meter("otelwire-axum")));
    for uri in [
        format!("/orders/{TOKEN}"),
        format!("/orders/7;jsessionid={SESSION}"),
    ] {
        let r = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    drop(_default);
    t.shutdown().await;
    let mut paths: Vec<String> = collector
        .spans_named("GET /orders/{id}")
        .iter()
        .filter_map(|s| s.attributes.get_str("url.path").map(str::to_owned))
        .collect();
    paths.sort();
    let text = console.text();
    (paths, text)
}

#[tokio::test(flavor = "current_thread")]
async fn scrubbed_paths_keep_secrets_out_of_spans_and_lines() {
    // Without the hook, the conventions' choice: the path as sent.
    let (paths, text) = trial(OtelLayer::new()).await;
    assert_eq!(
        paths,
        [
            format!("/orders/7;jsessionid={SESSION}"),
            format!("/orders/{TOKEN}")
        ]
    );
    assert!(text.contains(TOKEN) && text.contains(SESSION), "{text}");

    // With it: neither the exported spans nor the lines carry them.
    let (paths, text) =
        trial(OtelLayer::new().scrub_path(otelwire_axum::scrub_segments(&["/orders/*"]))).await;
    assert_eq!(paths, ["/orders/[REDACTED]", "/orders/[REDACTED]"]);
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains(SESSION), "{text}");
    let completed: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.contains("request completed"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(completed.len(), 2, "{text}");
    for line in &completed {
        assert_eq!(line["span"]["url.path"], "/orders/[REDACTED]", "{line}");
        assert_eq!(line["span"]["http.route"], "/orders/{id}", "{line}");
    }
}
