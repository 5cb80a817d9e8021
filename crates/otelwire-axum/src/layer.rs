//! [`OtelLayer`], its configuration and the builder methods that set it.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderName;
use otelwire::opentelemetry::metrics::Meter;
use otelwire::opentelemetry::propagation::TextMapPropagator;

use crate::context::SharedPropagator;
use crate::instruments::Instruments;
use crate::scrub::PathScrubber;
use crate::service::Otel;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) instruments: Instruments,
    pub(crate) propagator: Option<SharedPropagator>,
    excluded: Vec<String>,
    pub(crate) request_headers: Vec<HeaderName>,
    pub(crate) response_headers: Vec<HeaderName>,
    pub(crate) trust_forwarded: bool,
    pub(crate) record_query: bool,
    pub(crate) completion_log: bool,
    /// The completion event's level for 4xx and 5xx responses.
    pub(crate) client_error_level: tracing::Level,
    pub(crate) server_error_level: tracing::Level,
    pub(crate) scrub_path: Option<PathScrubber>,
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
    /// [`SENSITIVE_HEADERS`](crate::SENSITIVE_HEADERS) are never recorded.
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
    /// [`scrub_segments`](crate::scrub_segments) makes such a function from a list of patterns.
    pub fn scrub_path<F>(self, scrub: F) -> Self
    where
        F: for<'a> Fn(&'a str) -> Cow<'a, str> + Send + Sync + 'static,
    {
        self.edit(|c| c.scrub_path = Some(Arc::new(scrub)))
    }
}

impl Config {
    pub(crate) fn excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == e,
        })
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

#[cfg(test)]
mod tests {
    use otelwire::http::method_name;

    use super::*;

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
