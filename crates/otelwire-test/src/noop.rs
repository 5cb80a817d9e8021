//! Exporters that accept every batch at once and keep nothing, as
//! opentelemetry-rust's own benches use: with them a pipeline measures the
//! instrumentation's own cost, not the network's.
//!
//! ```
//! let telemetry = otelwire::builder()
//!     .env_source(|_| None)
//!     .span_exporter(otelwire_test::noop::NoopSpans)
//!     .log_exporter(otelwire_test::noop::NoopLogs)
//!     .metric_exporter(otelwire_test::noop::NoopMetrics)
//!     .build()
//!     .unwrap();
//! telemetry.shutdown_blocking();
//! ```

use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// A span exporter that accepts everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSpans;

impl SpanExporter for NoopSpans {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// A log exporter that accepts everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopLogs;

impl LogExporter for NoopLogs {
    async fn export(&self, _batch: LogBatch<'_>) -> OTelSdkResult {
        Ok(())
    }
}

/// A metric exporter that accepts everything (cumulative temporality).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopMetrics;

impl PushMetricExporter for NoopMetrics {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
