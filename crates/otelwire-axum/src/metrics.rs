//! `GET /metrics` on the service's own router: the Prometheus scrape
//! endpoint of [`otelwire::prometheus`] without a second port.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use otelwire::prometheus::{CONTENT_TYPE, Exposition, PATH};

/// `GET /metrics` (and `HEAD`): the pipeline's metrics in the Prometheus
/// text format, with `Content-Type: text/plain; version=0.0.4`, the same
/// names and labels as otelwire's own endpoint (see
/// [`otelwire::prometheus`]). Merge it into your router; the route is not
/// traced by [`OtelLayer`](crate::OtelLayer).
///
/// For `OTEL_METRICS_EXPORTER=prometheus` (or `otlp,prometheus`) with
/// `OTELWIRE_PROMETHEUS_LISTENER=false` or
/// [`prometheus_listener(false)`](otelwire::Builder::prometheus_listener):
/// otelwire then opens no port of its own and the service serves the
/// scrapes. When the metrics are not served for scraping at all
/// ([`Telemetry::prometheus`](otelwire::Telemetry::prometheus) is `None`),
/// the route answers 404 saying so. Collecting runs on tokio's blocking
/// pool, never on the runtime's worker threads.
///
/// ```
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let telemetry = otelwire::builder()
///     .service_name("orders-api")
///     .exporter(otelwire::Signal::Metrics, otelwire::ExporterKind::Prometheus)
///     .prometheus_listener(false)
///     .build()
///     .unwrap();
/// let app = axum::Router::new()
///     .route("/orders", axum::routing::get(|| async { "[]" }))
///     .merge(otelwire_axum::metrics_router(&telemetry));
///
/// let response = app
///     .oneshot(http::Request::get("/metrics").body(axum::body::Body::empty()).unwrap())
///     .await
///     .unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(
///     response.headers()["content-type"],
///     otelwire::prometheus::CONTENT_TYPE
/// );
/// # }
/// ```
pub fn metrics_router(telemetry: &otelwire::Telemetry) -> axum::Router {
    let exposition = telemetry.prometheus();
    axum::Router::new().route(
        PATH,
        axum::routing::get(move || {
            let exposition = exposition.clone();
            async move { scrape(exposition).await }
        }),
    )
}

async fn scrape(exposition: Option<Exposition>) -> Response {
    let Some(exposition) = exposition else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not served for scraping: set OTEL_METRICS_EXPORTER=prometheus \
             (or otlp,prometheus)\n",
        )
            .into_response();
    };
    // Collecting runs the observable instruments' callbacks: off the
    // runtime's worker threads.
    let rendered = tokio::task::spawn_blocking(move || exposition.render())
        .await
        .ok()
        .flatten();
    match rendered {
        Some(body) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            body,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the telemetry pipeline is shut down\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(app: &axum::Router, path: &str) -> (StatusCode, Option<String>, String) {
        let response = app
            .clone()
            .oneshot(
                http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn serves_the_request_metrics_of_the_service_router() {
        let telemetry = otelwire::builder()
            .env_source(|_| None)
            .service_name("shop")
            .traces(false)
            .logs(false)
            .exporter(
                otelwire::Signal::Metrics,
                otelwire::ExporterKind::Prometheus,
            )
            .prometheus_listener(false)
            .writer(std::io::sink)
            .build()
            .unwrap();
        let app = axum::Router::new()
            .route("/items/{id}", axum::routing::get(|| async { "item" }))
            .layer(crate::OtelLayer::new().meter(telemetry.meter("otelwire-axum")))
            .merge(metrics_router(&telemetry));
        for _ in 0..3 {
            assert_eq!(get(&app, "/items/7").await.0, StatusCode::OK);
        }

        let (status, content_type, text) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));
        let count = text
            .lines()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_count{")
                    && l.contains(r#"http_route="/items/{id}""#)
                    && l.contains(r#"service_name="shop""#)
            })
            .unwrap_or_else(|| panic!("the request counter in:\n{text}"));
        assert!(count.ends_with(" 3"), "{count}");
        // /metrics itself is not counted.
        assert!(!text.contains(r#"http_route="/metrics""#), "{text}");
        assert!(telemetry.prometheus().unwrap().local_addr().is_none());

        telemetry.shutdown().await;
        let (status, _, _) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn answers_404_when_the_metrics_are_not_served_for_scraping() {
        let telemetry = otelwire::builder()
            .sdk_disabled(true)
            .writer(std::io::sink)
            .build()
            .unwrap();
        let (status, _, text) = get(&metrics_router(&telemetry), "/metrics").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(text.contains("OTEL_METRICS_EXPORTER=prometheus"), "{text}");
    }
}
