//! Instructions for the `random` flag's bookkeeping, for callgrind: what
//! otelwire's trace ids cost over the SDK's, and what the check in
//! `traceparent` injection costs. `WHAT` picks the loop, `N` its count; the
//! difference of two runs' totals over the difference of their counts is
//! the cost of one iteration.
//!
//! ```text
//! cargo bench -p otelwire --bench random_ids_instructions --no-run
//! WHAT=sdk_ids N=0 valgrind --tool=callgrind <the bench binary>
//! WHAT=sdk_ids N=100000 valgrind --tool=callgrind <the bench binary>
//! ```
//!
//! `WHAT`: `sdk_ids` (the SDK's `RandomIdGenerator`), `otelwire_ids`
//! ([`RandomIds`]), `inject_flagged` (a span context that already has
//! `random`: no check) and `inject_unflagged` (one without: the check).

use std::collections::HashMap;
use std::hint::black_box;

use otelwire::opentelemetry::Context;
use otelwire::opentelemetry::propagation::TextMapPropagator;
use otelwire::opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use otelwire::opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use otelwire::propagation::{RandomIds, TraceContextPropagator};

fn main() {
    let what = std::env::var("WHAT").unwrap_or_else(|_| "otelwire_ids".into());
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let inject = |flags: u8| {
        let sc = SpanContext::new(
            RandomIds::default().new_trace_id(),
            SpanId::from(7),
            TraceFlags::new(flags),
            false,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let p = TraceContextPropagator::new();
        let mut headers = HashMap::with_capacity(2);
        for _ in 0..n {
            p.inject_context(black_box(&cx), &mut headers);
        }
        black_box(headers);
    };
    match what.as_str() {
        "sdk_ids" => {
            let g = RandomIdGenerator::default();
            for _ in 0..n {
                black_box(g.new_trace_id());
            }
        }
        "otelwire_ids" => {
            let g = RandomIds::default();
            for _ in 0..n {
                black_box(g.new_trace_id());
            }
        }
        "inject_flagged" => inject(0x03),
        "inject_unflagged" => inject(0x01),
        other => panic!("WHAT={other}: sdk_ids, otelwire_ids, inject_flagged or inject_unflagged"),
    }
    black_box(TraceId::INVALID);
}
