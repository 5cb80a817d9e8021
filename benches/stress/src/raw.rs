//! The baseline: the same telemetry hand-wired with the raw crates, as a
//! service would without otelwire.
//!
//! `tracing-subscriber`'s registry with an `EnvFilter` (`info`),
//! `tracing-opentelemetry`'s layer, `opentelemetry-appender-tracing`'s log
//! bridge, the SDK's batch span and log processors and periodic metric
//! reader with their defaults (unless `--queue`/`--batch`), and
//! `opentelemetry-otlp`'s exporters over gRPC (tonic, built inside a
//! one-worker tokio runtime, as otelwire does) or HTTP (its blocking
//! reqwest client, as otelwire uses). Nothing counts exports or drops on
//! this side: what the collector received is what was exported.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use otelwire::Protocol;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

use crate::load::Signals;

/// The hand-wired pipeline: its dispatcher (the load threads run under
/// it), its meter provider and what to shut down.
pub(crate) struct Raw {
    pub(crate) dispatch: Dispatch,
    pub(crate) meters: SdkMeterProvider,
    traces: Option<SdkTracerProvider>,
    logs: Option<SdkLoggerProvider>,
    /// Kept alive for tonic's connection tasks.
    runtime: tokio::runtime::Runtime,
}

/// What [`build`] needs to know.
pub(crate) struct Settings<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) protocol: Protocol,
    pub(crate) signals: Signals,
    pub(crate) queue: Option<usize>,
    pub(crate) batch: Option<usize>,
    pub(crate) metric_interval: Duration,
}

fn http_endpoint(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// Builds the hand-wired pipeline.
pub(crate) fn build(s: &Settings<'_>) -> Result<Raw, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("raw-grpc")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let _enter = runtime.enter();
    let grpc = s.protocol == Protocol::Grpc;
    let resource = Resource::builder().with_service_name("stress-raw").build();
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what} exporter: {e}");

    let traces = if s.signals.traces {
        let exporter = if grpc {
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(s.endpoint)
                .build()
        } else {
            SpanExporter::builder()
                .with_http()
                .with_endpoint(http_endpoint(s.endpoint, "v1/traces"))
                .build()
        }
        .map_err(|e| err("span", &e))?;
        let mut config = BatchConfigBuilder::default();
        if let Some(q) = s.queue {
            config = config.with_max_queue_size(q);
        }
        if let Some(b) = s.batch {
            config = config.with_max_export_batch_size(b);
        }
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config.build())
            .build();
        Some(
            SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(resource.clone())
                .build(),
        )
    } else {
        None
    };

    let logs = if s.signals.logs {
        let exporter = if grpc {
            LogExporter::builder()
                .with_tonic()
                .with_endpoint(s.endpoint)
                .build()
        } else {
            LogExporter::builder()
                .with_http()
                .with_endpoint(http_endpoint(s.endpoint, "v1/logs"))
                .build()
        }
        .map_err(|e| err("log", &e))?;
        let mut config = opentelemetry_sdk::logs::BatchConfigBuilder::default();
        if let Some(q) = s.queue {
            config = config.with_max_queue_size(q);
        }
        if let Some(b) = s.batch {
            config = config.with_max_export_batch_size(b);
        }
        let processor = BatchLogProcessor::builder(exporter)
            .with_batch_config(config.build())
            .build();
        Some(
            SdkLoggerProvider::builder()
                .with_log_processor(processor)
                .with_resource(resource.clone())
                .build(),
        )
    } else {
        None
    };

    let mut meters = SdkMeterProvider::builder().with_resource(resource);
    if s.signals.metrics {
        let exporter = if grpc {
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(s.endpoint)
                .build()
        } else {
            MetricExporter::builder()
                .with_http()
                .with_endpoint(http_endpoint(s.endpoint, "v1/metrics"))
                .build()
        }
        .map_err(|e| err("metric", &e))?;
        meters = meters.with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(s.metric_interval)
                .build(),
        );
    }
    let meters = meters.build();

    let filter = tracing_subscriber::EnvFilter::new("info");
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(
            traces
                .as_ref()
                .map(|tp| tracing_opentelemetry::layer().with_tracer(tp.tracer("stress"))),
        )
        .with(logs.as_ref().map(OpenTelemetryTracingBridge::new));
    Ok(Raw {
        dispatch: Dispatch::new(subscriber),
        meters,
        traces,
        logs,
        runtime,
    })
}

impl Raw {
    /// Flushes and shuts every provider down (the batch processors export
    /// what they hold), then the runtime.
    pub(crate) fn shutdown(self) {
        if let Some(tp) = self.traces {
            let _ = tp.shutdown();
        }
        if let Some(lp) = self.logs {
            let _ = lp.shutdown();
        }
        let _ = self.meters.shutdown();
        self.runtime.shutdown_timeout(Duration::from_secs(5));
    }
}
