//! What a request carries until its response, and what is recorded then:
//! the span's status and response headers, the echoed request id, the
//! completion log and the metrics.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{HeaderValue, Response, StatusCode};
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::attributes::SENSITIVE_HEADERS;
use crate::bound;
use crate::layer::Config;
use crate::request_id::X_REQUEST_ID;

/// The completion log's message: a `&'static str` field, which the log
/// bridge and the line formats take as is (a format string would be
/// formatted on every request).
const COMPLETED: &str = "request completed";

/// What a request's span and metrics need once the response is known.
pub(crate) struct InFlight {
    pub(crate) config: Arc<Config>,
    pub(crate) started: Instant,
    pub(crate) method: &'static str,
    pub(crate) scheme: Cow<'static, str>,
    pub(crate) route: Option<MatchedPath>,
    pub(crate) request_id: HeaderValue,
    /// The bound metric handles of this method, scheme and route (`None`
    /// past the cache's cap: then the unbound instruments are used).
    pub(crate) metrics: Option<Arc<bound::RouteMetrics>>,
}

impl InFlight {
    /// Counts the request as active (`+1`) or no longer active (`-1`).
    pub(crate) fn add_active(&self, n: i64) {
        match &self.metrics {
            Some(m) => m.active.add(n),
            None => self
                .config
                .instruments
                .active
                .add(n, &bound::active_attributes(self.method, &self.scheme)),
        }
    }

    /// Records the outcome on the span, logs the completion line and
    /// records the metrics. Runs inside the entered span.
    pub(crate) fn finish<ResB: Default>(
        self,
        span: &tracing::Span,
        outcome: Result<Response<ResB>, Box<dyn std::any::Any + Send>>,
    ) -> Response<ResB> {
        self.add_active(-1);
        let InFlight {
            config,
            started,
            method,
            scheme,
            route,
            request_id,
            metrics,
        } = self;
        let (mut response, panicked) = match outcome {
            Ok(r) => (r, None),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "handler panicked".to_owned());
                let mut r = Response::new(ResB::default());
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                (r, Some(msg))
            }
        };
        let status = response.status();
        let code = status.as_u16();
        let elapsed = started.elapsed();
        let error_type: Option<Cow<'static, str>> = if panicked.is_some() {
            Some(Cow::Borrowed("panic"))
        } else if status.is_server_error() {
            Some(Cow::Owned(code.to_string()))
        } else {
            None
        };
        span.record("http.response.status_code", i64::from(code));
        if let Some(e) = &error_type {
            span.record("otel.status_code", "error");
            span.record("error.type", e.as_ref());
        }
        for name in &config.response_headers {
            if SENSITIVE_HEADERS.contains(&name.as_str()) {
                continue;
            }
            if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
                span.set_attribute(
                    format!("http.response.header.{}", name.as_str()),
                    v.to_owned(),
                );
            }
        }
        response.headers_mut().insert(X_REQUEST_ID, request_id);

        let ms = elapsed.as_secs_f64() * 1000.0;
        if let Some(msg) = &panicked {
            tracing::error!(
                exception.message = %msg,
                http.response.status_code = code,
                "request handler panicked"
            );
        }
        if config.completion_log {
            let level = if status.is_server_error() {
                config.server_error_level
            } else if status.is_client_error() {
                config.client_error_level
            } else {
                tracing::Level::INFO
            };
            // `event!` takes a constant level: one call site per level.
            macro_rules! completed {
                ($level:expr) => {
                    tracing::event!(
                        $level,
                        http.response.status_code = code,
                        duration_ms = ms,
                        message = COMPLETED,
                    )
                };
            }
            match level {
                tracing::Level::ERROR => completed!(tracing::Level::ERROR),
                tracing::Level::WARN => completed!(tracing::Level::WARN),
                tracing::Level::INFO => completed!(tracing::Level::INFO),
                tracing::Level::DEBUG => completed!(tracing::Level::DEBUG),
                _ => completed!(tracing::Level::TRACE),
            }
        }

        let duration = &config.instruments.duration;
        let seconds = elapsed.as_secs_f64();
        let panicked = panicked.is_some();
        match metrics {
            Some(m) => m.record_duration(duration, seconds, code, panicked),
            None => duration.record(
                seconds,
                &bound::duration_attributes(
                    method,
                    &scheme,
                    route.as_ref().map(MatchedPath::as_str),
                    code,
                    panicked,
                ),
            ),
        }
        response
    }
}
