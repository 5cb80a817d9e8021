//! `Pricing/Quote` through a real tonic client and otelwire-tonic's client
//! layer: the answer, the statuses of failing quotes, and the spans, logs
//! and metrics that reach a collector.

mod support;

use otelwire_test::{PointValue, SpanKind, StatusCode as OtelStatus};
use pricing::proto::QuoteRequest;
use tonic::Code;

fn ask(sku: &str, quantity: u32) -> QuoteRequest {
    QuoteRequest {
        sku: sku.into(),
        quantity,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_quote_is_one_trace_from_client_to_server() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let (addr, _server) =
        support::serve(&t, pricing::Config::default(), std::future::pending()).await;
    let mut client = support::client(&t, addr);

    let quote = client.quote(ask("widget", 3)).await.unwrap().into_inner();
    assert_eq!(
        (quote.sku.as_str(), quote.quantity, quote.unit_price_cents),
        ("widget", 3, 250)
    );
    assert_eq!(quote.total_cents, 750);
    assert_eq!(quote.currency, "EUR");

    let spans = support::spans(&collector, 2, |s| s.name == "pricing.v1.Pricing/Quote").await;
    let logs = collector
        .wait_for_logs(
            1,
            |l| l.body_str() == Some("item priced"),
            std::time::Duration::from_secs(15),
        )
        .await
        .unwrap();
    drop(_default);
    t.shutdown().await;

    let server = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    assert_eq!(server.trace_id, client.trace_id);
    assert_eq!(
        server.parent_span_id.as_deref(),
        Some(client.span_id.as_str())
    );
    for s in [server, client] {
        assert_eq!(s.attributes.get_str("rpc.system.name"), Some("grpc"));
        assert_eq!(
            s.attributes.get_str("rpc.method"),
            Some("pricing.v1.Pricing/Quote")
        );
        assert_eq!(s.attributes.get_str("rpc.response.status_code"), Some("OK"));
        assert_eq!(s.status.code, OtelStatus::Unset);
    }
    assert_eq!(
        client.attributes.get_i64("server.port"),
        Some(i64::from(addr.port()))
    );
    // The handler's log line is in the server span.
    assert_eq!(logs[0].trace_id.as_deref(), Some(server.trace_id.as_str()));
    assert_eq!(logs[0].span_id.as_deref(), Some(server.span_id.as_str()));

    let priced: Vec<_> = collector
        .metric_points("pricing.quotes")
        .into_iter()
        .filter(|p| p.attributes.get_str("outcome") == Some("priced"))
        .collect();
    assert_eq!(priced.len(), 1, "{priced:?}");
    assert_eq!(priced[0].value, PointValue::Int(1));
    for name in ["rpc.server.call.duration", "rpc.client.call.duration"] {
        let points = collector.metric_points(name);
        assert_eq!(points.len(), 1, "{name}: {points:?}");
        assert_eq!(points[0].count(), Some(1));
        assert_eq!(
            points[0].attributes.get_str("rpc.method"),
            Some("pricing.v1.Pricing/Quote")
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn failing_quotes_answer_their_status() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let config = pricing::Config {
        failing_skus: vec!["anvil".into()],
        ..pricing::Config::default()
    };
    let (addr, _server) = support::serve(&t, config, std::future::pending()).await;
    let mut client = support::client(&t, addr);

    let unavailable = client.quote(ask("anvil", 1)).await.unwrap_err();
    assert_eq!(unavailable.code(), Code::Unavailable);
    assert_eq!(unavailable.message(), "price source unavailable");
    let unknown = client.quote(ask("sprocket", 1)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let invalid = client.quote(ask("../etc", 1)).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let none = client.quote(ask("widget", 0)).await.unwrap_err();
    assert_eq!(none.code(), Code::InvalidArgument);

    let status = |s: &otelwire_test::Span| {
        s.attributes
            .get_str("rpc.response.status_code")
            .map(str::to_owned)
    };
    let spans = support::spans(&collector, 8, |s| s.name == "pricing.v1.Pricing/Quote").await;
    collector
        .wait_for_logs(
            1,
            |l| l.body_str() == Some("price source unavailable"),
            std::time::Duration::from_secs(15),
        )
        .await
        .unwrap();
    drop(_default);
    t.shutdown().await;

    let server = |code: &str| {
        spans
            .iter()
            .find(|s| s.kind == SpanKind::Server && status(s).as_deref() == Some(code))
            .unwrap_or_else(|| panic!("a server span with {code}: {spans:?}"))
    };
    // UNAVAILABLE is the server's failure; NOT_FOUND and INVALID_ARGUMENT
    // are the caller's, so not errors of the server span.
    let s = server("UNAVAILABLE");
    assert_eq!(s.status.code, OtelStatus::Error);
    assert_eq!(s.attributes.get_str("error.type"), Some("UNAVAILABLE"));
    assert_eq!(server("NOT_FOUND").status.code, OtelStatus::Unset);
    assert_eq!(server("INVALID_ARGUMENT").status.code, OtelStatus::Unset);
    // Every failure is an error on the client side.
    for s in spans.iter().filter(|s| s.kind == SpanKind::Client) {
        assert_eq!(s.status.code, OtelStatus::Error, "{s:?}");
    }

    let codes: Vec<_> = {
        let mut c: Vec<_> = collector
            .metric_points("rpc.server.call.duration")
            .into_iter()
            .map(|p| {
                (
                    p.attributes
                        .get_str("rpc.response.status_code")
                        .unwrap()
                        .to_owned(),
                    p.count(),
                )
            })
            .collect();
        c.sort();
        c
    };
    assert_eq!(
        codes,
        [
            ("INVALID_ARGUMENT".to_owned(), Some(2)),
            ("NOT_FOUND".to_owned(), Some(1)),
            ("UNAVAILABLE".to_owned(), Some(1)),
        ]
    );
}
