//! What otelwire costs per event and per span, against the same work
//! hand-wired from the raw crates with their defaults, in the same run.
//!
//! Both sides export to no-op exporters, so the figures are the
//! instrumentation's own cost, not the network's. Both sides get the same
//! large queue and a short schedule delay so that a tight loop measures the
//! normal path rather than the queue-full drop path.
//!
//! ```text
//! cargo bench -p otelwire --bench overhead
//! ```

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use otelwire::{LogFormat, Signal};
use otelwire_test::noop::{NoopLogs, NoopSpans};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

const QUEUE: usize = 1 << 16;
const DELAY: Duration = Duration::from_millis(50);

/// The raw crates' providers with the same queue and delay as otelwire's side.
fn raw_tracer_provider() -> SdkTracerProvider {
    let processor = BatchSpanProcessor::builder(NoopSpans)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_scheduled_delay(DELAY)
                .build(),
        )
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build()
}

fn raw_logger_provider() -> SdkLoggerProvider {
    let processor = BatchLogProcessor::builder(NoopLogs)
        .with_batch_config(
            opentelemetry_sdk::logs::BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_scheduled_delay(DELAY)
                .build(),
        )
        .build();
    SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build()
}

fn otelwire_builder() -> otelwire::Builder {
    otelwire::builder()
        .env_source(|_| None)
        .metrics(false)
        .process_metrics(false)
        .writer(std::io::sink)
        .max_queue_size(Signal::Traces, QUEUE)
        .max_queue_size(Signal::Logs, QUEUE)
        .scheduled_delay(Signal::Traces, DELAY)
        .scheduled_delay(Signal::Logs, DELAY)
}

fn event_in_span(c: &mut Criterion, group: &str, dispatch: &Dispatch, label: &str) {
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("request", id = 7);
        let _entered = span.enter();
        c.bench_function(&format!("{group}/{label}"), |b| {
            b.iter(|| {
                tracing::info!(a = black_box(1), b = "two", c = 3.0, "message");
            })
        });
    });
}

/// One `info!` with three fields inside a span: OTel log record + JSON line.
fn event_3_fields(c: &mut Criterion) {
    let otelwire = otelwire_builder()
        .span_exporter(NoopSpans)
        .log_exporter(NoopLogs)
        .log_format(LogFormat::Json)
        .build()
        .expect("otelwire builds");
    event_in_span(c, "event_3_fields", otelwire.dispatch(), "otelwire");
    otelwire.shutdown_blocking();

    let tracer_provider = raw_tracer_provider();
    let logger_provider = raw_logger_provider();
    let baseline = Dispatch::new(
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::sink),
            )
            .with(OpenTelemetryTracingBridge::new(&logger_provider))
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench"))),
    );
    event_in_span(c, "event_3_fields", &baseline, "hand_wired");
    let _ = tracer_provider.shutdown();
    let _ = logger_provider.shutdown();
}

/// The local JSON line alone (otelwire's lines also carry trace ids).
fn json_line(c: &mut Criterion) {
    let otelwire = otelwire_builder()
        .traces(false)
        .logs(false)
        .log_format(LogFormat::Json)
        .build()
        .expect("otelwire builds");
    event_in_span(c, "json_line", otelwire.dispatch(), "otelwire");
    otelwire.shutdown_blocking();

    let baseline = Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::sink),
        ),
    );
    event_in_span(c, "json_line", &baseline, "fmt_json");
}

fn span_cycle(c: &mut Criterion, dispatch: &Dispatch, label: &str) {
    span_cycle_named(c, "span_enter_close", dispatch, label)
}

fn span_cycle_named(c: &mut Criterion, group: &str, dispatch: &Dispatch, label: &str) {
    tracing::dispatcher::with_default(dispatch, || {
        c.bench_function(&format!("{group}/{label}"), |b| {
            b.iter(|| {
                let span = tracing::info_span!("work", id = black_box(1));
                let entered = span.enter();
                drop(entered);
                drop(span);
            })
        });
    });
}

/// A span created, entered, exited and closed.
fn span_enter_close(c: &mut Criterion) {
    let otelwire = otelwire_builder()
        .span_exporter(NoopSpans)
        .logs(false)
        .log_format(LogFormat::None)
        .build()
        .expect("otelwire builds");
    span_cycle(c, otelwire.dispatch(), "otelwire");
    otelwire.shutdown_blocking();

    let tracer_provider = raw_tracer_provider();
    let baseline = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench"))),
    );
    span_cycle(c, &baseline, "tracing_opentelemetry");
    let _ = tracer_provider.shutdown();
}

/// An `/dev/null` file: both sides of the peer comparison write their JSON
/// lines with a real `write` call, as init-tracing-opentelemetry's file
/// writer does (it has no in-memory writer).
fn dev_null() -> std::sync::Arc<std::fs::File> {
    std::sync::Arc::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/null")
            .expect("/dev/null"),
    )
}

/// `event_3_fields` and `span_enter_close` against init-tracing-opentelemetry
/// 0.44's `production()` preset (JSON lines with `trace_id`, an
/// `EnvFilter`, tracing-opentelemetry with error records as exceptions, the
/// OTel log bridge), its providers made by its own `init_tracerprovider` /
/// `init_loggerprovider` with the same no-op batch processors as every
/// other side.
fn init_tracing_peer(c: &mut Criterion) {
    use init_tracing_opentelemetry::TracingConfig;
    use init_tracing_opentelemetry::otlp::{logs, traces};

    let otelwire = otelwire_builder()
        .writer(dev_null())
        .span_exporter(NoopSpans)
        .log_exporter(NoopLogs)
        .log_format(LogFormat::Json)
        .build()
        .expect("otelwire builds");
    event_in_span(c, "peer_event_3_fields", otelwire.dispatch(), "otelwire");
    span_cycle_named(c, "peer_span_enter_close", otelwire.dispatch(), "otelwire");
    otelwire.shutdown_blocking();

    let resource = opentelemetry_sdk::Resource::builder().build();
    let noop_spans = |b: opentelemetry_sdk::trace::TracerProviderBuilder| {
        b.with_span_processor(
            BatchSpanProcessor::builder(NoopSpans)
                .with_batch_config(
                    opentelemetry_sdk::trace::BatchConfigBuilder::default()
                        .with_max_queue_size(QUEUE)
                        .with_scheduled_delay(DELAY)
                        .build(),
                )
                .build(),
        )
    };
    let noop_logs = |b: opentelemetry_sdk::logs::LoggerProviderBuilder| {
        b.with_log_processor(
            BatchLogProcessor::builder(NoopLogs)
                .with_batch_config(
                    opentelemetry_sdk::logs::BatchConfigBuilder::default()
                        .with_max_queue_size(QUEUE)
                        .with_scheduled_delay(DELAY)
                        .build(),
                )
                .build(),
        )
    };
    let tracer_provider =
        traces::init_tracerprovider(resource.clone(), noop_spans).expect("tracer provider");
    let logger_provider = logs::init_loggerprovider(resource, noop_logs).expect("logger provider");
    let config = TracingConfig::production().with_file("/dev/null");
    let peer = Dispatch::new(
        tracing_subscriber::registry()
            .with(
                tracing_opentelemetry::layer()
                    .with_error_records_to_exceptions(true)
                    .with_tracer(tracer_provider.tracer("bench")),
            )
            .with(OpenTelemetryTracingBridge::new(&logger_provider))
            .with(config.build_layer().expect("fmt layer"))
            .with(config.build_filter_layer().expect("filter")),
    );
    event_in_span(
        c,
        "peer_event_3_fields",
        &peer,
        "init_tracing_opentelemetry",
    );
    span_cycle_named(
        c,
        "peer_span_enter_close",
        &peer,
        "init_tracing_opentelemetry",
    );
    let _ = tracer_provider.shutdown();
    let _ = logger_provider.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = event_3_fields, json_line, span_enter_close, init_tracing_peer
}
criterion_main!(benches);
