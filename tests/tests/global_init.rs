//! `otelwire::init()` installs process-wide state, so it is tested in a
//! process of its own (this test binary has one test).

use std::collections::HashMap;
use std::time::Duration;

use otelwire::{InitError, LogFormat};
use otelwire_test::Collector;

#[test]
fn init_installs_globals_once_and_a_second_init_is_an_error() {
    let collector = Collector::start().unwrap();
    let endpoint = collector.grpc_endpoint();
    let telemetry = otelwire::builder()
        .env_source(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".into()),
            "OTEL_SERVICE_NAME" => Some("global-test".into()),
            // Everything on, the transport crates and the SDK included: their
            // events and spans must still never be exported.
            "RUST_LOG" => Some("trace".into()),
            _ => None,
        })
        .log_format(LogFormat::None)
        .init()
        .expect("first init");

    // A second init, by the builder or the one-call form, is an error, not a panic.
    let again = otelwire::init();
    assert!(
        matches!(again, Err(InitError::AlreadyInitialized)),
        "{again:?}"
    );
    let msg = again.unwrap_err().to_string();
    assert!(msg.contains("already initialised"), "{msg}");

    // The global subscriber, propagator and meter provider are ours.
    let span = tracing::info_span!("global-span");
    let mut headers: HashMap<String, String> = HashMap::new();
    span.in_scope(|| {
        tracing::info!(user = "ann", "through the global subscriber");
        let cx = otelwire::opentelemetry::Context::current();
        otelwire::opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut headers)
        });
    });
    drop(span);
    let traceparent = headers.get("traceparent").expect("traceparent injected");
    otelwire::opentelemetry::global::meter("global")
        .u64_counter("global.count")
        .build()
        .add(3, &[]);

    let report = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(telemetry.shutdown());
    assert!(report.completed, "{report}");

    let span = collector
        .wait_for_spans_blocking(1, |s| s.name == "global-span", Duration::from_secs(5))
        .unwrap()
        .remove(0);
    assert!(
        traceparent.contains(&span.trace_id),
        "{traceparent} vs {}",
        span.trace_id
    );
    assert_eq!(span.resource.get_str("service.name"), Some("global-test"));
    let log = &collector.logs_with_body("through the global subscriber")[0];
    assert_eq!(log.trace_id.as_deref(), Some(span.trace_id.as_str()));
    assert!(!collector.metric_points("global.count").is_empty());

    // Export made transport events and spans on the export threads (which
    // use the global subscriber); none of them was exported.
    let transport = [
        "hyper",
        "h2",
        "tonic",
        "tower",
        "reqwest",
        "rustls",
        "opentelemetry",
    ];
    for l in collector.logs() {
        assert!(
            !transport.iter().any(|t| l.scope.name.starts_with(t)),
            "a transport event was exported: {l:?}"
        );
    }
    for s in collector.spans() {
        assert!(
            !transport
                .iter()
                .any(|t| s.attributes.get_str("target").unwrap_or("").starts_with(t)),
            "a transport span was exported: {s:?}"
        );
    }
}
