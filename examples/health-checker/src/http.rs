//! The HTTP side: `GET /health`, `GET /health/checks`, `GET /health/telemetry`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Handle;

/// The routes of a running health-checker, traced by `otelwire-axum`:
///
/// - `GET /health`: the [`HealthReport`](crate::HealthReport) as JSON
///   (status, score, failing checks, last execution id and trace); 503 when
///   a critical check's last result is not healthy, else 200;
/// - `GET /health/checks`: the last result of each check and the checks
///   that have not run yet, `{"checks": [...], "pending": [...]}`;
/// - `GET /health/telemetry`: the telemetry pipeline's own health
///   ([`otelwire_axum::health_router`]).
///
/// As with any `otelwire-axum` router, the server spans go to the default
/// `tracing` dispatcher of the threads that serve it: the global one after
/// `otelwire::init`, or a thread's default as the demo sets it. (The
/// checks themselves always use the pipeline given to [`spawn`](crate::spawn).)
pub fn router(telemetry: &otelwire::Telemetry, handle: &Handle) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/health/checks", get(checks))
        .with_state(handle.clone())
        .layer(otelwire_axum::OtelLayer::new().meter(telemetry.meter("otelwire-axum")))
        .merge(otelwire_axum::health_router(telemetry.health_source()))
}

async fn health(State(handle): State<Handle>) -> Response {
    let report = handle.report();
    let status = StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::OK);
    (status, Json(report)).into_response()
}

async fn checks(State(handle): State<Handle>) -> Response {
    Json(serde_json::json!({
        "checks": handle.results(),
        "pending": handle.pending(),
    }))
    .into_response()
}
