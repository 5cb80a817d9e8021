//! Metadata: trace context and baggage in, a malformed context counted and
//! started anew, capture only by allow-list, sensitive keys never recorded.

mod support;

use http::HeaderName;
use otelwire_test::{SpanKind, Value};
use otelwire_tonic::{OtelClientLayer, OtelServerLayer};
use support::{Ask, Client};
use tonic::metadata::{BinaryMetadataValue, MetadataValue};
use tower::Layer;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn with(ask: Ask, metadata: &[(&'static str, &str)]) -> tonic::Request<Ask> {
    let mut r = tonic::Request::new(ask);
    for (k, v) in metadata {
        r.metadata_mut()
            .insert(*k, MetadataValue::try_from(*v).unwrap());
    }
    r
}

#[tokio::test(flavor = "current_thread")]
async fn context_is_honoured_and_malformed_context_starts_a_new_trace() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    // A plain client: the test writes the metadata itself.
    let mut client = Client::new(support::channel(addr).await);

    let answer = client
        .unary(with(
            Ask::default(),
            &[
                ("traceparent", &format!("00-{TRACE_ID}-00f067aa0ba902b7-01")),
                ("tracestate", "vendor=opaque"),
                ("baggage", "tenant=blue,plan=gold"),
                ("x-request-id", "with-parent"),
            ],
        ))
        .await
        .unwrap();
    // The handler ran in the extracted context, baggage included; the
    // request id came back.
    assert_eq!(
        answer.metadata().get("x-baggage-seen").unwrap(),
        "plan=gold,tenant=blue"
    );
    assert_eq!(
        answer.metadata().get("x-request-id").unwrap(),
        "with-parent"
    );
    for bad in [
        "garbage",
        "00-xyz-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        client
            .unary(with(
                Ask::default(),
                &[
                    ("traceparent", bad),
                    ("tracestate", "vendor=opaque"),
                    ("x-request-id", "malformed"),
                ],
            ))
            .await
            .unwrap();
    }
    // The interceptor, where no layer goes: the caller's span is the parent.
    let mut intercepted = Client::new(tonic::service::interceptor::InterceptedService::new(
        support::channel(addr).await,
        otelwire_tonic::inject_context,
    ));
    let caller = tracing::info_span!("caller");
    {
        use tracing::Instrument;
        intercepted
            .unary(with(Ask::default(), &[("x-request-id", "intercepted")]))
            .instrument(caller.clone())
            .await
            .unwrap();
    }
    drop(caller);
    support::spans(&collector, 5, |s| s.kind == SpanKind::Server).await;
    drop(_default);
    t.shutdown().await;

    let spans = collector.spans_named("test.v1.Echo/Unary");
    let by_id = |id: &str| -> Vec<_> {
        spans
            .iter()
            .filter(|s| s.attributes.get_str("request.id") == Some(id))
            .cloned()
            .collect()
    };
    let child = &by_id("with-parent")[0];
    assert_eq!(child.trace_id, TRACE_ID);
    assert_eq!(child.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(child.trace_state, "vendor=opaque");
    let roots = by_id("malformed");
    assert_eq!(roots.len(), 3);
    for r in &roots {
        assert_eq!(r.parent_span_id, None);
        assert_ne!(r.trace_id, TRACE_ID);
        assert_eq!(
            r.trace_state, "",
            "a tracestate without its traceparent is dropped"
        );
    }
    let invalid = collector.metric_points("otelwire.rpc.server.invalid_context");
    assert_eq!(
        invalid.last().and_then(|p| p.as_f64()),
        Some(3.0),
        "{invalid:?}"
    );
    let intercepted = &by_id("intercepted")[0];
    let caller = &collector.spans_named("caller")[0];
    assert_eq!(intercepted.trace_id, caller.trace_id);
    assert_eq!(
        intercepted.parent_span_id.as_deref(),
        Some(caller.span_id.as_str())
    );
}

/// W3C Trace Context over gRPC as over HTTP (the rules are otelwire's): two
/// `traceparent` entries are no valid parent, several `tracestate` entries
/// are one list.
#[tokio::test(flavor = "current_thread")]
async fn repeated_context_entries_follow_the_w3c_rules() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = Client::new(support::channel(addr).await);
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let mut twice = tonic::Request::new(Ask::default());
    for _ in 0..2 {
        twice.metadata_mut().append(
            "traceparent",
            MetadataValue::try_from(&traceparent).unwrap(),
        );
    }
    twice
        .metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("twice"));
    client.unary(twice).await.unwrap();
    let mut lists = with(
        Ask::default(),
        &[("traceparent", &traceparent), ("x-request-id", "lists")],
    );
    for member in ["a=1", "b=2"] {
        lists
            .metadata_mut()
            .append("tracestate", MetadataValue::try_from(member).unwrap());
    }
    client.unary(lists).await.unwrap();
    support::spans(&collector, 2, |s| s.kind == SpanKind::Server).await;
    drop(_default);
    t.shutdown().await;

    let spans = collector.spans_named("test.v1.Echo/Unary");
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| s.attributes.get_str("request.id") == Some(id))
            .cloned()
            .unwrap()
    };
    let twice = by_id("twice");
    assert_eq!(twice.parent_span_id, None, "two traceparents: a new trace");
    assert_ne!(twice.trace_id, TRACE_ID);
    let lists = by_id("lists");
    assert_eq!(lists.trace_id, TRACE_ID);
    assert_eq!(
        lists.trace_state, "a=1,b=2",
        "two tracestate entries, one list"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn metadata_is_captured_by_allow_list_and_secrets_never() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let keys = [
        "x-tenant",
        "authorization",
        "cookie",
        "x-session-bin",
        "x-api-key",
    ];
    let mut server = OtelServerLayer::new().meter(t.meter("otelwire-tonic"));
    let mut client_layer = OtelClientLayer::new().meter(t.meter("otelwire-tonic"));
    for k in keys {
        server = server.capture_request_metadata(HeaderName::from_static(k));
        client_layer = client_layer.capture_request_metadata(HeaderName::from_static(k));
    }
    client_layer = client_layer.capture_response_metadata(HeaderName::from_static("x-request-id"));
    let addr = support::serve(server).await;
    let mut client = Client::new(client_layer.layer(support::channel(addr).await));

    let mut request = with(
        Ask::default(),
        &[
            ("x-tenant", "blue"),
            ("authorization", "Bearer top-secret"),
            ("cookie", "session=cookie-secret"),
            ("x-api-key", "key-secret"),
            ("x-request-id", "req-7"),
        ],
    );
    request.metadata_mut().insert_bin(
        "x-session-bin",
        BinaryMetadataValue::from_bytes(b"bin-secret"),
    );
    request
        .metadata_mut()
        .append("x-tenant", MetadataValue::from_static("green"));
    client.unary(request).await.unwrap();
    support::spans(&collector, 2, |s| s.name == "test.v1.Echo/Unary").await;
    drop(_default);
    t.shutdown().await;

    let spans = collector.spans_named("test.v1.Echo/Unary");
    assert_eq!(spans.len(), 2);
    let tenant = Value::Array(vec![
        Value::String("blue".into()),
        Value::String("green".into()),
    ]);
    for s in &spans {
        assert_eq!(
            s.attr("rpc.request.metadata.x-tenant"),
            Some(&tenant),
            "{:?}",
            s.kind
        );
        for k in &keys[1..] {
            assert!(
                !s.attributes
                    .contains_key(&format!("rpc.request.metadata.{k}"))
            );
        }
    }
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    assert_eq!(
        client.attr("rpc.response.metadata.x-request-id"),
        Some(&Value::Array(vec![Value::String("req-7".into())]))
    );
    let everything = format!("{:?}{:?}", collector.spans(), collector.logs());
    for secret in [
        "top-secret",
        "cookie-secret",
        "key-secret",
        "bin-secret",
        "YmluLXNlY3JldA",
    ] {
        assert!(!everything.contains(secret), "{secret} was recorded");
    }
}
