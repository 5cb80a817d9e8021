//! An otelwire pipeline pointed at a [`Collector`], set up for tests.

use std::time::Duration;

use otelwire::{LogFormat, Protocol, Signal};

use crate::Collector;

/// How long the spans and log records wait in their queues, and the metric
/// export interval, with [`builder_for`].
pub const TEST_EXPORT_INTERVAL: Duration = Duration::from_millis(100);

/// An [`otelwire::Builder`] that exports to `collector`, made for tests:
///
/// - the endpoint is the collector's [OTLP/HTTP
///   endpoint](Collector::http_endpoint) (protobuf);
/// - no local output ([`LogFormat::None`]): the console writer goes to the
///   process's standard output directly, past libtest's capture, so every
///   event of every test would otherwise be printed;
/// - an empty configuration source ([`otelwire::Builder::env_source`]): the
///   machine's `OTEL_*`, `OTELWIRE_*` and `RUST_LOG` variables do not leak
///   into the test, and everything else has otelwire's default (the
///   `info` filter; `service.name` is the test executable's name unless
///   you set it);
/// - spans and log records leave their queues every
///   [`TEST_EXPORT_INTERVAL`] (100 ms instead of 5 s and 1 s), and metrics
///   are exported as often (instead of every 60 s).
///
/// Every setting can still be changed on the returned builder: settings
/// made in code win. Use [`build`](otelwire::Builder::build), not
/// [`init`](otelwire::Builder::init), so that each test has a pipeline of
/// its own: enter it with
/// [`tracing::dispatcher::set_default`](otelwire::tracing::dispatcher::set_default) for the
/// test's thread.
///
/// Before waiting for what a test emitted, call
/// [`Telemetry::force_flush`](otelwire::Telemetry::force_flush): it exports
/// what is queued at once and returns when the collector has answered, so
/// the wait ends as soon as the data is there rather than at the next
/// export. [`Telemetry::shutdown`](otelwire::Telemetry::shutdown) flushes
/// too.
///
/// The collector must be a plain-HTTP one (not [`CollectorBuilder::tls`]:
/// trusting its CA takes a file, `OTEL_EXPORTER_OTLP_CERTIFICATE`, given
/// through your own [`env_source`](otelwire::Builder::env_source)).
///
/// [`CollectorBuilder::tls`]: crate::CollectorBuilder::tls
///
/// ```
/// use std::time::Duration;
///
/// let collector = otelwire_test::Collector::start()?;
/// let telemetry = otelwire_test::builder_for(&collector)
///     .service_name("checkout")
///     .build()?;
///
/// {
///     let _default = tracing::dispatcher::set_default(telemetry.dispatch());
///     let span = tracing::info_span!("place_order", order.id = 42);
///     let _entered = span.enter();
///     tracing::info!(items = 3, "order placed");
/// }
/// telemetry.force_flush();
///
/// let spans = collector.wait_for_spans_blocking(
///     1,
///     |s| s.name == "place_order",
///     Duration::from_secs(5),
/// )?;
/// assert_eq!(spans[0].resource.get_str("service.name"), Some("checkout"));
/// assert_eq!(spans[0].attributes.get_i64("order.id"), Some(42));
///
/// let logs = collector.wait_for_logs_blocking(
///     1,
///     |l| l.body_str() == Some("order placed"),
///     Duration::from_secs(5),
/// )?;
/// assert_eq!(logs[0].span_id.as_deref(), Some(spans[0].span_id.as_str()));
/// telemetry.shutdown_blocking();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn builder_for(collector: &Collector) -> otelwire::Builder {
    builder_for_endpoint(&collector.http_endpoint())
}

/// [`builder_for`] with an OTLP/HTTP base URL instead of an in-process
/// collector: for an `otelwire-test-collector` process (its `http` line),
/// or any other OTLP/HTTP receiver.
pub fn builder_for_endpoint(endpoint: &str) -> otelwire::Builder {
    otelwire::builder()
        .env_source(|_| None)
        .endpoint(endpoint)
        .protocol(Protocol::HttpProtobuf)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, TEST_EXPORT_INTERVAL)
        .scheduled_delay(Signal::Logs, TEST_EXPORT_INTERVAL)
        .metric_export_interval(TEST_EXPORT_INTERVAL)
}
