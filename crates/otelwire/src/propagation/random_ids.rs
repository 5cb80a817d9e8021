//! Trace ids that otelwire generates, and how its `traceparent` knows them
//! again to send W3C Trace Context Level 2's `random` flag (bit 1) with
//! them.
//!
//! The OpenTelemetry SDK (0.33) derives a new root span's trace flags from
//! the sampler's decision alone: no sampler or id generator can set
//! `random`, though the SDK's ids are random. So otelwire's
//! [`RandomIds`] generator makes the rightmost 96 bits of a trace id
//! random (the specification asks for at least the rightmost 56 with
//! `random` set) and the leftmost 32 a keyed hash of them, with a key
//! drawn once per process. [`TraceContextPropagator`](super::TraceContextPropagator)
//! sets `random` on a trace id whose left part matches: the ids of traces
//! this process started. A trace id received from elsewhere keeps the
//! flags it came with; one without `random` matches by chance once in
//! 2^32.
//!
//! otelwire's span gate sets `random` on the exported spans of such a
//! trace too (OTLP's span `flags` carry the W3C trace flags), so what a
//! backend stores says what the `traceparent` of their calls said.

use std::sync::OnceLock;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// The trace flag W3C Trace Context Level 2 calls `random`.
pub const RANDOM_FLAG: u8 = 0x02;

/// The SDK's random ids, with the left 32 bits of each trace id a keyed
/// hash of its right 96 (see the [module docs](self)). otelwire's tracer
/// provider uses it; a provider of your own can too
/// (`SdkTracerProvider::builder().with_id_generator(RandomIds::default())`).
#[derive(Debug, Default)]
pub struct RandomIds {
    inner: RandomIdGenerator,
}

/// The process's key: two random words, drawn once.
fn key() -> (u64, u64) {
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    *KEY.get_or_init(|| {
        let k = u128::from_be_bytes(RandomIdGenerator::default().new_trace_id().to_bytes());
        (k as u64, (k >> 64) as u64 | 1)
    })
}

/// The check value of the right 96 bits of `id`: a keyed folded multiply
/// (a flag is at stake, not a secret: it needs to be cheap and to match an
/// id from elsewhere about once in 2^32).
fn tag(id: u128) -> u32 {
    let (k0, k1) = key();
    let low = id as u64 ^ k0;
    let high = u64::from((id >> 64) as u32) ^ k1;
    let product = u128::from(low) * u128::from(high);
    ((product as u64 ^ (product >> 64) as u64) >> 32) as u32
}

impl IdGenerator for RandomIds {
    fn new_trace_id(&self) -> TraceId {
        let random = u128::from_be_bytes(self.inner.new_trace_id().to_bytes());
        let right = random & ((1u128 << 96) - 1);
        TraceId::from(u128::from(tag(right)) << 96 | right)
    }

    fn new_span_id(&self) -> SpanId {
        self.inner.new_span_id()
    }
}

/// Whether this process's [`RandomIds`] made `trace_id` (wrong once in
/// 2^32 for an id made elsewhere).
pub fn generated_here(trace_id: TraceId) -> bool {
    let id = u128::from_be_bytes(trace_id.to_bytes());
    (id >> 96) as u32 == tag(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_here_are_known_and_others_are_not() {
        let ids = RandomIds::default();
        let made: Vec<TraceId> = (0..10_000).map(|_| ids.new_trace_id()).collect();
        assert!(made.iter().all(|&id| generated_here(id)));
        let distinct: std::collections::HashSet<_> = made.iter().collect();
        assert_eq!(distinct.len(), made.len());
        // Random ids from elsewhere: with a 2^-32 chance each, none of
        // 10,000 should match.
        let foreign = RandomIdGenerator::default();
        let matched = (0..10_000)
            .filter(|_| generated_here(foreign.new_trace_id()))
            .count();
        assert_eq!(matched, 0);
        // Changing one bit of the random part breaks the match.
        let id = u128::from_be_bytes(made[0].to_bytes());
        assert!(!generated_here(TraceId::from(id ^ 1)));
    }

    #[test]
    fn the_right_half_stays_uniform_for_ratio_sampling() {
        // TraceIdRatioBased reads the right 64 bits: they are the SDK's
        // random bits, untouched. Their top bit is set about half the time.
        let ids = RandomIds::default();
        let high = (0..10_000)
            .filter(|_| ids.new_trace_id().to_bytes()[8] & 0x80 != 0)
            .count();
        assert!((4_500..5_500).contains(&high), "{high}");
    }
}
