//! Under `Builder::build` (nothing global, as in tests), the layers made
//! inside the pipeline's dispatcher record into that pipeline, with no
//! `.meter(…)` passed.

mod support;

use std::time::Duration;

use otelwire_tonic::{OtelClientLayer, OtelServerLayer};
use support::{Ask, Client};
use tower::Layer;

#[tokio::test(flavor = "current_thread")]
async fn layers_made_under_the_dispatcher_record_its_metrics() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    assert_eq!(
        otelwire::current::source(),
        otelwire::current::Source::Dispatcher
    );
    let addr = support::serve(OtelServerLayer::new()).await;
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();
    let mut client = Client::new(
        OtelClientLayer::new()
            .server_uri(&uri)
            .layer(support::channel(addr).await),
    );
    client.unary(Ask::default()).await.unwrap();
    t.force_flush();
    for name in ["rpc.server.call.duration", "rpc.client.call.duration"] {
        collector
            .wait_for_metric(name, |_| true, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    drop(_default);
    t.shutdown().await;
}
