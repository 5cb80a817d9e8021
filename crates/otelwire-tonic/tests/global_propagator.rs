//! The server extracts with the globally installed propagator (what
//! `OTEL_PROPAGATORS` configures), not a fixed W3C one. Its own test binary:
//! the global propagator is process-wide.

mod support;

use otelwire::opentelemetry::global;
use otelwire::opentelemetry_sdk::propagation::BaggagePropagator;
use support::{Ask, Client};
use tonic::metadata::MetadataValue;

#[tokio::test(flavor = "current_thread")]
async fn the_global_propagator_decides() {
    // Baggage only: a traceparent means nothing.
    global::set_text_map_propagator(BaggagePropagator::new());
    let collector = otelwire_test::Collector::start().unwrap();
    let t = support::telemetry(&collector);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let addr = support::serve_traced(&t).await;
    let mut client = Client::new(support::channel(addr).await);
    let mut r = tonic::Request::new(Ask::default());
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    r.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{trace_id}-00f067aa0ba902b7-01")).unwrap(),
    );
    r.metadata_mut()
        .insert("baggage", MetadataValue::from_static("tenant=blue"));
    let answer = client.unary(r).await.unwrap();
    assert_eq!(
        answer.metadata().get("x-baggage-seen").unwrap(),
        "tenant=blue"
    );
    let spans = support::spans(&collector, 1, |s| s.name == "test.v1.Echo/Unary").await;
    drop(_default);
    t.shutdown().await;
    assert_ne!(spans[0].trace_id, trace_id);
    assert_eq!(spans[0].parent_span_id, None);
}
