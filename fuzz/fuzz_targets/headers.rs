//! Context and request-id headers: whatever a client sends, extraction never
//! panics, a malformed `traceparent` gives a root span (never a parent), and
//! request ids are kept exactly when they are 1 to 128 visible ASCII
//! characters.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use otelwire::opentelemetry::propagation::TextMapCompositePropagator;
use otelwire::opentelemetry::trace::TraceContextExt;
use otelwire::opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

/// An independent reading of the W3C grammar for version 00 and later.
fn w3c_valid(v: &[u8]) -> bool {
    let hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 4 {
        return false;
    }
    let (version, trace, parent, flags) = (parts[0], parts[1], parts[2], parts[3]);
    let shape = version.len() == 2
        && hex(version.as_bytes())
        && version != "ff"
        && trace.len() == 32
        && hex(trace.as_bytes())
        && trace.bytes().any(|b| b != b'0')
        && parent.len() == 16
        && hex(parent.as_bytes())
        && parent.bytes().any(|b| b != b'0')
        && flags.len() == 2
        && hex(flags.as_bytes());
    shape
        && if version == "00" {
            parts.len() == 4
        } else {
            true
        }
}

fuzz_target!(|data: &[u8]| {
    // Four header values separated by 0xff (never in a header value).
    let mut parts = data.split(|b| *b == 0xff);
    let mut headers = HeaderMap::new();
    let mut traceparent = None;
    for name in ["traceparent", "tracestate", "baggage", "x-request-id"] {
        let Some(value) = parts.next() else { break };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            if name == "traceparent" {
                traceparent = Some(value.to_vec());
            }
            headers.insert(name, v);
        }
    }
    let propagator = TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]);
    let (cx, invalid) = otelwire_axum::extract_context(&propagator, &headers);
    let has_parent = cx.span().span_context().is_valid();
    match &traceparent {
        Some(tp) => {
            assert_eq!(
                otelwire_axum::valid_traceparent(tp),
                w3c_valid(tp),
                "grammar disagreement on {:?}",
                String::from_utf8_lossy(tp)
            );
            if !w3c_valid(tp) {
                assert!(!has_parent, "a malformed traceparent became a parent");
                assert!(invalid, "a malformed traceparent was not counted");
            }
        }
        None => assert!(!has_parent),
    }
    if let Some(id) = headers.get("x-request-id") {
        let b = id.as_bytes();
        let expected =
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| (0x21..=0x7e).contains(c));
        assert_eq!(otelwire_axum::valid_request_id(b), expected);
    }
});
