//! Set-up shared by otelwire-axum's test files.

use std::time::Duration;

use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_test::Collector;

/// `otelwire::init()` (global propagator and providers, so one per test
/// binary) exporting to `collector`, with `OTEL_PROPAGATORS=propagators`.
pub(crate) fn init_with_propagators(
    collector: &Collector,
    propagators: &str,
    service: &str,
) -> Telemetry {
    let endpoint = collector.http_endpoint();
    let propagators = propagators.to_owned();
    otelwire::builder()
        .env_source(move |k| match k {
            "OTEL_PROPAGATORS" => Some(propagators.clone()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            _ => None,
        })
        .service_name(service)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .process_metrics(false)
        .init()
        .unwrap()
}
