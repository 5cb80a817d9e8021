//! Pieces the HTTP and gRPC integrations (`otelwire-axum`,
//! `otelwire-reqwest`, `otelwire-tonic`) share: method and version names,
//! the propagator, the trace context of a request's headers, request ids.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::BaggagePropagator;

use crate::propagation::TraceContextPropagator;

mod context;
mod request_id;

pub use context::{extract_context, valid_traceparent};
pub use request_id::{REQUEST_ID_HEADER, new_request_id, request_id, valid_request_id};

/// The bucket boundaries the HTTP semantic conventions give for
/// `http.server.request.duration` and `http.client.request.duration` (s).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `http.request.method` as the conventions spell it: the known methods,
/// `_OTHER` for the rest (an unbounded value would be a cardinality leak).
///
/// ```
/// assert_eq!(otelwire::http::method_name(&http::Method::GET), "GET");
/// assert_eq!(otelwire::http::method_name(&http::Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
/// ```
pub fn method_name(m: &http::Method) -> &'static str {
    use http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// `network.protocol.version`: `1.1`, `2`, … (empty when unknown).
pub fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "",
    }
}

/// What [`init`](crate::init) installed as the global propagator: nothing
/// yet, a list, or none at all (`OTEL_PROPAGATORS=none`).
static INSTALLED: AtomicU8 = AtomicU8::new(NOT_INSTALLED);
const NOT_INSTALLED: u8 = 0;
const SOME: u8 = 1;
const NONE: u8 = 2;

pub(crate) fn propagators_installed(any: bool) {
    INSTALLED.store(if any { SOME } else { NONE }, Ordering::Relaxed);
}

/// Runs `f` with the global propagator, or with W3C trace-context + baggage
/// (otelwire's [`TraceContextPropagator`]) when none is installed (as with
/// [`Builder::build`](crate::Builder::build), which installs nothing
/// globally). After `init()` with `OTEL_PROPAGATORS=none`, `f` gets a
/// propagator that neither extracts nor injects.
pub fn with_propagator<R>(mut f: impl FnMut(&dyn TextMapPropagator) -> R) -> R {
    static W3C: OnceLock<TextMapCompositePropagator> = OnceLock::new();
    static OFF: OnceLock<TextMapCompositePropagator> = OnceLock::new();
    opentelemetry::global::get_text_map_propagator(|p| {
        if p.fields().next().is_some() {
            return f(p);
        }
        if INSTALLED.load(Ordering::Relaxed) == NONE {
            return f(OFF.get_or_init(|| TextMapCompositePropagator::new(Vec::new())));
        }
        f(W3C.get_or_init(|| {
            TextMapCompositePropagator::new(vec![
                Box::new(TraceContextPropagator::new()),
                Box::new(BaggagePropagator::new()),
            ])
        }))
    })
}
