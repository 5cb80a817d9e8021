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

mod admin;
mod attributes;
mod bound;
mod completion;
mod context;
mod future;
mod health;
mod instruments;
mod layer;
mod metrics;
mod request_id;
mod scrub;
mod service;
mod span_name;

pub use admin::{
    AdminToken, LOG_FILTER_KEY, LOG_LEVEL_PATH, MAX_TTL_SECS, admin_router, admin_router_with,
};
pub use attributes::SENSITIVE_HEADERS;
pub use context::{extract_context, valid_traceparent};
pub use future::ResponseFuture;
pub use health::health_router;
pub use layer::OtelLayer;
pub use metrics::metrics_router;
pub use request_id::{REQUEST_ID_HEADER, new_request_id, valid_request_id};
pub use scrub::{SCRUBBED, scrub_segments};
pub use service::Otel;

/// The semantic-convention bucket boundaries of `http.server.request.duration`.
pub use otelwire::http::DURATION_BUCKETS;
