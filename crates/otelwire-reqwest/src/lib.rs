//! Client spans and context propagation for reqwest, as a
//! [reqwest-middleware](reqwest_middleware) middleware.
//!
//! This crate re-exports the [`reqwest`] and [`reqwest_middleware`] it is
//! built against, as otelwire re-exports the OpenTelemetry crates: name
//! the types through them (`otelwire_reqwest::reqwest_middleware::ClientWithMiddleware`)
//! and a service needs no dependency of its own on either crate, nor has to
//! match their versions.
//!
//! ```
//! use otelwire_reqwest::reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
//! use otelwire_reqwest::{OtelMiddleware, UrlTemplate, reqwest};
//!
//! let client: ClientWithMiddleware = ClientBuilder::new(reqwest::Client::new())
//!     .with(OtelMiddleware::new())
//!     .build();
//! // Each call: a client span, W3C headers injected, a duration recorded.
//! let request = client
//!     .get("http://127.0.0.1:8081/items/widget?token=secret")
//!     .with_extension(UrlTemplate::new("/items/{sku}"));
//! # drop(request);
//! assert_eq!(
//!     otelwire_reqwest::redact_url(&"https://ann:pw@example.com/p?token=abc&x=1".parse().unwrap()),
//!     "https://REDACTED:REDACTED@example.com/p?token=REDACTED&x=REDACTED"
//! );
//! ```
//!
//! [`client`] is the short form of the builder above.
//!
//! Per call:
//! - a span at INFO, kind client, named `{METHOD}`, or `{METHOD} {template}`
//!   when a [`UrlTemplate`] is given, with `http.request.method` (`_OTHER`
//!   for unknown methods), `server.address`, `server.port`, `url.full`
//!   (user info and every query value replaced by `REDACTED`),
//!   `url.template`, `http.response.status_code`,
//!   `network.protocol.version` and, on failure, `error.type` (the status
//!   code for 4xx and 5xx, else `timeout`, `connect`, `redirect`, `body` or
//!   `request`); 4xx and 5xx mark a client span as failed;
//! - `traceparent`, `tracestate` (when not empty) and `baggage` injected
//!   from the client span's context with the global propagator, or
//!   otelwire's W3C propagator when none is installed; every trace flag
//!   bit received is sent on; nothing after `init()` with
//!   `OTEL_PROPAGATORS=none`;
//! - `http.client.request.duration` (s, semantic-convention buckets) with
//!   method, server address and port, status code, `error.type` and the
//!   template — never the raw path;
//! - a transport failure logged at WARN with its cause and the redacted
//!   `url.full`, never reqwest's text with the full URL (the error returned
//!   to the caller keeps its URL).
//!
//! [`DisableOtel`] as a request extension skips all of it for one call.

use std::sync::Arc;
use std::time::Instant;

use http::Extensions;
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::{Histogram, Meter};
use otelwire::opentelemetry::propagation::TextMapPropagator;
use otelwire::opentelemetry_http::HeaderInjector;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};
use tracing::Instrument;
use tracing::field::Empty;

/// The reqwest this crate is built against (0.13): `reqwest::Client`,
/// `reqwest::Url` and the rest, without a dependency of your own.
pub use reqwest;
/// The reqwest-middleware this crate is built against (0.5): what
/// [`client`] returns ([`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware)),
/// its builder and its error type, without a dependency of your own.
pub use reqwest_middleware;

/// The semantic-convention bucket boundaries of `http.client.request.duration`.
pub use otelwire::http::DURATION_BUCKETS;

/// The route-like template of a call's URL (`/items/{sku}`): names the span
/// and labels the metric without the raw path's cardinality. Give it with
/// `RequestBuilder::with_extension`.
#[derive(Debug, Clone)]
pub struct UrlTemplate(Arc<str>);

impl UrlTemplate {
    /// A template such as `/items/{sku}`.
    pub fn new(template: impl Into<Arc<str>>) -> Self {
        UrlTemplate(template.into())
    }
}

/// A request extension that turns the middleware off for one call: no
/// span, no injected headers, no metric.
#[derive(Debug, Clone, Copy)]
pub struct DisableOtel;

/// The middleware; see the [crate docs](crate).
#[derive(Clone)]
pub struct OtelMiddleware {
    duration: Histogram<f64>,
    propagator: Option<Arc<dyn TextMapPropagator + Send + Sync>>,
}

impl std::fmt::Debug for OtelMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelMiddleware").finish_non_exhaustive()
    }
}

impl Default for OtelMiddleware {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(meter: &Meter) -> Histogram<f64> {
    meter
        .f64_histogram("http.client.request.duration")
        .with_unit("s")
        .with_description("Duration of HTTP client requests.")
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build()
}

impl OtelMiddleware {
    /// With the meter of the pipeline it is made under
    /// ([`otelwire::current::meter`]: the `tracing` dispatcher's when it is
    /// otelwire's, else the global one) and the global propagator.
    pub fn new() -> Self {
        OtelMiddleware {
            duration: histogram(&otelwire::current::meter("otelwire-reqwest")),
            propagator: None,
        }
    }

    /// Records `http.client.request.duration` with this meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.duration = histogram(&meter);
        self
    }

    /// Injects with this propagator instead of the global one.
    pub fn propagator(
        mut self,
        propagator: impl TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.propagator = Some(Arc::new(propagator));
        self
    }
}

/// A client with [`OtelMiddleware`] (the meter of the pipeline it is made
/// under, see [`otelwire::current`], and the global propagator).
pub fn client(client: reqwest::Client) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(client)
        .with(OtelMiddleware::new())
        .build()
}

use otelwire::http::{method_name, protocol_version};

/// `url.full` without secrets: user info and every query value become
/// `REDACTED` (query keys stay, so the shape of the call is visible).
pub fn redact_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() {
        let _ = u.set_username("REDACTED");
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("REDACTED"));
    }
    u.set_fragment(None);
    if let Some(query) = url.query() {
        let redacted: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=REDACTED"),
                None => pair.to_owned(),
            })
            .collect();
        u.set_query(Some(&redacted.join("&")));
    }
    u.to_string()
}

fn error_kind(e: &reqwest_middleware::Error) -> &'static str {
    match e {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(e) if e.is_redirect() => "redirect",
        reqwest_middleware::Error::Reqwest(e) if e.is_body() || e.is_decode() => "body",
        reqwest_middleware::Error::Reqwest(_) => "request",
        reqwest_middleware::Error::Middleware(_) => "middleware",
    }
}

/// A failed call's error and its text for a log line, without the URL's
/// secrets: reqwest's text ends with `for url (…)`, the full URL with the
/// query values that `url.full` redacts. The caller still gets the error
/// with its URL.
fn error_text(
    e: reqwest_middleware::Error,
    raw: &reqwest::Url,
    redacted: &str,
) -> (reqwest_middleware::Error, String) {
    match e {
        reqwest_middleware::Error::Reqwest(inner) => {
            let url = inner.url().cloned();
            let bare = inner.without_url();
            let text = scrub(chain(&bare), raw, redacted);
            let inner = match url {
                Some(url) => bare.with_url(url),
                None => bare,
            };
            (reqwest_middleware::Error::Reqwest(inner), text)
        }
        // Another middleware's error: its text may quote the URL.
        reqwest_middleware::Error::Middleware(m) => {
            let text = scrub(format!("{m:#}"), raw, redacted);
            (reqwest_middleware::Error::Middleware(m), text)
        }
    }
}

/// `e` and its sources on one line (`error sending request: client error
/// (Connect): …: Connection refused`), the cause being what a reader needs.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// `text` with the request's URL, in any spelling a library prints it,
/// replaced by its redacted form, and any password or query value of at
/// least four characters removed wherever it appears.
fn scrub(mut text: String, raw: &reqwest::Url, redacted: &str) -> String {
    let raw_text = raw.as_str();
    if text.contains(raw_text) {
        text = text.replace(raw_text, redacted);
    }
    let values = raw
        .password()
        .into_iter()
        .map(str::to_owned)
        .chain(raw.query_pairs().map(|(_, v)| v.into_owned()))
        .chain(raw.query().into_iter().flat_map(|q| {
            q.split('&')
                .filter_map(|p| p.split_once('=').map(|(_, v)| v.to_owned()))
                .collect::<Vec<_>>()
        }));
    for v in values {
        if v.len() >= 4 && text.contains(&v) {
            text = text.replace(&v, "REDACTED");
        }
    }
    text
}

#[async_trait::async_trait]
impl Middleware for OtelMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        if extensions.get::<DisableOtel>().is_some() {
            return next.run(req, extensions).await;
        }
        let method = method_name(req.method());
        let template = extensions.get::<UrlTemplate>().map(|t| t.0.clone());
        let name = match &template {
            Some(t) => format!("{method} {t}"),
            None => method.to_owned(),
        };
        let host = req.url().host_str().unwrap_or("").to_owned();
        let port = req.url().port_or_known_default().map(i64::from);
        let full = redact_url(req.url());
        let span = tracing::info_span!(
            "HTTP client request",
            otel.name = %name,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = method,
            server.address = %host,
            server.port = Empty,
            url.full = %full,
            url.template = Empty,
            http.response.status_code = Empty,
            network.protocol.version = Empty,
            error.type = Empty,
        );
        if let Some(p) = port {
            span.record("server.port", p);
        }
        if let Some(t) = &template {
            span.record("url.template", t.as_ref());
        }
        // Inject the client span's own context: the server's span is its child.
        let cx = span.context();
        let mut injector = HeaderInjector(req.headers_mut());
        match &self.propagator {
            Some(p) => p.inject_context(&cx, &mut injector),
            None => otelwire::http::with_propagator(|p| p.inject_context(&cx, &mut injector)),
        }

        let started = Instant::now();
        let raw_url = req.url().clone();
        let result = next.run(req, extensions).instrument(span.clone()).await;
        let elapsed = started.elapsed().as_secs_f64();

        let mut attrs = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("server.address", host),
        ];
        if let Some(p) = port {
            attrs.push(KeyValue::new("server.port", p));
        }
        if let Some(t) = template {
            attrs.push(KeyValue::new("url.template", t.to_string()));
        }
        let result = match result {
            Ok(response) => {
                let code = response.status().as_u16();
                span.record("http.response.status_code", i64::from(code));
                span.record(
                    "network.protocol.version",
                    protocol_version(response.version()),
                );
                attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
                if code >= 400 {
                    span.record("otel.status_code", "error");
                    span.record("error.type", code.to_string().as_str());
                    attrs.push(KeyValue::new("error.type", code.to_string()));
                }
                Ok(response)
            }
            Err(e) => {
                let kind = error_kind(&e);
                span.record("otel.status_code", "error");
                span.record("error.type", kind);
                attrs.push(KeyValue::new("error.type", kind));
                let (e, text) = error_text(e, &raw_url, &full);
                let _enter = span.enter();
                tracing::warn!(error.type = kind, error = %text, url.full = %full, "HTTP call failed");
                Err(e)
            }
        };
        self.duration.record(elapsed, &attrs);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_query_values() {
        let u: reqwest::Url = "http://user:secret@127.0.0.1:8080/p/q?token=abc&x=1&flag#frag"
            .parse()
            .unwrap();
        let r = redact_url(&u);
        assert_eq!(
            r,
            "http://REDACTED:REDACTED@127.0.0.1:8080/p/q?token=REDACTED&x=REDACTED&flag"
        );
        assert!(!r.contains("secret") && !r.contains("abc"));
        let plain: reqwest::Url = "https://example.com/a".parse().unwrap();
        assert_eq!(redact_url(&plain), "https://example.com/a");
    }
}

/// The README's examples, compiled as doctests so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
