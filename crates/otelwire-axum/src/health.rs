//! The health routes: `/health/telemetry` for the export pipelines and
//! `/health/logs` for the local outputs (the `otelwire-files` sinks).

use axum::response::IntoResponse;
use http::StatusCode;
use otelwire::HealthStatus;

/// `GET /health/telemetry` and `GET /health/logs`. Merge it into your
/// router; neither route is traced.
///
/// - `/health/telemetry`: the JSON of [`otelwire::Health`], with 200 when
///   the pipeline is ok or degraded and 503 when it is failing: once
///   export has failed for a minute without a success
///   (`OTELWIRE_HEALTH_FAILING_AFTER`, 60 000 ms by default), as when the
///   collector is down. It tells whether telemetry gets out, not whether
///   the service works: use it for an alert or a dashboard, **never as a
///   liveness probe** (a collector outage would restart every service),
///   and not as a readiness probe either.
/// - `/health/logs`: the local outputs, each `otelwire-files` sink with its
///   lines written and dropped, failures, times a thread waited for room
///   and last error (the file's name, never its directory), with 200 when
///   every output is ok and 503 otherwise (a sink lost lines in the last
///   minute, or is retrying a failed write). No files configured: 200 and
///   an empty list.
///
/// ```json
/// {"status":"degraded","service":"orders-api","outputs":[{"name":"file audit.jsonl",
///  "status":"degraded","written":120,"dropped":0,"failures":3,"blocked":0,
///  "last_error_at":"2026-11-22T10:00:05.000000Z",
///  "last_error":"cannot write log file audit.jsonl: No space left on device (os error 28)"}]}
/// ```
pub fn health_router(source: otelwire::HealthSource) -> axum::Router {
    let logs = source.clone();
    axum::Router::new()
        .route(
            "/health/telemetry",
            axum::routing::get(move || {
                let source = source.clone();
                async move {
                    let health = source.health();
                    let status = if health.status == HealthStatus::Failing {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    (status, axum::Json(health)).into_response()
                }
            }),
        )
        .route(
            "/health/logs",
            axum::routing::get(move || {
                let source = logs.clone();
                async move { logs_health(&source).into_response() }
            }),
        )
}

fn logs_health(source: &otelwire::HealthSource) -> (StatusCode, axum::Json<serde_json::Value>) {
    let outputs = source.outputs();
    let status = outputs
        .iter()
        .map(|o| o.status)
        .max()
        .unwrap_or(HealthStatus::Ok);
    let code = if status == HealthStatus::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": status,
        "service": source.service(),
        "outputs": outputs,
    });
    (code, axum::Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn logs_without_files_is_ok_and_empty() {
        let telemetry = otelwire::builder()
            .env_source(|_| None)
            .sdk_disabled(true)
            .log_format(otelwire::LogFormat::None)
            .service_name("no-files")
            .build()
            .unwrap();
        let response = health_router(telemetry.health_source())
            .oneshot(
                http::Request::get("/health/logs")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status": "ok", "service": "no-files", "outputs": []})
        );
    }
}
