//! `grpc-message` may carry user data (issue 17, section 1): it is recorded,
//! as `otelwire.rpc.status_message`, only through otelwire's redaction and
//! length limits. otelwire redacts by field name (`OTELWIRE_REDACT_FIELDS`,
//! `Builder::redact_field`), not by what a value looks like: a service whose
//! status messages may hold secrets names the field, and then no exporter
//! sees the message.

mod support;

use otelwire::Telemetry;
use otelwire_test::{Collector, SpanKind, StatusCode as OtelStatus};
use otelwire_tonic::STATUS_MESSAGE;
use support::Ask;
use tonic::Code;

/// As `support::telemetry`, with `env` as the whole environment and
/// `attribute_value_length_limit` when given.
fn telemetry(
    collector: &Collector,
    env: &'static [(&str, &str)],
    limit: Option<usize>,
) -> Telemetry {
    let mut b = support::builder(collector).env_source(move |k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    });
    if let Some(l) = limit {
        b = b.attribute_value_length_limit(l);
    }
    b.build().unwrap()
}

/// Makes one failing unary call per `(code, message)` through both layers;
/// returns the server and client span of each, in order.
async fn failing_calls(
    t: &Telemetry,
    collector: &Collector,
    calls: &[(Code, &str)],
) -> Vec<(otelwire_test::Span, otelwire_test::Span)> {
    let addr = support::serve_traced(t).await;
    let mut client = support::traced_client(t, addr).await;
    let mut ids = Vec::new();
    for (i, (code, message)) in calls.iter().enumerate() {
        let mut request = tonic::Request::new(Ask {
            code: *code as i32,
            message: (*message).to_owned(),
            ..Ask::default()
        });
        let id = format!("call-{i}");
        request
            .metadata_mut()
            .insert("x-request-id", id.parse().unwrap());
        let status = client.unary(request).await.unwrap_err();
        // The caller itself gets the whole message: only telemetry is cut.
        assert_eq!(status.code(), *code);
        assert_eq!(status.message(), *message);
        ids.push(id);
    }
    support::spans(collector, 2 * calls.len(), |s| {
        s.name == "test.v1.Echo/Unary"
    })
    .await;
    let spans = collector.spans_named("test.v1.Echo/Unary");
    ids.iter()
        .map(|id| {
            let server = spans
                .iter()
                .find(|s| {
                    s.kind == SpanKind::Server && s.attributes.get_str("request.id") == Some(id)
                })
                .unwrap()
                .clone();
            // One call at a time: the client span is the server span's parent.
            let client = spans
                .iter()
                .find(|s| Some(s.span_id.as_str()) == server.parent_span_id.as_deref())
                .unwrap()
                .clone();
            assert_eq!(client.kind, SpanKind::Client);
            (server, client)
        })
        .collect()
}

/// Asserts that both spans of a call record `message` as the status message.
fn both_record(spans: &(otelwire_test::Span, otelwire_test::Span), message: &str) {
    let (server, client) = spans;
    for s in [server, client] {
        assert_eq!(
            s.attributes.get_str(STATUS_MESSAGE),
            Some(message),
            "{:?}",
            s.kind
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_status_message_is_cut_to_256_characters() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, &[], None);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    // 250 ASCII characters, then two-byte ones: the cut falls among those,
    // and is counted in characters, not bytes.
    let long = format!("{}{}", "x".repeat(250), "é".repeat(50));
    let short = "no such order: 42";
    let spans = failing_calls(
        &t,
        &collector,
        &[(Code::Internal, &long), (Code::NotFound, short)],
    )
    .await;
    drop(_default);
    t.shutdown().await;

    let cut = format!("{}{}", "x".repeat(250), "é".repeat(6));
    let (server, client) = &spans[0];
    for s in [server, client] {
        assert_eq!(
            s.attributes.get_str(STATUS_MESSAGE),
            Some(cut.as_str()),
            "{:?}",
            s.kind
        );
        assert_eq!(s.status.code, OtelStatus::Error);
    }
    // NOT_FOUND fails the client's span only, and only a failed span
    // records the message.
    let (server, client) = &spans[1];
    assert_eq!(client.attributes.get_str(STATUS_MESSAGE), Some(short));
    assert_eq!(server.attributes.get_str(STATUS_MESSAGE), None);
}

#[tokio::test(flavor = "current_thread")]
async fn the_attribute_length_limit_cuts_the_status_message_further() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, &[], Some(20));
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let message = "the quota of tenant blue is used up until midnight";
    let spans = failing_calls(&t, &collector, &[(Code::Unavailable, message)]).await;
    drop(_default);
    t.shutdown().await;

    both_record(&spans[0], &message[..20]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_status_message_named_secret_is_redacted_everywhere() {
    let collector = Collector::start().unwrap();
    let t = telemetry(
        &collector,
        &[("OTELWIRE_REDACT_FIELDS", "otelwire.rpc.status_message")],
        None,
    );
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let secret = "sk_live_51HxQv2eZvKYlo2C";
    let spans = failing_calls(
        &t,
        &collector,
        &[
            (
                Code::Internal,
                &format!("payment failed with api key {secret}"),
            ),
            (
                Code::Unauthenticated,
                &format!("token {secret} expired; password=hunter2"),
            ),
        ],
    )
    .await;
    drop(_default);
    t.shutdown().await;

    both_record(&spans[0], otelwire::REDACTED);
    let (_, client) = &spans[1];
    assert_eq!(
        client.attributes.get_str(STATUS_MESSAGE),
        Some(otelwire::REDACTED)
    );
    // Nowhere else either: no span, event or log record holds it.
    let everything = format!("{:?}{:?}", collector.spans(), collector.logs());
    for leak in [secret, "hunter2"] {
        assert!(!everything.contains(leak), "{leak} was exported");
    }
    // The completion logs still came: the field went, not the telemetry.
    assert_eq!(collector.logs_with_body("RPC completed").len(), 4);
}
