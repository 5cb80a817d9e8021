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
//! // `init()` in a service; with `build()`, integrations made while its
//! // dispatcher is the default record into it (`otelwire::current`).
//! let _default = tracing::dispatcher::set_default(telemetry.dispatch());
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     // After the routes, so that the route template names the span.
//!     .layer(otelwire_axum::OtelLayer::new())
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
//!   as W3C Trace Context Level 2 has it ([`otelwire::propagation`]): a
//!   malformed `traceparent`, or more than one, starts a new trace and is
//!   counted in `otelwire.http.server.invalid_context`; several
//!   `tracestate` lines are one list;
//! - status error on 5xx and on a handler panic (the panic is caught,
//!   recorded as an exception event, and answered with 500); 4xx is not an
//!   error for a server;
//! - `x-request-id`: kept when it is 1 to 128 visible ASCII characters,
//!   otherwise replaced; made when absent; echoed on the response; on the
//!   span as `request.id`, which otelwire copies onto every log record
//!   emitted inside the request;
//! - `http.server.request.duration` (s, the semantic-convention buckets) and
//!   `http.server.active_requests`, with low-cardinality attributes only;
//! - one log event when the request completes: INFO, and ERROR for 5xx
//!   (a server's 4xx is its client's error, so INFO too; both levels are
//!   set with [`OtelLayer::client_error_level`] and
//!   [`OtelLayer::server_error_level`], and [`OtelLayer::completion_log`]
//!   turns the event off).
//!
//! `/health`, `/health/telemetry`, `/health/logs` and `/metrics` are not traced (see
//! [`OtelLayer::exclude_path`]).
//!
//! # Secrets in paths and user agents
//!
//! `url.path` and `user_agent.original` are recorded as the client sent
//! them, as the HTTP semantic conventions define them: a path that carries
//! a secret (`/reset/<token>`, `;jsessionid=…`) or a user agent that does
//! reaches the span and every local line of the request. Field-name
//! redaction does not apply (the names are not secret-like), and the span
//! name and the metrics never carry the raw path (they use the route
//! template). Where paths can carry secrets, scrub them with
//! [`OtelLayer::scrub_path`] (opt-in: the default records the path as
//! is); query strings are left out unless [`OtelLayer::record_query`].
//!
//! Apply the layer with `Router::layer` after the routes: axum then runs it
//! after routing, so the route template is known. axum applies such a layer
//! to the routes and to a fallback set before it, not to its built-in 404:
//! set `.fallback(...)` before `.layer(...)` to trace unmatched requests
//! (they are named by the method alone).

use std::borrow::Cow;
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
use futures_util::future::Either;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};
use otelwire::opentelemetry::propagation::TextMapPropagator;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing::field::Empty;

mod admin;
mod bound;

pub use admin::{
    AdminToken, LOG_FILTER_KEY, LOG_LEVEL_PATH, MAX_TTL_SECS, admin_router, admin_router_with,
};
mod health;

pub use health::health_router;
mod metrics;

pub use metrics::metrics_router;

pub use otelwire::http::REQUEST_ID_HEADER;

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
    bound: Arc<bound::BoundCache>,
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
            bound: Arc::default(),
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
    /// The completion event's level for 4xx and 5xx responses.
    client_error_level: tracing::Level,
    server_error_level: tracing::Level,
    scrub_path: Option<PathScrubber>,
}

/// A function that rewrites `url.path` before it is recorded.
type PathScrubber = Arc<dyn for<'a> Fn(&'a str) -> Cow<'a, str> + Send + Sync>;

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
    /// The defaults: the meter of the pipeline it is made under
    /// ([`otelwire::current::meter`]: the `tracing` dispatcher's when it is
    /// otelwire's, as in tests with `Builder::build`, else the global one
    /// that `otelwire::init` sets), the global propagator, health and metrics routes excluded, no header capture,
    /// forwarding headers not trusted, no `url.query`, a completion log.
    pub fn new() -> Self {
        OtelLayer {
            config: Arc::new(Config {
                instruments: Instruments::new(&otelwire::current::meter("otelwire-axum")),
                propagator: None,
                excluded: vec![
                    "/health".into(),
                    "/health/telemetry".into(),
                    "/health/logs".into(),
                    "/metrics".into(),
                ],
                request_headers: Vec::new(),
                response_headers: Vec::new(),
                trust_forwarded: false,
                record_query: false,
                completion_log: true,
                client_error_level: tracing::Level::INFO,
                server_error_level: tracing::Level::ERROR,
                scrub_path: None,
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

    /// The completion event's level for a 4xx response (default INFO: a
    /// server's 4xx is its client's error, and WARN would fill the alerts
    /// with every 404). `Level::WARN` for services whose clients are
    /// their own, where a 4xx is a bug.
    pub fn client_error_level(self, level: tracing::Level) -> Self {
        self.edit(|c| c.client_error_level = level)
    }

    /// The completion event's level for a 5xx response (default ERROR).
    /// A handler that logs its own ERROR before answering 500 makes two
    /// records of one failure, both in the request's span: lower this to
    /// `Level::INFO` when the handlers' errors are the ones to alert on.
    pub fn server_error_level(self, level: tracing::Level) -> Self {
        self.edit(|c| c.server_error_level = level)
    }

    /// Records `url.path` as `scrub` rewrites it (return the path itself,
    /// borrowed, when there is nothing to hide: no allocation then). The
    /// request itself, the routing and `http.route` are unchanged. Off by
    /// default: the conventions record the path as sent.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// // `/reset/<token>` → `/reset/[REDACTED]`; `;jsessionid=…` dropped.
    /// let layer = otelwire_axum::OtelLayer::new().scrub_path(|path: &str| {
    ///     let path = match path.find(';') {
    ///         Some(i) => Cow::Owned(path[..i].to_owned()),
    ///         None => Cow::Borrowed(path),
    ///     };
    ///     match path.strip_prefix("/reset/") {
    ///         Some(_) => Cow::Borrowed("/reset/[REDACTED]"),
    ///         None => path,
    ///     }
    /// });
    /// # let _ = layer;
    /// ```
    ///
    /// [`scrub_segments`] makes such a function from a list of patterns.
    pub fn scrub_path<F>(self, scrub: F) -> Self
    where
        F: for<'a> Fn(&'a str) -> Cow<'a, str> + Send + Sync + 'static,
    {
        self.edit(|c| c.scrub_path = Some(Arc::new(scrub)))
    }
}

/// The replacement of a scrubbed path segment.
pub const SCRUBBED: &str = "[REDACTED]";

/// A path scrubber for [`OtelLayer::scrub_path`] from segment patterns:
/// each pattern is a path of literal segments and `*` (any one segment);
/// the segments of a path that match a pattern's `*` become
/// [`SCRUBBED`]. Path parameters (`;jsessionid=…` in any segment) are
/// always removed.
///
/// ```
/// let scrub = otelwire_axum::scrub_segments(&["/reset/*", "/users/*/tokens/*"]);
/// assert_eq!(scrub("/reset/s3cr3t"), "/reset/[REDACTED]");
/// assert_eq!(scrub("/users/7/tokens/abc;jsessionid=x"), "/users/[REDACTED]/tokens/[REDACTED]");
/// assert_eq!(scrub("/orders/7;jsessionid=x"), "/orders/7");
/// assert_eq!(scrub("/orders/7"), "/orders/7");
/// ```
pub fn scrub_segments(
    patterns: &[&str],
) -> impl for<'a> Fn(&'a str) -> Cow<'a, str> + Send + Sync + 'static {
    let patterns: Vec<Vec<String>> = patterns
        .iter()
        .map(|p| p.split('/').map(str::to_owned).collect())
        .collect();
    move |path: &str| {
        let params = path.contains(';');
        let segments: Vec<&str> = path
            .split('/')
            .map(|s| s.split(';').next().unwrap_or(""))
            .collect();
        let pattern = patterns.iter().find(|p| {
            p.len() == segments.len() && p.iter().zip(&segments).all(|(p, s)| p == "*" || p == s)
        });
        match pattern {
            None if !params => Cow::Borrowed(path),
            None => Cow::Owned(segments.join("/")),
            Some(p) => Cow::Owned(
                p.iter()
                    .zip(&segments)
                    .map(|(p, s)| if p == "*" { SCRUBBED } else { s })
                    .collect::<Vec<_>>()
                    .join("/"),
            ),
        }
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

use otelwire::http::request_id;
pub use otelwire::http::{new_request_id, valid_request_id};

const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

pub use otelwire::http::{extract_context, valid_traceparent};

/// `server.address` and `server.port` from the URI's authority, else from
/// `Host`; borrowed, no allocation.
fn host_and_port<'a>(
    req_headers: &'a HeaderMap,
    uri: &'a http::Uri,
) -> (Option<&'a str>, Option<i64>) {
    let authority = uri.authority().map(|a| a.as_str()).or_else(|| {
        req_headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let Some(authority) = authority else {
        return (None, None);
    };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !authority.ends_with(']') => {
            (Some(host), port.parse().ok())
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
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `url.scheme`, without an allocation for the usual two.
fn scheme_value(s: &str) -> Cow<'static, str> {
    match s {
        "http" => Cow::Borrowed("http"),
        "https" => Cow::Borrowed("https"),
        other => Cow::Owned(other.to_ascii_lowercase()),
    }
}

impl Config {
    fn excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == e,
        })
    }
}

/// `{METHOD} {route}`, or `{METHOD}` when no route matched (never the raw
/// path). Built by hand: the formatting machinery costs more than the copy.
fn span_name(method: &'static str, route: Option<&str>) -> Cow<'static, str> {
    match route {
        Some(route) => {
            let mut name = String::with_capacity(method.len() + 1 + route.len());
            name.push_str(method);
            name.push(' ');
            name.push_str(route);
            Cow::Owned(name)
        }
        None => Cow::Borrowed(method),
    }
}

/// The completion log's message: a `&'static str` field, which the log
/// bridge and the line formats take as is (a format string would be
/// formatted on every request).
const COMPLETED: &str = "request completed";

/// What a request's span and metrics need once the response is known.
struct InFlight {
    config: Arc<Config>,
    started: Instant,
    method: &'static str,
    scheme: Cow<'static, str>,
    route: Option<MatchedPath>,
    request_id: HeaderValue,
    /// The bound metric handles of this method, scheme and route (`None`
    /// past the cache's cap: then the unbound instruments are used).
    metrics: Option<Arc<bound::RouteMetrics>>,
}

impl InFlight {
    /// Counts the request as active (`+1`) or no longer active (`-1`).
    fn add_active(&self, n: i64) {
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
    fn finish<ResB: Default>(
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
    type Future = Either<S::Future, ResponseFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Take the service that was polled ready; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if self.config.excluded(req.uri().path()) {
            return Either::Left(inner.call(req));
        }
        let config = self.config.clone();
        let started = Instant::now();
        let method = method_name(req.method());
        let route = req.extensions().get::<MatchedPath>().cloned();
        let headers = req.headers();
        let trusted = config.trust_forwarded;
        let scheme = match req.uri().scheme_str() {
            Some(s) => scheme_value(s),
            None => trusted
                .then(|| {
                    headers
                        .get(&X_FORWARDED_PROTO)
                        .and_then(|v| v.to_str().ok())
                })
                .flatten()
                .map_or(Cow::Borrowed("http"), scheme_value),
        };
        let (request_id, _kept) = request_id(headers);
        let (host, port) = host_and_port(headers, req.uri());
        let user_agent = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
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
        let path = match &config.scrub_path {
            Some(scrub) => scrub(req.uri().path()),
            None => Cow::Borrowed(req.uri().path()),
        };
        let query = if config.record_query {
            req.uri().query()
        } else {
            None
        };
        let route_str = route.as_ref().map(MatchedPath::as_str);
        let metrics =
            config
                .instruments
                .bound
                .route(&config.instruments.active, method, &scheme, route_str);
        let name = match &metrics {
            Some(m) => Cow::Borrowed(&*m.span_name),
            None => span_name(method, route_str),
        };
        // Every value is given at creation (`None` records nothing): one
        // call into the subscriber instead of one per attribute.
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = name.as_ref(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            url.path = path.as_ref(),
            url.scheme = scheme.as_ref(),
            url.query = query,
            http.route = route_str,
            http.response.status_code = Empty,
            network.protocol.version = protocol_version(req.version()),
            server.address = host,
            server.port = port,
            user_agent.original = user_agent,
            client.address = client.as_deref(),
            error.type = Empty,
            request.id = request_id.to_str().ok(),
        );
        for name in &config.request_headers {
            if SENSITIVE_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
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

        req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
        let in_flight = InFlight {
            config,
            started,
            method,
            scheme,
            route,
            request_id,
            metrics,
        };
        in_flight.add_active(1);

        let call = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _enter = span.enter();
            inner.call(req)
        }));
        Either::Right(ResponseFuture {
            inner: match call {
                Ok(fut) => Either::Left(AssertUnwindSafe(fut).catch_unwind()),
                Err(panic) => Either::Right(std::future::ready(Err(panic))),
            },
            span,
            in_flight: Some(in_flight),
        })
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Otel`]: the inner future, polled inside the
    /// request's span, then the outcome recorded on the span and metrics.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        inner: Either<
            futures_util::future::CatchUnwind<AssertUnwindSafe<F>>,
            std::future::Ready<Result<F::Output, Box<dyn std::any::Any + Send>>>,
        >,
        span: tracing::Span,
        in_flight: Option<InFlight>,
    }

    impl<F: Future> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response (the client went away): the
            // request is no longer active.
            if let Some(state) = this.project().in_flight.take() {
                state.add_active(-1);
            }
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, Infallible>>,
    ResB: Default,
{
    type Output = Result<Response<ResB>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // One enter per poll, and the completion inside the same one.
        let _enter = this.span.enter();
        let outcome = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome.map(|r| match r {
                Ok(response) => response,
                Err(never) => match never {},
            }),
        };
        let state = this
            .in_flight
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(Ok(state.finish(this.span, outcome)))
    }
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
