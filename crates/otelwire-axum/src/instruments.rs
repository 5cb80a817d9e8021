//! The HTTP server metric instruments the layer records into.

use std::sync::Arc;

use otelwire::opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};

use crate::{DURATION_BUCKETS, bound};

#[derive(Clone)]
pub(crate) struct Instruments {
    pub(crate) duration: Histogram<f64>,
    pub(crate) active: UpDownCounter<i64>,
    pub(crate) invalid_context: Counter<u64>,
    pub(crate) bound: Arc<bound::BoundCache>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        Instruments {
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter("http.server.active_requests")
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build(),
            invalid_context: meter
                .u64_counter("otelwire.http.server.invalid_context")
                .with_unit("{request}")
                .with_description("Requests whose traceparent header could not be used.")
                .build(),
            bound: Arc::default(),
        }
    }
}
