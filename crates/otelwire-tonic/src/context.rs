//! Trace context in request metadata: extraction on the server (with the
//! rules otelwire-axum applies to HTTP headers), injection on the client.

use http::{HeaderMap, HeaderName};
use otelwire::opentelemetry::propagation::{Extractor, TextMapPropagator};
use otelwire::opentelemetry::trace::TraceContextExt;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// Whether a `traceparent` value is well formed per W3C Trace Context:
/// `00-{32 hex}-{16 hex}-{2 hex}` in lower case with non-zero ids (later
/// versions may append `-…`; version `ff` is invalid). The same rule as
/// otelwire-axum's, stricter than the SDK's parser.
///
/// ```
/// assert!(otelwire_tonic::valid_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
/// assert!(!otelwire_tonic::valid_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
/// ```
pub fn valid_traceparent(value: &[u8]) -> bool {
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    if value.len() < 55 {
        return false;
    }
    let (version, trace, parent, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    let tail_ok = match version {
        b"00" => value.len() == 55,
        _ => value.len() == 55 || value[55] == b'-',
    };
    dashes
        && tail_ok
        && hex(version)
        && version != b"ff"
        && hex(trace)
        && hex(parent)
        && hex(flags)
        && trace.iter().any(|&b| b != b'0')
        && parent.iter().any(|&b| b != b'0')
}

/// Metadata as an [`Extractor`]; the W3C names are looked up pre-parsed.
struct Metadata<'a>(&'a HeaderMap);

impl Extractor for Metadata<'_> {
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
}

/// The parent context the metadata carries, and whether a `traceparent`
/// was present but unusable (then the trace starts anew; `baggage` is
/// still honoured).
pub fn extract_context(
    propagator: &dyn TextMapPropagator,
    metadata: &HeaderMap,
) -> (otelwire::opentelemetry::Context, bool) {
    match metadata.get(&TRACEPARENT) {
        Some(tp) if !valid_traceparent(tp.as_bytes()) => {
            let mut cleaned = metadata.clone();
            cleaned.remove(&TRACEPARENT);
            cleaned.remove(&TRACESTATE);
            (propagator.extract(&Metadata(&cleaned)), true)
        }
        Some(_) => {
            let cx = propagator.extract(&Metadata(metadata));
            let invalid = !cx.span().span_context().is_valid();
            (cx, invalid)
        }
        None => (propagator.extract(&Metadata(metadata)), false),
    }
}
