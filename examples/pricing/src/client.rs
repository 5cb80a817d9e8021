//! A client of the service, traced by otelwire-tonic's client layer.

use std::time::Duration;

use otelwire_tonic::{OtelClient, OtelClientLayer};
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use crate::proto::pricing_client::PricingClient;

/// A client of the pricing service at `url` (`http://127.0.0.1:50051`),
/// traced by [`OtelClientLayer`] with `telemetry`'s meter. It connects on
/// the first call (within 2 s), so pricing may start after its callers.
pub fn client(
    telemetry: &otelwire::Telemetry,
    url: &str,
) -> Result<PricingClient<OtelClient<Channel>>, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(url.to_owned())?.connect_timeout(Duration::from_secs(2));
    let layer = OtelClientLayer::new()
        .meter(telemetry.meter("otelwire-tonic"))
        .server_uri(endpoint.uri());
    Ok(PricingClient::new(layer.layer(endpoint.connect_lazy())))
}
