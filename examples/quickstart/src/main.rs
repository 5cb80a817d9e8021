//! The smallest otelwire service.
//!
//! ```text
//! cargo run -p quickstart                      # local output only (one warning: no collector)
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p quickstart
//! OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 cargo run -p quickstart
//! OTELWIRE_LOG_DIR=logs cargo run -p quickstart  # also app, metrics, alerts and audit .jsonl files
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use otelwire_files::{Files, FilesExt};
use tracing::{Instrument, Level, event, info, info_span, warn};

#[tokio::main]
async fn main() -> ExitCode {
    // service.name: OTEL_SERVICE_NAME, else the executable's name.
    let telemetry = match otelwire::builder()
        .service_version(env!("CARGO_PKG_VERSION"))
        // Local files by category when OTELWIRE_LOG_DIR is set.
        .files(Files::defaults())
        .init()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quickstart: cannot set up telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };

    let meter = telemetry.meter("quickstart");
    let orders = meter
        .u64_counter("quickstart.orders")
        .with_description("Orders placed.")
        .with_unit("{order}")
        .build();
    let duration = meter
        .f64_histogram("quickstart.order.duration")
        .with_description("Time to place an order.")
        .with_unit("s")
        .build();

    for order_id in 1..=3u64 {
        let started = Instant::now();
        place_order(order_id)
            .instrument(info_span!("place_order", order.id = order_id))
            .await;
        orders.add(
            1,
            &[otelwire::opentelemetry::KeyValue::new(
                "order.kind",
                "online",
            )],
        );
        duration.record(started.elapsed().as_secs_f64(), &[]);
    }

    // An event with metric fields: it also goes to metrics.jsonl.
    info!(
        metric.name = "quickstart.orders",
        metric.value = 3,
        metric.unit = "{order}",
        "orders placed"
    );

    let report = telemetry.shutdown().await;
    if report.dropped() > 0 {
        warn!(%report, "some telemetry could not be exported");
    }
    ExitCode::SUCCESS
}

async fn place_order(order_id: u64) {
    info!(
        order.id = order_id,
        items = 2,
        customer.tier = "gold",
        "order received"
    );
    check_stock(order_id)
        .instrument(info_span!("check_stock", warehouse = "east"))
        .await;
    // A secret-named field is redacted before any output sees it.
    info!(
        order.id = order_id,
        payment.token = "tok_live_123",
        "payment authorised"
    );
    // An audit event (audit.jsonl): target otelwire::audit, event.category.
    event!(
        target: "otelwire::audit",
        Level::INFO,
        event.category = "audit",
        event.name = "order.approved",
        order.id = order_id,
        "order approved"
    );
}

async fn check_stock(order_id: u64) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    info!(order.id = order_id, available = true, "stock checked");
    if order_id == 3 {
        // A warning: it also goes to alerts.jsonl.
        warn!(order.id = order_id, left = 1, "stock low");
    }
}
