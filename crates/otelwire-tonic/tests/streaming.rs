//! Server streaming: the RPC lasts until its last message, not until its
//! headers; a client that drops the stream makes it `CANCELLED`.

mod support;

use otelwire_test::{SpanKind, StatusCode as OtelStatus};
use support::Ask;

#[tokio::test(flavor = "current_thread")]
async fn the_span_lasts_until_the_last_message() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = support::traced_client(&t, addr).await;
    let started = std::time::Instant::now();
    let ask = Ask {
        messages: 5,
        pause_ms: 40,
        ..Ask::default()
    };
    let mut stream = client.watch(ask).await.unwrap().into_inner();
    let headers_after = started.elapsed();
    let mut seqs = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        seqs.push(reply.seq);
    }
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    drop(stream);
    let spans = support::spans(&collector, 2, |s| s.name == "test.v1.Echo/Watch").await;
    drop(_default);
    t.shutdown().await;

    // Four pauses of 40 ms between the messages, all inside both spans,
    // though the headers came back before the first pause ended.
    let streamed = std::time::Duration::from_millis(160);
    assert!(headers_after < streamed, "{headers_after:?}");
    for kind in [SpanKind::Server, SpanKind::Client] {
        let s = spans.iter().find(|s| s.kind == kind).unwrap();
        assert!(
            s.duration_nanos() >= streamed.as_nanos() as u64,
            "{kind:?} span: {} ns",
            s.duration_nanos()
        );
        assert_eq!(s.attributes.get_str("rpc.response.status_code"), Some("OK"));
        assert_eq!(
            s.attributes.get_i64("otelwire.rpc.response_messages"),
            Some(5)
        );
        assert_eq!(
            s.attributes.get_i64("otelwire.rpc.request_messages"),
            Some(1)
        );
    }
    // The duration metric covers the stream too.
    for name in ["rpc.server.call.duration", "rpc.client.call.duration"] {
        let points = collector.metric_points(name);
        assert_eq!(points.len(), 1, "{name}: {points:?}");
        let otelwire_test::PointValue::Histogram { sum, .. } = points[0].value else {
            panic!("a histogram: {points:?}");
        };
        assert!(
            sum.is_some_and(|s| s >= streamed.as_secs_f64()),
            "{name}: {sum:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_stream_is_cancelled() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = support::traced_client(&t, addr).await;
    // One message, then a stream that never ends: the client gives up.
    let ask = Ask {
        messages: 1,
        action: "hang".into(),
        ..Ask::default()
    };
    let mut stream = client.watch(ask).await.unwrap().into_inner();
    assert_eq!(stream.message().await.unwrap().map(|r| r.seq), Some(0));
    drop(stream);
    let spans = support::spans(&collector, 2, |s| {
        s.name == "test.v1.Echo/Watch"
            && s.attributes.get_str("rpc.response.status_code") == Some("CANCELLED")
    })
    .await;
    // The server is still serving.
    client.unary(Ask::default()).await.unwrap();
    drop(_default);
    t.shutdown().await;

    let server = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    // Cancelling is the caller's doing: no error for the server, an error
    // for the client.
    assert_eq!(server.status.code, OtelStatus::Unset);
    assert_eq!(server.attributes.get_str("error.type"), None);
    assert_eq!(client.status.code, OtelStatus::Error);
    assert_eq!(client.attributes.get_str("error.type"), Some("CANCELLED"));
    for s in [server, client] {
        assert_eq!(
            s.attributes.get_i64("otelwire.rpc.response_messages"),
            Some(1)
        );
    }
    let cancelled: Vec<_> = collector
        .metric_points("rpc.server.call.duration")
        .into_iter()
        .filter(|p| p.attributes.get_str("rpc.response.status_code") == Some("CANCELLED"))
        .collect();
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].count(), Some(1));
}
