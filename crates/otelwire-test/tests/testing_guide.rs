//! The tests that docs/testing.md shows as they are (its `rust,ignore`
//! blocks are copied from this file, and the last test here checks that
//! they still are), and its other blocks run as doctests of otelwire-test.

use std::time::Duration;

use otelwire_test::{Collector, StatusCode};
use tracing::Instrument;

#[tokio::test]
async fn place_order_exports_its_span_log_record_and_counter() {
    let collector = Collector::start().unwrap();
    let telemetry = otelwire_test::builder_for(&collector)
        .service_name("shop")
        .build()
        .unwrap();
    // This test's thread, and every task of its current-thread runtime,
    // now log and trace into `telemetry`.
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let orders = telemetry.meter("shop").u64_counter("shop.orders").build();

    async {
        tracing::info!(items = 3, "order placed");
        orders.add(
            1,
            &[otelwire::opentelemetry::KeyValue::new("sku", "widget")],
        );
    }
    .instrument(tracing::info_span!("place_order", order.id = 42))
    .await;
    telemetry.force_flush(); // export now, not at the next interval

    let wait = Duration::from_secs(5);
    let span = collector
        .wait_for_spans(1, |s| s.name == "place_order", wait)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(span.attributes.get_i64("order.id"), Some(42));
    assert_eq!(span.status.code, StatusCode::Unset);
    assert_eq!(span.resource.get_str("service.name"), Some("shop"));

    let log = collector
        .wait_for_logs(1, |l| l.body_str() == Some("order placed"), wait)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(log.severity_text, "INFO");
    assert_eq!(log.attributes.get_i64("items"), Some(3));
    assert_eq!(log.span_id.as_deref(), Some(span.span_id.as_str()));

    let point = collector
        .wait_for_metric("shop.orders", |p| p.as_f64() == Some(1.0), wait)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(point.attributes.get_str("sku"), Some("widget"));

    telemetry.shutdown().await;
}

#[tokio::test]
async fn a_failed_payment_marks_its_span_as_an_error() {
    let collector = Collector::start().unwrap();
    let telemetry = otelwire_test::builder_for(&collector).build().unwrap();
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());

    tracing::info_span!("charge_card").in_scope(|| {
        tracing::error!(reason = "card_declined", "payment failed");
    });
    telemetry.force_flush();

    let span = collector
        .wait_for_spans(1, |s| s.name == "charge_card", Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(span.status.code, StatusCode::Error);
    let log = collector.logs_for_trace(&span.trace_id).remove(0);
    assert_eq!(log.severity_text, "ERROR");
    telemetry.shutdown().await;
}

#[test]
fn nothing_is_exported_below_the_filter() {
    let collector = Collector::start().unwrap();
    let telemetry = otelwire_test::builder_for(&collector)
        .filter("warn")
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info!("routine");
        tracing::warn!("unusual");
    });
    telemetry.force_flush();

    // After a flush, what was exported has arrived: no wait is needed to
    // see that something is absent.
    collector
        .wait_for_logs_blocking(
            1,
            |l| l.body_str() == Some("unusual"),
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(collector.logs_with_body("routine").is_empty());
    telemetry.shutdown_blocking();
}

/// docs/testing.md's `rust,ignore` blocks each name the file they come
/// from on their first line; the rest of the block is in that file as is.
#[test]
fn the_guide_shows_these_tests_as_they_are() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let guide = std::fs::read_to_string(format!("{root}/docs/testing.md")).unwrap();
    let mut blocks = 0;
    let mut rest = guide.as_str();
    while let Some(start) = rest.find("```rust,ignore\n") {
        let body = &rest[start + "```rust,ignore\n".len()..];
        let end = body.find("\n```").expect("an unterminated block");
        let block = &body[..end];
        rest = &body[end..];
        let (first, code) = block.split_once('\n').unwrap();
        let path = first
            .strip_prefix("// From ")
            .unwrap_or_else(|| panic!("a block whose first line is not `// From PATH`: {first}"));
        let source = std::fs::read_to_string(format!("{root}/{path}")).unwrap();
        assert!(
            source.contains(code),
            "docs/testing.md shows code that is not in {path} (any more):\n{code}"
        );
        blocks += 1;
    }
    assert!(blocks >= 2, "found {blocks} copied blocks");
}
