//! The client layer: one client span per RPC and the context injected into
//! the request metadata, for a `tonic::transport::Channel` or any tower
//! service of gRPC requests.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderName, Request, Response};
use otelwire::opentelemetry::metrics::Meter;
use otelwire::opentelemetry::propagation::TextMapPropagator;
use otelwire::opentelemetry_semantic_conventions::{attribute as semconv, metric};
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing::field::Empty;

use crate::BoxError;
use crate::body::ResponseBody;
use crate::call::{Call, REQUEST_MESSAGES, RESPONSE_MESSAGES, STATUS_MESSAGE, Shared};
use crate::framing::{CountedBody, Counts};
use crate::future::{OnResponse, ResponseFuture};
use crate::method::RpcMethod;
use crate::status::Side;

#[derive(Clone)]
struct Config {
    shared: Arc<Shared>,
    propagator: Option<Arc<dyn TextMapPropagator + Send + Sync>>,
    /// `server.address` and `server.port` when the request URI has none
    /// (a `Channel` adds its origin below this layer).
    server: Option<(Arc<str>, Option<i64>)>,
    request_metadata: Vec<HeaderName>,
    response_metadata: Vec<HeaderName>,
}

fn shared(meter: &Meter, completion_log: bool) -> Arc<Shared> {
    Arc::new(Shared {
        side: Side::Client,
        duration: crate::bound::Duration::new(crate::duration_histogram(
            meter,
            metric::RPC_CLIENT_CALL_DURATION,
            "Duration of RPCs made by the client.",
        )),
        completion_log,
    })
}

/// The client layer; see the [crate docs](crate) for what it records.
#[derive(Clone)]
pub struct OtelClientLayer {
    config: Arc<Config>,
    meter: Meter,
}

impl std::fmt::Debug for OtelClientLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelClientLayer")
            .field("server", &self.config.server)
            .field("completion_log", &self.config.shared.completion_log)
            .finish_non_exhaustive()
    }
}

impl Default for OtelClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelClientLayer {
    /// The defaults: the meter of the pipeline it is made under
    /// ([`otelwire::current::meter`]), the global propagator, no metadata
    /// capture, a completion log.
    pub fn new() -> Self {
        let meter = otelwire::current::meter("otelwire-tonic");
        OtelClientLayer {
            config: Arc::new(Config {
                shared: shared(&meter, true),
                propagator: None,
                server: None,
                request_metadata: Vec::new(),
                response_metadata: Vec::new(),
            }),
            meter,
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config, &Meter)) -> Self {
        f(Arc::make_mut(&mut self.config), &self.meter);
        self
    }

    /// Records `rpc.client.call.duration` with this meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = meter;
        self.edit(|c, m| c.shared = shared(m, c.shared.completion_log))
    }

    /// Injects with this propagator instead of the global one.
    pub fn propagator(self, propagator: impl TextMapPropagator + Send + Sync + 'static) -> Self {
        self.edit(|c, _| c.propagator = Some(Arc::new(propagator)))
    }

    /// The server the channel talks to, for `server.address` and
    /// `server.port` (give the URI the channel was made with: a `Channel`
    /// adds it to requests only below this layer).
    ///
    /// ```
    /// let layer = otelwire_tonic::OtelClientLayer::new()
    ///     .server_uri(&"http://pricing:50051".parse().unwrap());
    /// # let _ = layer;
    /// ```
    pub fn server_uri(self, uri: &http::Uri) -> Self {
        let (host, port) = crate::split_authority(uri.authority().map(|a| a.as_str()));
        let port = port.or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let server = host.map(|h| (Arc::from(h), port));
        self.edit(|c, _| c.server = server)
    }

    /// Records this request metadata key as `rpc.request.metadata.<key>`;
    /// sensitive and `-bin` keys never.
    pub fn capture_request_metadata(self, key: HeaderName) -> Self {
        self.edit(|c, _| c.request_metadata.push(key))
    }

    /// Records this response metadata key as `rpc.response.metadata.<key>`.
    pub fn capture_response_metadata(self, key: HeaderName) -> Self {
        self.edit(|c, _| c.response_metadata.push(key))
    }

    /// Logs one event per completed RPC (on by default).
    pub fn completion_log(self, on: bool) -> Self {
        self.edit(|c, m| c.shared = shared(m, on))
    }
}

impl<S> tower::Layer<S> for OtelClientLayer {
    type Service = OtelClient<S>;

    fn layer(&self, inner: S) -> OtelClient<S> {
        OtelClient {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`OtelClientLayer`] wraps around a channel.
#[derive(Clone)]
pub struct OtelClient<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for OtelClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelClient").finish_non_exhaustive()
    }
}

impl<S, ResB> tower::Service<Request<tonic::body::Body>> for OtelClient<S>
where
    S: tower::Service<Request<tonic::body::Body>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = &self.config;
        let started = Instant::now();
        let method = RpcMethod::parse(req.uri().path());
        let (host, port) = match crate::split_authority(req.uri().authority().map(|a| a.as_str())) {
            (Some(h), p) => (Some(h), p),
            (None, _) => match &config.server {
                Some((h, p)) => (Some(&**h), *p),
                None => (None, None),
            },
        };
        let span = tracing::info_span!(
            "gRPC call",
            otel.name = method.span_name(),
            otel.kind = "client",
            otel.status_code = Empty,
            { semconv::RPC_SYSTEM_NAME } = "grpc",
            { semconv::RPC_METHOD } = method.name(),
            { semconv::RPC_METHOD_ORIGINAL } = method.original(),
            { semconv::RPC_RESPONSE_STATUS_CODE } = Empty,
            { semconv::ERROR_TYPE } = Empty,
            { semconv::SERVER_ADDRESS } = host,
            { semconv::SERVER_PORT } = port,
            { REQUEST_MESSAGES } = Empty,
            { RESPONSE_MESSAGES } = Empty,
            { STATUS_MESSAGE } = Empty,
        );
        crate::metadata::record(
            &span,
            semconv::RPC_REQUEST_METADATA,
            &config.request_metadata,
            req.headers(),
        );
        let series = config
            .shared
            .duration
            .series(method.name(), host.map(|h| (h, port)));

        let counts = Arc::new(Counts::default());
        let mut req = req.map(|b| tonic::body::Body::new(CountedBody::new(b, counts.clone())));
        // Inject the client span's own context: the server's span is its child.
        let cx = span.context();
        let mut injector = crate::injector::Headers(req.headers_mut());
        match &config.propagator {
            Some(p) => p.inject_context(&cx, &mut injector),
            None => otelwire::http::with_propagator(|p| p.inject_context(&cx, &mut injector)),
        }
        let call = Call {
            shared: config.shared.clone(),
            span,
            started,
            series,
            counts,
            status: None,
        };
        let on_response = OnResponse {
            request_id: None,
            capture: config.response_metadata.clone(),
        };
        ResponseFuture::new(Some(call), on_response, move || inner.call(req))
    }
}
