//! What the logging guide says about instrumentation scopes: every span is
//! in the scope `otelwire` (one tracer serves the whole `tracing` layer)
//! and names the module that made it in its `target` attribute; a log
//! record's scope is its event's target.

use std::time::Duration;

mod checkout {
    pub(super) fn place() {
        tracing::info_span!("place_order").in_scope(|| tracing::info!("order placed"));
    }
}

#[test]
fn spans_name_their_module_in_target_and_log_records_in_their_scope() {
    let collector = otelwire_test::Collector::start().unwrap();
    let telemetry = otelwire_test::builder_for(&collector).build().unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), checkout::place);
    telemetry.force_flush();
    let wait = Duration::from_secs(10);
    let span = &collector
        .wait_for_spans_blocking(1, |s| s.name == "place_order", wait)
        .unwrap()[0];
    assert_eq!(span.scope.name, "otelwire");
    assert_eq!(span.scope.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(span.attributes.get_str("target"), Some("scope::checkout"));
    assert_eq!(
        span.attributes.get_str("code.file.path"),
        Some("crates/otelwire/tests/scope.rs")
    );
    assert!(span.attributes.get_i64("code.line.number").is_some());
    let log = &collector
        .wait_for_logs_blocking(1, |l| l.body_str() == Some("order placed"), wait)
        .unwrap()[0];
    assert_eq!(log.scope.name, "scope::checkout");
    telemetry.shutdown_blocking();
}
