//! The server layer: one server span per RPC, for
//! `tonic::transport::Server::builder().layer(...)` or any tower service of
//! gRPC requests.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderName, Request, Response};
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::{Counter, Meter};
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

type SharedPropagator = Arc<dyn TextMapPropagator + Send + Sync>;

/// The services left out by default: health checks and reflection.
pub const DEFAULT_EXCLUDED: &[&str] = &[
    "grpc.health.v1.Health/*",
    "grpc.reflection.v1.ServerReflection/*",
    "grpc.reflection.v1alpha.ServerReflection/*",
];

#[derive(Clone)]
struct Config {
    shared: Arc<Shared>,
    invalid_context: Counter<u64>,
    propagator: Option<SharedPropagator>,
    excluded: Vec<String>,
    request_metadata: Vec<HeaderName>,
    response_metadata: Vec<HeaderName>,
}

impl Config {
    /// Whether `method` (`package.Service/Method`) is left out: an exact
    /// method, or a prefix when the pattern ends with `*`.
    fn excluded(&self, method: &str) -> bool {
        self.excluded.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => method.starts_with(prefix),
            None => method == e,
        })
    }
}

fn shared(meter: &Meter, completion_log: bool) -> Arc<Shared> {
    Arc::new(Shared {
        side: Side::Server,
        duration: crate::bound::Duration::new(crate::duration_histogram(
            meter,
            metric::RPC_SERVER_CALL_DURATION,
            "Duration of RPCs handled by the server.",
        )),
        completion_log,
    })
}

/// The server layer. Clone it freely; see the [crate docs](crate) for what
/// it records.
#[derive(Clone)]
pub struct OtelServerLayer {
    config: Arc<Config>,
    meter: Meter,
}

impl std::fmt::Debug for OtelServerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelServerLayer")
            .field("excluded", &self.config.excluded)
            .field("request_metadata", &self.config.request_metadata)
            .field("response_metadata", &self.config.response_metadata)
            .field("completion_log", &self.config.shared.completion_log)
            .finish_non_exhaustive()
    }
}

impl Default for OtelServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelServerLayer {
    /// The defaults: the meter of the pipeline it is made under
    /// ([`otelwire::current::meter`]: the `tracing` dispatcher's when it is
    /// otelwire's, else the global one that `otelwire::init` sets), the
    /// global propagator, [`DEFAULT_EXCLUDED`] left out, no metadata
    /// capture, a completion log.
    pub fn new() -> Self {
        let meter = otelwire::current::meter("otelwire-tonic");
        OtelServerLayer {
            config: Arc::new(Config {
                shared: shared(&meter, true),
                invalid_context: crate::invalid_context_counter(&meter),
                propagator: None,
                excluded: DEFAULT_EXCLUDED.iter().map(|s| (*s).to_owned()).collect(),
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

    /// Records the metrics with this meter (for example
    /// `telemetry.meter("otelwire-tonic")`).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = meter;
        self.edit(|c, m| {
            c.shared = shared(m, c.shared.completion_log);
            c.invalid_context = crate::invalid_context_counter(m);
        })
    }

    /// Extracts the parent context with this propagator instead of the
    /// global one.
    pub fn propagator(self, propagator: impl TextMapPropagator + Send + Sync + 'static) -> Self {
        self.edit(|c, _| c.propagator = Some(Arc::new(propagator)))
    }

    /// Leaves this method out of tracing, metrics and logs:
    /// `package.Service/Method`, or every method of a service with
    /// `package.Service/*`.
    pub fn exclude(self, method: impl Into<String>) -> Self {
        let method = method.into();
        self.edit(|c, _| c.excluded.push(method))
    }

    /// Traces every method, health checks and reflection included.
    pub fn include_all(self) -> Self {
        self.edit(|c, _| c.excluded.clear())
    }

    /// Records this request metadata key as `rpc.request.metadata.<key>`
    /// (an array of its values). [`SENSITIVE_METADATA`](crate::SENSITIVE_METADATA)
    /// and `-bin` keys are never recorded.
    pub fn capture_request_metadata(self, key: HeaderName) -> Self {
        self.edit(|c, _| c.request_metadata.push(key))
    }

    /// Records this response metadata key as `rpc.response.metadata.<key>`
    /// (initial metadata only).
    pub fn capture_response_metadata(self, key: HeaderName) -> Self {
        self.edit(|c, _| c.response_metadata.push(key))
    }

    /// Logs one event per completed RPC (on by default).
    pub fn completion_log(self, on: bool) -> Self {
        self.edit(|c, m| c.shared = shared(m, on))
    }
}

impl<S> tower::Layer<S> for OtelServerLayer {
    type Service = OtelServer<S>;

    fn layer(&self, inner: S) -> OtelServer<S> {
        OtelServer {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`OtelServerLayer`] wraps around another.
#[derive(Clone)]
pub struct OtelServer<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for OtelServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelServer").finish_non_exhaustive()
    }
}

/// `server.address` and `server.port` from `:authority` (or `Host`).
fn authority<B>(req: &Request<B>) -> (Option<&str>, Option<i64>) {
    let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    crate::split_authority(authority)
}

/// `network.peer.address`: an IPv4 address written on the stack (the
/// common case, with no formatting machinery or allocation), any other as
/// `Display` writes it.
enum PeerAddress {
    V4([u8; 15], usize),
    Other(String),
}

impl PeerAddress {
    fn new(ip: std::net::IpAddr) -> Self {
        let std::net::IpAddr::V4(v4) = ip else {
            return PeerAddress::Other(ip.to_string());
        };
        let mut buf = [0u8; 15];
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                buf[len] = b'.';
                len += 1;
            }
            if octet >= 100 {
                buf[len] = b'0' + octet / 100;
                len += 1;
            }
            if octet >= 10 {
                buf[len] = b'0' + octet / 10 % 10;
                len += 1;
            }
            buf[len] = b'0' + octet % 10;
            len += 1;
        }
        PeerAddress::V4(buf, len)
    }

    fn as_str(&self) -> &str {
        match self {
            // Digits and dots only.
            PeerAddress::V4(buf, len) => std::str::from_utf8(&buf[..*len]).unwrap_or_default(),
            PeerAddress::Other(s) => s,
        }
    }
}

impl<S, B, ResB> tower::Service<Request<B>> for OtelServer<S>
where
    S: tower::Service<Request<tonic::body::Body>, Response = Response<ResB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Take the service that was polled ready; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = &self.config;
        let method = RpcMethod::parse(req.uri().path());
        if config.excluded(method.name()) {
            let req = req.map(tonic::body::Body::new);
            return ResponseFuture::new(None, OnResponse::default(), move || inner.call(req));
        }
        let started = Instant::now();
        let request_id = crate::request_id::request_id(req.headers());
        let (host, port) = authority(&req);
        let peer = req
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|c| c.remote_addr());
        let peer_address = peer.map(|p| PeerAddress::new(p.ip()));
        let span = tracing::info_span!(
            "gRPC request",
            otel.name = method.span_name(),
            otel.kind = "server",
            otel.status_code = Empty,
            { semconv::RPC_SYSTEM_NAME } = "grpc",
            { semconv::RPC_METHOD } = method.name(),
            { semconv::RPC_METHOD_ORIGINAL } = method.original(),
            { semconv::RPC_RESPONSE_STATUS_CODE } = Empty,
            { semconv::ERROR_TYPE } = Empty,
            { semconv::SERVER_ADDRESS } = host,
            { semconv::SERVER_PORT } = port,
            { semconv::NETWORK_PEER_ADDRESS } = peer_address.as_ref().map(PeerAddress::as_str),
            { semconv::NETWORK_PEER_PORT } = peer.map(|p| i64::from(p.port())),
            { otelwire::REQUEST_ID_FIELD } = request_id.to_str().ok(),
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
        // The parent context, before the span is entered.
        let (parent, invalid) = match &config.propagator {
            Some(p) => otelwire::http::extract_context(p.as_ref(), req.headers()),
            None => otelwire::http::with_propagator(|p| {
                otelwire::http::extract_context(p, req.headers())
            }),
        };
        if invalid {
            config
                .invalid_context
                .add(1, &[KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc")]);
        }
        let _ = span.set_parent(parent);

        let series = config.shared.duration.series(method.name(), None);
        let counts = Arc::new(Counts::default());
        let mut req = req.map(|b| tonic::body::Body::new(CountedBody::new(b, counts.clone())));
        req.headers_mut()
            .insert(crate::request_id::X_REQUEST_ID, request_id.clone());
        let call = Call {
            shared: config.shared.clone(),
            span,
            started,
            series,
            counts,
            status: None,
        };
        let on_response = OnResponse {
            request_id: Some(request_id),
            capture: config.response_metadata.clone(),
        };
        ResponseFuture::new(Some(call), on_response, move || inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_read_as_display_writes_them() {
        let ips: Vec<std::net::IpAddr> = [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.1.100",
            "9.99.100.199",
            "::1",
            "::ffff:10.0.0.1",
            "2001:db8::8a2e:370:7334",
        ]
        .into_iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for ip in ips {
            assert_eq!(PeerAddress::new(ip).as_str(), ip.to_string());
        }
        for n in 0..=255u8 {
            let ip = std::net::IpAddr::from([n, n / 3, n / 7, 255 - n]);
            assert_eq!(PeerAddress::new(ip).as_str(), ip.to_string());
        }
    }
}
