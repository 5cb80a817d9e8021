//! The pricing service, over gRPC: `pricing.v1.Pricing/Quote` prices a
//! quantity of an item, `pricing.v1.Pricing/WatchPrices` streams updates of
//! unit prices. It can be told to add latency or to fail a share of quotes
//! ([`Config`], the `PRICING_*` variables), so that traces have something
//! to show, and it serves `grpc.health.v1.Health`.
//!
//! Every RPC is traced by otelwire-tonic's [`OtelServerLayer`] (health
//! checks are not). The binary (`cargo run -p pricing`) reads its settings
//! from the environment; tests and other examples run the same [`serve`]
//! in-process and call it with [`client`].

pub mod catalogue;
mod client;
mod config;
mod service;

/// The messages and the tonic client and server generated from
/// `proto/pricing/v1/pricing.proto`.
pub mod proto {
    tonic::include_proto!("pricing.v1");
}

use std::future::Future;
use std::time::Duration;

pub use client::client;
pub use config::Config;
use otelwire_tonic::OtelServerLayer;
pub use service::{MAX_INTERVAL_MS, MAX_QUANTITY, MAX_UPDATES, MAX_WATCHED, PricingService};
use tonic::transport::server::TcpIncoming;

/// The name health checks ask about, as well as `""` (the whole server).
pub const SERVICE_NAME: &str =
    <proto::pricing_server::PricingServer<PricingService> as tonic::server::NamedService>::NAME;

/// How long open RPCs may go on after the shutdown signal before their
/// connections are closed (a `Health/Watch` stream never ends by itself).
pub const DRAIN: Duration = Duration::from_secs(5);

/// Serves pricing and `grpc.health.v1.Health` on `listener` until
/// `shutdown` completes, traced with `telemetry`'s meter and the current
/// subscriber. Then health answers `NOT_SERVING`, no new connection is
/// taken, and open RPCs have [`DRAIN`] to finish.
///
/// Only the meters are taken from `telemetry`: the future is `'static`,
/// to spawn.
pub fn serve(
    listener: tokio::net::TcpListener,
    telemetry: &otelwire::Telemetry,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static {
    use proto::pricing_server::PricingServer;
    let layer = OtelServerLayer::new().meter(telemetry.meter("otelwire-tonic"));
    let pricing = PricingServer::new(PricingService::new(telemetry, config));
    let (reporter, health) = tonic_health::server::health_reporter();
    async move {
        reporter
            .set_serving::<PricingServer<PricingService>>()
            .await;
        let (fired, drain) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            reporter
                .set_not_serving::<PricingServer<PricingService>>()
                .await;
            reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            let _ = fired.send(());
        };
        // Small unary calls: no Nagle delay on the answers.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .add_service(pricing)
            .serve_with_incoming_shutdown(incoming, shutdown);
        let drained = async {
            match drain.await {
                Ok(()) => tokio::time::sleep(DRAIN).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            result = server => result,
            () = drained => Ok(()),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (what container runtimes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
