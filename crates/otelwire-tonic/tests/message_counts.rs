//! Message counts per direction (issue 17, section 1, "Streaming") for the
//! two kinds of call the server-streaming test does not cover: client
//! streaming and bidirectional streaming, on the server and the client span.

mod support;

use otelwire_test::SpanKind;
use otelwire_tonic::{REQUEST_MESSAGES, RESPONSE_MESSAGES};
use support::Ask;

/// `(kind, request messages, response messages, status)` of each span named
/// `name`, sorted.
fn counts(spans: &[otelwire_test::Span], name: &str) -> Vec<(String, i64, i64, String)> {
    let mut c: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            (
                format!("{:?}", s.kind),
                s.attributes.get_i64(REQUEST_MESSAGES).unwrap_or(-1),
                s.attributes.get_i64(RESPONSE_MESSAGES).unwrap_or(-1),
                s.attributes
                    .get_str("rpc.response.status_code")
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    c.sort();
    c
}

fn row(kind: SpanKind, requests: i64, responses: i64) -> (String, i64, i64, String) {
    (format!("{kind:?}"), requests, responses, "OK".to_owned())
}

#[tokio::test(flavor = "current_thread")]
async fn client_streaming_counts_every_request_message() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = support::traced_client(&t, addr).await;
    // Four requests, one of them larger than an HTTP/2 frame (16 KiB) and
    // the initial flow-control window (64 KiB): its bytes arrive in pieces.
    let big = Ask {
        pad: vec![7; 100_000],
        ..Ask::default()
    };
    let asks = vec![Ask::default(), big, Ask::default(), Ask::default()];
    assert_eq!(client.collect(asks).await.unwrap().into_inner().seq, 4);
    // A stream with no request at all.
    assert_eq!(
        client.collect(Vec::new()).await.unwrap().into_inner().seq,
        0
    );
    support::spans(&collector, 4, |s| s.name == "test.v1.Echo/Collect").await;
    drop(_default);
    t.shutdown().await;

    let mut want = vec![
        row(SpanKind::Server, 4, 1),
        row(SpanKind::Client, 4, 1),
        row(SpanKind::Server, 0, 1),
        row(SpanKind::Client, 0, 1),
    ];
    want.sort();
    assert_eq!(counts(&collector.spans(), "test.v1.Echo/Collect"), want);
}

#[tokio::test(flavor = "current_thread")]
async fn bidirectional_streaming_counts_each_direction_as_it_goes() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = support::traced_client(&t, addr).await;
    // Requests go out one at a time, each after the replies to the one
    // before have come back: the request stream is still open long after
    // the response headers arrived.
    let (tx, rx) = tokio::sync::mpsc::channel::<Ask>(1);
    let mut replies = client
        .chat(
            "/test.v1.Echo/Chat",
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    for messages in [2, 0, 3] {
        tx.send(Ask {
            messages,
            ..Ask::default()
        })
        .await
        .unwrap();
        for _ in 0..messages {
            seqs.push(replies.message().await.unwrap().unwrap().seq);
        }
    }
    drop(tx);
    assert_eq!(replies.message().await.unwrap().map(|r| r.seq), None);
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    drop(replies);
    support::spans(&collector, 2, |s| s.name == "test.v1.Echo/Chat").await;
    drop(_default);
    t.shutdown().await;

    let mut want = vec![row(SpanKind::Server, 3, 5), row(SpanKind::Client, 3, 5)];
    want.sort();
    assert_eq!(counts(&collector.spans(), "test.v1.Echo/Chat"), want);
}
