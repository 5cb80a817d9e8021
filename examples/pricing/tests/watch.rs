//! `Pricing/WatchPrices` through a real tonic client and otelwire-tonic's
//! client layer: every update in order, and spans that last the stream.

mod support;

use std::time::Duration;

use otelwire_test::SpanKind;
use pricing::proto::WatchRequest;
use tonic::Code;

#[tokio::test(flavor = "current_thread")]
async fn a_watch_streams_every_update_within_its_span() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let (addr, _server) =
        support::serve(&t, pricing::Config::default(), std::future::pending()).await;
    let mut client = support::client(&t, addr);

    let ask = WatchRequest {
        skus: vec!["widget".into(), "gizmo".into()],
        updates: 3,
        interval_ms: 40,
    };
    let mut stream = client.watch_prices(ask).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while let Some(update) = stream.message().await.unwrap() {
        assert!(update.unit_price_cents > 0);
        seen.push((update.round, update.sku));
    }
    let expected: Vec<_> = (0..3)
        .flat_map(|r| [(r, "widget".to_owned()), (r, "gizmo".to_owned())])
        .collect();
    assert_eq!(seen, expected);

    // An unknown item ends the call before the stream.
    let unknown = WatchRequest {
        skus: vec!["sprocket".into()],
        ..WatchRequest::default()
    };
    let status = client.watch_prices(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let spans = support::spans(&collector, 4, |s| {
        s.name == "pricing.v1.Pricing/WatchPrices"
    })
    .await;
    drop(_default);
    t.shutdown().await;

    // Two pauses of 40 ms between the three rounds, inside both spans.
    let streamed = Duration::from_millis(80).as_nanos() as u64;
    for kind in [SpanKind::Server, SpanKind::Client] {
        let s = spans
            .iter()
            .find(|s| {
                s.kind == kind && s.attributes.get_str("rpc.response.status_code") == Some("OK")
            })
            .unwrap();
        assert!(s.duration_nanos() >= streamed, "{kind:?}: {s:?}");
        assert_eq!(
            s.attributes.get_i64("otelwire.rpc.response_messages"),
            Some(6)
        );
    }
    assert!(spans.iter().any(|s| s.kind == SpanKind::Server
        && s.attributes.get_str("rpc.response.status_code") == Some("NOT_FOUND")));
}
