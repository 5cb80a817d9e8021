//! Context propagators, for `OTEL_PROPAGATORS`:
//!
//! - [`TraceContextPropagator`] (`tracecontext`): W3C Trace Context, this
//!   file, below;
//! - [`B3Propagator`] (`b3`, or `b3multi` with [`B3Encoding::Multi`]):
//!   Zipkin's B3, single or multiple headers;
//! - [`JaegerPropagator`] (`jaeger`): `uber-trace-id` and `uberctx-*`
//!   baggage;
//! - [`CompositePropagator`]: a list of them as one, the first format
//!   that carries a span context giving the parent, every one injected
//!   and every one's baggage kept.
//!
//! W3C baggage (`baggage`) is the SDK's
//! [`BaggagePropagator`](opentelemetry_sdk::propagation::BaggagePropagator).
//!
//! ```
//! use otelwire::opentelemetry::propagation::TextMapPropagator;
//! use otelwire::opentelemetry::trace::TraceContextExt;
//! use otelwire::opentelemetry_sdk::propagation::BaggagePropagator;
//! use otelwire::propagation::{
//!     B3Encoding, B3Propagator, CompositePropagator, TraceContextPropagator,
//! };
//! use std::collections::HashMap;
//!
//! // OTEL_PROPAGATORS=tracecontext,baggage,b3multi
//! let p = CompositePropagator::new(vec![
//!     Box::new(TraceContextPropagator::new()),
//!     Box::new(BaggagePropagator::new()),
//!     Box::new(B3Propagator::with_encoding(B3Encoding::Multi)),
//! ]);
//! let headers = HashMap::from([
//!     ("traceparent".to_owned(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
//!     ("x-b3-traceid".to_owned(), "80f198ee56343ba864fe8b2a57d3eff7".to_owned()),
//!     ("x-b3-spanid".to_owned(), "e457b5a2e4d86bd1".to_owned()),
//! ]);
//! let cx = p.extract(&headers);
//! assert_eq!(
//!     cx.span().span_context().trace_id().to_string(),
//!     "4bf92f3577b34da6a3ce929d0e0e4736",
//!     "the first format in the list that carries a parent gives it"
//! );
//! let mut out = HashMap::new();
//! p.inject_context(&cx, &mut out);
//! assert_eq!(out["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(out["x-b3-sampled"], "1");
//! ```
//!
//! # W3C Trace Context
//!
//! W3C Trace Context (Level 1 and Level 2) as the specification's text has
//! it, where the SDK's propagator does not:
//!
//! - more than one `traceparent` header line: no valid parent (the first
//!   is not continued);
//! - `traceparent` and every `tracestate` member lose their optional
//!   whitespace (spaces and tabs), even when no HTTP parser trimmed them;
//! - every trace-flags bit received is kept (Level 2's `random`, bit 1,
//!   too) and sent on;
//! - `random` is sent with the trace ids otelwire generates (the SDK
//!   cannot set it; see [`random_ids`] for how they are known again);
//! - several `tracestate` header lines are one list (RFC 9110 field
//!   combination), empty members ignored;
//! - `tracestate` is checked against the current grammar (a key
//!   `(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`,
//!   a value of printable ASCII but `,` and `=`, not empty, no trailing
//!   space, at most 256 characters); more than 32 members, a duplicate key
//!   or one bad member discards the whole `tracestate`, never a part of it;
//! - an empty `tracestate` is not sent.
//!
//! ```
//! use otelwire::opentelemetry::propagation::TextMapPropagator;
//! use otelwire::opentelemetry::trace::TraceContextExt;
//! use std::collections::HashMap;
//!
//! let p = otelwire::propagation::TraceContextPropagator::new();
//! let headers = HashMap::from([(
//!     "traceparent".to_owned(),
//!     " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03\t".to_owned(),
//! )]);
//! let cx = p.extract(&headers);
//! assert_eq!(cx.span().span_context().trace_flags().to_u8(), 0x03);
//!
//! let mut out = HashMap::new();
//! p.inject_context(&cx, &mut out);
//! assert_eq!(out["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
//! assert!(!out.contains_key("tracestate"), "an empty list is not sent");
//! ```
//!
//! A `tracestate` key that the current grammar allows but the SDK's
//! `TraceState` refuses (`foo@@bar`, a vendor part longer than 14
//! characters) cannot be carried by the SDK's span context: such a
//! `tracestate` is dropped whole, as an invalid one is.

mod b3;
mod composite;
mod jaeger;
pub mod random_ids;

pub use b3::{B3Encoding, B3Propagator};
pub use composite::CompositePropagator;
pub use jaeger::{JaegerPropagator, MAX_JAEGER_BAGGAGE_ITEMS};
pub use random_ids::RandomIds;

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The most `tracestate` list members the specification allows.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// W3C Trace Context `traceparent` and `tracestate`; see the
/// [module docs](self). otelwire installs it as (part of) the global
/// propagator for `OTEL_PROPAGATORS=tracecontext`, its default.
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Optional whitespace, as the specification spells it: spaces and tabs.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn lower_hex(s: &[u8]) -> bool {
    s.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The trace id, parent id and flags of one `traceparent` value, or `None`
/// when the value is not one the specification lets a receiver use.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let v = trim_ows(value).as_bytes();
    if v.len() < 55 {
        return None;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    if !lower_hex(version) || version == b"ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may append
    // `-…`, which a version-00 receiver ignores.
    let tail_ok = match version {
        b"00" => v.len() == 55,
        _ => v.len() == 55 || v[55] == b'-',
    };
    if !tail_ok || !lower_hex(trace) || !lower_hex(parent) || !lower_hex(flags) {
        return None;
    }
    fn text(b: &[u8]) -> Option<&str> {
        std::str::from_utf8(b).ok()
    }
    let trace_id = TraceId::from_hex(text(trace)?).ok()?;
    let span_id = SpanId::from_hex(text(parent)?).ok()?;
    let flags = u8::from_str_radix(text(flags)?, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((trace_id, span_id, TraceFlags::new(flags)))
}

/// Whether `key` is a `tracestate` key of the current grammar.
pub fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    let Some((&first, rest)) = b.split_first() else {
        return false;
    };
    b.len() <= 256
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// Whether `value` is a `tracestate` value: 1 to 256 printable ASCII
/// characters but `,` and `=`, the last not a space.
pub fn valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// The members of a `tracestate` given as one or more header lines, in
/// order, or `None` when the whole of it must be discarded (a bad member,
/// a duplicate key, more than [`MAX_TRACESTATE_MEMBERS`]). No member at
/// all is `Some(vec![])`.
pub fn parse_tracestate<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<(&'a str, &'a str)>> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for line in lines {
        for member in line.split(',').map(trim_ows).filter(|m| !m.is_empty()) {
            let (key, value) = member.split_once('=')?;
            if !valid_tracestate_key(key) || !valid_tracestate_value(value) {
                return None;
            }
            if members.iter().any(|(k, _)| *k == key) {
                return None;
            }
            members.push((key, value));
            if members.len() > MAX_TRACESTATE_MEMBERS {
                return None;
            }
        }
    }
    Some(members)
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let mut flags = sc.trace_flags().to_u8();
        if flags & random_ids::RANDOM_FLAG == 0 && random_ids::generated_here(sc.trace_id()) {
            flags |= random_ids::RANDOM_FLAG;
        }
        injector.set(
            TRACEPARENT,
            format!("00-{}-{}-{flags:02x}", sc.trace_id(), sc.span_id()),
        );
        let state = sc.trace_state().header();
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extract_span_context(extractor) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        fields()
    }
}

fn fields() -> FieldIter<'static> {
    use std::sync::OnceLock;
    static NAMES: OnceLock<[String; 2]> = OnceLock::new();
    FieldIter::new(NAMES.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]))
}

/// The remote parent the headers carry, or `None` (no `traceparent`, more
/// than one, or a bad one).
fn extract_span_context(extractor: &dyn Extractor) -> Option<SpanContext> {
    let lines = extractor.get_all(TRACEPARENT)?;
    let [line] = lines.as_slice() else {
        return None;
    };
    let (trace_id, span_id, flags) = parse_traceparent(line)?;
    let state = extractor
        .get_all(TRACESTATE)
        .and_then(parse_tracestate)
        .and_then(|members| TraceState::from_key_value(members).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// The trace id, span id and sampled flag of `cx`'s span context when it is
/// a valid remote one (what an extraction gave), for the propagators' tests.
#[cfg(test)]
pub(crate) fn remote_ids(cx: &Context) -> Option<(String, String, bool)> {
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_remote()).then(|| {
        (
            sc.trace_id().to_string(),
            sc.span_id().to_string(),
            sc.is_sampled(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_as_the_specification_spells_it() {
        assert!(parse_traceparent(TP).is_some());
        assert!(
            parse_traceparent(&format!(" \t{TP}\t ")).is_some(),
            "OWS is trimmed"
        );
        // Version 00 is exactly 55 characters; later versions may add `-…`.
        assert!(parse_traceparent(&format!("{TP}-")).is_none());
        assert!(parse_traceparent(&format!("cc{}-what-the-future-holds", &TP[2..])).is_some());
        assert!(parse_traceparent(&format!("cc{}x", &TP[2..])).is_none());
        assert!(
            parse_traceparent(&format!("ff{}", &TP[2..])).is_none(),
            "ff is invalid"
        );
        assert!(
            parse_traceparent(&TP.to_uppercase()).is_none(),
            "lower-case hex only"
        );
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01").is_none()
        );
        let (_, _, flags) = parse_traceparent(&format!("{}ff", &TP[..53])).unwrap();
        assert_eq!(flags.to_u8(), 0xff, "every flag bit is kept");
    }

    #[test]
    fn tracestate_keys_and_values_of_the_current_grammar() {
        for key in ["foo", "0foo", "foo@@bar", "t@vvvvvvvvvvvvvvv", "a_-*/@z"] {
            assert!(valid_tracestate_key(key), "{key}");
        }
        let long = format!("{}@{}", "t".repeat(241), "v".repeat(14));
        assert!(valid_tracestate_key(&long), "241+1+14 characters");
        assert!(valid_tracestate_key(&"k".repeat(256)));
        for key in ["", "Foo", "_foo", "@foo", "fo o", "foo=", &"k".repeat(257)] {
            assert!(!valid_tracestate_key(key), "{key}");
        }
        for value in ["1", "a b", "!~", &"v".repeat(256)] {
            assert!(valid_tracestate_value(value), "{value}");
        }
        for value in ["", "a ", "a,b", "a=b", "\u{7f}", "é", &"v".repeat(257)] {
            assert!(!valid_tracestate_value(value), "{value}");
        }
    }

    #[test]
    fn tracestate_lists_are_combined_or_discarded_whole() {
        assert_eq!(
            parse_tracestate(["a=1 ,\tb=2", "", ",,c=3"]),
            Some(vec![("a", "1"), ("b", "2"), ("c", "3")])
        );
        assert_eq!(parse_tracestate(["foo=,bar=3"]), None);
        assert_eq!(parse_tracestate(["a=1", "a=2"]), None);
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse_tracestate([members.join(",").as_str()]), None);
        assert_eq!(
            parse_tracestate([members[..32].join(",").as_str()]).map(|m| m.len()),
            Some(32)
        );
    }

    #[test]
    fn two_traceparents_are_no_parent_and_an_empty_tracestate_is_not_sent() {
        struct Lines(HashMap<&'static str, Vec<&'static str>>);
        impl Extractor for Lines {
            fn get(&self, key: &str) -> Option<&str> {
                self.0.get(key).and_then(|v| v.first().copied())
            }
            fn keys(&self) -> Vec<&str> {
                self.0.keys().copied().collect()
            }
            fn get_all(&self, key: &str) -> Option<Vec<&str>> {
                self.0.get(key).cloned()
            }
        }
        let p = TraceContextPropagator::new();
        let two = Lines(HashMap::from([("traceparent", vec![TP, TP])]));
        assert!(!p.extract(&two).span().span_context().is_valid());
        let one = Lines(HashMap::from([
            ("traceparent", vec![TP]),
            ("tracestate", vec!["", " "]),
        ]));
        let cx = p.extract(&one);
        assert!(cx.span().span_context().is_remote());
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert_eq!(out.get("traceparent").map(String::as_str), Some(TP));
        assert!(!out.contains_key("tracestate"));
    }
}
