//! B3 (Zipkin; Envoy and Istio meshes), single header `b3` and multiple
//! headers `X-B3-*`, per the openzipkin b3-propagation specification and
//! the OpenTelemetry propagators API's "B3 Requirements".
//!
//! Written here rather than taken from `opentelemetry-zipkin` 0.33, whose
//! B3 propagator does not fit:
//!
//! - it keeps B3's debug and deferred states in the trace flags (bits
//!   `0x04` and `0x02`), where W3C Trace Context Level 2 has `0x02` as
//!   `random` and `0x04` reserved: otelwire's `traceparent` sends every
//!   bit on, so a B3 debug or deferred parent would go out as a false
//!   `random` or a reserved bit, and a W3C `random` parent would come back
//!   out as B3 "deferred";
//! - which sampling values it reads depends on the inject encoding (`d`
//!   only when it injects the single header, `true` only when it does
//!   not), where B3 extraction must read both encodings alike;
//! - with no span context it injects `b3: 0` / `X-B3-Sampled: 0`, a deny
//!   that would switch tracing off downstream for every request sent
//!   outside a span;
//! - it is the Zipkin exporter's crate: it brings `opentelemetry_sdk`,
//!   `reqwest` (with native-tls by default), `serde_json` and
//!   `typed-builder` for the sake of one propagator.
//!
//! The state trace flags cannot hold (debug, and a deferred decision) is
//! kept in the [`Context`] as a private value tied to the trace id; the
//! Jaeger propagator shares the debug part of it.

use super::{lower_hex, trim_ows};
use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use std::sync::OnceLock;

const B3: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const PARENT_SPAN_ID: &str = "x-b3-parentspanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";

/// Which headers a [`B3Propagator`] injects. Extraction reads both
/// encodings whatever this is, the single header first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum B3Encoding {
    /// One `b3: {TraceId}-{SpanId}-{SamplingState}` header: the
    /// OpenTelemetry default (`OTEL_PROPAGATORS=b3`).
    #[default]
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId` and `X-B3-Sampled` or `X-B3-Flags`
    /// (`OTEL_PROPAGATORS=b3multi`).
    Multi,
}

/// B3 propagation (Zipkin, Envoy, Istio).
///
/// Extract tries the `b3` header first and, when it gives no span
/// context, the `X-B3-*` headers; inject writes the [`B3Encoding`] chosen.
///
/// - Trace ids are 16 or 32 lower-case hex characters (a 64-bit one is
///   left-padded with zeros to 128 bits), span ids 16; any other length,
///   upper-case hex or an all-zero id is no span context. A parent span
///   id, when present, must be well formed, but is otherwise ignored and
///   never sent (OpenTelemetry does not share span ids between client and
///   server).
/// - Sampling: `b3` takes `1`, `0` or `d`; `X-B3-Sampled` takes `1` or `0`
///   (and, leniently, `true` or `false`); `X-B3-Flags: 1` is debug. Debug
///   implies sampled, and is kept in the context and sent on: `-d`, or
///   `X-B3-Flags: 1` with no `X-B3-Sampled`. No sampling state (a decision
///   deferred) comes in as not sampled and goes out with no sampling state
///   while the trace stays unsampled.
/// - A sampling state alone (`b3: 0`, `X-B3-Sampled: 1`) carries no span
///   context, and a context with no valid span context sends nothing.
///
/// ```
/// use otelwire::opentelemetry::propagation::TextMapPropagator;
/// use otelwire::opentelemetry::trace::TraceContextExt;
/// use otelwire::propagation::{B3Encoding, B3Propagator};
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([(
///     "b3".to_owned(),
///     "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90".to_owned(),
/// )]);
/// let cx = B3Propagator::new().extract(&headers);
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut out = HashMap::new();
/// B3Propagator::with_encoding(B3Encoding::Multi).inject_context(&cx, &mut out);
/// assert_eq!(out["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
/// assert_eq!(out["x-b3-spanid"], "e457b5a2e4d86bd1");
/// assert_eq!(out["x-b3-sampled"], "1");
/// assert!(!out.contains_key("x-b3-parentspanid"));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// Injects the single `b3` header, the specification's default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Injects the given encoding.
    pub fn with_encoding(encoding: B3Encoding) -> Self {
        Self { encoding }
    }

    /// The encoding it injects.
    pub fn encoding(&self) -> B3Encoding {
        self.encoding
    }
}

/// A sampling decision trace flags cannot carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Force trace: B3 `d` / `X-B3-Flags: 1`, Jaeger flag `0x02`.
    Debug,
    /// B3 with no sampling state: the receiver decides.
    Deferred,
}

/// What the context keeps of a received [`Decision`], for the trace it
/// came with only.
#[derive(Debug, Clone, Copy)]
struct Received {
    trace_id: TraceId,
    decision: Decision,
}

/// `cx` remembering `decision` for `trace_id`.
pub(super) fn with_decision(cx: Context, trace_id: TraceId, decision: Decision) -> Context {
    cx.with_value(Received { trace_id, decision })
}

/// The decision received with `trace_id`, if `cx` has one.
pub(super) fn decision(cx: &Context, trace_id: TraceId) -> Option<Decision> {
    cx.get::<Received>()
        .filter(|r| r.trace_id == trace_id)
        .map(|r| r.decision)
}

/// A B3 trace id: 16 or 32 lower-hex characters, not all zeros.
fn trace_id(s: &str) -> Option<TraceId> {
    if !(s.len() == 16 || s.len() == 32) || !lower_hex(s.as_bytes()) {
        return None;
    }
    TraceId::from_hex(s)
        .ok()
        .filter(|id| *id != TraceId::INVALID)
}

/// A B3 span id: 16 lower-hex characters, not all zeros.
fn span_id(s: &str) -> Option<SpanId> {
    if s.len() != 16 || !lower_hex(s.as_bytes()) {
        return None;
    }
    SpanId::from_hex(s).ok().filter(|id| *id != SpanId::INVALID)
}

/// Sampled, and the decision flags cannot say.
type Sampling = (bool, Option<Decision>);

const DEFERRED: Sampling = (false, Some(Decision::Deferred));

/// `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`.
fn single(value: &str) -> Option<(TraceId, SpanId, Sampling)> {
    let mut parts = trim_ows(value).split('-');
    let trace = trace_id(parts.next()?)?;
    let span = span_id(parts.next()?)?;
    let sampling = match parts.next() {
        None => DEFERRED,
        Some("1") => (true, None),
        Some("0") => (false, None),
        Some("d") => (true, Some(Decision::Debug)),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some((trace, span, sampling))
}

/// The `X-B3-*` headers.
fn multi(extractor: &dyn Extractor) -> Option<(TraceId, SpanId, Sampling)> {
    let get = |name| extractor.get(name).map(trim_ows);
    let trace = trace_id(get(TRACE_ID)?)?;
    let span = span_id(get(SPAN_ID)?)?;
    if let Some(parent) = get(PARENT_SPAN_ID) {
        span_id(parent)?;
    }
    // "Debug is encoded as `X-B3-Flags: 1`. Absent or any other value can
    // be ignored. Debug implies an accept decision".
    let sampling = if get(FLAGS) == Some("1") {
        (true, Some(Decision::Debug))
    } else {
        match get(SAMPLED) {
            None => DEFERRED,
            Some("1" | "true") => (true, None),
            Some("0" | "false") => (false, None),
            Some(_) => return None,
        }
    };
    Some((trace, span, sampling))
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let (trace, span_id) = (sc.trace_id(), sc.span_id());
        let state = match decision(cx, trace) {
            Some(Decision::Debug) => Some("d"),
            _ if sc.is_sampled() => Some("1"),
            Some(Decision::Deferred) => None,
            None => Some("0"),
        };
        match self.encoding {
            B3Encoding::Single => {
                let value = match state {
                    Some(s) => format!("{trace}-{span_id}-{s}"),
                    None => format!("{trace}-{span_id}"),
                };
                injector.set(B3, value);
            }
            B3Encoding::Multi => {
                injector.set(TRACE_ID, trace.to_string());
                injector.set(SPAN_ID, span_id.to_string());
                match state {
                    Some("d") => injector.set(FLAGS, "1".to_owned()),
                    Some(s) => injector.set(SAMPLED, s.to_owned()),
                    None => {}
                }
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let found = extractor
            .get(B3)
            .and_then(single)
            .or_else(|| multi(extractor));
        let Some((trace, span, (sampled, decision))) = found else {
            return cx.clone();
        };
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
        let cx = cx.with_remote_span_context(sc);
        match decision {
            Some(d) => with_decision(cx, trace, d),
            None => cx,
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static SINGLE: OnceLock<[String; 1]> = OnceLock::new();
        static MULTI: OnceLock<[String; 4]> = OnceLock::new();
        // "Fields MUST return the header names that correspond to the
        // configured format, i.e., the headers used for the inject
        // operation."
        match self.encoding {
            B3Encoding::Single => FieldIter::new(SINGLE.get_or_init(|| [B3.to_owned()])),
            B3Encoding::Multi => FieldIter::new(
                MULTI.get_or_init(|| [TRACE_ID, SPAN_ID, SAMPLED, FLAGS].map(str::to_owned)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::remote_ids as ids;
    use std::collections::HashMap;

    // The specification's examples.
    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";
    const PARENT: &str = "05e3ac9a4f6e3b90";

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_lowercase(), (*v).to_owned()))
            .collect()
    }

    fn extract(pairs: &[(&str, &str)]) -> Context {
        B3Propagator::new().extract(&headers(pairs))
    }

    fn inject(cx: &Context, encoding: B3Encoding) -> HashMap<String, String> {
        let mut out = HashMap::new();
        B3Propagator::with_encoding(encoding).inject_context(cx, &mut out);
        out
    }

    fn spec_ids(sampled: bool) -> Option<(String, String, bool)> {
        Some((TRACE.to_owned(), SPAN.to_owned(), sampled))
    }

    #[test]
    fn the_single_header_examples_of_the_specification() {
        let with_parent = format!("{TRACE}-{SPAN}-1-{PARENT}");
        assert_eq!(ids(&extract(&[("b3", &with_parent)])), spec_ids(true));
        let cx = extract(&[("b3", &format!("{TRACE}-{SPAN}-1"))]);
        assert_eq!(ids(&cx), spec_ids(true));
        assert_eq!(
            inject(&cx, B3Encoding::Single)["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
        );

        let debug = extract(&[("b3", &format!("{TRACE}-{SPAN}-d"))]);
        assert_eq!(ids(&debug), spec_ids(true), "debug implies sampled");
        assert_eq!(
            inject(&debug, B3Encoding::Single)["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"
        );

        let deny = extract(&[("b3", &format!("{TRACE}-{SPAN}-0"))]);
        assert_eq!(ids(&deny), spec_ids(false));
        assert_eq!(
            inject(&deny, B3Encoding::Single)["b3"],
            format!("{TRACE}-{SPAN}-0")
        );
    }

    #[test]
    fn the_multiple_header_examples_of_the_specification() {
        let cx = extract(&[
            ("X-B3-TraceId", TRACE),
            ("X-B3-ParentSpanId", PARENT),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Sampled", "1"),
        ]);
        assert_eq!(ids(&cx), spec_ids(true));
        assert_eq!(
            inject(&cx, B3Encoding::Multi),
            headers(&[
                ("X-B3-TraceId", TRACE),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", "1"),
            ]),
            "never X-B3-ParentSpanId"
        );

        let debug = extract(&[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Flags", "1"),
        ]);
        assert_eq!(ids(&debug), spec_ids(true), "debug implies sampled");
        assert_eq!(
            inject(&debug, B3Encoding::Multi),
            headers(&[
                ("X-B3-TraceId", TRACE),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Flags", "1")
            ]),
            "debug: X-B3-Flags and no X-B3-Sampled"
        );
        // Debug wins over a sampled header sent alongside it.
        let both = extract(&[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Sampled", "0"),
            ("X-B3-Flags", "1"),
        ]);
        assert_eq!(ids(&both), spec_ids(true));
        // "Absent or any other value can be ignored."
        let other = extract(&[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Sampled", "0"),
            ("X-B3-Flags", "0"),
        ]);
        assert_eq!(ids(&other), spec_ids(false));
        assert_eq!(inject(&other, B3Encoding::Multi)["x-b3-sampled"], "0");

        for (value, sampled) in [("1", true), ("true", true), ("0", false), ("false", false)] {
            let cx = extract(&[
                ("X-B3-TraceId", TRACE),
                ("X-B3-SpanId", SPAN),
                ("X-B3-Sampled", value),
            ]);
            assert_eq!(ids(&cx), spec_ids(sampled), "X-B3-Sampled: {value}");
        }
    }

    #[test]
    fn sixty_four_bit_trace_ids_are_left_padded() {
        let cx = extract(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")]);
        let (trace, _, _) = ids(&cx).unwrap();
        assert_eq!(trace, "0000000000000000a3ce929d0e0e4736");
        let cx = extract(&[("X-B3-TraceId", "a3ce929d0e0e4736"), ("X-B3-SpanId", SPAN)]);
        assert_eq!(ids(&cx).unwrap().0, "0000000000000000a3ce929d0e0e4736");
        assert_eq!(
            inject(&cx, B3Encoding::Multi)["x-b3-traceid"],
            "0000000000000000a3ce929d0e0e4736",
            "sent as 128 bits"
        );
    }

    #[test]
    fn a_deferred_decision_stays_deferred() {
        let cx = extract(&[("b3", &format!("{TRACE}-{SPAN}"))]);
        assert_eq!(ids(&cx), spec_ids(false));
        assert_eq!(
            inject(&cx, B3Encoding::Single)["b3"],
            format!("{TRACE}-{SPAN}")
        );
        assert_eq!(
            inject(&cx, B3Encoding::Multi),
            headers(&[("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN)])
        );
        // A local decision to sample is sent on.
        let sc = SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let local = cx.with_remote_span_context(sc);
        assert_eq!(
            inject(&local, B3Encoding::Single)["b3"],
            format!("{TRACE}-00f067aa0ba902b7-1")
        );
    }

    #[test]
    fn a_decision_belongs_to_its_trace() {
        let debug = extract(&[("b3", &format!("{TRACE}-{SPAN}-d"))]);
        let other = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        let cx = debug.with_remote_span_context(other);
        assert_eq!(
            inject(&cx, B3Encoding::Single)["b3"],
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"
        );
    }

    #[test]
    fn a_sampling_state_alone_is_no_span_context() {
        for pairs in [
            &[("b3", "0")][..],
            &[("b3", "1")],
            &[("b3", "d")],
            &[("X-B3-Sampled", "0")],
            &[("X-B3-Sampled", "1")],
            &[("X-B3-Flags", "1")],
            &[("X-B3-TraceId", TRACE)],
            &[("X-B3-SpanId", SPAN)],
        ] {
            let cx = extract(pairs);
            assert_eq!(ids(&cx), None, "{pairs:?}");
            assert!(inject(&cx, B3Encoding::Single).is_empty());
            assert!(inject(&cx, B3Encoding::Multi).is_empty());
        }
    }

    #[test]
    fn invalid_values_are_no_span_context() {
        let zero_trace = "0".repeat(32);
        let zero_span = "0".repeat(16);
        for value in [
            String::new(),
            "-".to_owned(),
            TRACE.to_owned(),
            format!("{TRACE}-"),
            format!("{TRACE}-{SPAN}-"),
            format!("{TRACE}-{SPAN}-2"),
            format!("{TRACE}-{SPAN}-true"),
            format!("{TRACE}-{SPAN}-1-"),
            format!("{TRACE}-{SPAN}-1-{PARENT}-"),
            format!("{TRACE}-{SPAN}-1-{PARENT}-x"),
            format!("{TRACE}-{SPAN}-1-05e3ac9a"),
            format!("{}-{SPAN}-1", TRACE.to_uppercase()),
            format!("{TRACE}-{}-1", SPAN.to_uppercase()),
            format!("{}-{SPAN}-1", &TRACE[1..]),
            format!("{}-{SPAN}-1", &TRACE[..20]),
            format!("{TRACE}0-{SPAN}-1"),
            format!("{TRACE}-{}-1", &SPAN[1..]),
            format!("{TRACE}-{SPAN}0-1"),
            format!("{zero_trace}-{SPAN}-1"),
            format!("{}-{SPAN}-1", &zero_trace[..16]),
            format!("{TRACE}-{zero_span}-1"),
            format!("{TRACE}-{SPAN}-1-{}", PARENT.to_uppercase()),
            format!("g{}-{SPAN}-1", &TRACE[1..]),
        ] {
            assert_eq!(ids(&extract(&[("b3", &value)])), None, "b3: {value}");
        }
        let ok = [("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN)];
        assert_eq!(ids(&extract(&ok)), spec_ids(false));
        for (name, value) in [
            ("X-B3-TraceId", TRACE.to_uppercase()),
            ("X-B3-TraceId", zero_trace.clone()),
            ("X-B3-TraceId", TRACE[2..].to_owned()),
            ("X-B3-SpanId", SPAN.to_uppercase()),
            ("X-B3-SpanId", zero_span.clone()),
            ("X-B3-SpanId", format!("{SPAN}0")),
            ("X-B3-ParentSpanId", "-".to_owned()),
            ("X-B3-ParentSpanId", String::new()),
            ("X-B3-Sampled", String::new()),
            ("X-B3-Sampled", "2".to_owned()),
            ("X-B3-Sampled", "d".to_owned()),
        ] {
            let mut h = headers(&ok);
            h.insert(name.to_lowercase(), value.clone());
            let cx = B3Propagator::new().extract(&h);
            assert_eq!(ids(&cx), None, "{name}: {value}");
        }
    }

    #[test]
    fn the_single_header_takes_precedence_and_a_bad_one_falls_back() {
        let other = "4bf92f3577b34da6a3ce929d0e0e4736";
        let multi = [
            ("X-B3-TraceId", other),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Sampled", "0"),
        ];
        let single = format!("{TRACE}-{SPAN}-1");
        let mut both = multi.to_vec();
        both.push(("b3", &single));
        assert_eq!(ids(&extract(&both)), spec_ids(true));
        let mut bad = multi.to_vec();
        bad.push(("b3", "0"));
        assert_eq!(
            ids(&extract(&bad)),
            Some((other.to_owned(), SPAN.to_owned(), false))
        );
    }

    #[test]
    fn optional_whitespace_is_trimmed() {
        let value = format!(" \t{TRACE}-{SPAN}-1\t ");
        assert_eq!(ids(&extract(&[("b3", &value)])), spec_ids(true));
    }

    #[test]
    fn fields_are_the_injected_headers() {
        let single: Vec<_> = B3Propagator::new().fields().map(str::to_owned).collect();
        assert_eq!(single, ["b3"]);
        let multi: Vec<_> = B3Propagator::with_encoding(B3Encoding::Multi)
            .fields()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            multi,
            ["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"]
        );
    }

    #[test]
    fn inject_then_extract_round_trips_any_valid_context() {
        let mut rng = super::super::composite::tests::Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..2000 {
            let sc = rng.span_context(case);
            let debug = case.is_multiple_of(7);
            let mut cx = Context::new().with_remote_span_context(sc.clone());
            if debug {
                cx = with_decision(cx, sc.trace_id(), Decision::Debug);
            }
            for encoding in [B3Encoding::Single, B3Encoding::Multi] {
                let back = B3Propagator::new().extract(&inject(&cx, encoding));
                let span = back.span();
                let got = span.span_context();
                assert_eq!(got.trace_id(), sc.trace_id(), "{encoding:?} {sc:?}");
                assert_eq!(got.span_id(), sc.span_id(), "{encoding:?} {sc:?}");
                assert_eq!(
                    got.is_sampled(),
                    sc.is_sampled() || debug,
                    "{encoding:?} {sc:?}"
                );
                assert!(got.is_remote());
                assert_eq!(
                    decision(&back, sc.trace_id()) == Some(Decision::Debug),
                    debug,
                    "{encoding:?} {sc:?}"
                );
            }
        }
    }
}
