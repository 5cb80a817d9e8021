//! The query spans follow the `tracing` filter: `otelwire_sqlx=off` turns
//! them off (the duration histogram stays). A test binary of its own, so
//! that no other test's subscriber, with another filter, is alive at the
//! same time.

use std::time::Duration;

use otelwire::{LogFormat, Signal};
use otelwire_sqlx::InstrumentedPool;
use otelwire_test::Collector;
use sqlx::pool::PoolOptions;
use tracing::Instrument;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "current_thread")]
async fn filtered_target_makes_no_query_spans() {
    let collector = Collector::start().unwrap();
    let t = otelwire::builder()
        .env_source(|_| None)
        .service_name("sqlx-filtered")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .filter("info,otelwire_sqlx=off")
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(200))
        .process_metrics(false)
        .build()
        .unwrap();
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let pool =
        PoolOptions::<sqlx::Sqlite>::new().connect_lazy_with("sqlite::memory:".parse().unwrap());
    let db = InstrumentedPool::builder(pool)
        .tracer(t.tracer("otelwire-sqlx"))
        .meter(t.meter("otelwire-sqlx"))
        .env_source(|_| None)
        .build()
        .unwrap();
    let request = tracing::info_span!("filtered-request");
    sqlx::query("SELECT 'filtered'")
        .fetch_one(&db)
        .instrument(request.clone())
        .await
        .unwrap();
    drop(request);
    // The request span ends after the query: had the query made a span,
    // it would have been exported with it or before it.
    let spans = collector
        .wait_for_spans(1, |s| s.name == "filtered-request", WAIT)
        .await
        .unwrap();
    assert_eq!(spans.len(), 1);
    let queries: Vec<String> = collector
        .spans()
        .into_iter()
        .filter(|s| s.attributes.contains_key("db.system.name"))
        .map(|s| s.name)
        .collect();
    assert!(queries.is_empty(), "{queries:?}");
    // The histogram is not a span: still recorded.
    collector
        .wait_for_metric(
            "db.client.operation.duration",
            |p| p.attributes.get_str("db.operation.name") == Some("SELECT"),
            WAIT,
        )
        .await
        .unwrap();
    db.close().await;
    t.shutdown().await;
}
