//! `GET /health` answers 503 when a critical check fails and 200
//! otherwise; `/health/checks` and `/health/telemetry` answer too.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::routing::get;
use common::{closed_address, pipeline, serve};
use health_checker::{CheckConfig, Config};
use otelwire_test::Collector;

#[tokio::test]
async fn health_is_503_while_a_critical_check_fails_and_200_otherwise() {
    let collector = Collector::start().unwrap();
    let telemetry = pipeline(&collector);
    // A backend whose answer the test decides.
    let answer = Arc::new(AtomicU16::new(500));
    let status = answer.clone();
    let backend = serve(axum::Router::new().route(
        "/health",
        get(move || {
            let code = status.load(Ordering::SeqCst);
            async move { axum::http::StatusCode::from_u16(code).unwrap() }
        }),
    ))
    .await;
    let hour = Duration::from_secs(3600);
    let config = Config {
        checks: vec![
            CheckConfig::http("backend", backend.url("/health"))
                .critical(true)
                .interval(hour),
            CheckConfig::tcp("optional", closed_address()).interval(hour),
        ],
    };
    let handle = health_checker::spawn(&telemetry, config);
    let app = serve(health_checker::router(&telemetry, &handle)).await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = app.url(path);
        async move {
            let r = client.get(url).send().await.unwrap();
            let code = r.status().as_u16();
            (code, r.json::<serde_json::Value>().await.unwrap())
        }
    };

    // The critical check fails: 503.
    handle.run_now().await.unwrap();
    let (code, body) = get("/health").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["critical_failing"], serde_json::json!(["backend"]));
    assert_eq!(body["failing"], serde_json::json!(["backend", "optional"]));
    assert_eq!(body["score"], 0.0);

    // Only the non-critical one fails: 200, degraded.
    answer.store(200, Ordering::SeqCst);
    let run = handle.run_now().await.unwrap();
    let (code, body) = get("/health").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["score"], 66.67);
    assert_eq!(body["healthy"], 1);
    assert_eq!(body["execution_id"], run.execution_id.as_str());
    assert_eq!(body["trace_id"], run.trace_id.as_deref().unwrap());

    // The last result of each check.
    let (code, body) = get("/health/checks").await;
    assert_eq!(code, 200);
    let checks = body["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{body}");
    assert_eq!(checks[0]["name"], "backend");
    assert_eq!(checks[0]["status"], "healthy");
    assert_eq!(checks[0]["critical"], true);
    assert_eq!(checks[0]["kind"], "http");
    assert!(
        checks[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("200 OK in ")
    );
    assert_eq!(checks[1]["name"], "optional");
    assert_eq!(checks[1]["status"], "unhealthy");
    assert!(checks[1]["duration_ms"].as_f64().is_some());
    assert!(checks[1]["checked_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["pending"], serde_json::json!([]));

    // And the telemetry pipeline's own health.
    let (code, body) = get("/health/telemetry").await;
    assert_eq!(code, 200);
    assert_eq!(body["service"], "health-checker");
    handle.stop().await;
}

#[tokio::test]
async fn health_is_200_when_every_check_passes() {
    let collector = Collector::start().unwrap();
    let telemetry = pipeline(&collector);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        checks: vec![
            CheckConfig::tcp("port", listener.local_addr().unwrap().to_string()).critical(true),
        ],
    };
    let handle = health_checker::spawn(&telemetry, config);
    handle.run_now().await.unwrap();
    let app = serve(health_checker::router(&telemetry, &handle)).await;
    let r = reqwest::get(app.url("/health")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["score"], 100.0);
    handle.stop().await;
}
