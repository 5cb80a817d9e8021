//! A tower layer that gives every HTTP request an OpenTelemetry server
//! span, HTTP server metrics, a request id and a completion log line; axum
//! first-class, any tower HTTP service supported.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let telemetry = otelwire::builder().sdk_disabled(true).build().unwrap();
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     // After the routes, so that the route template names the span.
//!     .layer(otelwire_axum::OtelLayer::new().meter(telemetry.meter("otelwire-axum")))
//!     .merge(otelwire_axum::health_router(telemetry.health_source()));
//!
//! let response = app
//!     .oneshot(http::Request::get("/orders/7").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! // A request id is made when the client sent none, and echoed.
//! assert!(response.headers().contains_key("x-request-id"));
//! # }
//! ```
//!
//! Per request:
//! - a span at INFO, kind server, named `{METHOD} {route}` (`{METHOD}` alone
//!   when no route matched; never the raw path), with `http.request.method`
//!   (`_OTHER` for unknown methods), `url.path`, `url.scheme`, `http.route`,
//!   `http.response.status_code`, `network.protocol.version`,
//!   `server.address`, `server.port`, `user_agent.original`,
//!   `client.address`, `error.type` on failure and `request.id`;
//!   `url.query` only with [`OtelLayer::record_query`];
//! - the parent context from W3C `traceparent`/`tracestate`/`baggage`
//!   (a malformed `traceparent` starts a new trace and is counted in
//!   `otelwire.http.server.invalid_context`);
//! - status error on 5xx and on a handler panic (the panic is caught,
//!   recorded as an exception event, and answered with 500); 4xx is not an
//!   error for a server;
//! - `x-request-id`: kept when it is 1 to 128 visible ASCII characters,
//!   otherwise replaced; made when absent; echoed on the response; on the
//!   span as `request.id`, which otelwire copies onto every log record
//!   emitted inside the request;
//! - `http.server.request.duration` (s, the semantic-convention buckets) and
//!   `http.server.active_requests`, with low-cardinality attributes only;
//! - one log event when the request completes: INFO, WARN for 4xx, ERROR
//!   for 5xx ([`OtelLayer::completion_log`] turns it off).
//!
//! `/health`, `/health/telemetry` and `/metrics` are not traced (see
//! [`OtelLayer::exclude_path`]).
//!
//! Apply the layer with `Router::layer` after the routes: axum then runs it
//! after routing, so the route template is known. axum applies such a layer
//! to the routes and to a fallback set before it, not to its built-in 404:
//! set `.fallback(...)` before `.layer(...)` to trace unmatched requests
//! (they are named by the method alone).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use otelwire::opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};
use otelwire::opentelemetry::propagation::TextMapPropagator;
use otelwire::opentelemetry::trace::TraceContextExt;
use otelwire::opentelemetry::{KeyValue, global};
use otelwire::opentelemetry_http::HeaderExtractor;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing::Instrument;
use tracing::field::Empty;

/// The request-id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Headers never recorded, even when allow-listed.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// The semantic-convention bucket boundaries of `http.server.request.duration`.
pub use otelwire::http::DURATION_BUCKETS;

type SharedPropagator = Arc<dyn TextMapPropagator + Send + Sync>;

#[derive(Clone)]
struct Instruments {
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    invalid_context: Counter<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Instruments {
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter("http.server.active_requests")
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build(),
            invalid_context: meter
                .u64_counter("otelwire.http.server.invalid_context")
                .with_unit("{request}")
                .with_description("Requests whose traceparent header could not be used.")
                .build(),
        }
    }
}

#[derive(Clone)]
struct Config {
    instruments: Instruments,
    propagator: Option<SharedPropagator>,
    excluded: Vec<String>,
    request_headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
    trust_forwarded: bool,
    record_query: bool,
    completion_log: bool,
}

/// The layer. Clone it freely; see the [crate docs](crate) for what it records.
#[derive(Clone)]
pub struct OtelLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for OtelLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelLayer")
            .field("excluded", &self.config.excluded)
            .field("trust_forwarded", &self.config.trust_forwarded)
            .finish_non_exhaustive()
    }
}

impl Default for OtelLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelLayer {
    /// The defaults: the global meter (`otelwire::init` sets it), the global
    /// propagator, health and metrics routes excluded, no header capture,
    /// forwarding headers not trusted, no `url.query`, a completion log.
    pub fn new() -> Self {
        OtelLayer {
            config: Arc::new(Config {
                instruments: Instruments::new(&global::meter("otelwire-axum")),
                propagator: None,
                excluded: vec![
                    "/health".into(),
                    "/health/telemetry".into(),
                    "/metrics".into(),
                ],
                request_headers: Vec::new(),
                response_headers: Vec::new(),
                trust_forwarded: false,
                record_query: false,
                completion_log: true,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Records the metrics with this meter (for example `telemetry.meter("otelwire-axum")`).
    pub fn meter(self, meter: Meter) -> Self {
        self.edit(|c| c.instruments = Instruments::new(&meter))
    }

    /// Extracts the parent context with this propagator instead of the
    /// global one.
    pub fn propagator(self, propagator: impl TextMapPropagator + Send + Sync + 'static) -> Self {
        self.edit(|c| c.propagator = Some(Arc::new(propagator)))
    }

    /// Leaves requests to this path out of tracing, metrics and logs: an
    /// exact path, or a prefix when it ends with `*` (`/internal/*`).
    pub fn exclude_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.edit(|c| c.excluded.push(path))
    }

    /// Traces every path, health and metrics routes included.
    pub fn include_all_paths(self) -> Self {
        self.edit(|c| c.excluded.clear())
    }

    /// Records this request header as `http.request.header.<name>`. The
    /// [`SENSITIVE_HEADERS`] are never recorded.
    pub fn capture_request_header(self, name: HeaderName) -> Self {
        self.edit(|c| c.request_headers.push(name))
    }

    /// Records this response header as `http.response.header.<name>`.
    pub fn capture_response_header(self, name: HeaderName) -> Self {
        self.edit(|c| c.response_headers.push(name))
    }

    /// Takes `client.address` and `url.scheme` from `Forwarded` /
    /// `X-Forwarded-For` / `X-Forwarded-Proto`: only behind proxies you
    /// trust to set them.
    pub fn trust_forwarded_headers(self, trust: bool) -> Self {
        self.edit(|c| c.trust_forwarded = trust)
    }

    /// Records `url.query` (off by default: queries carry personal data).
    pub fn record_query(self, record: bool) -> Self {
        self.edit(|c| c.record_query = record)
    }

    /// Logs one event per completed request (on by default).
    pub fn completion_log(self, on: bool) -> Self {
        self.edit(|c| c.completion_log = on)
    }
}

impl<S> tower::Layer<S> for OtelLayer {
    type Service = Otel<S>;

    fn layer(&self, inner: S) -> Otel<S> {
        Otel {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`OtelLayer`] wraps around another.
#[derive(Clone)]
pub struct Otel<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for Otel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel").finish_non_exhaustive()
    }
}

use otelwire::http::{method_name, protocol_version};

/// Whether an incoming request id may be kept: 1 to 128 visible ASCII characters.
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A fresh request id: 32 random hex digits.
pub fn new_request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(i);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// The request id to use: the client's when valid, else a new one.
fn request_id(headers: &HeaderMap) -> (String, bool) {
    match headers.get(REQUEST_ID_HEADER) {
        Some(v) if valid_request_id(v.as_bytes()) => {
            (String::from_utf8_lossy(v.as_bytes()).into_owned(), true)
        }
        _ => (new_request_id(), false),
    }
}

/// Whether a `traceparent` value is well formed per W3C Trace Context:
/// `00-{32 hex}-{16 hex}-{2 hex}` in lower case with non-zero ids (later
/// versions may append `-…`; version `ff` is invalid). Stricter than the
/// SDK's parser, which also takes short ids, signs and one-digit flags.
pub fn valid_traceparent(value: &[u8]) -> bool {
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    if value.len() < 55 {
        return false;
    }
    let (version, trace, parent, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    let tail_ok = match version {
        b"00" => value.len() == 55,
        _ => value.len() == 55 || value[55] == b'-',
    };
    dashes
        && tail_ok
        && hex(version)
        && version != b"ff"
        && hex(trace)
        && hex(parent)
        && hex(flags)
        && trace.iter().any(|&b| b != b'0')
        && parent.iter().any(|&b| b != b'0')
}

/// What the context headers say: the parent context, and whether a
/// `traceparent` was present but unusable (then the trace starts anew,
/// though `baggage` is still honoured).
pub fn extract_context(
    propagator: &dyn TextMapPropagator,
    headers: &HeaderMap,
) -> (otelwire::opentelemetry::Context, bool) {
    match headers.get("traceparent") {
        Some(tp) if !valid_traceparent(tp.as_bytes()) => {
            let mut cleaned = headers.clone();
            cleaned.remove("traceparent");
            cleaned.remove("tracestate");
            (propagator.extract(&HeaderExtractor(&cleaned)), true)
        }
        _ => {
            let cx = propagator.extract(&HeaderExtractor(headers));
            let invalid =
                headers.contains_key("traceparent") && !cx.span().span_context().is_valid();
            (cx, invalid)
        }
    }
}

fn host_and_port(req_headers: &HeaderMap, uri: &http::Uri) -> (Option<String>, Option<i64>) {
    let authority = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        req_headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    let Some(authority) = authority else {
        return (None, None);
    };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !authority.ends_with(']') => {
            (Some(host.to_owned()), port.parse().ok())
        }
        _ => (Some(authority), None),
    }
}

fn forwarded_client(headers: &HeaderMap) -> Option<String> {
    if let Some(f) = headers
        .get(http::header::FORWARDED)
        .and_then(|v| v.to_str().ok())
    {
        for part in f.split(',').next().unwrap_or("").split(';') {
            if let Some(v) = part.trim().strip_prefix("for=") {
                return Some(v.trim_matches('"').to_owned());
            }
        }
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Config {
    fn excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == e,
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResB> tower::Service<Request<B>> for Otel<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ResB>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Take the service that was polled ready; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        if config.excluded(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let started = Instant::now();
        let method = method_name(req.method());
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let headers = req.headers();
        let trusted = config.trust_forwarded;
        let scheme = req
            .uri()
            .scheme_str()
            .map(str::to_owned)
            .or_else(|| {
                trusted
                    .then(|| {
                        headers
                            .get("x-forwarded-proto")
                            .and_then(|v| v.to_str().ok())
                    })
                    .flatten()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "http".to_owned());
        let (request_id, _kept) = request_id(headers);
        let name = match &route {
            Some(r) => format!("{method} {r}"),
            None => method.to_owned(),
        };
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %name,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            url.path = req.uri().path(),
            url.scheme = %scheme,
            url.query = Empty,
            http.route = Empty,
            http.response.status_code = Empty,
            network.protocol.version = protocol_version(req.version()),
            server.address = Empty,
            server.port = Empty,
            user_agent.original = Empty,
            client.address = Empty,
            error.type = Empty,
            request.id = %request_id,
        );
        if let Some(r) = &route {
            span.record("http.route", r.as_str());
        }
        if config.record_query
            && let Some(q) = req.uri().query()
        {
            span.record("url.query", q);
        }
        let (host, port) = host_and_port(headers, req.uri());
        if let Some(h) = &host {
            span.record("server.address", h.as_str());
        }
        if let Some(p) = port {
            span.record("server.port", p);
        }
        if let Some(ua) = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            span.record("user_agent.original", ua);
        }
        let client = if trusted {
            forwarded_client(headers)
        } else {
            None
        }
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        });
        if let Some(c) = &client {
            span.record("client.address", c.as_str());
        }
        for name in &config.request_headers {
            if SENSITIVE_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let values: Vec<String> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            if !values.is_empty() {
                span.set_attribute(
                    format!("http.request.header.{}", name.as_str()),
                    values.join(","),
                );
            }
        }

        // The parent context, before the span is entered.
        let (parent, invalid) = match &config.propagator {
            Some(p) => extract_context(p.as_ref(), headers),
            None => otelwire::http::with_propagator(|p| extract_context(p, headers)),
        };
        if invalid {
            config
                .instruments
                .invalid_context
                .add(1, &[KeyValue::new("http.request.method", method)]);
        }
        let _ = span.set_parent(parent);

        if let Ok(v) = HeaderValue::from_str(&request_id) {
            req.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let active_attrs = [
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.scheme", scheme.clone()),
        ];
        config.instruments.active.add(1, &active_attrs);

        let call = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _enter = span.enter();
            inner.call(req)
        }));
        let span2 = span.clone();
        Box::pin(async move {
            let outcome = match call {
                Ok(fut) => {
                    AssertUnwindSafe(fut.instrument(span2.clone()))
                        .catch_unwind()
                        .await
                }
                Err(panic) => Err(panic),
            };
            let (mut response, panicked) = match outcome {
                Ok(Ok(r)) => (r, None),
                Ok(Err(never)) => match never {},
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
            let elapsed = started.elapsed();
            span.record("http.response.status_code", i64::from(status.as_u16()));
            let is_error = status.is_server_error() || panicked.is_some();
            if is_error {
                span.record("otel.status_code", "error");
                let error_type = if panicked.is_some() {
                    "panic".to_owned()
                } else {
                    status.as_u16().to_string()
                };
                span.record("error.type", error_type.as_str());
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
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, v);
            }
            {
                let _enter = span.enter();
                let code = status.as_u16();
                let ms = elapsed.as_secs_f64() * 1000.0;
                if let Some(msg) = &panicked {
                    tracing::error!(
                        exception.message = %msg,
                        http.response.status_code = code,
                        "request handler panicked"
                    );
                }
                if config.completion_log {
                    if status.is_server_error() {
                        tracing::error!(
                            http.response.status_code = code,
                            duration_ms = ms,
                            "request completed"
                        );
                    } else if status.is_client_error() {
                        tracing::warn!(
                            http.response.status_code = code,
                            duration_ms = ms,
                            "request completed"
                        );
                    } else {
                        tracing::info!(
                            http.response.status_code = code,
                            duration_ms = ms,
                            "request completed"
                        );
                    }
                }
            }
            config.instruments.active.add(-1, &active_attrs);
            let mut attrs = vec![
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.scheme", scheme),
                KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
            ];
            if let Some(r) = route {
                attrs.push(KeyValue::new("http.route", r));
            }
            if is_error {
                attrs.push(KeyValue::new(
                    "error.type",
                    if panicked.is_some() {
                        "panic".to_owned()
                    } else {
                        status.as_u16().to_string()
                    },
                ));
            }
            config
                .instruments
                .duration
                .record(elapsed.as_secs_f64(), &attrs);
            Ok(response)
        })
    }
}

/// `GET /health/telemetry`: the JSON of [`otelwire::Health`], with 200 when
/// the pipeline is ok or degraded and 503 when it is failing. Merge it into
/// your router; it is not traced.
pub fn health_router(source: otelwire::HealthSource) -> axum::Router {
    use axum::response::IntoResponse;
    axum::Router::new().route(
        "/health/telemetry",
        axum::routing::get(move || {
            let source = source.clone();
            async move {
                let health = source.health();
                let status = if health.status == otelwire::HealthStatus::Failing {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                (status, axum::Json(health)).into_response()
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id(b"abc-123"));
        assert!(valid_request_id(&[b'x'; 128]));
        assert!(!valid_request_id(&[b'x'; 129]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"has space"));
        assert!(!valid_request_id("caf\u{e9}".as_bytes()));
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(valid_request_id(id.as_bytes()));
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn methods_and_exclusions() {
        assert_eq!(method_name(&http::Method::GET), "GET");
        assert_eq!(
            method_name(&http::Method::from_bytes(b"PURGE").unwrap()),
            "_OTHER"
        );
        let c = OtelLayer::new().exclude_path("/internal/*").config;
        assert!(c.excluded("/health"));
        assert!(c.excluded("/internal/x"));
        assert!(!c.excluded("/healthz"));
        assert!(!c.excluded("/orders/1"));
    }
}
