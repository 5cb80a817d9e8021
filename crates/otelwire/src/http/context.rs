//! The trace context that request headers carry, read with the rules of W3C
//! Trace Context: one place for every server integration (otelwire-axum for
//! HTTP, otelwire-tonic for gRPC metadata), so both treat a request alike.

use http::{HeaderMap, HeaderName};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// Whether a `traceparent` value is well formed per W3C Trace Context:
/// `00-{32 hex}-{16 hex}-{2 hex}` in lower case with non-zero ids (later
/// versions may append `-…`; version `ff` is invalid), optional whitespace
/// around it allowed. Stricter than the SDK's parser, which also takes
/// short ids, signs and one-digit flags; the rules are
/// [`parse_traceparent`](crate::propagation::parse_traceparent)'s.
///
/// ```
/// use otelwire::http::valid_traceparent;
/// assert!(valid_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
/// assert!(!valid_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
/// ```
pub fn valid_traceparent(value: &[u8]) -> bool {
    std::str::from_utf8(value)
        .ok()
        .and_then(crate::propagation::parse_traceparent)
        .is_some()
}

/// A header extractor that looks the W3C names up by their pre-parsed
/// [`HeaderName`]s (the common case) instead of parsing the name per call.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match key {
            "traceparent" => self.0.get(&TRACEPARENT),
            "tracestate" => self.0.get(&TRACESTATE),
            "baggage" => self.0.get(&BAGGAGE),
            other => self.0.get(other),
        };
        value.and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    // Every header line: two `traceparent`s make no parent, and several
    // `tracestate`s are one list.
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values = match key {
            "traceparent" => self.0.get_all(&TRACEPARENT),
            "tracestate" => self.0.get_all(&TRACESTATE),
            "baggage" => self.0.get_all(&BAGGAGE),
            other => self.0.get_all(other),
        };
        let out: Vec<&str> = values.iter().filter_map(|v| v.to_str().ok()).collect();
        (!out.is_empty()).then_some(out)
    }
}

/// What the context headers (or gRPC metadata) say: the parent context,
/// and whether a `traceparent` was present but unusable, or sent more than
/// once (then the trace starts anew, though `baggage` is still honoured).
/// With a propagator that has no fields (`OTEL_PROPAGATORS=none`) nothing
/// is extracted and nothing is invalid.
///
/// ```
/// use otelwire::http::extract_context;
/// use otelwire::propagation::TraceContextPropagator;
///
/// let mut headers = http::HeaderMap::new();
/// headers.append("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
/// let (_, invalid) = extract_context(&TraceContextPropagator::new(), &headers);
/// assert!(!invalid);
/// headers.append("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
/// let (_, invalid) = extract_context(&TraceContextPropagator::new(), &headers);
/// assert!(invalid, "two traceparent lines are no valid parent");
/// ```
pub fn extract_context(propagator: &dyn TextMapPropagator, headers: &HeaderMap) -> (Context, bool) {
    if propagator.fields().next().is_none() {
        return (Context::new(), false);
    }
    let mut lines = headers.get_all(&TRACEPARENT).iter();
    let first = lines.next();
    // More than one `traceparent` line is no valid parent (W3C Trace Context).
    let several = first.is_some() && lines.next().is_some();
    match first {
        Some(tp) if several || !valid_traceparent(tp.as_bytes()) => {
            let mut cleaned = headers.clone();
            cleaned.remove(&TRACEPARENT);
            cleaned.remove(&TRACESTATE);
            (propagator.extract(&Headers(&cleaned)), true)
        }
        Some(_) => {
            let cx = propagator.extract(&Headers(headers));
            let invalid = !cx.span().span_context().is_valid();
            (cx, invalid)
        }
        None => (propagator.extract(&Headers(headers)), false),
    }
}
