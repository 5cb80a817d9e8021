//! Under `Builder::build` (nothing global, as in tests), a pool made inside
//! the pipeline's dispatcher sends its query spans and its histogram to
//! that pipeline, with no `.tracer(…)` or `.meter(…)` passed.

use std::time::Duration;

use otelwire_sqlx::InstrumentedPool;
use otelwire_test::SpanKind;
use tracing::Instrument;

#[tokio::test(flavor = "current_thread")]
async fn a_pool_made_under_the_dispatcher_records_its_spans_and_metrics() {
    let collector = otelwire_test::Collector::start().unwrap();
    let t = otelwire_test::builder_for(&collector).build().unwrap();
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let pool = sqlx::pool::PoolOptions::<sqlx::Sqlite>::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let db = InstrumentedPool::new(pool).unwrap();
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&db)
        .instrument(tracing::info_span!("load"))
        .await
        .unwrap();
    assert_eq!(one, 1);
    t.force_flush();
    let wait = Duration::from_secs(10);
    let load = collector
        .wait_for_spans(1, |s| s.name == "load", wait)
        .await
        .unwrap();
    let query = collector
        .wait_for_spans(1, |s| s.kind == SpanKind::Client, wait)
        .await
        .unwrap();
    assert_eq!(query[0].trace_id, load[0].trace_id);
    assert_eq!(
        query[0].parent_span_id.as_deref(),
        Some(load[0].span_id.as_str())
    );
    assert_eq!(query[0].scope.name, "otelwire-sqlx");
    collector
        .wait_for_metric("db.client.operation.duration", |_| true, wait)
        .await
        .unwrap();
    drop(_default);
    t.shutdown().await;
}
