//! `OTELWIRE_BAGGAGE_ATTRIBUTES` (issue 16, section 2): the named members
//! of a request's `baggage` header land on its server span, on the spans
//! made while serving it, on its log records and on its local lines; the
//! members not named land nowhere.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use otelwire::LogFormat;
use otelwire_axum::OtelLayer;
use otelwire_test::{Collector, Console};
use tower::ServiceExt;
use tracing::Instrument;

const SECRET: &str = "s3cr3t-session";
const TIMEOUT: Duration = Duration::from_secs(10);

fn app() -> Router {
    Router::new()
        .route(
            "/orders",
            get(|| async {
                tracing::info!("listing orders");
                async { tracing::info!("orders loaded") }
                    .instrument(tracing::info_span!("load orders"))
                    .await;
                "ok"
            }),
        )
        .layer(OtelLayer::new())
}

#[tokio::test(flavor = "current_thread")]
async fn named_members_reach_spans_records_and_lines_and_no_other_does() {
    let collector = Collector::start().unwrap();
    let console = Console::default();
    let t = otelwire_test::builder_for(&collector)
        .service_name("baggage-attributes")
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .env_source(|k| (k == "OTELWIRE_BAGGAGE_ATTRIBUTES").then(|| "tenant.id, user.tier".into()))
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let app = app();

    let with = Request::get("/orders")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header(
            "baggage",
            format!("tenant.id=acme;source=edge,session={SECRET},user.tier=gold"),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.clone().oneshot(with).await.unwrap().status(), 200);
    let without = Request::get("/orders").body(Body::empty()).unwrap();
    assert_eq!(app.oneshot(without).await.unwrap().status(), 200);
    t.force_flush();

    // Spans: the server span and its child, for the request with baggage.
    let spans = collector
        .wait_for_spans(
            4,
            |s| s.name == "GET /orders" || s.name == "load orders",
            TIMEOUT,
        )
        .await
        .unwrap();
    let traced = "4bf92f3577b34da6a3ce929d0e0e4736";
    for s in &spans {
        let carried = s.trace_id == traced;
        assert_eq!(
            s.attributes.get_str("tenant.id"),
            carried.then_some("acme"),
            "{s:#?}"
        );
        assert_eq!(
            s.attributes.get_str("user.tier"),
            carried.then_some("gold"),
            "{s:#?}"
        );
        assert!(s.attributes.get("session").is_none(), "{s:#?}");
        assert!(!format!("{s:?}").contains(SECRET), "{s:#?}");
    }
    assert_eq!(spans.iter().filter(|s| s.trace_id == traced).count(), 2);

    // Log records: the handler's two and the completion record.
    let records = collector
        .wait_for_logs(6, |r| r.trace_id.is_some(), TIMEOUT)
        .await
        .unwrap();
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r.trace_id.as_deref() == Some(traced))
        .collect();
    assert!(mine.len() >= 3, "{records:#?}");
    for r in &mine {
        assert_eq!(
            r.attr("tenant.id").and_then(|v| v.as_str()),
            Some("acme"),
            "{r:#?}"
        );
        assert_eq!(
            r.attr("user.tier").and_then(|v| v.as_str()),
            Some("gold"),
            "{r:#?}"
        );
    }
    for r in &records {
        assert!(r.attr("session").is_none(), "{r:#?}");
        if r.trace_id.as_deref() != Some(traced) {
            assert!(r.attr("tenant.id").is_none(), "{r:#?}");
        }
    }

    // Local lines: the members are with the span's fields.
    drop(_default);
    t.shutdown().await;
    let text = console.text();
    assert!(!text.contains(SECRET), "{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message"] == "orders loaded")
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let with: Vec<_> = lines.iter().filter(|v| v["trace_id"] == traced).collect();
    assert_eq!(with.len(), 1, "{text}");
    assert_eq!(with[0]["span"]["tenant.id"], "acme", "{text}");
    assert_eq!(with[0]["span"]["user.tier"], "gold", "{text}");
    let other = lines.iter().find(|v| v["trace_id"] != traced).unwrap();
    assert!(other["span"].get("tenant.id").is_none(), "{text}");
}

#[test]
fn a_name_that_is_no_baggage_key_is_an_init_error_naming_the_variable() {
    let err = otelwire::builder()
        .env_source(|k| (k == "OTELWIRE_BAGGAGE_ATTRIBUTES").then(|| "tenant.id,ten ant".into()))
        .sdk_disabled(true)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("OTELWIRE_BAGGAGE_ATTRIBUTES"), "{err}");
    assert!(err.contains("\"ten ant\" is not a baggage key"), "{err}");
}

#[test]
fn a_member_named_like_a_secret_is_refused_since_it_would_be_copied_in_clear() {
    let err = otelwire::builder()
        .env_source(|k| {
            (k == "OTELWIRE_BAGGAGE_ATTRIBUTES").then(|| "tenant.id,session_token".into())
        })
        .sdk_disabled(true)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("OTELWIRE_BAGGAGE_ATTRIBUTES"), "{err}");
    assert!(
        err.contains("session_token: a baggage member named like a secret"),
        "{err}"
    );
    let err = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .baggage_attributes(["api_key"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("baggage_attributes"), "{err}");
    assert!(err.contains("named like a secret"), "{err}");
}
