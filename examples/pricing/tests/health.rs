//! `grpc.health.v1.Health`: SERVING for the server and for pricing, not
//! traced on the server, and NOT_SERVING once shutdown begins.

mod support;

use std::time::Duration;

use otelwire_test::SpanKind;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::Layer;

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn health_answers_serving_then_not_serving_at_shutdown() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = support::serve(&t, pricing::Config::default(), async {
        let _ = stopped.await;
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(
        otelwire_tonic::OtelClientLayer::new()
            .meter(t.meter("otelwire-tonic"))
            .layer(channel),
    );

    for service in ["", pricing::SERVICE_NAME] {
        let answer = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(
            answer.status(),
            ServingStatus::Serving.into(),
            "{service:?}"
        );
    }
    assert_eq!(pricing::SERVICE_NAME, "pricing.v1.Pricing");
    let unknown = health.check(check("no.such.Service")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // A watcher sees the server go NOT_SERVING when shutdown begins.
    let mut watch = health.watch(check("")).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving.into());
    stop.send(()).unwrap();
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing.into());
    // The open watch does not hold the server past its drain time.
    let ended = tokio::time::timeout(pricing::DRAIN + Duration::from_secs(5), server).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");

    // The client traced its calls; the server does not trace health checks.
    support::spans(&collector, 3, |s| {
        s.kind == SpanKind::Client && s.name == "grpc.health.v1.Health/Check"
    })
    .await;
    drop(_default);
    t.shutdown().await;
    assert!(
        !collector.spans().iter().any(|s| s.kind == SpanKind::Server),
        "{:?}",
        collector.spans()
    );
}
