//! The pricing service in-process behind a telemetry that exports to an
//! in-process collector, and a client through otelwire-tonic's client layer.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_test::Collector;
use pricing::proto::pricing_client::PricingClient;

/// A telemetry that exports to `collector` quickly; metrics on shutdown.
pub fn telemetry(collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("pricing")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(50))
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .metric_export_interval(Duration::from_secs(60))
        .process_metrics(false)
        .build()
        .unwrap()
}

/// The service on a free loopback port, until `shutdown` fires; the
/// server's task answers what `serve` returned.
pub async fn serve(
    telemetry: &Telemetry,
    config: pricing::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(pricing::serve(listener, telemetry, config, shutdown));
    (addr, server)
}

/// The client of the service at `addr`, traced.
pub fn client(
    telemetry: &Telemetry,
    addr: SocketAddr,
) -> PricingClient<otelwire_tonic::OtelClient<tonic::transport::Channel>> {
    pricing::client(telemetry, &format!("http://{addr}")).unwrap()
}

/// Waits until `count` spans match `pred`.
pub async fn spans(
    collector: &Collector,
    count: usize,
    pred: impl Fn(&otelwire_test::Span) -> bool,
) -> Vec<otelwire_test::Span> {
    collector
        .wait_for_spans(count, pred, Duration::from_secs(15))
        .await
        .unwrap()
}
