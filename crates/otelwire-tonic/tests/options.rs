//! The server layer's knobs as a user sees them: exclusions, tracing every
//! method, the completion log off.

mod support;

use otelwire_tonic::OtelServerLayer;
use support::{Ask, Client};

#[tokio::test(flavor = "current_thread")]
async fn exclusions_include_all_and_no_completion_log() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let meter = || t.meter("otelwire-tonic");
    let excluding = support::serve(
        OtelServerLayer::new()
            .meter(meter())
            .exclude("test.v1.Echo/Watch"),
    )
    .await;
    let everything = support::serve(
        OtelServerLayer::new()
            .meter(meter())
            .include_all()
            .completion_log(false),
    )
    .await;
    for addr in [excluding, everything] {
        let mut client = Client::new(support::channel(addr).await);
        client.unary(Ask::default()).await.unwrap();
        let mut s = client.watch(Ask::default()).await.unwrap().into_inner();
        while s.message().await.unwrap().is_some() {}
        client
            .call("/grpc.health.v1.Health/Check", Ask::default())
            .await
            .unwrap();
    }
    // Unary twice, Watch and Check once each (on the server tracing all).
    support::spans(&collector, 4, |s| {
        s.attributes.contains_key("rpc.response.status_code")
    })
    .await;
    drop(_default);
    t.shutdown().await;

    assert_eq!(
        support::span_names_on_port(&collector, excluding.port()),
        ["test.v1.Echo/Unary"]
    );
    assert_eq!(
        support::span_names_on_port(&collector, everything.port()),
        [
            "grpc.health.v1.Health/Check",
            "test.v1.Echo/Unary",
            "test.v1.Echo/Watch"
        ]
    );
    // Only the first server logs its completions: the one RPC it traced.
    assert_eq!(collector.logs_with_body("RPC completed").len(), 1);
}
