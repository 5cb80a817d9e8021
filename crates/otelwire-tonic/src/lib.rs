//! Tower layers that give tonic servers and clients one OpenTelemetry span
//! per RPC, the RPC semantic conventions, the gRPC status wherever it comes
//! from, context propagation in metadata and the call-duration metrics.
//!
//! ```
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let telemetry = otelwire::builder().sdk_disabled(true).build().unwrap();
//! // `init()` in a service; with `build()`, layers made while its
//! // dispatcher is the default record into it (`otelwire::current`).
//! let _default = tracing::dispatcher::set_default(telemetry.dispatch());
//!
//! // A server: `tonic::transport::Server::builder().layer(layer).add_service(...)`.
//! // Here, any tower service of gRPC requests: one that knows no method.
//! let layer = otelwire_tonic::OtelServerLayer::new();
//! let service = layer.layer(tower::service_fn(|_: http::Request<tonic::body::Body>| async {
//!     let status = tonic::Status::unimplemented("no such method");
//!     Ok::<_, std::convert::Infallible>(status.into_http::<tonic::body::Body>())
//! }));
//! let request = http::Request::post("/shop.v1.Pricing/Quote")
//!     .body(tonic::body::Body::empty())
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["grpc-status"], "12");
//! // A request id is made when the caller sent none, and echoed.
//! assert!(response.headers().contains_key("x-request-id"));
//!
//! // A client: the layer around the channel, the generated client over it
//! // (`PricingClient::new(channel)`).
//! let uri: http::Uri = "http://127.0.0.1:50051".parse().unwrap();
//! let channel = tonic::transport::Endpoint::from_shared(uri.to_string()).unwrap().connect_lazy();
//! let channel = otelwire_tonic::OtelClientLayer::new()
//!     .server_uri(&uri)
//!     .layer(channel);
//! # let _ = channel;
//! # }
//! ```
//!
//! Per RPC, on both sides ([`OtelServerLayer`], [`OtelClientLayer`]):
//! - a span at INFO, kind server or client, named `package.Service/Method`
//!   from the request path (`grpc` for a path that is no gRPC method, then
//!   `rpc.method` is `_OTHER` and `rpc.method_original` the path), with
//!   `rpc.system.name = grpc`, `rpc.method`, `rpc.response.status_code`
//!   (the status name: `DEADLINE_EXCEEDED`), `error.type` on failure,
//!   `server.address`, `server.port`, on the server `network.peer.address`
//!   and `network.peer.port`, and the message counts per direction
//!   ([`REQUEST_MESSAGES`], [`RESPONSE_MESSAGES`]);
//! - the status from `grpc-status` wherever it comes: the response headers
//!   (Trailers-Only), the trailers after the messages, the HTTP status of a
//!   non-gRPC answer, or a transport error (`UNAVAILABLE`, `error.type`
//!   `connect`, `timeout`, `io` or `transport`); `grpc-message` as
//!   [`STATUS_MESSAGE`], only on failures, cut and redacted like any field;
//! - span status error on the server for `UNKNOWN`, `DEADLINE_EXCEEDED`,
//!   `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS`
//!   ([`is_server_error`]), on the client for every code but `OK`;
//! - the span and the duration end when the response stream ends, not when
//!   the headers arrive; a stream dropped before its status is `CANCELLED`;
//! - `rpc.server.call.duration` / `rpc.client.call.duration` (s) with
//!   `rpc.system.name`, `rpc.method`, `rpc.response.status_code`,
//!   `error.type` and, on the client, `server.address` and `server.port`:
//!   one series per method and status, never per request (a method the
//!   server answers `UNIMPLEMENTED` counts as `_OTHER`);
//! - one log event when the RPC completes: INFO for `OK`, ERROR for the
//!   server-error codes, WARN for the others (`INVALID_ARGUMENT`,
//!   `NOT_FOUND`, …); `completion_log(false)` turns it off;
//! - metadata capture only by allow-list (`capture_request_metadata`,
//!   `capture_response_metadata`); [`SENSITIVE_METADATA`] and `-bin` keys
//!   are never recorded.
//!
//! On the server only:
//! - the parent context extracted from the metadata with the global
//!   propagator (so `OTEL_PROPAGATORS` applies; W3C when none is
//!   installed); a malformed `traceparent` starts a new trace and is
//!   counted in `otelwire.rpc.server.invalid_context`;
//! - `x-request-id` kept when valid ([`valid_request_id`]), made otherwise,
//!   given to the handler and echoed in the response metadata, on the span
//!   as `request.id`;
//! - a panicking handler answers `INTERNAL`, with an exception event; the
//!   server keeps serving;
//! - [`DEFAULT_EXCLUDED`] (health checks, reflection) are not traced
//!   ([`OtelServerLayer::exclude`], [`OtelServerLayer::include_all`]).
//!
//! On the client, the client span's context is injected into the request
//! metadata; [`inject_context`] does only that, as an interceptor.

mod body;
mod bound;
mod call;
mod client;
mod framing;
mod future;
mod injector;
mod interceptor;
mod metadata;
mod method;
mod request_id;
mod server;
mod status;

pub use body::ResponseBody;
pub use call::{REQUEST_MESSAGES, RESPONSE_MESSAGES, STATUS_MESSAGE};
pub use client::{OtelClient, OtelClientLayer};
pub use future::ResponseFuture;
pub use interceptor::inject_context;
pub use metadata::{SENSITIVE_METADATA, is_sensitive_metadata};
/// Trace context from request metadata, by otelwire's W3C rules (the same
/// as otelwire-axum's for HTTP headers).
pub use otelwire::http::{extract_context, valid_traceparent};
pub use request_id::{REQUEST_ID_HEADER, valid_request_id};
pub use server::{DEFAULT_EXCLUDED, OtelServer, OtelServerLayer};
pub use status::{Side, code_name, is_server_error};

/// The bucket boundaries of the call-duration histograms (s): the HTTP
/// ones, which the RPC conventions share.
pub use otelwire::http::DURATION_BUCKETS;

/// The error of the layers' services: the inner service's, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

use otelwire::opentelemetry::metrics::{Counter, Histogram, Meter};

fn duration_histogram(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build()
}

fn invalid_context_counter(meter: &Meter) -> Counter<u64> {
    meter
        .u64_counter("otelwire.rpc.server.invalid_context")
        .with_unit("{call}")
        .with_description("RPCs whose traceparent metadata could not be used.")
        .build()
}

/// `host` and `port` of an authority (`host:port`, `[v6]:port`, `host`).
fn split_authority(authority: Option<&str>) -> (Option<&str>, Option<i64>) {
    let Some(authority) = authority else {
        return (None, None);
    };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !authority.ends_with(']') => (
            Some(host.trim_start_matches('[').trim_end_matches(']')),
            port.parse().ok(),
        ),
        _ => (Some(authority), None),
    }
}
