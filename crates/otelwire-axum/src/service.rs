//! [`Otel`], the service: starts the request's span, extracts its parent
//! context and calls the inner service inside it.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath};
use futures_util::FutureExt;
use futures_util::future::Either;
use http::{Request, Response};
use otelwire::opentelemetry::KeyValue;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing::field::Empty;

use crate::attributes::{
    SENSITIVE_HEADERS, X_FORWARDED_PROTO, forwarded_client, host_and_port, scheme_value,
};
use crate::completion::InFlight;
use crate::context::extract_context;
use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::request_id::{X_REQUEST_ID, request_id};
use crate::span_name::span_name;

/// The service [`OtelLayer`](crate::OtelLayer) wraps around another.
#[derive(Clone)]
pub struct Otel<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> std::fmt::Debug for Otel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel").finish_non_exhaustive()
    }
}

use otelwire::http::{method_name, protocol_version};

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
