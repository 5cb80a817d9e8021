//! Parent context extraction: otelwire's W3C Trace Context rules,
//! re-exported, and the propagator a layer may be given instead of the
//! global one.

use std::sync::Arc;

use otelwire::opentelemetry::propagation::TextMapPropagator;

pub use otelwire::http::{extract_context, valid_traceparent};

pub(crate) type SharedPropagator = Arc<dyn TextMapPropagator + Send + Sync>;
