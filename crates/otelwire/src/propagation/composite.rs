//! A list of propagators as one (`OTEL_PROPAGATORS=tracecontext,baggage,b3multi`).

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::TraceContextExt;
use std::fmt;

/// The propagators of a list, as one.
///
/// The OpenTelemetry specification ("Composite Propagator") says only
/// that "the resulting composite `Propagator` will invoke the
/// `Propagator`s, `Injector`s, or `Extractor`s, in the order they were
/// specified"; which span context wins when two formats both carry one
/// was asked (opentelemetry-specification issue 496) and left open. The
/// SDKs' composites pass each propagator the context the one before it
/// returned, so there the *last* format that carries a span context
/// wins, whatever the order meant. This one makes the order a
/// preference:
///
/// - **inject**: every propagator, in order;
/// - **extract**: the propagators in order; the first whose extraction
///   yields a valid remote span context gives the parent, and the span
///   contexts of the ones after it are not used (nor anything else they
///   put in the context but baggage). Baggage is added from every
///   propagator: W3C `baggage`, and Jaeger's `uberctx-*` headers, each
///   add their members to the baggage already in the context, a later
///   one's value winning for the same key (even where a propagator,
///   like the SDK's W3C baggage one, would replace the baggage whole);
/// - **fields**: the union of the propagators' fields, in order, each
///   once.
///
/// So with `tracecontext,baggage,b3multi` a request that carries both a
/// `traceparent` and `X-B3-*` headers continues the W3C parent; one with
/// only B3 headers continues the B3 one; and every outgoing request
/// carries `traceparent`, `baggage` and `X-B3-*`.
///
/// ```
/// use otelwire::opentelemetry::propagation::TextMapPropagator;
/// use otelwire::opentelemetry::trace::TraceContextExt;
/// use otelwire::opentelemetry_sdk::propagation::BaggagePropagator;
/// use otelwire::propagation::{
///     B3Encoding, B3Propagator, CompositePropagator, TraceContextPropagator,
/// };
/// use std::collections::HashMap;
///
/// let p = CompositePropagator::new(vec![
///     Box::new(TraceContextPropagator::new()),
///     Box::new(BaggagePropagator::new()),
///     Box::new(B3Propagator::with_encoding(B3Encoding::Multi)),
/// ]);
/// let headers = HashMap::from([
///     ("x-b3-traceid".to_owned(), "80f198ee56343ba864fe8b2a57d3eff7".to_owned()),
///     ("x-b3-spanid".to_owned(), "e457b5a2e4d86bd1".to_owned()),
///     ("x-b3-sampled".to_owned(), "1".to_owned()),
/// ]);
/// let cx = p.extract(&headers);
/// let mut out = HashMap::new();
/// p.inject_context(&cx, &mut out);
/// assert_eq!(out["traceparent"], "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01");
/// assert_eq!(out["x-b3-spanid"], "e457b5a2e4d86bd1");
/// ```
pub struct CompositePropagator {
    propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>>,
    fields: Vec<String>,
}

impl CompositePropagator {
    /// The propagators, in the order of preference for the span context.
    pub fn new(propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>>) -> Self {
        let mut fields: Vec<String> = Vec::new();
        for name in propagators.iter().flat_map(|p| p.fields()) {
            if !fields.iter().any(|f| f == name) {
                fields.push(name.to_owned());
            }
        }
        Self {
            propagators,
            fields,
        }
    }
}

impl fmt::Debug for CompositePropagator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompositePropagator")
            .field("propagators", &self.propagators.len())
            .field("fields", &self.fields)
            .finish()
    }
}

/// A copy of `b` (`Baggage` is not `Clone`).
fn copy(b: &Baggage) -> Baggage {
    b.iter()
        .map(|(k, (v, m))| (k.clone(), (v.clone(), m.clone())))
        .collect()
}

/// The baggage after one more propagator, against the baggage before it.
enum Merge {
    /// `before` is the union: `after` added nothing, but dropped members.
    Before,
    /// `after` is the union (the same baggage, or `before` and more).
    After,
    /// Neither: `before`'s members with `after`'s added.
    Union(Baggage),
}

/// The union of `before` and `after`, `after` winning for the same key.
fn merge(before: &Baggage, after: &Baggage) -> Merge {
    if std::ptr::eq(before, after) {
        return Merge::After;
    }
    let adds = after
        .iter()
        .any(|(k, v)| before.get_with_metadata(k.as_str()) != Some(v));
    let drops = before
        .iter()
        .any(|(k, _)| after.get_with_metadata(k.as_str()).is_none());
    match (adds, drops) {
        (_, false) => Merge::After,
        (false, true) => Merge::Before,
        (true, true) => {
            let mut union = copy(before);
            for (k, (v, m)) in after {
                union.insert_with_metadata(k.clone(), v.clone(), m.clone());
            }
            Merge::Union(union)
        }
    }
}

impl TextMapPropagator for CompositePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        for p in &self.propagators {
            p.inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut out = cx.clone();
        let mut parent_found = false;
        for p in &self.propagators {
            let next = p.extract_with_context(&out, extractor);
            let merged = merge(out.baggage(), next.baggage());
            if parent_found {
                // Only the baggage of a propagator after the one that
                // gave the parent is used.
                out = match merged {
                    Merge::Before => out,
                    Merge::After if std::ptr::eq(out.baggage(), next.baggage()) => out,
                    Merge::After => out.with_baggage(copy(next.baggage())),
                    Merge::Union(b) => out.with_baggage(b),
                };
                continue;
            }
            parent_found = {
                let (was, now) = (out.span(), next.span());
                let now = now.span_context();
                now.is_valid() && now.is_remote() && now != was.span_context()
            };
            out = match merged {
                Merge::Before => next.with_baggage(copy(out.baggage())),
                Merge::After => next,
                Merge::Union(b) => next.with_baggage(b),
            };
        }
        out
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::propagation::{B3Encoding, B3Propagator, JaegerPropagator, TraceContextPropagator};
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::propagation::BaggagePropagator;
    use std::collections::HashMap;

    /// xorshift64*: the cases of the round-trip tests, reproducible.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A valid span context; `case` picks the shapes the encodings
        /// must get right (64-bit trace ids, leading zeros, ids of 1).
        pub(crate) fn span_context(&mut self, case: u64) -> SpanContext {
            let (hi, lo, span) = (self.next(), self.next(), self.next());
            let (hi, lo, span) = match case % 6 {
                0 => (0, lo, span),
                1 => (hi >> 40, lo, span >> 40),
                2 => (0, 1, 1),
                3 => (u64::MAX, u64::MAX, u64::MAX),
                _ => (hi, lo, span),
            };
            let trace = (u128::from(hi) << 64) | u128::from(lo);
            let trace = TraceId::from(if trace == 0 { 1 } else { trace });
            let span = SpanId::from(if span == 0 { 1 } else { span });
            let flags = TraceFlags::new(u8::from(self.next().is_multiple_of(2)));
            SpanContext::new(trace, span, flags, true, TraceState::default())
        }
    }

    const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";

    /// `OTEL_PROPAGATORS=tracecontext,baggage,b3multi`.
    fn w3c_baggage_b3multi() -> CompositePropagator {
        CompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
            Box::new(B3Propagator::with_encoding(B3Encoding::Multi)),
        ])
    }

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_lowercase(), (*v).to_owned()))
            .collect()
    }

    const TRACEPARENT: (&str, &str) = (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    const B3_MULTI: [(&str, &str); 3] = [
        ("X-B3-TraceId", B3_TRACE),
        ("X-B3-SpanId", "e457b5a2e4d86bd1"),
        ("X-B3-Sampled", "0"),
    ];

    fn trace_id(cx: &Context) -> String {
        cx.span().span_context().trace_id().to_string()
    }

    #[test]
    fn w3c_and_b3_present_takes_w3c() {
        let mut pairs = B3_MULTI.to_vec();
        pairs.push(TRACEPARENT);
        pairs.push(("baggage", "user=alice"));
        let cx = w3c_baggage_b3multi().extract(&headers(&pairs));
        assert_eq!(trace_id(&cx), W3C_TRACE);
        assert!(cx.span().span_context().is_sampled());
        assert_eq!(cx.baggage().get("user").map(|v| v.as_str()), Some("alice"));

        // The other order prefers B3.
        let b3_first = CompositePropagator::new(vec![
            Box::new(B3Propagator::with_encoding(B3Encoding::Multi)),
            Box::new(TraceContextPropagator::new()),
        ]);
        assert_eq!(trace_id(&b3_first.extract(&headers(&pairs))), B3_TRACE);
    }

    #[test]
    fn only_b3_takes_b3_and_a_bad_traceparent_falls_through() {
        let cx = w3c_baggage_b3multi().extract(&headers(&B3_MULTI));
        assert_eq!(trace_id(&cx), B3_TRACE);
        assert!(!cx.span().span_context().is_sampled());
        let mut pairs = B3_MULTI.to_vec();
        pairs.push((
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ));
        let cx = w3c_baggage_b3multi().extract(&headers(&pairs));
        assert_eq!(trace_id(&cx), B3_TRACE);
    }

    #[test]
    fn inject_writes_every_format() {
        let cx = w3c_baggage_b3multi().extract(&headers(&[TRACEPARENT, ("baggage", "user=alice")]));
        let mut out = HashMap::new();
        w3c_baggage_b3multi().inject_context(&cx, &mut out);
        assert_eq!(
            out,
            headers(&[
                TRACEPARENT,
                ("baggage", "user=alice"),
                ("X-B3-TraceId", W3C_TRACE),
                ("X-B3-SpanId", "00f067aa0ba902b7"),
                ("X-B3-Sampled", "1"),
            ])
        );
    }

    #[test]
    fn fields_are_the_union() {
        let p = CompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
            Box::new(B3Propagator::with_encoding(B3Encoding::Multi)),
            Box::new(B3Propagator::new()),
            Box::new(TraceContextPropagator::new()),
            Box::new(JaegerPropagator::new()),
        ]);
        let fields: Vec<_> = p.fields().collect();
        assert_eq!(
            fields,
            [
                "traceparent",
                "tracestate",
                "baggage",
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-sampled",
                "x-b3-flags",
                "b3",
                "uber-trace-id"
            ]
        );
    }

    #[test]
    fn every_baggage_propagator_adds_its_members() {
        let p = CompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(JaegerPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]);
        let pairs = [
            TRACEPARENT,
            (
                "uber-trace-id",
                "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1",
            ),
            ("uberctx-tenant", "acme"),
            ("uberctx-user", "bob"),
            ("baggage", "user=alice,region=eu"),
        ];
        let start = Context::new().with_baggage([KeyValue::new("local", "1")]);
        let cx = p.extract_with_context(&start, &headers(&pairs));
        assert_eq!(
            trace_id(&cx),
            W3C_TRACE,
            "Jaeger's span context is not used"
        );
        let b = cx.baggage();
        let get = |k: &str| b.get(k).map(|v| v.as_str().to_owned());
        assert_eq!(get("local").as_deref(), Some("1"));
        assert_eq!(
            get("tenant").as_deref(),
            Some("acme"),
            "not replaced by W3C's"
        );
        assert_eq!(get("user").as_deref(), Some("alice"), "the later one wins");
        assert_eq!(get("region").as_deref(), Some("eu"));
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn a_later_format_s_debug_does_not_stick_to_the_w3c_parent() {
        // The same trace id in both: only the preferred format's state counts.
        let pairs = [
            TRACEPARENT,
            ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-e457b5a2e4d86bd1-d"),
        ];
        let p = CompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(B3Propagator::new()),
        ]);
        let cx = p.extract(&headers(&pairs));
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert_eq!(
            out["b3"],
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
        );
    }

    #[test]
    fn a_propagator_that_replaces_the_baggage_loses_none_of_it() {
        // The SDK's W3C baggage propagator replaces the context's baggage
        // with the header's, here a part of it.
        let start = Context::new().with_baggage([KeyValue::new("a", "1"), KeyValue::new("b", "2")]);
        for header in ["a=1", "a=3"] {
            let cx = w3c_baggage_b3multi()
                .extract_with_context(&start, &headers(&[("baggage", header)]));
            let b = cx.baggage();
            assert_eq!(
                b.get("a").map(|v| v.as_str()),
                Some(&header[2..]),
                "{header}"
            );
            assert_eq!(b.get("b").map(|v| v.as_str()), Some("2"), "{header}");
            assert_eq!(b.len(), 2);
        }
    }

    #[test]
    fn no_headers_leave_the_context_as_it_was() {
        let start = Context::new().with_baggage([KeyValue::new("local", "1")]);
        let cx =
            w3c_baggage_b3multi().extract_with_context(&start, &HashMap::<String, String>::new());
        assert!(!cx.span().span_context().is_valid());
        assert!(std::ptr::eq(cx.baggage(), start.baggage()), "not rebuilt");
    }

    #[test]
    fn round_trips_through_every_format() {
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        let all = CompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
            Box::new(B3Propagator::new()),
            Box::new(B3Propagator::with_encoding(B3Encoding::Multi)),
            Box::new(JaegerPropagator::new()),
        ]);
        for case in 0..500 {
            let sc = rng.span_context(case);
            let cx = Context::new().with_remote_span_context(sc.clone());
            let mut out = HashMap::new();
            all.inject_context(&cx, &mut out);
            // Each format alone carries the context.
            for name in ["traceparent", "b3", "x-b3-traceid", "uber-trace-id"] {
                let mut one = out.clone();
                one.retain(|k, _| match name {
                    "x-b3-traceid" => k.starts_with("x-b3-"),
                    _ => k == name,
                });
                let back = all.extract(&one);
                let span = back.span();
                let got = span.span_context();
                assert_eq!(
                    (got.trace_id(), got.span_id(), got.is_sampled()),
                    (sc.trace_id(), sc.span_id(), sc.is_sampled()),
                    "{name} {sc:?}"
                );
            }
        }
    }
}
