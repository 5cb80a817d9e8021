//! Server reflection, v1 and v1alpha, is left out of tracing, metrics and
//! completion logs by default, as health checks are (issue 17, section 1);
//! `include_all` traces it.

mod support;

use otelwire_tonic::OtelServerLayer;
use support::{Ask, Client};

const REFLECTION: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

#[tokio::test(flavor = "current_thread")]
async fn reflection_is_not_traced_by_default() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    // The server that traces everything records its metrics elsewhere, so
    // that the default one's series can be told apart.
    let other = otelwire_test::Collector::start().unwrap();
    let t_other = support::telemetry(&other);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let by_default = support::serve_traced(&t).await;
    let everything = support::serve(
        OtelServerLayer::new()
            .meter(t_other.meter("otelwire-tonic"))
            .include_all(),
    )
    .await;
    for addr in [by_default, everything] {
        let mut client = Client::new(support::channel(addr).await);
        for path in REFLECTION {
            // Reflection is a bidirectional stream: one request, one reply.
            let ask = Ask {
                messages: 1,
                ..Ask::default()
            };
            let mut replies = client
                .chat(path, futures_util::stream::iter([ask]))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(replies.message().await.unwrap().map(|r| r.seq), Some(0));
            assert_eq!(replies.message().await.unwrap().map(|r| r.seq), None);
        }
        client
            .call("/grpc.health.v1.Health/Check", Ask::default())
            .await
            .unwrap();
        client.unary(Ask::default()).await.unwrap();
    }
    // Unary on both servers, the two reflection calls and Check on the one
    // tracing everything.
    support::spans(&collector, 5, |s| {
        s.attributes.contains_key("rpc.response.status_code")
    })
    .await;
    drop(_default);
    t.shutdown().await;
    t_other.shutdown().await;

    assert_eq!(
        support::span_names_on_port(&collector, by_default.port()),
        ["test.v1.Echo/Unary"]
    );
    assert_eq!(
        support::span_names_on_port(&collector, everything.port()),
        [
            "grpc.health.v1.Health/Check",
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "test.v1.Echo/Unary",
        ]
    );
    // No duration series for what the default server left out...
    let methods = |c: &otelwire_test::Collector| {
        let mut m: Vec<_> = c
            .metric_points("rpc.server.call.duration")
            .into_iter()
            .filter_map(|p| p.attributes.get_str("rpc.method").map(str::to_owned))
            .collect();
        m.sort();
        m
    };
    assert_eq!(methods(&collector), ["test.v1.Echo/Unary"]);
    assert_eq!(methods(&other).len(), 4, "{:?}", methods(&other));
    // ...and no completion log: one per traced RPC.
    assert_eq!(collector.logs_with_body("RPC completed").len(), 5);
}
