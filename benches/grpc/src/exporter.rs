//! A no-op span exporter that counts what it is handed, so that a run can
//! show the peer's spans were made (otelwire counts its own).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use otelwire::opentelemetry_sdk::error::OTelSdkResult;
use otelwire::opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Accepts every batch at once and counts its spans (one atomic addition
/// per batch, not per span).
#[derive(Debug, Default, Clone)]
pub(crate) struct CountingSpans(pub(crate) Arc<AtomicU64>);

impl SpanExporter for CountingSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
